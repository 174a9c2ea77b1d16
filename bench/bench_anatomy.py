"""Benchmark the classical anatomy on the real CTs beside the checkout and on a 768 x 768 x 600 grid.

Prints one table: CPU and wall seconds per CT, peak memory traced during ``compute_anatomy``, lung Dice
against the expert contours (LUNG1-001), the tumour's share inside the lung envelope, and the lobe
model against COVID-CT-MD's per-slice lobe labels.

    python bench/bench_anatomy.py [--shared ../shared] [--big] [--working-spacing 1.5]

LUNG1-001 is also resampled (nearest neighbour, same extent) to 512 x 512 x 300 for the runtime goal;
``--big`` adds 768 x 768 x 600 (0.65 x 0.65 x 0.67 mm) to show the memory bound (about 3 GB in all).
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

from rexground.anatomy import LOBE_LABELS, compute_anatomy
from rexground.geometry import Geometry
from rexground.io import CTVolume, read_ct, read_mask_raw

REPO = Path(__file__).resolve().parents[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum()))


def timed(ct: CTVolume, working_spacing: float):
    tracemalloc.start()
    cpu, wall = time.process_time(), time.perf_counter()
    anat = compute_anatomy(ct, working_spacing_mm=working_spacing)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return anat, cpu, wall, peak / 2**30


def lobe_slice_agreement(anat, ct: CTVolume, case: dict) -> str:
    lobes_ct_z = anat.to_ct_grid(anat.lobes)
    parts = []
    for lobe, slices in case.get("lobe_slices_z", {}).items():
        if not slices:
            continue
        present = sum(bool((lobes_ct_z[z] == LOBE_LABELS[lobe]).any()) for z in slices)
        parts.append(f"{lobe} {present}/{len(slices)}")
    return "lobe on labelled slices: " + ", ".join(parts) if parts else ""


def resampled_ct(ct: CTVolume, shape: tuple[int, int, int]) -> CTVolume:
    """LUNG1-001 on another (z, y, x) grid (nearest neighbour), same physical extent."""
    idx = [
        np.minimum((np.arange(n) * ct.shape[a] / n).astype(np.int64), ct.shape[a] - 1)
        for a, n in enumerate(shape)
    ]
    hu = ct.hu[idx[0]][:, idx[1]][:, :, idx[2]]
    sp = [s * c / n for s, c, n in zip(ct.spacing_zyx, ct.shape, shape, strict=True)]
    geo = Geometry(
        size=(shape[2], shape[1], shape[0]),
        spacing=(sp[2], sp[1], sp[0]),
        origin=ct.geometry.origin,
        direction=ct.geometry.direction,
    )
    return CTVolume(hu=hu, geometry=geo)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--working-spacing", type=float, default=1.5)
    ap.add_argument("--big", action="store_true")
    args = ap.parse_args()
    real = args.shared / "data" / "real-ct"
    rows = []
    lung1 = None
    for case_dir in sorted(p for p in real.iterdir() if (p / "ct.nii.gz").is_file()):
        ct = read_ct(case_dir / "ct.nii.gz")
        case = json.loads((case_dir / "case.json").read_text())
        anat, cpu, wall, peak = timed(ct, args.working_spacing)
        notes = [f"split={anat.info['split']}", f"airways={anat.info['airways'].get('volume_ml', 0):.0f}mL"]
        for side in ("left", "right"):
            f = case_dir / f"lung_{side}.nii.gz"
            if f.is_file():
                gt = ct.geometry.to_canonical(read_mask_raw(f)) > 0
                pred = anat.to_ct_grid(anat.lung_left if side == "left" else anat.lung_right)
                notes.append(f"Dice {side} {dice(pred, gt):.4f}")
        gtv = case_dir / "gtv.nii.gz"
        if gtv.is_file():
            g = ct.geometry.to_canonical(read_mask_raw(gtv)) > 0
            env = anat.to_ct_grid(anat.lung_envelope_left)
            lobes = anat.to_ct_grid(anat.lobes)[g]
            notes.append(f"GTV in left envelope {(env & g).sum() / g.sum():.3f}")
            notes.append(f"GTV in LUL+lingula {np.isin(lobes, [4, 5]).mean():.2f}")
            lung1 = ct
        box = case_dir / "tumor_bbox.nii.gz"
        if box.is_file():
            b = ct.geometry.to_canonical(read_mask_raw(box)) > 0
            dense = b & (ct.hu > -300)
            right = anat.to_ct_grid(anat.lung_envelope_right | anat.zone("perihilar", "right"))
            notes.append(
                f"dense box voxels in right envelope|perihilar {(right & dense).sum() / max(1, dense.sum()):.3f}"
            )
        agreement = lobe_slice_agreement(anat, ct, case)
        if agreement:
            notes.append(agreement)
        shape = "x".join(str(n) for n in ct.geometry.size)
        rows.append((case_dir.name, shape, anat.shape, cpu, wall, peak, "; ".join(notes)))
    sizes = [(300, 512, 512)] + ([(600, 768, 768)] if args.big else [])
    for shape in sizes if lung1 is not None else []:
        ct = resampled_ct(lung1, shape)
        anat, cpu, wall, peak = timed(ct, args.working_spacing)
        out = anat.to_ct_grid(anat.lungs)
        label = f"{shape[2]}x{shape[1]}x{shape[0]}"
        rows.append(
            (f"LUNG1-001 @{label}", label, anat.shape, cpu, wall, peak, f"to_ct_grid shape {out.shape}")
        )
    print(
        f"{'case':26s} {'CT (i,j,k)':13s} {'working (z,y,x)':17s} {'cpu s':>6s} {'wall s':>6s} {'peak GiB':>8s}  notes"
    )
    for name, shape, wshape, cpu, wall, peak, notes in rows:
        ws = "x".join(str(n) for n in wshape)
        print(f"{name:26s} {shape:13s} {ws:17s} {cpu:6.1f} {wall:6.1f} {peak:8.2f}  {notes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
