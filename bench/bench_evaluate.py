"""Benchmark: the official evaluation, fast path (``rexground.metrics``) against a straightforward
implementation of the same rules (``rexground.metrics.reference``: full-volume labelling, one full-volume
mask per instance, every pair compared voxel by voxel, single process), on realistic cases.

Each case is 512 x 512 x 300 uint8 with 3 findings; GT instances of 20 to 50,000 voxels; the prediction
shifts, grows or shrinks each instance, misses some, adds false-positive blobs and thousands of noise
fragments over the whole volume. Both paths must give identical per-finding results (Dice to the last bit,
TP/FP/FN and matched pairs). Prints a table; also times ``rexground evaluate`` end to end (file reading
included) on the same cases.

    nice -n 10 python bench/bench_evaluate.py --cases 3 [--shape 512 512 300] [--seed 0] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from rexground.metrics import evaluate_case
from rexground.metrics.reference import reference_case


def ball(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    z, y, x = np.ogrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (z * z + y * y + x * x) <= radius * radius


def paste(volume: np.ndarray, shape_mask: np.ndarray, centre: np.ndarray, value: int) -> None:
    lo = centre - np.array(shape_mask.shape) // 2
    dst, src = [], []
    for a in range(3):
        start, stop = max(lo[a], 0), min(lo[a] + shape_mask.shape[a], volume.shape[a])
        dst.append(slice(start, stop))
        src.append(slice(start - lo[a], stop - lo[a]))
    region = volume[tuple(dst)]
    region[shape_mask[tuple(src)]] = value


def make_case(rng: np.random.Generator, shape: tuple[int, int, int], n_findings: int = 3):
    gt = np.zeros((n_findings, *shape), np.uint8)
    pred = np.zeros((n_findings, *shape), np.uint8)
    margin = np.minimum(np.array([30, 30, 30]), np.array(shape) // 4)
    for f in range(n_findings):
        for value in range(1, int(rng.integers(2, 9)) + 1):
            size = float(np.exp(rng.uniform(np.log(20), np.log(50_000))))
            radius = (3 * size / (4 * np.pi)) ** (1 / 3)
            centre = rng.integers(margin, np.array(shape) - margin)
            paste(gt[f], ball(radius), centre, value)
            if rng.random() < 0.8:  # detected: shifted and resized
                paste(pred[f], ball(radius * rng.uniform(0.7, 1.3)), centre + rng.integers(-2, 3, 3), 1)
        for _ in range(int(rng.integers(1, 6))):  # false-positive blobs
            paste(pred[f], ball(rng.uniform(2, 8)), rng.integers(margin, np.array(shape) - margin), 1)
        flat = pred[f].reshape(-1)
        flat[rng.integers(0, flat.size, 5000)] = 1  # single-voxel noise over the whole volume
        for n in range(300):  # small noise clusters of 1..8 voxels, and 10 just over the 10-voxel limit
            c = rng.integers(2, np.array(shape) - 3)
            k, depth = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if n >= 10 else (2, 3)
            pred[f, c[0] : c[0] + k, c[1] : c[1] + k, c[2] : c[2] + depth] = 1
    return gt, pred


def same(fast, slow) -> bool:
    for f, r in zip(fast.findings, slow, strict=True):
        if (f.dice, f.hit, f.tp, f.fp, f.fn) != (r["dice"], r["hit"], r["tp"], r["fp"], r["fn"]):
            return False
        if [(m.gt_label, m.pred_label, m.dice) for m in f.matches] != r["matches"]:
            return False
    return True


def write_raw(path: Path, raw: np.ndarray) -> None:
    sitk.WriteImage(
        sitk.GetImageFromArray(np.ascontiguousarray(raw.transpose()), isVector=False), str(path), True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-e2e", action="store_true", help="skip the end-to-end `rexground evaluate` run"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    shape = tuple(args.shape)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    (tmp / "gt").mkdir()
    (tmp / "pred").mkdir()
    entries = []
    for i in range(args.cases):
        gt, pred = make_case(rng, shape)
        # As read from a file: SimpleITK gives raw-order arrays as transposed (Fortran-ordered) views.
        gt_f, pred_f = np.asfortranarray(gt), np.asfortranarray(pred)
        # CPU seconds of this process: the machine is shared, so wall time mostly measures the neighbours.
        c0, w0 = time.process_time(), time.perf_counter()
        fast = evaluate_case(gt_f, pred_f)
        cpu_fast, wall_fast = time.process_time() - c0, time.perf_counter() - w0
        c0, w0 = time.process_time(), time.perf_counter()
        slow = reference_case(gt_f, pred_f)
        cpu_slow, wall_slow = time.process_time() - c0, time.perf_counter() - w0
        n_gt = sum(f.n_gt_instances for f in fast.findings)
        n_pred = sum(f.n_pred_instances for f in fast.findings)
        n_raw = sum(int(np.count_nonzero(pred[c])) for c in range(pred.shape[0]))
        rows.append((i, n_gt, n_pred, n_raw, cpu_fast, wall_fast, cpu_slow, wall_slow, same(fast, slow)))
        print(f"case {i} done: fast {cpu_fast:.2f} CPU s, reference {cpu_slow:.1f} CPU s", flush=True)
        name = f"train_{i}_a_1.nii.gz"
        if not args.skip_e2e:
            write_raw(tmp / "gt" / name, gt)
            write_raw(tmp / "pred" / name, pred)
        entries.append({"name": name, "findings": {str(c): "x" for c in range(3)},
                        "categories": {"0": "2d", "1": "2c", "2": "1c"}})  # fmt: skip
        del gt, pred, gt_f, pred_f
    print(f"\nofficial evaluation per case, {shape[0]}x{shape[1]}x{shape[2]} uint8, 3 findings, compute only "
          "(CPU seconds of the process; wall seconds in brackets)")  # fmt: skip
    print(f"{'case':>4} {'GT inst':>8} {'kept comp':>9} {'pred vox':>9} {'fast s':>15} {'reference s':>17} "
          f"{'speed-up':>9} {'identical':>9}")  # fmt: skip
    for i, n_gt, n_pred, n_raw, cf, wf, cs, ws, ok in rows:
        print(f"{i:>4} {n_gt:>8} {n_pred:>9} {n_raw:>9} {cf:>7.2f} ({wf:>5.2f}) {cs:>8.1f} ({ws:>6.1f}) "
              f"{cs / cf:>8.1f}x {ok!s:>9}")  # fmt: skip
    fast_total, slow_total = sum(r[4] for r in rows), sum(r[6] for r in rows)
    print(f"{'all':>4} {'':>8} {'':>9} {'':>9} {fast_total:>7.2f} {'':>7} {slow_total:>8.1f} {'':>8} "
          f"{slow_total / fast_total:>8.1f}x {all(r[8] for r in rows)!s:>9}")  # fmt: skip
    if not args.skip_e2e:
        from rexground.cli import main as cli_main

        dataset = tmp / "dataset.json"
        dataset.write_text(json.dumps({"val": entries}))
        c0, w0 = time.process_time(), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            cli_main(["evaluate", "--gt-dir", str(tmp / "gt"), "--pred-dir", str(tmp / "pred"), "--dataset",
                      str(dataset), "--out", str(tmp / "metrics.json"), "--quiet"])  # fmt: skip
        cpu_e2e, wall_e2e = time.process_time() - c0, time.perf_counter() - w0
        n = args.cases
        print(f"\n`rexground evaluate` end to end (reading the .nii.gz files, 1 worker): {cpu_e2e / n:.2f} CPU s "
              f"({wall_e2e / n:.2f} wall s) per case; the reference's compute alone: {slow_total / n:.1f} CPU s "
              f"per case ({slow_total / cpu_e2e:.1f}x)")  # fmt: skip
    for p in sorted(tmp.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    tmp.rmdir()


if __name__ == "__main__":
    main()
