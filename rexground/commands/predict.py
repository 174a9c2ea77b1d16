"""``rexground predict``: every finding of every scan of a split -> the challenge's submission files (and zip).

One ``(F, H, W, D)`` uint8 file per scan, named as the entry, in the CT's raw order (``write_scan_submission``).
Each file is written atomically and checked before it gets its name, so an interrupted run (killed, out of
disk) leaves only complete files; ``--resume`` skips every file that already passes the submission checks and
removes the temporaries a killed run left. ``--shard I/N`` takes every N-th scan starting at I (0-based), so
N machines or GPUs split a split between them; a final ``--resume --zip`` run (no ``--shard``) finds
everything done, validates the whole folder and packs the zip (byte for byte the same for the same files).
A run claims its scans in the folder (:mod:`rexground.folder_claim`): a second run that would write the same
scans at the same time is refused. A write that fails (full disk, file-size limit) stops the run: later scans
would fail alike. The folder is validated with the same checks as ``rexground validate-submission`` before
success is reported.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from rexground.dataset import load_dataset, parse_shard, read_ct_header, resolve_ct, split_by_findings
from rexground.engines.select import DEVICES, ENGINE_KINDS, TILE_STEP_HELP, choose_engine, parse_tile_step
from rexground.errors import OutputFileError, RexgroundError
from rexground.folder_claim import claim_scans, shard_names
from rexground.io import read_mask_raw, temporary_of
from rexground.logs import setup_cli_logging
from rexground.output_paths import ZIP_SUFFIXES, output_file, output_folder
from rexground.preconditions import require_cts, require_model_package
from rexground.predictor import Predictor
from rexground.submission import check_array, pack_submission, validate_submission, write_scan_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", type=Path, required=True, help="dataset.json / MICCAI_challenge_dataset.json"
    )
    parser.add_argument("--split", default="test", help="split to predict (default: test)")
    parser.add_argument("--ct-root", type=Path, required=True, help="CTs: flat folder or CT-RATE tree")
    parser.add_argument("--out", type=Path, required=True, help="folder of submission files (created)")
    parser.add_argument("--zip", type=Path, help="also pack the validated folder into this upload zip")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N",
                        help="predict scans I, I+N, I+2N, ... of the split (0 <= I < N)")  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true", help="skip scans whose file already passes the checks"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes, each with its own engine")
    parser.add_argument("--engine", choices=ENGINE_KINDS, default="auto")
    parser.add_argument("--model", type=Path, metavar="DIR", help="model package folder (network engine)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--tile-step", type=parse_tile_step, metavar="FRACTION", help=TILE_STEP_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class ScanOutcome:
    name: str
    status: str  # "predicted" | "skipped" | "error"
    seconds: float = 0.0
    detail: str = ""
    fatal: bool = False  # the run cannot go on: an output cannot be written, the CT folder is gone


def existing_output_ok(out_dir: Path, entry, ct_root: Path) -> bool:
    """Whether ``out_dir/<name>`` exists and passes every submission check against the entry and its CT."""

    path = out_dir / entry.name
    if not path.is_file():
        return False
    try:
        spatial = tuple(read_ct_header(resolve_ct(ct_root, entry.name))[0])
        return not check_array(entry.name, read_mask_raw(path), entry, spatial)
    except RexgroundError:
        return False


def predict_scan(predictor, entry, ct_root: Path, out_dir: Path, resume: bool) -> ScanOutcome:

    if resume and existing_output_ok(out_dir, entry, ct_root):
        return ScanOutcome(entry.name, "skipped")
    start = time.perf_counter()
    try:
        case = predictor.predict_file(resolve_ct(ct_root, entry.name), list(entry.texts))
        write_scan_submission(out_dir, entry, case.masks(), case.ct.geometry)
    except OutputFileError as exc:
        return ScanOutcome(entry.name, "error", time.perf_counter() - start, str(exc), fatal=True)
    except RexgroundError as exc:
        gone = not ct_root.is_dir()  # the CT folder itself vanished (unmounted, moved): every scan would fail
        detail = f"{ct_root}: the CT folder is gone ({exc})" if gone else str(exc)
        return ScanOutcome(entry.name, "error", time.perf_counter() - start, detail, fatal=gone)
    return ScanOutcome(entry.name, "predicted", time.perf_counter() - start)


# One predictor per worker process, built once by the pool's initializer.
_WORKER: dict = {}


def _init_worker(kind: str, model: Path | None, device: str, tile_step: float | None = None) -> None:

    choice = choose_engine(kind, model, device, tile_step=tile_step)
    _WORKER["predictor"] = Predictor(choice.engine, choice.reason)


def _worker_scan(entry, ct_root: Path, out_dir: Path, resume: bool) -> ScanOutcome:
    return predict_scan(_WORKER["predictor"], entry, ct_root, out_dir, resume)


def run_scans(args: argparse.Namespace, entries) -> list[ScanOutcome]:
    """Predict ``entries`` (in worker processes with ``--workers`` > 1); stops at the first fatal outcome."""
    bar = tqdm(total=len(entries), desc="predict", unit="scan", disable=args.no_progress)
    outcomes = []

    def done(outcome: ScanOutcome) -> None:
        outcomes.append(outcome)
        if outcome.status == "error":
            tqdm.write(f"error: {outcome.name}: {outcome.detail}")
        bar.update(1)
        bar.set_postfix_str(f"{outcome.status} {outcome.name}")

    if args.workers <= 1:
        _init_worker(args.engine, args.model, args.device, args.tile_step)
        for entry in entries:
            done(_worker_scan(entry, args.ct_root, args.out, args.resume))
            if outcomes[-1].fatal:
                break
    else:
        # spawn: each worker builds its engine (onnxruntime / CUDA state) in a clean process.
        with ProcessPoolExecutor(
            max_workers=args.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(args.engine, args.model, args.device, args.tile_step),
        ) as pool:
            futures = [pool.submit(_worker_scan, e, args.ct_root, args.out, args.resume) for e in entries]
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                done(future.result())
                if outcomes[-1].fatal:
                    for pending in futures:
                        pending.cancel()  # scans already running finish; nothing new starts
    bar.close()
    return outcomes


def remove_temporaries(out_dir: Path, names: set[str]) -> int:
    """Remove what a killed run of these scans left mid-write (``.<name>.<random>.tmp...``, never visible
    under the final name); safe because this run holds the claim on ``names``."""
    removed = 0
    for path in out_dir.iterdir():
        if path.is_file() and temporary_of(path.name) in names:
            path.unlink()
            removed += 1
    return removed


def run(args: argparse.Namespace) -> int:
    setup_cli_logging()  # log lines through tqdm.write: the progress bar stays whole
    index, count = args.shard
    if args.zip and count > 1:
        print("rexground predict: --zip packs the whole split: once every shard is done, run again without "
              "--shard, with --resume --zip")  # fmt: skip
        return 2
    output_folder(args.out, "--out")
    if args.zip:
        output_file(args.zip, ZIP_SUFFIXES, "--zip", example="submission.zip")
    entries, no_findings = split_by_findings(load_dataset(args.dataset).split(args.split))
    if no_findings:
        print(f"{len(no_findings)} scan(s) of split {args.split!r} have no finding to ground: skipped "
              f"(e.g. {no_findings[0].name})")  # fmt: skip
    names = [e.name for e in entries]
    by_name = {e.name: e for e in entries}
    mine = [by_name[n] for n in shard_names(names, index, count)]
    if args.model is not None:  # a broken package is refused here, not once per worker after the pool starts
        require_model_package(args.model)
    absent = require_cts(args.ct_root, [e.name for e in mine])
    if absent:
        print(
            f"warning: {len(absent)} CT(s) not under {args.ct_root} (they will be errors): {', '.join(absent[:5])}"
        )
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(args.out, f"cannot be created: {exc.strerror or exc}") from exc
    with claim_scans(args.out, index, count, names):
        return _run_claimed(args, entries, mine, index, count)


def _run_claimed(args: argparse.Namespace, entries, mine, index: int, count: int) -> int:
    print(
        f"{len(mine)} of {len(entries)} scans of split {args.split!r} (shard {index}/{count}) -> {args.out}"
    )
    removed = remove_temporaries(args.out, {e.name for e in mine})
    if removed:
        print(f"removed {removed} unfinished temporary file(s) an interrupted run left in {args.out}")

    start = time.perf_counter()
    outcomes = run_scans(args, mine)
    predicted = [o for o in outcomes if o.status == "predicted"]
    errors = [o for o in outcomes if o.status == "error"]
    per_scan = sum(o.seconds for o in predicted) / len(predicted) if predicted else 0.0
    print(f"predicted {len(predicted)}, skipped {len(outcomes) - len(predicted) - len(errors)} (already valid), "
          f"errors {len(errors)}; {time.perf_counter() - start:.1f} s, {per_scan:.1f} s per predicted scan")  # fmt: skip
    for o in errors:
        print(f"  error: {o.name}: {o.detail}")
    fatal = next((o for o in outcomes if o.fatal), None)
    if fatal is not None:
        print(f"stopped: {fatal.detail}; {len(mine) - len(outcomes)} scan(s) not attempted. The files already "
              f"written are complete; once the cause is fixed, rerun with --resume to do the rest")  # fmt: skip
        return 1

    # The same checks as `rexground validate-submission`, on this run's scans (or the whole split).
    problems = validate_submission(mine if count > 1 else entries, pred_dir=args.out, ct_root=args.ct_root)
    if count > 1:
        problems = [p for p in problems if p.kind != "extra"]  # other shards' files are not extra
    for p in problems:
        print(f"  {p}")
    if problems or errors:
        print(f"{args.out}: {len(problems)} problem(s), {len(errors)} scan(s) failed: not ready for upload")
        return 1
    if count > 1:
        print(
            f"shard {index}/{count} done and valid; when all shards are done: rexground predict ... --resume --zip Z"
        )
        return 0
    print(f"{args.out}: valid submission for all {len(entries)} scans of split {args.split!r}")
    if args.zip:
        pack_submission(args.out, args.zip, names=[e.name for e in entries])
        print(f"zip written: {args.zip}")
    return 0
