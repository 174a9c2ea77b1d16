"""Benchmark the zero-shot engine: the real-CT targets of issue 5 and per-category Dice on phantoms.

    python bench/bench_zero_shot.py                       # real CTs (if ../shared is there) + 10 small phantoms
    python bench/bench_zero_shot.py --phantoms 20 --size real --no-real
    python bench/bench_zero_shot.py --real-only

Prints one table per part: for the real CTs the measure each case is scored by (Dice with the expert
contour; fraction inside the radiologist's box and coverage of its dense voxels; fraction on the slices
labelled for the lobe and on the named side) with anatomy and rule seconds; for phantoms the global Dice
of every finding (the official per-finding Dice, after the official component filter) averaged per
category, the hit rate (Dice >= 0.1) and the seconds per case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from rexground.engines.zero_shot import ZeroShotEngine
from rexground.io import CTVolume, read_ct, read_mask_raw
from rexground.text.parser import parse_finding

REPO = Path(__file__).resolve().parents[1]
REAL_CT = Path(os.environ.get("REXGROUND_SHARED", REPO.parent / "shared")) / "data" / "real-ct"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((2 * (a & b).sum() + 1e-6) / (a.sum() + b.sum() + 1e-6))


def score_real_case(case_dir: Path, ct: CTVolume, finding: dict, mask: np.ndarray, side: str) -> dict:
    """The measure named in the case's case.json for one finding."""
    m = mask > 0
    if finding.get("score") == "dice":
        gt = ct.geometry.to_canonical(read_mask_raw(case_dir / finding["label"])) > 0
        return {"dice": dice(m, gt), "gt_voxels": int(gt.sum())}
    if "label" in finding and "box" in finding["label"]:
        box = ct.geometry.to_canonical(read_mask_raw(case_dir / finding["label"])) > 0
        dense = box & (ct.hu > -300)
        return {
            "inside_box": float((m & box).sum() / max(m.sum(), 1)),
            "dense_box_covered": float((m & dense).sum() / max(dense.sum(), 1)),
        }
    if "lobe" in finding:
        meta = json.loads((case_dir / "case.json").read_text())
        on_slices = np.isin(np.arange(ct.shape[0]), meta["lobe_slices_z"][finding["lobe"]])[:, None, None]
        x = np.arange(ct.shape[2])[None, None, :]
        # Canonical x runs patient right -> left: the right side is the lower half of the columns.
        on_side = x < ct.shape[2] / 2 if side == "right" else x >= ct.shape[2] / 2
        return {
            "on_lobe_slices": float((m & on_slices).sum() / max(m.sum(), 1)),
            "on_side": float((m & on_side).sum() / max(m.sum(), 1)),
            "on_both": float((m & on_slices & on_side).sum() / max(m.sum(), 1)),
        }
    return {}


def run_real(real_dir: Path) -> list[dict]:
    rows = []
    for case_dir in sorted(p for p in real_dir.iterdir() if (p / "case.json").is_file()):
        meta = json.loads((case_dir / "case.json").read_text())
        ct = read_ct(case_dir / meta["ct"])
        queries = [parse_finding(f["text"]) for f in meta["findings"]]
        t0 = time.perf_counter()
        preds = ZeroShotEngine(keep_score=False).predict(ct, queries)
        total = time.perf_counter() - t0
        for f, q, p in zip(meta["findings"], queries, preds, strict=True):
            rows.append(
                {
                    "case": case_dir.name,
                    "finding": f["text"],
                    "shape": "x".join(map(str, ct.shape)),
                    "voxels": int(p.mask.sum()),
                    "anatomy_s": p.info.get("anatomy_s"),
                    "rule_s": p.info.get("rule_s"),
                    "case_s": round(total, 1),
                    "rule": p.info.get("rule"),
                    "fallback": p.info.get("fallback"),
                    **score_real_case(case_dir, ct, f, p.mask, q.side),
                }
            )
    return rows


def run_phantoms(n: int, size: str, seed0: int) -> tuple[list[dict], list[float]]:
    from rexground.synth import generate_case

    rows, seconds = [], []
    for seed in range(seed0, seed0 + n):
        case = generate_case(seed, size)
        ct = CTVolume(hu=case.hu, geometry=case.geometry)
        t0 = time.perf_counter()
        queries = [parse_finding(f.text) for f in case.findings]
        preds = ZeroShotEngine(keep_score=False).predict(ct, queries)
        seconds.append(time.perf_counter() - t0)
        for f, q, p in zip(case.findings, queries, preds, strict=True):
            d = dice(p.mask, f.mask_labels)
            rows.append({"seed": seed, "category": f.category, "parsed": q.category, "dice": d,
                         "rule": p.info.get("rule"), "fallback": p.info.get("fallback"), "text": f.text})  # fmt: skip
        print(f"  phantom {seed}: {len(preds)} findings, {seconds[-1]:.1f} s", file=sys.stderr, flush=True)
    return rows, seconds


def print_real(rows: list[dict]) -> None:
    print("\n## Real CTs (zero-shot engine)")
    print(
        f"{'case':20s} {'measure':46s} {'voxels':>8s} {'anat s':>7s} {'rule s':>7s} {'case s':>7s}  finding"
    )
    for r in rows:
        keys = [
            k
            for k in ("dice", "inside_box", "dense_box_covered", "on_lobe_slices", "on_side", "on_both")
            if k in r
        ]
        measure = " ".join(f"{k}={r[k]:.3f}" for k in keys)
        print(f"{r['case']:20s} {measure:46s} {r['voxels']:8d} {r['anatomy_s']:7.1f} {r['rule_s']:7.1f} "
              f"{r['case_s']:7.1f}  {r['finding']}")  # fmt: skip


def print_phantoms(rows: list[dict], seconds: list[float], size: str) -> None:
    print(f"\n## Phantoms ({len(seconds)} cases, size={size}): global Dice per finding, by category")
    by = defaultdict(list)
    for r in rows:
        by[r["category"]].append(r)
    print(f"{'cat':4s} {'n':>3s} {'dice':>6s} {'hit':>5s} {'parsed ok':>9s} {'fallbacks':>9s}")
    for cat in sorted(by):
        rs = by[cat]
        ds = np.array([r["dice"] for r in rs])
        ok = np.mean([r["parsed"] == cat for r in rs])
        fb = sum(r["fallback"] not in ("none", None) for r in rs)
        print(f"{cat:4s} {len(rs):3d} {ds.mean():6.3f} {np.mean(ds >= 0.1):5.2f} {ok:9.2f} {fb:9d}")
    all_d = np.array([r["dice"] for r in rows])
    per_case = defaultdict(list)
    for r in rows:
        per_case[r["seed"]].append(r["dice"])
    case_mean = np.mean([np.mean(v) for v in per_case.values()])
    print(
        f"all  {len(rows):3d} {all_d.mean():6.3f} {np.mean(all_d >= 0.1):5.2f}   per-case Dice {case_mean:.3f}"
    )
    print(f"seconds per case: mean {np.mean(seconds):.1f}, max {np.max(seconds):.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-dir", type=Path, default=REAL_CT)
    ap.add_argument("--phantoms", type=int, default=10)
    ap.add_argument("--size", choices=("small", "real"), default="small")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--real-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.no_real:
        if args.real_dir.is_dir():
            print_real(run_real(args.real_dir))
        else:
            print(f"real CTs not found at {args.real_dir}: skipped")
    if not args.real_only and args.phantoms > 0:
        rows, seconds = run_phantoms(args.phantoms, args.size, args.seed)
        print_phantoms(rows, seconds, args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
