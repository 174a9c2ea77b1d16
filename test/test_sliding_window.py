"""Tile placement, importance map, batching and both onnxruntime backends, against a toy network whose
answer is known exactly at every voxel."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_network import toy_decoder, toy_encoder, toy_expected_logits, write_toy_package

from rexground.errors import RexgroundError
from rexground.infer.conditions import Conditions
from rexground.infer.onnx_session import (
    CpuOrtBackend,
    DeviceError,
    IoBindingOrtBackend,
    build_accumulate_graph,
    create_backend,
    make_session,
    make_session_from_model,
    resolve_device,
)
from rexground.infer.package import GraphPair, load_package
from rexground.infer.sliding_window import (
    HostAccumulator,
    gaussian_importance,
    pad_to_patch,
    predict_logits,
    tile_starts,
    tile_steps,
    weight_sum,
)

PAIR = GraphPair(encoder="e", decoder="d", encoder_outputs=("skip0", "skip1"))


def test_steps_follow_nnunet():
    assert tile_steps(8, 8) == [0]
    assert tile_steps(9, 8) == [0, 1]
    assert tile_steps(20, 8) == [0, 4, 8, 12]  # the last tile ends exactly at the border
    assert tile_steps(21, 8) == [0, 3, 6, 10, 13]  # 5 steps of <= 4, spread evenly
    assert tile_steps(100, 10, tile_step=1.0) == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    with pytest.raises(ValueError):
        tile_steps(7, 8)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(40, 400), st.sampled_from([0.25, 0.5, 0.75, 1.0]))
def test_steps_cover_everything_within_the_step_limit(patch, size, frac):
    steps = tile_steps(size, patch, frac)
    assert steps[0] == 0 and steps[-1] + patch == size
    gaps = np.diff(steps)
    assert (gaps > 0).all() or len(steps) == 1
    assert (gaps <= patch * frac + 1).all()  # rounding may add one voxel, never a hole
    assert (gaps <= patch).all()
    # The fewest steps that keep each gap within the target step.
    assert len(steps) == int(np.ceil((size - patch) / max(patch * frac, 1))) + 1


def test_gaussian_importance_map():
    g = gaussian_importance((16, 12, 9))
    assert g.dtype == np.float32 and g.shape == (16, 12, 9)
    assert g.max() == pytest.approx(1.0) and g.min() > 0
    assert np.unravel_index(np.argmax(g), g.shape) in {(7, 5, 4), (8, 6, 4), (8, 5, 4), (7, 6, 4)}
    assert np.allclose(g, g[::-1, ::-1, ::-1], rtol=1e-6)  # symmetric about the centre
    # sigma = patch / 8 = 2 voxels on a 16-wide axis, centred at 7.5 (symmetric for even sizes).
    line = gaussian_importance((16, 1, 1))[:, 0, 0]
    assert line[3] / line[7] == pytest.approx(np.exp(-0.5 * (4.5**2 - 0.5**2) / 2.0**2), rel=1e-5)
    assert not g.flags.writeable


def test_pad_to_patch_and_back():
    vol = np.arange(2 * 3 * 10 * 5, dtype=np.float32).reshape(2, 3, 10, 5)
    padded, region = pad_to_patch(vol, (8, 8, 8), [-1.0, 0.0])
    assert padded.shape == (2, 8, 10, 8)
    assert np.array_equal(padded[(slice(None), *region)], vol)
    assert (padded[0, 0] == -1).all() and (padded[1, 0] == 0).all()
    same, _ = pad_to_patch(vol, (2, 2, 2), [0, 0])
    assert same is vol


def _toy_backend(patch, io_binding=False, batch_size=3, with_query=True):
    enc = make_session_from_model(toy_encoder(patch), "cpu")
    dec = make_session_from_model(toy_decoder(patch, with_query=with_query), "cpu")
    if io_binding:
        return IoBindingOrtBackend(enc, dec, PAIR, batch_size=batch_size, device_type="cpu")
    return CpuOrtBackend(enc, dec, PAIR)


@pytest.mark.parametrize("io_binding", [False, True])
@pytest.mark.parametrize("shape", [(19, 23, 17), (8, 8, 8), (5, 30, 9)])
def test_sliding_window_reproduces_the_toy_network_exactly(shape, io_binding):
    rng = np.random.default_rng(0)
    patch = (8, 8, 8)
    image = rng.normal(size=(1, *shape)).astype(np.float32)
    text = rng.normal(size=(3, 6)).astype(np.float32)
    query = rng.normal(size=(3, 3)).astype(np.float32)
    backend = _toy_backend(patch, io_binding=io_binding)
    backend.set_conditions(Conditions(text, query))
    out = predict_logits(image, backend, 3, patch, batch_size=3, pad_values=[0.0])
    assert out.shape == (3, *shape) and out.dtype == np.float32
    np.testing.assert_allclose(out, toy_expected_logits(image, text, query), rtol=1e-5, atol=1e-5)


def test_io_binding_and_numpy_backends_agree_bit_for_bit_closely():
    rng = np.random.default_rng(1)
    patch = (8, 8, 8)
    image = rng.normal(size=(1, 21, 18, 13)).astype(np.float32)
    cond = Conditions(rng.normal(size=(2, 6)), rng.normal(size=(2, 3)))
    results = []
    for io_binding in (False, True):
        backend = _toy_backend(patch, io_binding=io_binding, batch_size=2)
        backend.set_conditions(cond)
        results.append(predict_logits(image, backend, 2, patch, batch_size=2))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-6)


def test_decoder_without_query_input_ignores_query_features():
    rng = np.random.default_rng(2)
    image = rng.normal(size=(1, 10, 10, 10)).astype(np.float32)
    text = rng.normal(size=(1, 6)).astype(np.float32)
    backend = _toy_backend((8, 8, 8), with_query=False)
    backend.set_conditions(Conditions(text, np.ones((1, 3))))
    out = predict_logits(image, backend, 1, (8, 8, 8))
    np.testing.assert_allclose(out[0], image[0] * text.sum(), rtol=1e-5, atol=1e-5)


def test_accumulate_graph_places_weighted_tiles():
    patch = (4, 4, 4)
    imp = gaussian_importance(patch)
    sess = make_session_from_model(build_accumulate_graph(patch, imp, np.dtype(np.float32)), "cpu")
    acc = np.ones((6, 7, 8), dtype=np.float32)
    logits = np.stack([np.full((1, *patch), 2.0, np.float32), np.full((1, *patch), 5.0, np.float32)])
    pads = np.array([1, 2, 3, 6 - 1 - 4, 7 - 2 - 4, 8 - 3 - 4], dtype=np.int64)
    (out,) = sess.run(None, {"acc": acc, "logits": logits, "index": np.array(1, np.int64), "pads": pads})
    expected = acc.copy()
    expected[1:5, 2:6, 3:7] += 5.0 * imp
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_host_accumulator_matches_weight_sum():
    patch = (4, 4, 4)
    imp = gaussian_importance(patch)
    starts = tile_starts((9, 6, 4), patch)
    acc = HostAccumulator()
    acc.start((9, 6, 4), 1, imp)
    acc.add(0, np.ones((len(starts), 1, *patch), np.float32), starts)
    np.testing.assert_allclose(acc.finish()[0], weight_sum((9, 6, 4), starts, imp), rtol=1e-6)


def test_io_binding_batch_larger_than_backend_is_refused():
    backend = _toy_backend((8, 8, 8), io_binding=True, batch_size=1)
    backend.set_conditions(Conditions(np.ones((1, 6)), np.ones((1, 3))))
    with pytest.raises(ValueError, match="exceeds"):
        predict_logits(np.zeros((1, 16, 8, 8), np.float32), backend, 1, (8, 8, 8), batch_size=2)


def test_cuda_request_without_provider_fails_cleanly_and_auto_falls_back(tmp_path, monkeypatch):
    import onnxruntime as ort

    write_toy_package(tmp_path / "model")
    pkg = load_package(tmp_path / "model")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="install onnxruntime-gpu"):
        create_backend(pkg, "cuda")
    choice = create_backend(pkg, "auto")
    assert choice.device == "cpu" and choice.variant == "fp32" and isinstance(choice.backend, CpuOrtBackend)
    with pytest.raises(DeviceError):
        resolve_device("tpu")


def test_cuda_provider_that_does_not_load_falls_back_under_auto(tmp_path, monkeypatch):
    """onnxruntime-gpu present but CUDA libraries missing: the session silently runs on CPU; we notice."""
    import onnxruntime as ort

    write_toy_package(tmp_path / "model")
    pkg = load_package(tmp_path / "model")
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    real_session = ort.InferenceSession

    def fake_session(path, sess_options=None, providers=None):
        cpu_only = [p for p in providers if p == "CPUExecutionProvider"]
        return real_session(path, sess_options=sess_options, providers=cpu_only)

    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    with pytest.raises(DeviceError, match="did not load"):
        make_session(pkg.graph_paths("fp32")[0], "cuda")
    choice = create_backend(pkg, "auto")
    assert choice.device == "cpu" and "fell back" in choice.note
    with pytest.raises(DeviceError):
        create_backend(pkg, "cuda")


def test_graph_without_the_named_skip_is_refused(tmp_path):
    patch = (8, 8, 8)
    enc = make_session_from_model(toy_encoder(patch), "cpu")
    dec = make_session_from_model(toy_decoder(patch), "cpu")
    bad = GraphPair(encoder="e", decoder="d", encoder_outputs=("skip0", "skipX"))
    with pytest.raises(RexgroundError, match="skipX"):
        CpuOrtBackend(enc, dec, bad)
    assert isinstance(onnx.load_from_string(toy_decoder(patch).SerializeToString()), onnx.ModelProto)
