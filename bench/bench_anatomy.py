"""Benchmark the classical anatomy on the real CTs beside the checkout and on a 768 x 768 x 600 grid.

Prints one table: CPU and wall seconds per CT, peak memory traced during ``compute_anatomy``, lung Dice
against the expert contours (LUNG1-001), the tumour's share inside the lung envelope, and the lobe
model against COVID-CT-MD's per-slice lobe labels.

    python bench/bench_anatomy.py [--shared ../shared] [--big] [--working-spacing 1.5]

LUNG1-001 is also resampled (nearest neighbour, same extent) to 512 x 512 x 300 for the runtime goal;
``--big`` adds 768 x 768 x 600 (0.65 x 0.65 x 0.67 mm) to show the memory bound (about 3 GB in all).

    python bench/bench_anatomy.py --ts-dir DIR [--ct-root CT_RATE_ROOT] [--dataset dataset.json --split val]
        [--ts-version 2] [--limit N]

scores our classical lungs and lobes against CT-RATE's own TotalSegmentator masks instead (Dice per lung and
per lobe, per scan and on average), for a team that has them. CT-RATE ships them as one multi-label volume
per scan (TotalSegmentator's ``total`` task), named as the CT and laid out as the CT tree:
``dataset/ts_seg/ts_total/{train,valid}_fixed/<split>_<id>/<split>_<id>_<series>/<name>``, on the CT's own
grid. DIR may be the CT-RATE root, its ``dataset/ts_seg`` or its ``ts_total`` folder; the CTs are found
under ``--ct-root`` (default: the CT-RATE root above DIR). Labels of TotalSegmentator v2 (``--ts-version
2``, the default): 10 lung_upper_lobe_left, 11 lung_lower_lobe_left, 12 lung_upper_lobe_right, 13
lung_middle_lobe_right, 14 lung_lower_lobe_right; v1 numbered them 13 ... 17. TotalSegmentator's left upper
lobe includes the lingula, so ours is LUL + lingula there; its lungs are the union of its lobes. Our anatomy
stays the network's input at training and inference alike (the container has no TotalSegmentator).
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


# TotalSegmentator ``total`` labels of the lung lobes -> our lobe labels (rexground.anatomy.LOBE_LABELS) they
# cover: its left upper lobe holds the lingula.
TS_LOBES = {
    2: {"LUL": 10, "LLL": 11, "RUL": 12, "RML": 13, "RLL": 14},
    1: {"LUL": 13, "LLL": 14, "RUL": 15, "RML": 16, "RLL": 17},
}
OUR_LOBES = {"RUL": ("RUL",), "RML": ("RML",), "RLL": ("RLL",), "LUL": ("LUL", "lingula"), "LLL": ("LLL",)}
TS_STRUCTURES = ("lung_right", "lung_left", "RUL", "RML", "RLL", "LUL", "LLL")


def ts_root_of(path: Path) -> Path:
    """The folder that holds the ``ts_total`` masks, given the CT-RATE root, ``ts_seg`` or ``ts_total``."""
    for cand in (
        path / "dataset" / "ts_seg" / "ts_total",
        path / "ts_seg" / "ts_total",
        path / "ts_total",
        path,
    ):
        if cand.is_dir():
            return cand
    raise SystemExit(f"bench anatomy: --ts-dir {path}: no such folder")


def ct_root_above(ts_root: Path) -> Path | None:
    """The CT-RATE root above a ``ts_seg`` folder: the first ancestor with ``dataset/{train,valid}_fixed``."""
    for parent in [ts_root, *ts_root.parents]:
        if any((parent / "dataset" / d).is_dir() for d in ("train_fixed", "valid_fixed")):
            return parent
    return None


def ts_structures(labels: np.ndarray, version: int) -> dict[str, np.ndarray]:
    ids = TS_LOBES[version]
    out = {lobe: labels == ids[lobe] for lobe in OUR_LOBES}
    out["lung_right"] = out["RUL"] | out["RML"] | out["RLL"]
    out["lung_left"] = out["LUL"] | out["LLL"]
    return out


def our_structures(anat) -> dict[str, np.ndarray]:
    lobes = anat.to_ct_grid(anat.lobes)
    out = {k: np.isin(lobes, [LOBE_LABELS[p] for p in parts]) for k, parts in OUR_LOBES.items()}
    out["lung_right"] = anat.to_ct_grid(anat.lung_right)
    out["lung_left"] = anat.to_ct_grid(anat.lung_left)
    return out


def ts_main(args) -> int:
    from rexground.dataset import load_dataset, resolve_ct, resolve_totalseg

    ts_root = ts_root_of(args.ts_dir)
    ct_root = args.ct_root or ct_root_above(ts_root)
    if ct_root is None:
        raise SystemExit(f"bench anatomy: no CT-RATE tree above {ts_root}; pass --ct-root")
    if args.dataset is not None:
        names = [e.name for e in load_dataset(args.dataset).split(args.split)]
    else:
        names = sorted(p.name for p in ts_root.rglob("*.nii.gz"))
    names = names[: args.limit]
    if not names:
        raise SystemExit(f"bench anatomy: no TotalSegmentator masks under {ts_root}")
    rows, scores, problems = [], {k: [] for k in TS_STRUCTURES}, []
    for name in names:
        mask_file = resolve_totalseg(ts_root, name)
        try:
            if mask_file is None:
                raise FileNotFoundError(f"{name}: no TotalSegmentator mask under {ts_root}")
            ct = read_ct(resolve_ct(ct_root, name))
            raw = read_mask_raw(mask_file)
            if tuple(raw.shape) != tuple(ct.geometry.size):
                raise ValueError(f"{mask_file}: mask shape {raw.shape} is not the CT's {ct.geometry.size}")
            theirs = ts_structures(ct.geometry.to_canonical(raw), args.ts_version)
            if not theirs["lung_right"].any() and not theirs["lung_left"].any():
                raise ValueError(f"{mask_file}: no lung lobe label of TotalSegmentator v{args.ts_version}")
            cpu = time.process_time()
            anat = compute_anatomy(ct, working_spacing_mm=args.working_spacing)
            cpu = time.process_time() - cpu
            ours = our_structures(anat)
        except Exception as exc:  # one bad scan is reported, the others are still scored
            problems.append(f"{name}: {exc}")
            continue
        row = {k: dice(ours[k], theirs[k]) for k in TS_STRUCTURES}
        for k, v in row.items():
            scores[k].append(v)
        rows.append((name, cpu, row))
    print(f"our classical anatomy vs CT-RATE TotalSegmentator (v{args.ts_version} labels) under {ts_root}")
    print(f"{'scan':32s} {'cpu s':>6s} " + " ".join(f"{k:>10s}" for k in TS_STRUCTURES))
    for name, cpu, row in rows:
        print(f"{name:32s} {cpu:6.1f} " + " ".join(f"{row[k]:10.3f}" for k in TS_STRUCTURES))
    if rows:
        print(
            f"{'mean Dice (' + str(len(rows)) + ' scans)':32s} {'':6s} "
            + " ".join(f"{np.mean(scores[k]):10.3f}" for k in TS_STRUCTURES)
        )
    for line in problems:
        print(f"skipped {line}")
    return 0 if rows else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--working-spacing", type=float, default=1.5)
    ap.add_argument("--big", action="store_true")
    ap.add_argument(
        "--ts-dir",
        type=Path,
        default=None,
        help="CT-RATE TotalSegmentator masks: score lungs and lobes against them",
    )
    ap.add_argument("--ct-root", type=Path, default=None, help="with --ts-dir: CT-RATE root holding the CTs")
    ap.add_argument(
        "--dataset", type=Path, default=None, help="with --ts-dir: score this dataset's scans only"
    )
    ap.add_argument("--split", default="val", help="with --dataset: which split")
    ap.add_argument(
        "--ts-version", type=int, choices=(1, 2), default=2, help="TotalSegmentator label numbering"
    )
    ap.add_argument("--limit", type=int, default=None, help="with --ts-dir: at most this many scans")
    args = ap.parse_args()
    if args.ts_dir is not None:
        return ts_main(args)
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
