"""``rexground evaluate``: score a folder of predictions with the official ReXGrounding logic.

GT and prediction files are matched by the entry's name; predictions are read exactly as stored (raw array
order) and compared with the GT in that same order. Cases run in worker processes, one case per task, so
memory stays at about one case (uint8) per worker. A case whose file is unreadable, truncated, of the wrong
shape or holds NaN is refused (an error, not scored); a float or 0/255 prediction is cast to uint8 as the
official script does, with a warning naming the file. Errors are printed first, then the summary, which
says how many cases were scored and how many refused. Exit status 1 when any case is refused; when no case
could be scored there is no summary: metrics.json holds the errors and null metrics, and the exit status is
1. Missing predictions are reported but are not errors.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rexground.dataset import Dataset, DatasetEntry, load_dataset, mask_path, resolve_ct
from rexground.errors import InputFileError, RexgroundError
from rexground.metrics.aggregate import aggregate
from rexground.metrics.cases import evaluate_files
from rexground.metrics.report import format_problems, format_summary, metrics_document, write_metrics_json
from rexground.metrics.results import CaseResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt-dir", type=Path, required=True, help="folder of GT masks (segmentations/)")
    parser.add_argument(
        "--pred-dir", type=Path, required=True, help="folder of prediction files, named as the GT"
    )
    parser.add_argument("--dataset", type=Path, required=True, help="dataset.json, MICCAI_challenge_dataset.json "
                        "or the evaluator form {\"test\": [{\"seg_path\": ...}]}")  # fmt: skip
    parser.add_argument("--split", default=None, help="split to score (default: the only split, else 'val')")
    parser.add_argument("--ct-dir", type=Path, default=None,
                        help="CTs (flat folder or CT-RATE tree) for the spacing of the distance metrics")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="worker processes (one case each)")
    parser.add_argument("--global-only", action="store_true", help="Dice and hit only, no instance matching")
    parser.add_argument("--missing", choices=("zero", "drop"), default="zero",
                        help="a missing prediction scores 0 (default) or is dropped like the official script")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="metrics.json to write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--html", type=Path, default=None, metavar="REPORT",
                        help="also write a self-contained HTML report: tables, Dice plots and, with --ct-dir, "
                        "overlays of the worst findings")  # fmt: skip


@dataclass(frozen=True)
class CaseJob:
    """Everything one worker needs to score one case (picklable)."""

    name: str
    gt_path: Path
    pred_path: Path
    categories: tuple[str, ...] | None
    keys: tuple[str, ...] | None
    ct_path: Path | None
    ct_note: str | None
    global_only: bool


def score_job(job: CaseJob) -> CaseResult:
    return evaluate_files(
        job.gt_path,
        job.pred_path,
        list(job.categories) if job.categories is not None else None,
        keys=job.keys,
        ct_path=job.ct_path,
        global_only=job.global_only,
        name=job.name,
        ct_note=job.ct_note,
    )


def pick_split(dataset: Dataset, split: str | None) -> str:
    if split is not None:
        return split
    if len(dataset.splits) == 1:
        return next(iter(dataset.splits))
    return "val"


def build_jobs(
    entries: tuple[DatasetEntry, ...], gt_dir: Path, pred_dir: Path, ct_dir: Path | None, global_only: bool
) -> list[CaseJob]:
    jobs = []
    for entry in entries:
        ct_path, ct_note = None, None
        if ct_dir is not None:
            try:
                ct_path = resolve_ct(ct_dir, entry.name)
            except InputFileError as exc:
                ct_note = f"CT not found: {exc}"
        has_findings = bool(entry.findings)
        jobs.append(
            CaseJob(
                name=entry.name,
                gt_path=mask_path(gt_dir, entry),
                pred_path=pred_dir / entry.name,
                categories=tuple(entry.category_list()) if has_findings else None,
                keys=entry.finding_keys if has_findings else None,
                ct_path=ct_path,
                ct_note=ct_note,
                global_only=global_only,
            )
        )
    return jobs


def run_jobs(jobs: list[CaseJob], workers: int, progress: bool = True) -> list[CaseResult]:
    """Score every job (in parallel with ``workers`` > 1), results in job order, with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="evaluate", unit="case", disable=not progress, file=sys.stderr)
    results: list[CaseResult | None] = [None] * len(jobs)
    try:
        if workers <= 1:
            for i, job in enumerate(jobs):
                results[i] = score_job(job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(score_job, job): i for i, job in enumerate(jobs)}
                from concurrent.futures import as_completed

                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    finally:
        bar.close()
    return [r for r in results if r is not None]


def write_report(path: Path, summary, results, entries, jobs: list[CaseJob], settings: dict) -> None:
    """The HTML report of ``rexground evaluate --html`` (see :mod:`rexground.metrics.html_report`)."""
    from rexground.metrics.html_report import CaseFiles, write_html_report

    sentences = {(e.name, key): text for e in entries for key, text in e.findings.items()}
    files = {j.name: CaseFiles(j.gt_path, j.pred_path, j.ct_path) for j in jobs}
    write_html_report(path, summary, results, sentences=sentences, files=files, settings=settings)


def run(args: argparse.Namespace) -> int:
    from rexground.output_paths import HTML_SUFFIXES, JSON_SUFFIXES, output_file
    from rexground.preconditions import require_ground_truth

    output_file(args.out, JSON_SUFFIXES, "--out", example="metrics.json")
    if args.html:
        output_file(args.html, HTML_SUFFIXES, "--html", example="report.html")
    dataset = load_dataset(args.dataset)
    split = pick_split(dataset, args.split)
    entries = dataset.split(split)
    if not args.gt_dir.is_dir():
        raise InputFileError(args.gt_dir, "GT folder does not exist")
    if not args.pred_dir.is_dir():
        raise InputFileError(args.pred_dir, "prediction folder does not exist")
    if args.workers < 1:
        raise RexgroundError(f"--workers must be at least 1, got {args.workers}")
    jobs = build_jobs(entries, args.gt_dir, args.pred_dir, args.ct_dir, args.global_only)
    require_ground_truth(args.gt_dir, [job.gt_path for job in jobs])
    if args.ct_dir is not None and not args.ct_dir.is_dir():
        raise InputFileError(args.ct_dir, "CT folder does not exist")
    expected = {e.name for e in entries}
    extra = sorted(p.name for p in args.pred_dir.iterdir() if p.is_file() and p.name not in expected)
    results = run_jobs(jobs, args.workers, progress=not args.quiet)
    summary = aggregate(results, missing=args.missing, global_only=args.global_only)
    scored = summary.n_cases > 0
    settings = {
        "dataset": str(args.dataset), "split": split, "gt_dir": str(args.gt_dir), "pred_dir": str(args.pred_dir),
        "ct_dir": str(args.ct_dir) if args.ct_dir else None, "global_only": args.global_only,
        "missing": args.missing,
    }  # fmt: skip
    document = metrics_document(
        summary if scored else None, results, settings=settings, extra_predictions=extra
    )
    # Errors first: a refused case is never hidden behind a summary.
    for line in format_problems(results):
        print(line, file=sys.stderr)
    if document["missing"]:
        shown = ", ".join(document["missing"][:5]) + (" ..." if len(document["missing"]) > 5 else "")
        policy = "scored 0" if args.missing == "zero" else "dropped"
        print(f"missing predictions ({len(document['missing'])}, {policy}): {shown}", file=sys.stderr)
    if extra:
        print(
            f"prediction files not in the dataset split ({len(extra)}): {', '.join(extra[:5])}",
            file=sys.stderr,
        )
    sys.stderr.flush()
    write_metrics_json(args.out, document)
    counts = document["counts"]
    if not scored:
        print(f"no case could be scored: {counts['refused']} refused, {counts['missing']} missing of "
              f"{counts['cases']}; {args.out} holds the errors and no metrics")  # fmt: skip
        return 1
    print(format_summary(summary))
    print(f"wrote {args.out}")
    if args.html:
        write_report(args.html, summary, results, entries, jobs, settings)
        print(f"wrote {args.html}")
    return 1 if document["errors"] else 0
