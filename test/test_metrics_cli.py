"""``rexground evaluate`` end to end on small files: matching by name, bad input, workers, distances."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from image_helpers import write_raw

from rexground.cli import main
from rexground.metrics import evaluate_case

SHAPE = (16, 14, 10)  # raw (H, W, D)


def blob(shape, start, size, value=1, dtype=np.uint8):
    a = np.zeros(shape, dtype)
    a[tuple(slice(s, s + size) for s in start)] = value
    return a


@pytest.fixture
def challenge(tmp_path: Path):
    """Three scans in a ReXGroundingCT layout with their CTs in a CT-RATE tree."""
    names = ["train_1_a_1.nii.gz", "valid_2_b_1.nii.gz", "train_3_a_2.nii.gz"]
    rng = np.random.default_rng(0)
    entries, gts, preds = [], {}, {}
    for n, name in enumerate(names):
        f = n + 1
        gt = np.zeros((f, *SHAPE), np.uint8)
        for c in range(f):
            gt[c] = blob(SHAPE, (2 + c, 2, 2), 4, 1) + blob(SHAPE, (10, 8, 5), 3, 2)
        pred = gt.copy()
        pred[:, 10:13, 8:11, 5:8] = 0  # miss instance 2
        pred[rng.random(pred.shape) < 0.01] = 1  # noise fragments (removed by the filter)
        gts[name], preds[name] = gt, pred
        write_raw(tmp_path / "segmentations" / name, gt)
        write_raw(tmp_path / "pred" / name, pred)
        # Scan 2 carries a "valid_" name but lives under train_fixed: both split folders are searched.
        split_dir = "train_fixed"
        pid = name.split("_")[0] + "_" + name.split("_")[1]
        ct_path = tmp_path / "ctrate" / "dataset" / split_dir / pid / f"{pid}_{name.split('_')[2]}" / name
        write_raw(ct_path, np.zeros(SHAPE, np.int16), spacing=(0.5, 0.5, 1.5))
        entries.append(
            {
                "name": name,
                "findings": {str(c): f"finding {c}" for c in range(f)},
                "categories": {str(c): ("2d" if c != 1 else "1c") for c in range(f)},
                "shape": list(SHAPE),
            }
        )
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"val": entries, "test": []}))
    return tmp_path, dataset, gts, preds


def evaluate(tmp_path: Path, dataset: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--gt-dir", str(tmp_path / "segmentations"), "--pred-dir", str(tmp_path / "pred"),
            "--dataset", str(dataset), "--split", "val", "--out", str(out), "--quiet", *extra]  # fmt: skip
    code = main(argv)
    return code, json.loads(out.read_text())


def test_evaluate_writes_the_official_summary_and_cases(challenge, capsys):
    tmp_path, dataset, gts, preds = challenge
    code, doc = evaluate(tmp_path, dataset)
    assert code == 0
    keys = {"n_cases", "n_findings", "dice_per_case", "dice_per_finding", "hit_rate", "instance_precision",
            "instance_recall", "instance_f1", "tp", "fp", "fn", "mean_matched_dice", "n_gt_instances",
            "n_pred_instances"}  # fmt: skip
    assert keys <= set(doc["summary"])
    expected = [evaluate_case(gts[n], preds[n]) for n in gts]
    case_means = [np.mean([f.dice for f in r.findings]) for r in expected]
    assert doc["summary"]["dice_per_case"] == pytest.approx(np.mean(case_means))
    assert doc["summary"]["n_findings"] == 6 and doc["summary"]["tp"] == 6 and doc["summary"]["fn"] == 6
    assert doc["cases"][2]["findings"][1]["category"] == "1c"
    assert doc["cases"][0]["findings"][0]["matches"][0]["gt_label"] == 1
    assert set(doc["per_category"]) == {"2d", "1c", "focal", "non_focal"}
    assert not doc["distance"]["available"] and "--ct-dir" in doc["distance"]["reason"]
    printed = capsys.readouterr().out
    assert "Dice per case (leaderboard)" in printed and "absent" in printed


def test_distance_metrics_take_the_spacing_from_the_ct_tree(challenge):
    tmp_path, dataset, _, _ = challenge
    code, doc = evaluate(tmp_path, dataset, "--ct-dir", str(tmp_path / "ctrate"))
    assert code == 0
    assert doc["distance"]["available"] and doc["distance"]["tp"] == 6 and doc["distance"]["fn"] == 6
    assert doc["cases"][1]["spacing_mm"] == [0.5, 0.5, 1.5]
    assert doc["cases"][0]["findings"][0]["distance"]["threshold_mm"] == 3.0
    assert set(doc["distance"]["by_kind"]) == {"centroid", "assd"}


def test_workers_give_identical_results(challenge):
    tmp_path, dataset, _, _ = challenge
    _, one = evaluate(tmp_path, dataset)
    _, two = evaluate(tmp_path, dataset, "--workers", "2")
    assert one["cases"] == two["cases"] and one["summary"] == two["summary"]


def test_missing_prediction_scores_zero_by_default_or_is_dropped(challenge):
    tmp_path, dataset, _, _ = challenge
    (tmp_path / "pred" / "valid_2_b_1.nii.gz").unlink()
    code, zero = evaluate(tmp_path, dataset)
    assert code == 0 and zero["missing"] == ["valid_2_b_1.nii.gz"] and zero["summary"]["n_cases"] == 3
    assert [f["dice"] for f in zero["cases"][1]["findings"]] == [0.0, 0.0]
    _, drop = evaluate(tmp_path, dataset, "--missing", "drop")
    assert drop["summary"]["n_cases"] == 2 and drop["summary"]["n_findings"] == 4
    assert drop["summary"]["dice_per_case"] > zero["summary"]["dice_per_case"]


def test_shape_mismatch_and_corrupt_files_are_listed_and_the_run_goes_on(challenge, capsys):
    tmp_path, dataset, _, _ = challenge
    write_raw(tmp_path / "pred" / "train_1_a_1.nii.gz", np.zeros((1, 16, 14, 9), np.uint8))
    (tmp_path / "pred" / "train_3_a_2.nii.gz").write_bytes(b"not a nifti at all")
    write_raw(
        tmp_path / "segmentations" / "valid_2_b_1.nii.gz", np.zeros((3, *SHAPE), np.uint8)
    )  # 3 != 2 findings
    code, doc = evaluate(tmp_path, dataset)
    assert code == 1
    errors = {e["name"]: e["error"] for e in doc["errors"]}
    assert "shape" in errors["train_1_a_1.nii.gz"]
    assert (
        "train_3_a_2.nii.gz" in errors["train_3_a_2.nii.gz"]
        and "cannot be read" in errors["train_3_a_2.nii.gz"]
    )
    assert "expected 2 finding channels" in errors["valid_2_b_1.nii.gz"]
    # Nothing could be scored: no summary numbers at all (a precision of 1.0 over nothing would be a lie).
    assert doc["summary"] is None and doc["per_category"] is None and doc["distance"] is None
    assert doc["counts"] == {"cases": 3, "scored": 0, "refused": 3, "missing": 0}
    printed = capsys.readouterr()
    assert "error: train_1_a_1.nii.gz" in printed.err
    assert "no case could be scored: 3 refused" in printed.out and "Dice per case" not in printed.out


def test_float_predictions_warn_and_are_cast_like_the_official_script(challenge):
    tmp_path, dataset, gts, _ = challenge
    name = "train_1_a_1.nii.gz"
    write_raw(tmp_path / "pred" / name, (gts[name] > 0).astype(np.float32) * 0.99)  # all cast to 0
    _, doc = evaluate(tmp_path, dataset)
    assert doc["cases"][0]["findings"][0]["pred_voxels"] == 0
    assert any("float32" in w["warning"] for w in doc["warnings"] if w["name"] == name)


def test_broken_predictions_are_refused_or_cast_as_the_official_script_does(challenge, capsys):
    """Truncated or NaN: refused (not scored, counted); 0/255: scored exactly as 0/1 (255 is foreground);
    float 0.7: background after the uint8 cast. Each with a line naming the file."""
    tmp_path, dataset, gts, preds = challenge
    truncated, bright, faint = "train_1_a_1.nii.gz", "valid_2_b_1.nii.gz", "train_3_a_2.nii.gz"
    path = tmp_path / "pred" / truncated
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    write_raw(tmp_path / "pred" / bright, preds[bright] * np.uint8(255))
    write_raw(tmp_path / "pred" / faint, preds[faint].astype(np.float32) * 0.7)
    code, doc = evaluate(tmp_path, dataset)
    assert code == 1  # a case was refused
    assert doc["counts"] == {"cases": 3, "scored": 2, "refused": 1, "missing": 0}
    assert doc["summary"]["n_cases"] == 2 and doc["summary"]["n_errors"] == 1
    cases = {c["name"]: c for c in doc["cases"]}
    assert cases[truncated]["status"] == "error" and "truncated" in cases[truncated]["error"]
    expected = evaluate_case(gts[bright], preds[bright])
    assert [f["dice"] for f in cases[bright]["findings"]] == [f.dice for f in expected.findings]
    assert all(f["pred_voxels"] == 0 for f in cases[faint]["findings"])
    warned = {w["name"]: w["warning"] for w in doc["warnings"]}
    assert str(tmp_path / "pred" / bright) in warned[bright] and "255" in warned[bright]
    assert str(tmp_path / "pred" / faint) in warned[faint] and "float32" in warned[faint]
    printed = capsys.readouterr()
    assert f"error: {truncated}: prediction: {path}: truncated" in printed.err
    assert "scored 2 of 3 cases" in printed.out and "refused 1" in printed.out


def test_a_nan_prediction_is_refused(challenge):
    tmp_path, dataset, _, preds = challenge
    name = "train_1_a_1.nii.gz"
    bad = preds[name].astype(np.float32)
    bad[0, 3, 3, 3] = np.nan
    write_raw(tmp_path / "pred" / name, bad)
    code, doc = evaluate(tmp_path, dataset)
    errors = {e["name"]: e["error"] for e in doc["errors"]}
    assert code == 1 and "NaN or infinite" in errors[name] and doc["counts"]["refused"] == 1


def test_errors_are_printed_before_the_summary(challenge):
    import subprocess
    import sys

    tmp_path, dataset, _, _ = challenge
    (tmp_path / "pred" / "valid_2_b_1.nii.gz").write_bytes(b"\x1f\x8b\x08")
    argv = [sys.executable, "-m", "rexground.cli", "evaluate", "--gt-dir", str(tmp_path / "segmentations"),
            "--pred-dir", str(tmp_path / "pred"), "--dataset", str(dataset), "--split", "val",
            "--out", str(tmp_path / "m.json"), "--quiet"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    both = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    assert done.returncode == 1
    assert (
        both.index("error: valid_2_b_1.nii.gz")
        < both.index("scored 2 of 3 cases")
        < both.index("Dice per case")
    )


def test_evaluator_form_and_global_only(challenge):
    tmp_path, _, gts, preds = challenge
    form = tmp_path / "evaluator.json"
    form.write_text(json.dumps({"test": [{"seg_path": f"segmentations/{n}"} for n in gts]}))
    out = tmp_path / "m.json"
    code = main(["evaluate", "--gt-dir", str(tmp_path / "segmentations"), "--pred-dir", str(tmp_path / "pred"),
                 "--dataset", str(form), "--global-only", "--out", str(out), "--quiet"])  # fmt: skip
    doc = json.loads(out.read_text())
    assert code == 0 and doc["summary"]["mode"] == "global-only" and doc["summary"]["instance_f1"] is None
    assert doc["cases"][2]["findings"][1]["category"] == "unknown"
    expected = np.mean([np.mean([f.dice for f in evaluate_case(gts[n], preds[n]).findings]) for n in gts])
    assert doc["summary"]["dice_per_case"] == pytest.approx(expected)


def test_bad_dataset_json_names_the_file_and_field(tmp_path, capsys):
    bad = tmp_path / "d.json"
    bad.write_text(json.dumps({"val": [{"name": "x.nii.gz", "categories": {"0": "9z"}}]}))
    (tmp_path / "g").mkdir()
    (tmp_path / "p").mkdir()
    code = main(["evaluate", "--gt-dir", str(tmp_path / "g"), "--pred-dir", str(tmp_path / "p"),
                 "--dataset", str(bad), "--out", str(tmp_path / "m.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "d.json" in err and "val[0].categories" in err and "9z" in err


@pytest.mark.slow
def test_real_tumour_contour_scores_as_expected(real_ct_dir, tmp_path):
    """The expert GTV of a real CT (512 x 512 x 134) against itself shifted by one slice, with the spacing
    read from the CT header: Dice counted by hand, one centroid TP at 3 mm, and it is a distance TP."""
    from rexground.dataset import read_ct_spacing
    from rexground.io import read_mask_raw

    case = real_ct_dir / "nsclc-lung1-001"
    gt = (read_mask_raw(case / "gtv.nii.gz") > 0).astype(np.uint8)[None]
    pred = np.roll(gt, 1, axis=3)
    spacing = read_ct_spacing(case / "ct.nii.gz")
    assert spacing == pytest.approx((0.9766, 0.9766, 3.0), abs=1e-3)
    f = evaluate_case(gt, pred, ["2d"], spacing).findings[0]
    inter, size = int(np.count_nonzero(gt & pred)), int(np.count_nonzero(gt))
    assert f.dice == (2 * inter + 1e-6) / (2 * size + 1e-6) and 0.8 < f.dice < 1.0
    assert f.gt_voxels == size and f.tp == 1 and f.fp == 0
    assert f.distance.tp == 1 and f.distance.matches[0].distance_mm == pytest.approx(3.0, abs=1e-3)


@pytest.mark.slow
def test_phantom_dataset_scores_its_own_ground_truth(tmp_path):
    """The phantom generator's ReXGroundingCT layout (dataset JSONs, segmentations, CT-RATE tree) read by the
    evaluator: GT against itself as read by the command equals the library on the arrays, and the spacing
    comes from the CTs."""
    pytest.importorskip("rexground.synth.cli")
    root = tmp_path / "synth"
    assert main(["synth", "--out", str(root), "--cases", "3", "--seed", "3"]) == 0
    out = tmp_path / "m.json"
    argv = ["evaluate", "--gt-dir", str(root / "segmentations"), "--pred-dir", str(root / "segmentations"),
            "--dataset", str(root / "dataset.json"), "--split", "val", "--ct-dir", str(root / "ct_rate"),
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["summary"]["n_cases"] >= 1 and not doc["errors"]
    assert doc["distance"]["available"] and all(c["spacing_mm"] for c in doc["cases"])
    from rexground.io import read_mask_raw

    for case in doc["cases"]:
        gt = read_mask_raw(root / "segmentations" / case["name"])
        expected = evaluate_case(gt, gt)
        assert [f["dice"] for f in case["findings"]] == [f.dice for f in expected.findings]
        # Only components under 10 voxels (tiny phantom entities) can be lost against itself.
        for f, channel in zip(case["findings"], gt, strict=True):
            assert f["dice"] == 1.0 or f["pred_voxels"] < f["gt_voxels"]
            assert f["gt_voxels"] == int(np.count_nonzero(channel))
