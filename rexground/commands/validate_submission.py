"""``rexground validate-submission``: check a submission folder or zip against a dataset split before upload;
prints every problem and exits 1 if there is any."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from rexground.dataset import load_dataset
from rexground.submission import validate_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", type=Path, required=True, help="dataset.json or MICCAI_challenge_dataset.json"
    )
    parser.add_argument("--split", default="test", help="split the submission is for (default: test)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pred-dir", type=Path, help="folder of submission files")
    source.add_argument("--zip", type=Path, help="the upload zip")
    parser.add_argument("--ct-root", type=Path, default=None,
                        help="CTs (flat folder or CT-RATE tree): check each file's shape against its CT header")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    entries = load_dataset(args.dataset).split(args.split)
    problems = validate_submission(entries, pred_dir=args.pred_dir, zip_path=args.zip, ct_root=args.ct_root)
    source = args.zip or args.pred_dir
    for problem in problems:
        print(problem)
    if problems:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(Counter(p.kind for p in problems).items()))
        print(
            f"{source}: {len(problems)} problem(s) for {len(entries)} scans of split {args.split!r}: {counts}"
        )
        return 1
    print(f"{source}: OK, {len(entries)} scans of split {args.split!r}, every file valid")
    return 0
