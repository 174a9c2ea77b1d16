"""Benchmark the training loader at the real configuration: patches per second per CPU core and bytes read
per patch, from the compressed cache.

    python bench/bench_loader.py --config configs/real.toml --data DIR [--cache CACHE] [--steps 30]
        [--loader-workers 2]

DIR is a ReXGroundingCT-format folder (e.g. ``rexground synth --size real``); its training scans are
prepared into CACHE first if they are not there yet (``rexground prepare``). Then batches are drawn exactly
as one DataLoader worker of ``rexground train`` draws them (``loop.StepDataset``: patch placement, prompt
choice, reading the chunks, expanding the anatomy words, intensity augmentation, and the spatial
augmentation when the config asks for it; a second row forces it on for every patch), in this process with
one torch thread. Per-core throughput = patches / CPU seconds of the process (``time.process_time``), which
stays meaningful on a shared machine where wall time does not; wall-time rates are printed beside it.
Bytes read per patch = the process's ``rchar`` (``/proc/self/io``: bytes through read calls, page cache
included) over the patches. ``--loader-workers W`` also runs a real ``DataLoader`` with W workers and
reports its wall-time rate. Target: >= 4 patches/s per core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "configs" / "real.toml")
    p.add_argument("--data", type=Path, required=True, help="ReXGroundingCT-format folder")
    p.add_argument("--cache", type=Path, default=None, help="training cache (default: a temporary folder)")
    p.add_argument("--ct-root", type=Path, default=None)
    p.add_argument("--steps", type=int, default=30, help="batches per measured row (after one warm-up batch)")
    p.add_argument(
        "--loader-workers", type=int, default=0, help="also time a DataLoader with this many workers"
    )
    return p.parse_args()


def bytes_read() -> int:
    """Bytes this process has read through read calls so far (``rchar`` of ``/proc/self/io``; page cache
    included), 0 where the kernel does not report it."""
    with open("/proc/self/io") as fh:
        for line in fh:
            if line.startswith("rchar"):
                return int(line.split()[1])
    return 0


def measure(dataset, steps: int, patches_per_step: int) -> dict:
    dataset[0]  # warm-up: opens the files
    cpu, wall, r0 = time.process_time(), time.perf_counter(), bytes_read()
    for step in range(1, steps + 1):
        dataset[step]
    cpu, wall, read = time.process_time() - cpu, time.perf_counter() - wall, bytes_read() - r0
    n = steps * patches_per_step
    return {
        "patches": n,
        "per_core": n / cpu,
        "wall": n / wall,
        "bytes_per_patch": read / n,
        "cpu_ms": 1000 * cpu / n,
    }


def main() -> int:
    args = _parse()
    import torch

    torch.set_num_threads(1)  # one DataLoader worker = one core
    from rexground.train.config import load_config
    from rexground.train.data import PatchSampler, load_case
    from rexground.train.loop import StepDataset
    from rexground.train.prepare import prepare_split

    config = load_config(args.config)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench_loader_"))
    res = prepare_split(
        args.data, config.data.train_split, config.input, config.data, cache, ct_root=args.ct_root,
        limit=config.data.max_train_cases, rebuild_old=True,
    )  # fmt: skip
    cases = [load_case(f) for f in res.folders if (f / "meta.json").is_file()]
    if not cases:
        raise SystemExit(f"no training scan could be prepared from {args.data}")
    texts = sorted({t for c in cases for t in c.texts})
    rows = []
    variants = [("as configured", config.data)]
    if config.data.spatial_augment < 1.0:
        variants.append(
            ("spatial augmentation on every patch", config.data.model_copy(update={"spatial_augment": 1.0}))
        )
    for label, data in variants:
        sampler = PatchSampler(cases, texts, config.input, data, config.seed, config.loss.ignore_weight)
        dataset = StepDataset(sampler, 0, config.batch_size)
        rows.append((label, measure(dataset, args.steps, config.batch_size)))
    loader_rate = None
    if args.loader_workers:
        from torch.utils.data import DataLoader

        sampler = PatchSampler(
            cases, texts, config.input, config.data, config.seed, config.loss.ignore_weight
        )
        n = args.steps * args.loader_workers
        loader = DataLoader(StepDataset(sampler, 0, config.batch_size), batch_size=None, sampler=range(n + args.loader_workers),
                            num_workers=args.loader_workers)  # fmt: skip
        it = iter(loader)
        for _ in range(args.loader_workers):
            next(it)  # workers started, first batches out
        wall = time.perf_counter()
        for _ in range(n):
            next(it)
        loader_rate = n * config.batch_size / (time.perf_counter() - wall)
    shape = "x".join(str(s) for s in config.input.patch_size_zyx)
    print(f"\nloader of {args.config.name}: {len(cases)} cached training scans in {cache}; patch {shape}, "
          f"{config.input.in_channels} channels, batch {config.batch_size} x {config.data.prompts_per_patch} prompts")  # fmt: skip
    print(f"{'variant':38s} {'patches':>7s} {'patches/s/core':>15s} {'CPU ms/patch':>13s} {'wall patches/s':>15s} {'MB read/patch':>14s}")  # fmt: skip
    for label, m in rows:
        print(f"{label:38s} {m['patches']:7d} {m['per_core']:15.2f} {m['cpu_ms']:13.0f} {m['wall']:15.2f} "
              f"{m['bytes_per_patch'] / 2**20:14.2f}")  # fmt: skip
    if loader_rate is not None:
        print(f"DataLoader, {args.loader_workers} workers: {loader_rate:.2f} patches/s wall")
    print(
        f"target >= 4 patches/s per core; machine: {os.cpu_count()} cores, shared (CPU time is the measure)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
