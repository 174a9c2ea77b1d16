"""Export of a (tiny, random) GroundingNet to an ONNX package: graphs, fp16 variant, parity, refusals."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from rexground.cli import main as cli_main  # noqa: E402
from rexground.errors import RexgroundError  # noqa: E402
from rexground.export import ExportError  # noqa: E402
from rexground.export.graphs import KEEP_FP32_OPS  # noqa: E402
from rexground.export.package import export_network  # noqa: E402
from rexground.export.parity import phantom_scans  # noqa: E402
from rexground.infer.conditions import Conditions  # noqa: E402
from rexground.infer.onnx_session import CpuOrtBackend, make_session  # noqa: E402
from rexground.infer.package import load_package  # noqa: E402
from rexground.infer.sliding_window import predict_logits  # noqa: E402
from rexground.train.config import InputSpec, NetConfig, TrainConfig  # noqa: E402
from rexground.train.network import GroundingNet  # noqa: E402
from rexground.train.tile_backend import TorchTileBackend  # noqa: E402

PATCH = (16, 16, 16)


def tiny_config(text_encoder: str = "hashing-test") -> TrainConfig:
    return TrainConfig(
        net=NetConfig.tiny(),
        input=InputSpec(patch_size_zyx=PATCH, spacing_zyx=(4.0, 4.0, 4.0), text_encoder=text_encoder),
        threshold=0.5,
    )


def tiny_net(seed: int = 0) -> GroundingNet:
    torch.manual_seed(seed)
    net = GroundingNet(tiny_config().net).eval()
    # Spread the logits around the threshold so the mask comparison is not trivially all-empty.
    with torch.no_grad():
        net.query_bias.bias.fill_(0.0)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    manifest = export_network(tiny_net(), tiny_config(), out, allow_test_embedder=True, n_parity_scans=1)
    return out, manifest


@pytest.mark.slow
def test_package_has_both_variants_hashed_and_loadable(exported):
    out, manifest = exported
    pkg = load_package(out)
    assert set(manifest.graphs) == {"fp32", "fp16"}
    assert set(manifest.files) == {
        "encoder.fp32.onnx",
        "decoder.fp32.onnx",
        "encoder.fp16.onnx",
        "decoder.fp16.onnx",
    }
    assert pkg.manifest.patch_size == PATCH and pkg.manifest.target_spacing == (4.0, 4.0, 4.0)
    assert pkg.manifest.text_embedder == "hashing-test" and pkg.manifest.text_encoder is None
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no export temporaries left


@pytest.mark.slow
def test_fp32_parity_is_written_and_tight(exported):
    _, manifest = exported
    p = manifest.parity["fp32"]
    assert p.passed and p.max_abs_logit_diff < 1e-3
    assert p.scans_compared == 1 and p.findings_compared == 3 and p.tiles_compared >= 4
    assert p.masks_identical and p.mismatched_mask_voxels == 0
    p16 = manifest.parity["fp16"]
    assert p16.max_abs_logit_diff < 0.25 and p16.tiles_compared == p.tiles_compared


@pytest.mark.slow
def test_graphs_have_fixed_patch_and_dynamic_batch(exported):
    out, manifest = exported
    enc = onnx.load(str(out / manifest.graphs["fp32"].encoder))
    dims = [d.dim_param or d.dim_value for d in enc.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [1, *PATCH]
    dec = onnx.load(str(out / manifest.graphs["fp32"].decoder))
    assert [i.name for i in dec.graph.input] == [
        *manifest.graphs["fp32"].encoder_outputs,
        "text_embedding",
        "query_features",
    ]
    # The same graph runs with another batch size.
    sess = make_session(out / manifest.graphs["fp32"].encoder, "cpu")
    feats = sess.run(None, {"image": np.zeros((3, 1, *PATCH), np.float32)})
    assert all(f.shape[0] == 3 for f in feats)


@pytest.mark.slow
def test_fp16_keeps_normalisation_in_fp32_and_io_in_fp32(exported):
    out, manifest = exported
    for name in (manifest.graphs["fp16"].encoder, manifest.graphs["fp16"].decoder):
        model = onnx.load(str(out / name))
        inits = {t.name: t.data_type for t in model.graph.initializer}
        produced_by = {o: n for n in model.graph.node for o in n.output}
        norms = [n for n in model.graph.node if n.op_type in KEEP_FP32_OPS]
        assert norms
        for node in norms:
            # scale and bias stay float32, and the data input arrives through a Cast to float32
            assert all(inits.get(i, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT for i in node.input[1:])
            src = produced_by.get(node.input[0])
            assert src is not None and src.op_type == "Cast"
            assert next(a.i for a in src.attribute if a.name == "to") == onnx.TensorProto.FLOAT
        convs = [n for n in model.graph.node if n.op_type == "Conv"]
        assert all(inits[n.input[1]] == onnx.TensorProto.FLOAT16 for n in convs)
        for vi in (*model.graph.input, *model.graph.output):
            assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.slow
def test_onnx_sliding_window_matches_torch_eager(exported):
    out, manifest = exported
    net = tiny_net()
    rng = np.random.default_rng(3)
    volume = rng.normal(size=(1, 21, 30, 17)).astype(np.float32)
    cond = Conditions(rng.normal(size=(2, 384)) / 20, rng.random((2, manifest.query_feature_dim)))
    pair = manifest.graphs["fp32"]
    ort_backend = CpuOrtBackend(
        make_session(out / pair.encoder, "cpu"), make_session(out / pair.decoder, "cpu"), pair
    )
    results = []
    for backend in (TorchTileBackend(net), ort_backend):
        backend.set_conditions(cond)
        results.append(predict_logits(volume, backend, 2, PATCH, batch_size=2))
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)


def test_test_embedder_run_needs_explicit_permission(tmp_path, monkeypatch):
    # No encoder at the default place either (this machine's user cache may hold one).
    monkeypatch.setenv("REXGROUND_TEXT_ENCODER", str(tmp_path / "no-encoder"))
    with pytest.raises(ExportError, match="allow-test-embedder"):
        export_network(tiny_net(), tiny_config(), tmp_path / "m")
    with pytest.raises(ExportError, match="--text-encoder"):
        export_network(tiny_net(), tiny_config("minilm"), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_export_takes_the_default_sentence_encoder_folder_when_none_is_given(tmp_path, monkeypatch):
    """Without --text-encoder a MiniLM run's package takes the user's default encoder folder (it was never
    found before: the lookup asked for a function the encoder module does not have)."""
    from rexground.export import package

    folder = tmp_path / "encoder"
    monkeypatch.setenv("REXGROUND_TEXT_ENCODER", str(folder))
    assert package._default_text_encoder_dir() is None  # absent: the export asks for --text-encoder
    folder.mkdir()
    assert package._default_text_encoder_dir() == folder


def test_existing_package_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="--force"):
        export_network(tiny_net(), tiny_config(), out, allow_test_embedder=True)
    assert (out / "keep.txt").read_text() == "x"


def test_phantoms_carry_scanner_padding_and_several_tiles():
    (scan,) = phantom_scans(1, [64.0, 64.0, 64.0])
    assert scan.hu.dtype == np.int16 and scan.hu.min() == -2048
    assert all(s * sp > 64 for s, sp in zip(scan.hu.shape, scan.spacing_zyx, strict=True))
    assert len(scan.findings) == 3


@pytest.mark.slow
def test_cli_exports_a_training_run_folder(tmp_path, capsys):
    from rexground.train.checkpoint import save_checkpoint

    run = tmp_path / "run"
    cfg = tiny_config()
    save_checkpoint(
        run / "checkpoints" / "last.pt",
        {"model": tiny_net(1).state_dict(), "config": cfg.model_dump(mode="json"), "step": 7},
    )
    rc = cli_main(["export", "--run", str(run), "--out", str(tmp_path / "model"), "--allow-test-embedder",
                   "--no-fp16", "--parity-scans", "1", "--parity-phantoms", "builtin"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "fp32" in printed and "True" in printed
    manifest = load_package(tmp_path / "model").manifest
    assert set(manifest.graphs) == {"fp32"}
    assert manifest.source["checkpoint"].endswith("last.pt")
    assert json.loads(manifest.source["config"])["input"]["patch_size_zyx"] == list(PATCH)
    with pytest.raises(RexgroundError):
        from rexground.export.package import export_run

        export_run(tmp_path / "nowhere", tmp_path / "model2", allow_test_embedder=True)


@pytest.mark.slow
def test_anatomy_gated_network_exports_with_parity(tmp_path):
    # The gate adds an encoder output (the anatomy channels) that the decoder graph takes back.
    config = TrainConfig(
        net=NetConfig.tiny(in_channels=3, anatomy_gate_maps=2),
        input=InputSpec(
            patch_size_zyx=PATCH,
            spacing_zyx=(4.0, 4.0, 4.0),
            text_encoder="hashing-test",
            anatomy_channels=("lung_right", "lung_left"),
        ),
    )
    torch.manual_seed(0)
    net = GroundingNet(config.net).eval()
    out = tmp_path / "model"
    manifest = export_network(net, config, out, allow_test_embedder=True, n_parity_scans=1)
    pair = manifest.graphs["fp32"]
    assert len(pair.encoder_outputs) == len(tiny_net().encode_image(torch.zeros(1, 1, *PATCH))) + 1
    p = manifest.parity["fp32"]
    assert p.passed and p.max_abs_logit_diff < 1e-3
    # whole-scan parity on a rexground.synth phantom with its anatomy computed as inference computes it
    assert p.scans_compared == 1 and p.findings_compared >= 1 and p.masks_identical
    rng = np.random.default_rng(5)
    volume = rng.normal(size=(3, 21, 30, 17)).astype(np.float32)
    volume[1:] = volume[1:] > 0
    cond = Conditions(rng.normal(size=(2, 384)) / 20, rng.random((2, manifest.query_feature_dim)))
    ort_backend = CpuOrtBackend(
        make_session(out / pair.encoder, "cpu"), make_session(out / pair.decoder, "cpu"), pair
    )
    results = []
    for backend in (TorchTileBackend(net), ort_backend):
        backend.set_conditions(cond)
        results.append(predict_logits(volume, backend, 2, PATCH, batch_size=2, pad_values=(0.0, 0.0, 0.0)))
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)


def test_unknown_parity_phantoms_are_refused_before_any_work(tmp_path):
    with pytest.raises(ExportError, match="parity_phantoms"):
        export_network(
            tiny_net(), tiny_config(), tmp_path / "m", allow_test_embedder=True, parity_phantoms="x"
        )
    assert not (tmp_path / "m").exists()
