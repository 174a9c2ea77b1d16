"""Sentence embeddings stored on disk, keyed by the sha256 of the exact text, for training.

Layout: ``ROOT/<model id[:16]>/<key[:2]>/<key>.npy`` where the model id is the encoder's ONNX sha256, so
vectors of two encoders never mix and swapping the encoder simply starts a new subfolder. One small
``.npy`` per text: writes are atomic (temporary file, then rename), so parallel data-loader workers and an
interrupted run never leave a half-written vector; a rerun computes only what is missing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rexground.errors import InputFileError


class Encoder(Protocol):
    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def text_key(text: str) -> str:
    """sha256 hex of the UTF-8 text, exactly as given (the encoder sees the raw text, so the key does too)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """``cache.get_or_encode(texts, encoder) -> (N, dim)``: cached rows read, missing ones encoded once."""

    def __init__(self, root: str | Path, model_id: str, dim: int):
        self.root = Path(root)
        self.model_id = model_id
        self.dim = int(dim)
        self.folder = self.root / model_id[:16]

    @classmethod
    def for_encoder(cls, root: str | Path, encoder: Encoder) -> EmbeddingCache:
        return cls(root, encoder.model_id, encoder.dim)

    def path(self, text: str) -> Path:
        key = text_key(text)
        return self.folder / key[:2] / f"{key}.npy"

    def __contains__(self, text: str) -> bool:
        return self.path(text).is_file()

    def get(self, text: str) -> np.ndarray | None:
        """The stored vector, or None. A damaged file is an error naming it (delete it to recompute)."""
        path = self.path(text)
        if not path.is_file():
            return None
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputFileError(
                path, f"unreadable cached embedding ({exc}); delete it to recompute"
            ) from None
        if vec.shape != (self.dim,) or vec.dtype != np.float32:
            raise InputFileError(
                path, f"cached embedding has shape {vec.shape} {vec.dtype}, expected ({self.dim},)"
            )
        return vec

    def put(self, text: str, vector: np.ndarray) -> None:
        vec = np.asarray(vector, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ValueError(f"embedding shape {vec.shape}, expected ({self.dim},)")
        path = self.path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, vec, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_encode(self, texts: Sequence[str], encoder: Encoder, batch_size: int = 256) -> np.ndarray:
        """Rows for ``texts`` in order; texts not yet stored are encoded (each distinct text once) and stored."""
        if encoder.model_id != self.model_id:
            raise ValueError("this cache belongs to another encoder (model ids differ)")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            vec = self.get(text)
            if vec is None:
                missing.setdefault(text, []).append(i)
            else:
                out[i] = vec
        todo = list(missing)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            vecs = encoder.encode(chunk)
            for text, vec in zip(chunk, vecs, strict=True):
                self.put(text, vec)
                out[missing[text]] = vec
        return out

    def warm(self, texts: Iterable[str], encoder: Encoder, batch_size: int = 256) -> int:
        """Encode and store every distinct text not yet cached (with a progress bar). Returns how many."""
        from tqdm import tqdm

        todo = [t for t in dict.fromkeys(texts) if t not in self]
        for start in tqdm(
            range(0, len(todo), batch_size), desc="embedding texts", unit="batch", disable=not todo
        ):
            self.get_or_encode(todo[start : start + batch_size], encoder, batch_size=batch_size)
        return len(todo)
