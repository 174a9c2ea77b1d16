"""``rexground bench anatomy --ts-dir``: our lungs and lobes against TotalSegmentator masks laid out as CT-RATE
ships them (``dataset/ts_seg/ts_total/<split>_fixed/.../<name>``), here written from the phantoms' exact lobes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from rexground.dataset import ct_rate_relative_paths, resolve_ct
from rexground.geometry import image_from_raw_array
from rexground.io import read_ct

REPO = Path(__file__).resolve().parents[1]
# phantom lobe label (rexground.anatomy.LOBE_LABELS) -> TotalSegmentator v2 / v1 label
TS_V2 = {1: 12, 2: 13, 3: 14, 4: 10, 5: 10, 6: 11}
TS_V1 = {1: 15, 2: 16, 3: 17, 4: 13, 5: 13, 6: 14}


def _write_ts_masks(data: Path, lut: dict[int, int], trachea: int) -> Path:
    from rexground.synth import generate_case
    from rexground.synth.writer import case_seed

    truth = json.loads((data / "phantom_truth.json").read_text())
    ts_root = data / "ct_rate" / "dataset" / "ts_seg" / "ts_total"
    for name, facts in truth.items():
        case = generate_case(facts["seed"], facts["size"])
        assert facts["seed"] == case_seed(0, int(name.split("_")[1]) - 100)
        labels = np.zeros(case.lobes.shape, np.uint8)
        for ours, theirs in lut.items():
            labels[case.lobes == ours] = theirs
        labels[case.airway & (case.lobes == 0)] = trachea  # another structure in the same volume
        ct = read_ct(resolve_ct(data / "ct_rate", name))
        image = ct.geometry.apply_to(image_from_raw_array(ct.geometry.to_raw(labels)))
        path = ts_root / ct_rate_relative_paths(name)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path), useCompression=True)
    return ts_root


def _bench(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "bench" / "bench_anatomy.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)


def test_bench_anatomy_scores_lobes_against_ct_rate_totalsegmentator_layout(tmp_path):
    from rexground.synth import write_dataset

    data = tmp_path / "data"
    write_dataset(data, 2, seed=0)
    ts_root = _write_ts_masks(data, TS_V2, trachea=16)
    done = _bench(
        "--ts-dir", str(data / "ct_rate")
    )  # the CT-RATE root: ts_seg/ts_total and the CTs found below
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("scan"))
    assert header.split()[3:] == ["lung_right", "lung_left", "RUL", "RML", "RLL", "LUL", "LLL"]
    mean = [
        float(v) for v in next(line for line in lines if line.startswith("mean Dice (2 scans)")).split()[4:]
    ]
    assert len(mean) == 7 and all(0.0 <= v <= 1.0 for v in mean)
    assert min(mean[:2]) > 0.8  # our lungs against the phantoms' exact lungs
    assert np.mean(mean[2:]) > 0.3  # the approximate lobes overlap the true ones

    # the same masks numbered as TotalSegmentator v1 give the same numbers with --ts-version 1
    _write_ts_masks(data, TS_V1, trachea=42)
    v1 = _bench("--ts-dir", str(ts_root), "--ct-root", str(data / "ct_rate"), "--ts-version", "1")
    assert v1.returncode == 0, v1.stderr[-2000:]
    assert next(line for line in v1.stdout.splitlines() if line.startswith("mean Dice")).split()[4:] == [
        f"{v:.3f}" for v in mean
    ]

    # a mask that does not fit its CT is reported and skipped, the other scan is still scored
    first = sorted(ts_root.rglob("*.nii.gz"))[0]
    sitk.WriteImage(sitk.Image(5, 6, 7, sitk.sitkUInt8), str(first))
    bad = _bench("--ts-dir", str(ts_root), "--ct-root", str(data / "ct_rate"), "--ts-version", "1")
    assert bad.returncode == 0 and "mean Dice (1 scans)" in bad.stdout
    assert f"skipped {first.name}" in bad.stdout and "is not the CT's" in bad.stdout
