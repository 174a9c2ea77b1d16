"""inference.py run in-process with its paths moved by environment variables: the Grand Challenge I/O contract
(sockets in, mask + results out, geometry copied, one component per finding for a list) and a clean,
non-zero exit on every kind of bad input. The same checks run on the built image in CI
(scripts/container/test-run.sh)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_predict_case import BrightEngine, write_ct

from rexground.engines import select
from rexground.io import read_mask_raw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts" / "container"))
import compare_output  # noqa: E402


def load_inference(monkeypatch, input_dir: Path, output_dir: Path, model_dir: Path):
    monkeypatch.setenv("GC_INPUT_PATH", str(input_dir))
    monkeypatch.setenv("GC_OUTPUT_PATH", str(output_dir))
    monkeypatch.setenv("GC_MODEL_PATH", str(model_dir))
    spec = importlib.util.spec_from_file_location("inference_under_test", REPO / "inference.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # pydantic resolves the socket models through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bright(monkeypatch):
    engine = BrightEngine()
    monkeypatch.setattr(select, "_rules", lambda: engine)
    return engine


def make_case(root: Path, finding, ct_name="3f9c2b.mha", inputs_json=None) -> tuple[Path, np.ndarray]:
    ct_dir = root / "input" / "images" / "chest-ct"
    ct_dir.mkdir(parents=True)
    raw = write_ct(ct_dir / ct_name)
    if finding is not None:
        (root / "input" / "finding.json").write_text(json.dumps(finding))
    if inputs_json is not None:
        (root / "input" / "inputs.json").write_text(json.dumps(inputs_json))
    (root / "output").mkdir()
    return root / "input", raw


def run(monkeypatch, tmp_path, capsys=None) -> tuple[int, Path]:
    module = load_inference(monkeypatch, tmp_path / "input", tmp_path / "output", tmp_path / "no-model")
    return module.run(), tmp_path / "output"


def test_one_finding_gives_a_3d_mask_with_geometry_and_results(monkeypatch, tmp_path, bright):
    input_dir, raw = make_case(tmp_path, "Nodule in the right upper lobe.")
    rc, out = run(monkeypatch, tmp_path)
    assert rc == 0
    mask = out / "images" / "finding-segmentation" / "output.mha"
    np.testing.assert_array_equal(read_mask_raw(mask), raw > 100)
    for written in (mask, out / "results.json"):  # readable by whoever collects /output
        assert written.stat().st_mode & 0o777 == 0o644
    ct = sitk.ReadImage(str(next((input_dir / "images" / "chest-ct").iterdir())))
    assert sitk.ReadImage(str(mask)).GetDirection() == ct.GetDirection()
    results = json.loads((out / "results.json").read_text())
    assert results["engine"] == "bright" and "zero-shot engine: no model package" in results["engine_reason"]
    (f,) = results["findings"]
    assert f["text"] == "Nodule in the right upper lobe." and f["voxels"] == int((raw > 100).sum())
    assert f["query"]["category"] == "2d" and f["query"]["lobes"] == ["RUL"] and f["seconds"] >= 0
    assert results["layout"] == "mask-3d" and "volume_ml" not in f["info"]  # one volume per finding
    expect = compare_output.Expected(n_findings=1)
    checks = compare_output.check(expect, tmp_path, input_dir, out, rc, "")
    assert all(ok for ok, _ in checks), checks


def test_a_list_gives_one_component_per_finding(monkeypatch, tmp_path, bright):
    input_dir, raw = make_case(tmp_path, ["Nodule.", "Another nodule."], ct_name="ct.nii.gz")
    rc, out = run(monkeypatch, tmp_path)
    assert rc == 0
    mask = out / "images" / "finding-segmentation" / "output.mha"
    assert sitk.ReadImage(str(mask)).GetNumberOfComponentsPerPixel() == 2
    got = read_mask_raw(mask)
    np.testing.assert_array_equal(got[0], raw > 100)
    np.testing.assert_array_equal(got[1], raw > 150)
    assert bright.calls == [["Nodule.", "Another nodule."]]
    assert json.loads((out / "results.json").read_text())["layout"] == "vector-components"
    checks = compare_output.check(compare_output.Expected(n_findings=2), tmp_path, input_dir, out, rc, "")
    assert all(ok for ok, _ in checks), checks


def test_inputs_json_names_the_ct_folder_and_carries_the_finding(monkeypatch, tmp_path, bright):
    sockets = [
        {"interface": {"slug": "chest-ct", "relative_path": "images/chest-ct", "kind": "Image"}, "image": {"pk": 1}},
        {"interface": {"slug": "finding", "relative_path": "finding.json", "kind": "Anything"},
         "value": "Consolidation in the left lower lobe", "file": None},
    ]  # fmt: skip
    make_case(tmp_path, None, inputs_json=sockets)
    assert run(monkeypatch, tmp_path)[0] == 0
    assert bright.calls == [["Consolidation in the left lower lobe"]]


def test_inputs_json_without_a_value_points_to_the_finding_file(monkeypatch, tmp_path, bright):
    sockets = [{"interface": {"slug": "finding", "relative_path": "finding.json"}, "value": None}]
    make_case(tmp_path, "Pleural effusion on the right", inputs_json=sockets)
    assert run(monkeypatch, tmp_path)[0] == 0
    assert bright.calls == [["Pleural effusion on the right"]]


@pytest.mark.parametrize(
    ("finding", "problem"),
    [
        ("", "finding sentence is empty"),
        ("   ", "finding sentence is empty"),
        ([], "no finding given"),
        (42, "must be a JSON string or a list of strings"),
        (["ok", 7], "must be a JSON string or a list of strings"),
        ({"text": "nodule"}, "must be a JSON string or a list of strings"),
        (None, "finding.json: does not exist"),
    ],
)
def test_bad_findings_exit_non_zero_naming_the_problem(
    monkeypatch, tmp_path, capsys, bright, finding, problem
):
    make_case(tmp_path, finding)
    rc, out = run(monkeypatch, tmp_path)
    assert rc == 1
    assert problem in capsys.readouterr().err
    assert list(out.iterdir()) == []
    assert bright.calls == []


def test_invalid_json_is_named(monkeypatch, tmp_path, capsys, bright):
    make_case(tmp_path, None)
    (tmp_path / "input" / "finding.json").write_text('"unterminated')
    assert run(monkeypatch, tmp_path)[0] == 1
    assert "finding.json: is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        ("corrupt", "cannot be read as an image"),
        ("truncated", "truncated: the gzip stream ends after"),
        ("nan", "NaN or infinite voxel value(s) in 2 of 12 slices"),
        ("empty", "is empty (0 bytes)"),
        ("none", "must hold exactly one CT"),
        ("two", "must hold exactly one CT"),
        ("no-folder", "does not exist"),
    ],
)
def test_bad_ct_inputs_exit_non_zero_naming_the_file(monkeypatch, tmp_path, capsys, bright, setup, problem):
    input_dir, _ = make_case(tmp_path, "Nodule")
    ct_dir = input_dir / "images" / "chest-ct"
    ct = next(ct_dir.iterdir())
    if setup == "corrupt":
        ct.write_bytes(b"ObjectType = Image\nNDims = 3\n" + bytes(range(256)) * 4)
    elif setup == "truncated":  # an interrupted copy of a .nii.gz: SimpleITK alone reads it as a volume
        ct.unlink()
        ct = ct_dir / "3f9c2b.nii.gz"
        noisy = np.random.default_rng(0).normal(-700, 200, size=(12, 16, 20)).astype(np.int16)
        sitk.WriteImage(sitk.GetImageFromArray(noisy), str(ct), useCompression=True)
        ct.write_bytes(ct.read_bytes()[: ct.stat().st_size * 6 // 10])
    elif setup == "nan":
        image = sitk.Cast(sitk.ReadImage(str(ct)), sitk.sitkFloat32)
        array = sitk.GetArrayFromImage(image)
        array[[3, 7]] = np.nan  # two slices of a float CT
        nan_image = sitk.GetImageFromArray(array)
        nan_image.CopyInformation(image)
        sitk.WriteImage(nan_image, str(ct), useCompression=True)
    elif setup == "empty":
        ct.write_bytes(b"")
    elif setup == "none":
        ct.unlink()
    elif setup == "two":
        (ct_dir / "second.nrrd").write_bytes(ct.read_bytes())
    elif setup == "no-folder":
        ct.unlink()
        ct_dir.rmdir()
    rc, out = run(monkeypatch, tmp_path)
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("inference.py: error: ") and problem in err
    assert "Traceback" not in err
    assert not (out / "images").exists()


def test_a_broken_model_package_fails_instead_of_falling_back(monkeypatch, tmp_path, capsys, bright):
    make_case(tmp_path, "Nodule")
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{}")
    module = load_inference(monkeypatch, tmp_path / "input", tmp_path / "output", model)
    assert module.run() == 1
    assert "manifest.json" in capsys.readouterr().err
    assert bright.calls == []


def test_compare_output_catches_a_wrong_answer(monkeypatch, tmp_path, bright):
    """The container test's comparison is not a rubber stamp: a mask that differs from the expected one fails."""
    input_dir, raw = make_case(tmp_path, "Nodule")
    rc, out = run(monkeypatch, tmp_path)
    wrong = sitk.GetImageFromArray((raw > 250).astype(np.uint8).transpose())
    sitk.WriteImage(wrong, str(tmp_path / "expected.mha"))
    expect = compare_output.Expected(n_findings=1, expected_mask="expected.mha", min_dice_vs_expected=0.99)
    checks = compare_output.check(expect, tmp_path, input_dir, out, rc, "")
    failed = [text for ok, text in checks if not ok]
    assert len(failed) == 1 and "Dice vs expected output" in failed[0]
    # and an unexpected extra file in /output is caught too
    (out / "debug.npy").write_bytes(b"x")
    checks = compare_output.check(compare_output.Expected(), tmp_path, input_dir, out, rc, "")
    assert any("files written" in text for ok, text in checks if not ok)


CASES = sorted(p.name for p in (REPO / "test" / "input").iterdir() if p.is_dir())


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] if c.startswith("phantom") else []) for c in CASES]
)
def test_container_cases_pass_in_process(monkeypatch, tmp_path, capsys, case):
    """Every container test case (test/input/<case>, test/expected/<case>) with the real default engine,
    checked by the same comparison the container run uses: known answer, clean failure on bad input."""
    expect_dir = REPO / "test" / "expected" / case
    expect = compare_output.Expected.model_validate_json((expect_dir / "expect.json").read_text())
    (tmp_path / "output").mkdir()
    module = load_inference(
        monkeypatch, REPO / "test" / "input" / case, tmp_path / "output", tmp_path / "none"
    )
    rc = module.run()
    err = capsys.readouterr().err
    checks = compare_output.check(
        expect, expect_dir, REPO / "test" / "input" / case, tmp_path / "output", rc, err
    )
    assert all(ok for ok, _ in checks), [text for ok, text in checks if not ok]


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory):
    """A tiny random network exported as a real package (the container test's package)."""
    pytest.importorskip("torch")
    import make_model_package

    root = tmp_path_factory.mktemp("package")
    make_model_package.export_tiny(root / "model")
    make_model_package.break_copy(root / "model", root / "broken")
    return root / "model", root / "broken"


@pytest.mark.slow
def test_a_mounted_package_runs_the_network_and_a_changed_one_is_refused(
    monkeypatch, tmp_path, capsys, tiny_package
):
    model, broken = tiny_package
    input_dir, raw = make_case(tmp_path, ["Nodule in the right upper lobe", "Effusion on the left"])
    module = load_inference(monkeypatch, input_dir, tmp_path / "output", model)
    assert module.run() == 0
    results = json.loads((tmp_path / "output" / "results.json").read_text())
    assert results["engine"] == "network" and str(model) in results["engine_reason"]
    assert [f["voxels"] > 0 for f in results["findings"]] == [True, True]
    assert read_mask_raw(tmp_path / "output" / "images" / "finding-segmentation" / "output.mha").shape == (
        2,
        *raw.shape,
    )

    out2 = tmp_path / "output2"
    out2.mkdir()
    module = load_inference(monkeypatch, input_dir, out2, broken)
    assert module.run() == 1
    assert "does not match manifest.json" in capsys.readouterr().err
    assert list(out2.iterdir()) == []
