"""predict-case, the Predictor and the engine choice: masks land in the CT's geometry / raw order, findings
are validated before any slow work, and "auto" explains why it picked an engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from rexground.cli import main
from rexground.engines import select
from rexground.engines.base import FindingPrediction
from rexground.errors import FindingTextError, InputFileError, ModelPackageError
from rexground.io import read_ct, read_mask_raw, write_masks, write_vector_mask
from rexground.predictor import Predictor, validate_findings
from rexground.text.query import FindingQuery


class BrightEngine:
    """Test double: every finding is answered with the voxels above ``level`` HU (a known answer)."""

    name = "bright"

    def __init__(self, level: float = 100.0):
        self.level = level
        self.calls: list[list[str]] = []

    def predict(self, ct, queries):
        assert all(isinstance(q, FindingQuery) for q in queries)  # the predictor parsed them
        self.calls.append([q.text for q in queries])
        out = []
        for i, query in enumerate(queries):
            mask = (ct.hu > self.level + 50 * i).astype(np.uint8)
            # an engine's own notes may carry a volume or voxel count of an intermediate result
            info = {"rule": "threshold", "volume_ml": 999.0, "voxels": 1}
            out.append(FindingPrediction(query.text, mask, info=info))
        return out


def write_ct(path, direction=(0, 1, 0, 1, 0, 0, 0, 0, -1)):
    """A small CT whose raw axes are permuted and flipped against canonical order, two bright blobs."""
    raw = np.full((20, 16, 12), -800, dtype=np.int16)  # (ni, nj, nk)
    raw[3:8, 4:9, 2:6] = 300  # hotter blob
    raw[12:16, 8:12, 6:10] = 160
    image = sitk.GetImageFromArray(raw.transpose())
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-10.0, 20.0, 30.0))
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return raw


@pytest.fixture
def ct_file(tmp_path):
    path = tmp_path / "ct.nii.gz"
    raw = write_ct(path)
    return path, raw


@pytest.fixture
def bright(monkeypatch):
    engine = BrightEngine()
    monkeypatch.setattr(select, "_rules", lambda: engine)
    return engine


@pytest.mark.parametrize(
    ("findings", "problem"),
    [
        ([], "no finding"),
        ([""], "empty"),
        (["   \n"], "empty"),
        ([None], "must be a string"),
        (["ok", 3], "[1]: a finding must be a string"),
        ("a nodule", "expected a list"),
        (["x" * 5000], "characters"),
    ],
)
def test_bad_findings_are_refused_with_the_reason(findings, problem):
    with pytest.raises(FindingTextError, match=problem.replace("[", r"\[")):
        validate_findings(findings, "finding.json")


def test_findings_are_whitespace_normalised():
    assert validate_findings(["  Nodule in\tthe  RUL. "]) == ["Nodule in the RUL."]


def test_one_finding_writes_a_3d_mask_with_the_ct_geometry(tmp_path, ct_file):
    path, raw = ct_file
    case = Predictor(BrightEngine()).predict_file(path, ["Nodule in the right upper lobe"])
    record = case.write(tmp_path / "mask.nii.gz")
    out, layout = tmp_path / "mask.nii.gz", record.layout
    assert layout == "mask-3d" and record.output == str(out)
    written = sitk.ReadImage(str(out))
    src = sitk.ReadImage(str(path))
    assert written.GetSize() == src.GetSize()
    assert np.allclose(written.GetDirection(), src.GetDirection())
    assert np.allclose(written.GetOrigin(), src.GetOrigin())
    assert written.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(read_mask_raw(out), (raw > 100).astype(np.uint8))
    f = case.record.findings[0]
    assert f.voxels == int((raw > 100).sum()) and f.components == 2
    assert f.query["category"] == "2d" and f.query["side"] == "right" and f.query["lobes"] == ["RUL"]
    # one volume and one voxel count per finding: the final mask's, never the engine's intermediate ones
    assert f.info == {"rule": "threshold"}
    assert f.volume_ml == pytest.approx(f.voxels * 0.7 * 0.8 * 2.5 / 1000, abs=1e-3)


def test_each_finding_is_parsed_once_and_handed_to_the_engine(ct_file, monkeypatch):
    import rexground.text.parser as parser

    calls = []
    real = parser.parse_finding
    monkeypatch.setattr(parser, "parse_finding", lambda t: calls.append(t) or real(t))
    engine = BrightEngine()
    case = Predictor(engine).predict_file(ct_file[0], ["Nodule in the left lung", "Right pleural effusion"])
    assert calls == ["Nodule in the left lung", "Right pleural effusion"]
    assert engine.calls == [calls]
    assert [f.query["text"] for f in case.record.findings] == calls


def test_several_findings_write_channels_in_raw_order(tmp_path, ct_file):
    path, raw = ct_file
    case = Predictor(BrightEngine()).predict_file(path, ["a", "b"])
    out, layout = write_masks(tmp_path / "masks.nii.gz", case.masks(), case.ct.geometry)
    assert layout == "channels-first-raw"
    got = read_mask_raw(out)
    assert got.shape == (2, *raw.shape)
    np.testing.assert_array_equal(got[0], raw > 100)
    np.testing.assert_array_equal(got[1], raw > 150)


def test_vector_layout_keeps_geometry_and_reads_back_as_channels(tmp_path, ct_file):
    path, raw = ct_file
    case = Predictor(BrightEngine()).predict_file(path, ["a", "b"])
    out = write_vector_mask(tmp_path / "output.mha", case.masks(), case.ct.geometry)
    assert write_masks(tmp_path / "same.mha", case.masks(), case.ct.geometry, "vector")[1] == "vector-components"
    np.testing.assert_array_equal(read_mask_raw(tmp_path / "same.mha"), read_mask_raw(out))
    image = sitk.ReadImage(str(out))
    assert image.GetNumberOfComponentsPerPixel() == 2
    assert image.GetSize() == raw.shape
    assert np.allclose(image.GetDirection(), sitk.ReadImage(str(path)).GetDirection())
    got = read_mask_raw(out)
    assert got.shape == (2, *raw.shape)
    np.testing.assert_array_equal(got[1], raw > 150)


def test_findings_are_checked_before_the_ct_is_read(tmp_path):
    engine = BrightEngine()
    with pytest.raises(FindingTextError):
        Predictor(engine).predict_file(tmp_path / "missing.nii.gz", [""])
    with pytest.raises(InputFileError, match="does not exist"):
        Predictor(engine).predict_file(tmp_path / "missing.nii.gz", ["a nodule"])
    assert engine.calls == []


def test_engine_answering_the_wrong_number_of_findings_is_an_error(ct_file):
    class Lazy(BrightEngine):
        def predict(self, ct, queries):
            return super().predict(ct, queries)[:1]

    with pytest.raises(RuntimeError, match="1 of 2"):
        Predictor(Lazy()).predict(read_ct(ct_file[0]), ["a", "b"])


def test_predict_case_command_writes_mask_overlay_and_record(tmp_path, ct_file, bright, capsys):
    path, raw = ct_file
    out, png, record = (
        tmp_path / "o" / "mask.nii.gz",
        tmp_path / "o" / "overlay.png",
        tmp_path / "o" / "r.json",
    )
    rc = main(["predict-case", "--ct", str(path), "--finding", "Mass in the left lung", "--out", str(out),
               "--png", str(png), "--json", str(record), "--engine", "rules"])  # fmt: skip
    assert rc == 0
    np.testing.assert_array_equal(read_mask_raw(out), raw > 100)
    assert png.stat().st_size > 1000
    doc = json.loads(record.read_text())
    assert doc["engine"] == "bright" and doc["layout"] == "mask-3d" and doc["output"] == str(out)
    assert bright.calls == [["Mass in the left lung"]]
    text = capsys.readouterr().out
    assert "mask written" in text and "overlay written" in text


def test_predict_case_command_reports_bad_input_cleanly(tmp_path, bright, capsys):
    rc = main(
        [
            "predict-case",
            "--ct",
            str(tmp_path / "nope.mha"),
            "--finding",
            "x",
            "--out",
            str(tmp_path / "m.mha"),
        ]
    )
    assert rc == 1
    assert "nope.mha: does not exist" in capsys.readouterr().err
    assert not (tmp_path / "m.mha").exists()


def test_auto_without_a_package_runs_zero_shot_and_says_why(tmp_path, bright):
    choice = select.choose_engine("auto", default_model_dir=tmp_path / "absent")
    assert choice.kind == "rules" and choice.engine is bright
    assert "nothing at" in choice.reason and "absent" in choice.reason
    (tmp_path / "empty").mkdir()
    assert "empty" in select.choose_engine("auto", default_model_dir=tmp_path / "empty").reason
    (tmp_path / "empty" / "README.md").write_text("the package folder, before any export")
    assert select.choose_engine("auto", default_model_dir=tmp_path / "empty").kind == "rules"


def test_network_without_a_package_is_an_error(tmp_path, bright):
    with pytest.raises(ModelPackageError, match="needs a model package"):
        select.choose_engine("network", default_model_dir=tmp_path)
    with pytest.raises(ModelPackageError, match="does not exist"):
        select.choose_engine("auto", model_dir=tmp_path / "missing")


def test_a_broken_mounted_package_is_never_silently_ignored(tmp_path, bright):
    (tmp_path / "manifest.json").write_text('{"format_version": 1}')
    with pytest.raises(ModelPackageError):
        select.choose_engine("auto", default_model_dir=tmp_path)
    # ... while asking for the rules engine explicitly does not look at it
    assert select.choose_engine("rules", default_model_dir=tmp_path).kind == "rules"


def test_a_mispacked_mounted_package_is_an_error_not_zero_shot(tmp_path, bright):
    nested = tmp_path / "model" / "package"
    nested.mkdir(parents=True)
    (nested / "manifest.json").write_text("{}")
    with pytest.raises(ModelPackageError, match=r"no manifest\.json.*pack the package folder's contents"):
        select.choose_engine("auto", default_model_dir=tmp_path / "model")
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "weights.onnx").write_bytes(b"x")
    with pytest.raises(ModelPackageError, match=r"weights\.onnx but no manifest"):
        select.choose_engine("auto", default_model_dir=tmp_path / "stray")


@pytest.mark.parametrize("value", ["0", "1.5", "-0.5", "half"])
def test_a_tile_step_outside_0_1_is_refused_before_any_work(tmp_path, ct_file, bright, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["predict-case", "--ct", str(ct_file[0]), "--finding", "x", "--out", str(tmp_path / "m.nii.gz"),
              "--tile-step", value])  # fmt: skip
    assert exc.value.code == 2 and "--tile-step" in capsys.readouterr().err
    assert bright.calls == []


def test_the_tile_step_reaches_the_network_engine(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(select, "_network", lambda d, device, tile_step: seen.update(step=tile_step) or "engine")
    (tmp_path / "manifest.json").write_text("{}")
    assert select.choose_engine("auto", model_dir=tmp_path, tile_step=0.25).engine == "engine"
    assert seen == {"step": 0.25}


def test_unknown_engine_kind_or_device_is_refused():
    with pytest.raises(ValueError, match="engine kind"):
        select.choose_engine("magic")
    with pytest.raises(ValueError, match="device"):
        select.choose_engine("rules", device="tpu")
