"""Write a small evaluation case with a hand-computed answer, in the platform's layout, for the evaluation
container's tests (pytest in-process, and the built image in CI).

    python evaluation/make_example.py OUT      ->  OUT/input/ (predictions.json + job outputs),
                                                  OUT/ground_truth/ (dataset.json + segmentations/),
                                                  OUT/expected.json (the known aggregates)

Three scans, 20 x 18 x 12 voxels:
* case_a, two findings, one job answering both (a list -> a 2-component mask):
  finding 0 (2d): GT instances 1 and 2, 64-voxel cubes; the prediction has cube 1 exactly and cube 2 shifted
  by one voxel (overlap 48): instance Dice 1 and 96/128 = 0.75, both matched (>= 0.2); global Dice
  (2 * 112) / 256 = 0.875. Finding 1 (2c): GT 96 voxels; the prediction is a 9-voxel fragment, which the
  official filter removes: Dice ~ 0, FN 1.
* case_b, one finding, one job (a string -> a 3D mask), predicted exactly: Dice 1, TP 1.
* case_c, one finding, no job: missing, scored 0 (FN 1).
Dice per case = (0.4375 + 1 + 0) / 3; per finding = 1.875 / 4; hit rate 2 / 4; TP 3, FP 0, FN 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from rexground.geometry import image_from_raw_array

SHAPE = (20, 18, 12)  # raw (i, j, k)
SPACING = (0.8, 0.8, 2.0)
EPS = 1e-6

EXPECTED = {
    "n_cases": 3,
    "n_findings": 4,
    "dice_per_case": (0.875 / 2 + 1.0 + 0.0) / 3,
    "dice_per_finding": (0.875 + 0.0 + 1.0 + 0.0) / 4,
    "hit_rate": 0.5,
    "tp": 3,
    "fp": 0,
    "fn": 2,
    "instance_precision": 1.0,
    "instance_recall": 0.6,
    "instance_f1": 0.75,
    "mean_matched_dice": (1.0 + 0.75 + 1.0) / 3,
    "n_gt_instances": 5,
    "n_pred_instances": 3,
}


def _write_mask(path: Path, raw: np.ndarray) -> None:
    """A job output as inference.py writes it: the CT's geometry (here an identity direction and SPACING);
    (F, H, W, D) raw channels become F components per voxel."""
    from rexground.geometry import Geometry
    from rexground.io import write_mask, write_vector_mask

    spatial = raw.shape[-3:]
    geometry = Geometry(
        size=spatial, spacing=SPACING, origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    canonical = geometry.to_canonical(raw)
    if raw.ndim == 4:
        write_vector_mask(path, canonical, geometry)
    else:
        write_mask(path, canonical, geometry)


def _job(pk: str, ct_name: str, finding, status: str = "Succeeded") -> dict:
    return {
        "pk": pk,
        "status": status,
        "inputs": [
            {"interface": {"slug": "chest-ct", "kind": "Image", "relative_path": "images/chest-ct"},
             "image": {"name": ct_name, "pk": f"img-{pk}"}, "value": None, "file": None},
            {"interface": {"slug": "finding", "kind": "Anything", "relative_path": "finding.json"},
             "value": finding, "image": None, "file": None},
        ],
        "outputs": [
            {"interface": {"slug": "finding-segmentation", "kind": "Segmentation",
                           "relative_path": "images/finding-segmentation"},
             "image": {"name": "output.mha", "pk": f"out-{pk}"}, "value": None, "file": None},
        ],
    }  # fmt: skip


def write_example(out: str | Path) -> dict:
    out = Path(out)
    gt_dir = out / "ground_truth"
    seg_dir = gt_dir / "segmentations"
    seg_dir.mkdir(parents=True, exist_ok=True)
    inp = out / "input"
    inp.mkdir(parents=True, exist_ok=True)

    gt_a = np.zeros((2, *SHAPE), np.uint8)
    gt_a[0, 2:6, 2:6, 2:6] = 1
    gt_a[0, 12:16, 10:14, 6:10] = 2
    gt_a[1, 2:6, 10:16, 2:6] = 1
    pred_a = np.zeros_like(gt_a)
    pred_a[0, 2:6, 2:6, 2:6] = 1
    pred_a[0, 13:17, 10:14, 6:10] = 1
    pred_a[1, 16:19, 15:18, 9:10] = 1  # 9 voxels: below the official 10-voxel minimum
    gt_b = np.zeros((1, *SHAPE), np.uint8)
    gt_b[0, 8:11, 8:11, 4:7] = 1
    gt_c = np.zeros((1, *SHAPE), np.uint8)
    gt_c[0, 5:9, 5:9, 5:9] = 1

    for name, gt in (("case_a.nii.gz", gt_a), ("case_b.nii.gz", gt_b), ("case_c.nii.gz", gt_c)):
        # identity header, like the challenge's labels
        sitk.WriteImage(image_from_raw_array(gt), str(seg_dir / name), useCompression=True)
    findings_a = ["Two nodules in the right lower lobe.", "Ground-glass opacity in the left upper lobe."]
    dataset = {
        "test": [
            {"name": "case_a.nii.gz", "findings": {"0": findings_a[0], "1": findings_a[1]},
             "categories": {"0": "2d", "1": "2c"}},
            {"name": "case_b.nii.gz", "findings": {"0": "Nodule in the lingula."}, "categories": {"0": "2d"}},
            {"name": "case_c.nii.gz", "findings": {"0": "Mass in the right upper lobe."}, "categories": {"0": "2d"}},
        ]
    }  # fmt: skip
    (gt_dir / "dataset.json").write_text(json.dumps(dataset, indent=1))

    jobs = [
        _job("0b6e8a52-job-a", "case_a.mha", findings_a),
        _job("5d1f0c3e-job-b", "case_b.mha", "  Nodule in the   lingula."),
    ]
    _write_mask(inp / jobs[0]["pk"] / "output" / "images" / "finding-segmentation" / "output.mha", pred_a)
    _write_mask(inp / jobs[1]["pk"] / "output" / "images" / "finding-segmentation" / "output.mha", gt_b[0])
    (inp / "predictions.json").write_text(json.dumps(jobs, indent=1))
    (out / "expected.json").write_text(json.dumps(EXPECTED, indent=1))
    return EXPECTED


def check_metrics(metrics: dict, expected: dict) -> list[str]:
    """Differences between a metrics.json document and the expected aggregates (empty: all agree)."""
    problems = []
    agg = metrics.get("aggregates", {})
    for key, want in expected.items():
        got = agg.get(key)
        if got is None or abs(float(got) - float(want)) > 1e-6:
            problems.append(f"aggregates.{key} = {got}, expected {want}")
    if len(metrics.get("results", [])) != expected["n_cases"]:
        problems.append(f"{len(metrics.get('results', []))} results, expected {expected['n_cases']}")
    return problems


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        problems = check_metrics(
            json.loads(Path(sys.argv[2]).read_text()), json.loads(Path(sys.argv[3]).read_text())
        )
        print("\n".join(problems) or "metrics agree with the known answer")
        sys.exit(1 if problems else 0)
    if len(sys.argv) != 2:
        sys.exit("usage: make_example.py OUT | make_example.py --check METRICS_JSON EXPECTED_JSON")
    write_example(sys.argv[1])
    print(f"example evaluation case written to {sys.argv[1]}")
