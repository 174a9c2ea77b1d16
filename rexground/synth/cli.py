"""``rexground synth``: write phantom CTs, entity masks and a ReXGroundingCT-format dataset."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; reruns resume)")
    parser.add_argument("--cases", type=int, default=10, help="number of scans (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; same seed, same files")
    parser.add_argument(
        "--size",
        choices=("small", "real"),
        default="small",
        help="small: ~96x96x90 voxels at ~3.7 mm, about a second a case; real: 512/768 matrices at 0.6-1.5 mm",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")


def run(args: argparse.Namespace) -> int:
    from rexground.output_paths import output_folder
    from rexground.synth.writer import write_dataset

    if args.cases < 1:
        raise SystemExit("rexground synth: error: --cases must be at least 1")
    import json

    from rexground.logs import setup_cli_logging

    output_folder(args.out, "--out")
    setup_cli_logging()
    path = write_dataset(args.out, args.cases, args.seed, size=args.size, workers=max(1, args.workers))
    written = sum(len(entries) for entries in json.loads(path.read_text()).values())
    skipped = f" ({args.cases - written} drew no finding: skipped)" if written < args.cases else ""
    print(f"wrote {written} of {args.cases} phantom cases{skipped}; dataset: {path}")
    return 0
