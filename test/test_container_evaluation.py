"""evaluation/evaluate.py run in-process on the generated case with a hand-computed answer (the same case CI
runs in the built image), and its handling of bad jobs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "evaluation"))
import make_example  # noqa: E402


def load_evaluate(monkeypatch, root: Path, **env: str):
    monkeypatch.setenv("GC_INPUT_PATH", str(root / "input"))
    monkeypatch.setenv("GC_OUTPUT_PATH", str(root / "output"))
    monkeypatch.setenv("GC_GROUND_TRUTH_PATH", str(root / "ground_truth"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("evaluate_under_test", REPO / "evaluation" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(tmp_path):
    expected = make_example.write_example(tmp_path)
    return tmp_path, expected


def _metrics(root: Path) -> dict:
    return json.loads((root / "output" / "metrics.json").read_text())


def test_known_answer(monkeypatch, example):
    root, expected = example
    assert load_evaluate(monkeypatch, root).run() == 0
    metrics = _metrics(root)
    assert make_example.check_metrics(metrics, expected) == []
    assert set(metrics) == {"results", "aggregates"}
    by_name = {r["name"]: r for r in metrics["results"]}
    assert by_name["case_a.nii.gz"]["jobs"] == ["0b6e8a52-job-a"]
    assert by_name["case_c.nii.gz"]["status"] == "missing" and by_name["case_c.nii.gz"]["jobs"] == []
    a0 = by_name["case_a.nii.gz"]["findings"][0]
    assert sorted(m["dice"] for m in a0["matches"]) == pytest.approx([0.75, 1.0])
    # spacing came from the job's mask header (the CT geometry the algorithm copied), not the GT's identity
    assert by_name["case_a.nii.gz"]["spacing_mm"] == list(make_example.SPACING)
    assert metrics["aggregates"]["missing"] == ["case_c.nii.gz"]


def test_missing_policy_drop_reproduces_the_official_script(monkeypatch, example):
    root, _ = example
    assert load_evaluate(monkeypatch, root, MISSING_POLICY="drop").run() == 0
    agg = _metrics(root)["aggregates"]
    assert agg["n_cases"] == 2
    assert agg["dice_per_case"] == pytest.approx((0.4375 + 1.0) / 2, abs=1e-6)


def test_failed_job_scores_its_findings_as_empty(monkeypatch, example):
    root, _ = example
    jobs = json.loads((root / "input" / "predictions.json").read_text())
    jobs[1]["status"] = "Failed"
    (root / "input" / "predictions.json").write_text(json.dumps(jobs))
    assert load_evaluate(monkeypatch, root).run() == 0
    metrics = _metrics(root)
    case_b = next(r for r in metrics["results"] if r["name"] == "case_b.nii.gz")
    assert case_b["findings"][0]["dice"] < 1e-6
    assert any("status Failed" in w["warning"] for w in metrics["aggregates"]["warnings"])


def test_a_mask_of_the_wrong_shape_is_an_error_listed_and_the_exit_is_non_zero(monkeypatch, example, capsys):
    root, _ = example
    path = root / "input" / "5d1f0c3e-job-b" / "output" / "images" / "finding-segmentation" / "output.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((3, 4, 5), np.uint8)), str(path))
    assert load_evaluate(monkeypatch, root).run() == 2
    errors = _metrics(root)["aggregates"]["errors"]
    assert len(errors) == 1 and errors[0]["name"] == "case_b.nii.gz" and "shape" in errors[0]["error"]


def test_missing_predictions_json_is_a_clean_error(monkeypatch, example, capsys):
    root, _ = example
    (root / "input" / "predictions.json").unlink()
    assert load_evaluate(monkeypatch, root).run() == 1
    assert "predictions.json: does not exist" in capsys.readouterr().err


def test_a_job_for_an_unknown_scan_is_reported(monkeypatch, example):
    root, _ = example
    jobs = json.loads((root / "input" / "predictions.json").read_text())
    extra = json.loads(json.dumps(jobs[1]))
    extra["pk"] = "ffff-unknown"
    extra["inputs"][0]["image"]["name"] = "not_in_gt.mha"
    (root / "input" / "predictions.json").write_text(json.dumps([*jobs, extra]))
    assert load_evaluate(monkeypatch, root).run() == 0
    assert _metrics(root)["aggregates"]["extra_predictions"] == ["ffff-unknown"]


def test_truncated_and_float_job_masks_and_nothing_scored(monkeypatch, example, capsys):
    """A truncated job mask refuses its scan (listed first); a float one is cast as the official script casts
    it, with a warning naming the file; with every scan refused there are no aggregates and exit 1."""
    root, _ = example
    masks = sorted((root / "input").glob("*/output/images/finding-segmentation/output.mha"))
    first = masks[0]
    first.write_bytes(first.read_bytes()[: first.stat().st_size * 2 // 3])
    assert load_evaluate(monkeypatch, root).run() == 2
    metrics = _metrics(root)
    errors = {e["name"]: e["error"] for e in metrics["aggregates"]["errors"]}
    assert len(errors) == 1 and "truncated" in next(iter(errors.values()))
    assert metrics["aggregates"]["counts"]["refused"] == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "(refused: not scored)" in err
    second = masks[1]
    image = sitk.ReadImage(str(second))
    as_float = sitk.Cast(
        image, sitk.sitkVectorFloat32 if image.GetNumberOfComponentsPerPixel() > 1 else sitk.sitkFloat32
    )
    sitk.WriteImage(as_float, str(second), useCompression=True)
    assert load_evaluate(monkeypatch, root).run() == 2
    warnings = [w["warning"] for w in _metrics(root)["aggregates"]["warnings"]]
    assert any("output.mha" in w and "float32" in w for w in warnings)
    for mask in masks:
        mask.write_bytes(mask.read_bytes()[:200])
    # case_c has no job at all: with the drop policy nothing is left to score.
    assert load_evaluate(monkeypatch, root, MISSING_POLICY="drop").run() == 1
    metrics = _metrics(root)
    assert metrics["aggregates"] is None and metrics["counts"]["scored"] == 0 and metrics["errors"]
    assert "no scan could be scored" in capsys.readouterr().err
