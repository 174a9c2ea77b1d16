"""``rexground prepare --data DIR --config CONFIG --out CACHE [--workers N] [--shard I/N]``: build the training
cache (``rexground.train.cache``) for the scans a config trains and validates on.

Per scan: read the CT, crop it to the body box (as inference does), compute the classical anatomy and pack
its channels (``anatomy_codec``), resample to the model's spacing, write the case folder atomically. It is
the step ``rexground train`` runs itself when the cache is missing; as its own command it shards:

* ``--workers N`` processes on this machine (each holds one scan at a time: about 2-3 GB for a 512 x 512 x 600
  CT, see the README's numbers);
* ``--shard I/N`` prepares scans I, I+N, I+2N, ... of each split (0-based), so N machines (or N processes)
  share a split; under ``torchrun`` the ranks shard the same way when ``--shard`` is not given. The cache
  folder may be shared (each scan is written under a temporary name and renamed when complete).

Resumable: a rerun skips every scan already complete, so a killed run continues where it stopped. A scan
that fails (a corrupt CT, a mask that does not fit it) is reported on one line and skipped, never stopping
the others; the exit status is 1 when any failed, and a rerun tries them again. The summary gives scans,
seconds per scan (wall and CPU), the CPU share spent in anatomy, and bytes per scan.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rexground.dataset import parse_shard
from rexground.errors import InputFileError
from rexground.train.config import DataConfig, InputSpec


def default_ct_root(data_dir: Path) -> Path:
    """Phantom trees keep their CTs under ``ct_rate/``; otherwise the dataset folder itself is tried."""
    data_dir = Path(data_dir)
    return data_dir / "ct_rate" if (data_dir / "ct_rate").is_dir() else data_dir


@dataclass
class SplitResult:
    """What :func:`prepare_split` did for this shard of one split."""

    split: str
    folders: list[Path]  # every scan of the split (all shards), in dataset order
    mine: int = 0  # scans of this shard
    cached: int = 0  # of those, already complete before this run
    reports: list[dict] = field(default_factory=list)  # one per scan prepared now (timings, bytes)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (scan name, one-line reason)


def prepare_scan(
    entry, data_dir: Path, ct_root: Path, split: str, spec: InputSpec, data: DataConfig, folder: Path
) -> dict:
    """Prepare one dataset entry into ``folder``; returns its timings and size."""
    from rexground.dataset import load_entry_masks, mask_path, resolve_ct
    from rexground.io import read_ct

    wall0, cpu0 = time.perf_counter(), time.process_time()
    ct = read_ct(resolve_ct(ct_root, entry.name))
    mask_file = mask_path(data_dir / "segmentations", entry)  # the file load_entry_masks reads
    entities = ct.geometry.to_canonical(load_entry_masks(data_dir / "segmentations", entry))
    if entities.shape[1:] != ct.shape:
        raise InputFileError(mask_file, f"mask grid {entities.shape[1:]} is not the CT's {ct.shape}")
    read = (time.perf_counter() - wall0, time.process_time() - cpu0)
    return prepare_ct_case(
        ct, entities, entry.name, split, list(entry.texts), entry.category_list(), spec, data, folder, read
    )


def prepare_ct_case(
    ct,
    entities,
    name: str,
    split: str,
    texts: list[str],
    categories: list[str],
    spec: InputSpec,
    data: DataConfig,
    folder: Path,
    read_s: tuple[float, float] = (0.0, 0.0),
) -> dict:
    """A read CT (``rexground.io.CTVolume``) and its canonical entity labels -> a cached case in ``folder``:
    body crop, anatomy (packed words), model spacing, atomic write. Returns timings (wall and CPU seconds,
    the CPU spent in anatomy) and bytes on disk."""
    from rexground.infer.preprocess import body_box
    from rexground.train.cache import folder_bytes, write_case
    from rexground.train.data import prepare_arrays

    wall0, cpu0 = time.perf_counter(), time.process_time()
    anatomy = None
    if spec.anatomy_channels:
        from rexground.anatomy import compute_anatomy
        from rexground.train.anatomy_codec import encode_anatomy

        anatomy = encode_anatomy(compute_anatomy(ct), spec.anatomy_channels)
    cpu_anatomy = time.process_time() - cpu0
    case = prepare_arrays(
        name=name,
        split=split,
        hu_clipped_zyx=ct.hu_clipped(),
        spacing_zyx=ct.spacing_zyx,
        entities_fzyx=entities,
        texts=texts,
        categories=categories,
        spec=spec,
        data=data,
        anatomy=anatomy,
        keep_native_labels=split != data.train_split,
        crop=body_box(ct.hu, ct.spacing_zyx),  # what inference crops to: the body plus 10 mm
    )
    del anatomy
    report = {
        "name": name,
        "native_shape": list(case.native_shape),
        "shape": list(case.shape),
        "cpu_read_s": round(read_s[1], 3),
        "cpu_anatomy_s": round(cpu_anatomy, 3),
        "cpu_arrays_s": round(time.process_time() - cpu0 - cpu_anatomy, 3),
    }
    case.extra["prepare"] = dict(report)
    write_case(case, folder)
    report["cpu_s"] = round(read_s[1] + time.process_time() - cpu0, 3)
    report["wall_s"] = round(read_s[0] + time.perf_counter() - wall0, 3)
    report["bytes"] = folder_bytes(folder)
    return report


def _prepare_one(args: tuple) -> tuple[dict | None, str | None]:
    """Pool task: never raises, so one bad scan cannot stop the others."""
    entry = args[0]
    try:
        return prepare_scan(*args), None
    except MemoryError:
        return None, f"{entry.name}: out of memory"
    except Exception as exc:  # a corrupt or inconsistent scan: reported, the run goes on
        return None, f"{entry.name}: {type(exc).__name__}: {exc}"


def shard_from_env() -> tuple[int, int]:
    """(rank, world size) under torchrun (RANK / WORLD_SIZE), else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def prepare_split(
    data_dir: str | Path,
    split: str,
    spec: InputSpec,
    data: DataConfig,
    cache_root: str | Path,
    *,
    ct_root: str | Path | None = None,
    limit: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 1,
    progress: bool = True,
    rebuild_old: bool = False,
    log: Callable[[str], None] | None = None,
) -> SplitResult:
    """Prepare (and cache) the scans of ``split``; this shard prepares every ``world_size``-th one from
    ``rank``. ``folders`` lists *all* the split's scans (complete once every shard has finished: call a
    barrier). Scans cached in another format are rebuilt with ``rebuild_old`` and refused otherwise."""
    from rexground.dataset import load_dataset, split_by_findings
    from rexground.train.cache import CACHE_FORMAT, cache_status, format_error
    from rexground.train.data import legacy_cache_key, spec_cache_key

    if not 0 <= rank < world_size:
        raise ValueError(f"shard {rank} of {world_size} does not exist")
    data_dir = Path(data_dir)
    dataset_json = data_dir / "dataset.json"
    if not dataset_json.is_file():
        raise InputFileError(data_dir, "holds no dataset.json (expected a ReXGroundingCT-format folder)")
    ct_root = Path(ct_root) if ct_root is not None else default_ct_root(data_dir)
    entries, no_findings = split_by_findings(list(load_dataset(dataset_json).split(split))[:limit])
    say = log or (lambda line: print(line, file=sys.stderr))
    if no_findings and rank == 0:  # nothing to train on or to validate: skipped, counted
        say(f"prepare {split}: {len(no_findings)} scan(s) without findings skipped (e.g. {no_findings[0].name})")
    cache_root = Path(cache_root)
    base = cache_root / spec_cache_key(spec, data) / split
    folders = [base / Path(e.name).name.split(".")[0] for e in entries]
    result = SplitResult(split=split, folders=folders)
    mine = [(e, f) for i, (e, f) in enumerate(zip(entries, folders, strict=True)) if i % world_size == rank]
    result.mine = len(mine)
    status = {f: cache_status(f) for _, f in mine}
    todo = [(e, f) for e, f in mine if status[f] != "ok"]
    result.cached = len(mine) - len(todo)
    old = [f for _, f in todo if status[f] == "old"]
    if old and not rebuild_old:
        raise format_error(old[0], f"other than {CACHE_FORMAT}")
    legacy = cache_root / legacy_cache_key(spec, data) / split
    if todo and legacy.is_dir() and any(legacy.iterdir()):
        if not rebuild_old:
            raise format_error(legacy, 2)
        say(
            f"prepare: {legacy} is a format-2 cache of the same settings, no longer read; delete it to free the disk"
        )
    if not todo:
        return result
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"prepare {split}", unit="scan", dynamic_ncols=True)
        if log is None:  # above the bar, on stderr like the lines without one (tqdm.write defaults to stdout)
            say = functools.partial(bar.write, file=sys.stderr)
    tasks = [(e, data_dir, ct_root, split, spec, data, f) for e, f in todo]

    def record(name: str, report: dict | None, error: str | None) -> None:
        if report is not None:
            result.reports.append(report)
        else:
            result.failed.append((name, error or "failed"))
            say(f"prepare: FAILED {error}")
        if bar is not None:
            bar.update(1)

    try:
        if workers <= 1:
            for task in tasks:
                record(task[0].name, *_prepare_one(task))
        else:
            _run_pool(tasks, workers, record)
    finally:
        if bar is not None:
            bar.close()
    return result


def _run_pool(tasks: list[tuple], workers: int, record) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the caller may be a training process that has started CUDA or DDP threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_prepare_one, t): t[0].name for t in tasks}
        for future in as_completed(futures):
            name = futures[future]
            try:
                record(name, *future.result())
            except BrokenProcessPool:  # a worker was killed (out of memory): the rest of the pool is lost
                record(name, None, f"{name}: a worker process died (out of memory?); rerun to retry")


def summary_rows(results: list[SplitResult]) -> list[tuple[str, str]]:
    """The summary table: scans, seconds per scan, anatomy share, bytes per scan."""
    reports = [r for res in results for r in res.reports]
    rows = []
    for res in results:
        rows.append(
            (
                f"{res.split}: scans",
                f"{res.mine} in this shard ({len(res.folders)} in the split): {len(res.reports)} prepared, "
                f"{res.cached} already cached, {len(res.failed)} failed",
            )
        )
    if reports:
        n = len(reports)
        wall = sum(r["wall_s"] for r in reports) / n
        cpu = sum(r["cpu_s"] for r in reports) / n
        anatomy = sum(r["cpu_anatomy_s"] for r in reports) / max(1e-9, sum(r["cpu_s"] for r in reports))
        size = sum(r["bytes"] for r in reports) / n
        rows += [
            ("seconds per scan", f"{wall:.1f} wall, {cpu:.1f} CPU (one process)"),
            ("CPU share in anatomy", f"{100 * anatomy:.0f}%"),
            (
                "bytes per scan",
                f"{size / 2**20:.1f} MB (total {sum(r['bytes'] for r in reports) / 2**30:.2f} GB)",
            ),
        ]
    return rows


# ---- the command ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0].split(": ", 1)[-1]
    parser.add_argument(
        "--data", required=True, type=Path, help="ReXGroundingCT-format folder (dataset.json, segmentations/)"
    )
    parser.add_argument(
        "--config", required=True, type=Path, help="training config (.toml or .json): the input spec"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="cache folder (what `rexground train --cache` takes)"
    )
    parser.add_argument(
        "--ct-root", type=Path, default=None, help="CT-RATE root (default: DATA/ct_rate or DATA)"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes on this machine (default 1)")
    parser.add_argument(
        "--shard", type=parse_shard, default=None, metavar="I/N",
        help="prepare scans I, I+N, ... of each split (default: the torchrun rank, else everything)",
    )  # fmt: skip
    parser.add_argument(
        "--split", action="append", default=None,
        help="split to prepare (repeatable; default: the config's training and validation splits)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rexground.train.config import load_config
    from rexground.train.data import spec_cache_key

    if args.workers < 1:
        raise SystemExit("rexground prepare: error: --workers must be at least 1")
    config = load_config(args.config)
    rank, world = args.shard if args.shard is not None else shard_from_env()
    limits = {
        config.data.train_split: config.data.max_train_cases,
        config.data.val_split: config.data.max_val_cases,
    }
    splits = args.split or [config.data.train_split] + (
        [config.data.val_split] if config.data.max_val_cases != 0 else []
    )
    t0 = time.perf_counter()
    results = [
        prepare_split(
            args.data, split, config.input, config.data, args.out, ct_root=args.ct_root, limit=limits.get(split),
            rank=rank, world_size=world, workers=args.workers, progress=not args.no_progress, rebuild_old=True,
        )
        for split in splits
    ]  # fmt: skip
    rows = [
        ("cache", str(args.out / spec_cache_key(config.input, config.data))),
        ("shard", f"{rank}/{world}"),
    ]
    rows += [
        *summary_rows(results),
        ("elapsed", f"{time.perf_counter() - t0:.1f} s, {args.workers} worker(s)"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    failed = [f for r in results for f in r.failed]
    if failed:
        print(
            f"{len(failed)} scan(s) failed (listed above); rerun the same command to retry them",
            file=sys.stderr,
        )
    _write_summary(args.out / spec_cache_key(config.input, config.data), rank, world, results)
    return 1 if failed else 0


def _write_summary(key_dir: Path, rank: int, world: int, results: list[SplitResult]) -> None:
    from rexground.io import write_json

    key_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        key_dir / f"prepare-shard{rank}of{world}.json",
        {
            r.split: {
                "scans": r.mine,
                "cached": r.cached,
                "prepared": r.reports,
                "failed": [list(f) for f in r.failed],
            }
            for r in results
        },
    )
