"""``rexground bench zero-shot`` on case folders it has never seen: every kind of label case.json allows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from rexground.geometry import image_from_raw_array
from rexground.io import write_mask
from rexground.synth import generate_case

pytestmark = pytest.mark.slow  # about 20 s: anatomy and rules on two small phantoms, in a subprocess

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_zero_shot.py"


def _case_folder(root: Path, seed: int) -> Path:
    case = generate_case(seed, "small", categories=["2d", "2e"])
    d = root / f"phantom-{seed}"
    d.mkdir(parents=True)
    sitk.WriteImage(case.to_image(), str(d / "ct.nii.gz"))
    findings = []
    for i, f in enumerate(case.findings):
        # instance values kept (one value per instance, as ReXGroundingCT labels are)
        image = case.geometry.apply_to(image_from_raw_array(case.to_raw(f.mask_labels.astype(np.uint8))))
        sitk.WriteImage(image, str(d / f"label{i}.nii.gz"))
        findings.append(
            {"text": f.text, "category": f.category, "label": f"label{i}.nii.gz", "score": "dice"}
        )
    # A box label: the bounding box of the first finding.
    box = np.zeros(case.hu.shape, np.uint8)
    idx = np.argwhere(case.findings[0].mask_labels > 0)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    write_mask(d / "box.nii.gz", box, case.geometry)
    findings.append({"text": case.findings[0].text, "category": "2d", "label": "box.nii.gz", "score": "box"})
    findings.append({"text": "Ground glass in the right lower lobe.", "category": "2c", "lobe": "RLL"})
    meta = {"ct": "ct.nii.gz", "labels": {}, "findings": findings, "lobe_slices_z": {"RLL": [1, 2, 3]}}
    (d / "case.json").write_text(json.dumps(meta))
    return d


def test_bench_scores_unseen_case_folders_with_the_official_metrics(tmp_path):
    cases = tmp_path / "cases"
    _case_folder(cases, 3)
    single = _case_folder(tmp_path / "other", 4)  # a case folder given directly
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--real-dir", str(cases), str(single), "--json", str(out),
         "--absent-ct", str(single / "ct.nii.gz"), "--absent-finding", "Pneumothorax"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Per category" in proc.stdout and "mean over" in proc.stdout
    doc = json.loads(out.read_text())
    rows = doc["real"]
    assert {r["case"] for r in rows} == {"phantom-3", "phantom-4"}
    kinds = {r["kind"] for r in rows}
    assert kinds == {"dice", "box", "lobe-slices"}
    for r in rows:
        if r["kind"] == "dice":
            assert 0.0 <= r["dice"] <= 1.0 and r["n_gt"] >= 1 and 0 <= r["tp"] <= r["n_gt"]
        assert r["pred_ml"] > 0 and r["rule_cpu_s"] is not None
    assert doc["absent"][0]["kind"] == "absent" and doc["absent"][0]["pred_ml"] > 0
