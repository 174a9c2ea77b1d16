"""End to end: tiny random network -> ONNX export -> model package -> NetworkEngine on a phantom CT whose
file axes are permuted and flipped -> masks on the CT's canonical grid; broken packages are refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

torch = pytest.importorskip("torch")

from test_onnx_export import tiny_config, tiny_net  # noqa: E402

from rexground.engines.network import NetworkEngine  # noqa: E402
from rexground.errors import ModelPackageError, RexgroundError  # noqa: E402
from rexground.export.package import export_network  # noqa: E402
from rexground.export.parity import phantom_scans  # noqa: E402
from rexground.io import CTVolume, read_ct, write_mask  # noqa: E402

# Each module export takes ~10-60 s on a shared 2-core machine: CI runs these with -m "".
pytestmark = pytest.mark.slow

FINDINGS = ["Solid nodule in the right upper lobe measuring 8 mm.", "Small left pleural effusion."]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine") / "model"
    export_network(tiny_net(), tiny_config(), out, allow_test_embedder=True, n_parity_scans=1, fp16=False)
    return out


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory):
    """A phantom written with a permuted, flipped direction matrix (raw axes != canonical axes)."""
    (scan,) = phantom_scans(1, [64.0, 64.0, 64.0], seed=5)
    canonical = scan.hu  # (z, y, x)
    # Raw order (i, j, k) = (x, z, y) with the z axis running superior -> inferior.
    raw = np.transpose(canonical, (2, 0, 1))[:, ::-1, :]
    image = sitk.GetImageFromArray(np.ascontiguousarray(raw.transpose()))
    sz, sy, sx = scan.spacing_zyx
    image.SetSpacing((sx, sz, sy))
    image.SetOrigin((-100.0, 50.0, 20.0))
    # columns: i -> +x (L), j -> -z (inferior), k -> +y (P)
    image.SetDirection((1, 0, 0, 0, 0, 1, 0, -1, 0))
    path = tmp_path_factory.mktemp("ct") / "phantom.nii.gz"
    sitk.WriteImage(image, str(path))
    return path, canonical


def test_engine_masks_land_on_the_ct_grid(package, ct_file, tmp_path):
    path, canonical = ct_file
    ct = read_ct(path)
    assert ct.shape == canonical.shape and np.array_equal(ct.hu, canonical)
    engine = NetworkEngine(package, device="cpu", return_scores=True)
    assert engine.name == "network" and engine.device == "cpu"
    preds = engine.predict(ct, FINDINGS)
    assert [p.text for p in preds] == FINDINGS
    for p in preds:
        assert p.mask.shape == ct.shape and p.mask.dtype == np.uint8
        assert set(np.unique(p.mask)) <= {0, 1} and p.mask.sum() >= 10
        assert p.score is not None and p.score.shape == ct.shape and 0 <= p.score.min() <= p.score.max() <= 1
        assert p.info["engine"] == "network" and p.info["variant"] == "fp32"
        assert p.info["tile_step"] == 0.5  # the manifest's default
        assert "query" not in p.info  # the caller parsed the finding; the engine does not hand it back
    # Written with the CT's geometry, the mask has the raw array's shape (not the canonical one).
    out = write_mask(tmp_path / "mask.nii.gz", preds[0].mask, ct.geometry)
    assert sitk.ReadImage(str(out)).GetSize() == sitk.ReadImage(str(path)).GetSize()
    assert engine.predict(ct, []) == []


def test_io_binding_path_gives_the_same_masks(package, ct_file):
    ct = read_ct(ct_file[0])
    plain = NetworkEngine(package, device="cpu").predict(ct, FINDINGS)
    bound = NetworkEngine(package, device="cpu", io_binding=True, batch_size=3).predict(ct, FINDINGS)
    for a, b in zip(plain, bound, strict=True):
        assert np.array_equal(a.mask, b.mask)


def test_findings_of_one_scan_reuse_the_encoder(package, ct_file, monkeypatch):
    ct = read_ct(ct_file[0])
    engine = NetworkEngine(package, device="cpu")
    calls = {"encode": 0, "decode": 0}
    backend = engine.choice.backend
    enc, dec = backend.encode, backend.decode

    def counting_encode(tiles):
        calls["encode"] += 1
        return enc(tiles)

    def counting_decode(features, finding):
        calls["decode"] += 1
        return dec(features, finding)

    monkeypatch.setattr(backend, "encode", counting_encode)
    monkeypatch.setattr(backend, "decode", counting_decode)
    engine.predict(ct, [*FINDINGS, "Patchy ground-glass opacity in the left lower lobe."])
    assert calls["encode"] > 0 and calls["decode"] == 3 * calls["encode"]


def test_tiny_ct_smaller_than_a_patch_is_padded(package):
    hu = np.full((5, 9, 7), 40, np.int16)
    hu[:, :, :2] = -8192
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((1.0, 1.0, 2.0))
    ct = CTVolume.from_image(image)
    (pred,) = NetworkEngine(package, device="cpu").predict(ct, ["Nodule."])
    assert pred.mask.shape == ct.shape and pred.mask.sum() >= 10


def test_corrupt_package_is_refused(package, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(package, broken)
    path = broken / "decoder.fp32.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match=r"decoder\.fp32\.onnx"):
        NetworkEngine(broken, device="cpu")


def test_cuda_without_provider_is_a_clear_error(package, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(RexgroundError, match="onnxruntime-gpu"):
        NetworkEngine(package, device="cuda")
    assert NetworkEngine(package, device="auto").device == "cpu"


def test_package_needing_anatomy_priors_says_so(package, tmp_path):
    import json

    from rexground.infer.package import MANIFEST_NAME

    odd = tmp_path / "model"
    shutil.copytree(package, odd)
    raw = json.loads((odd / MANIFEST_NAME).read_text())
    raw["input_channels"] = ["ct", "spleen"]
    (odd / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(ModelPackageError, match="spleen"):
        NetworkEngine(odd, device="cpu")
    raw["input_channels"] = ["ct", "lungs"]  # known priors are computed by rexground.anatomy
    (odd / MANIFEST_NAME).write_text(json.dumps(raw))
    assert NetworkEngine(odd, device="cpu").anatomy_provider is not None
