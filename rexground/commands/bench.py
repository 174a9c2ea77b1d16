"""``rexground bench NAME [ARGS...]``: run one of the benchmark scripts under ``bench/`` and print its table.

The benchmarks live beside the package (they need the repository's checkout, and some need ``../shared``);
this command finds them and runs each in a fresh interpreter so its timings are not disturbed by ours.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from rexground.errors import RexgroundError

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
BENCHMARKS: dict[str, tuple[str, str]] = {
    "evaluate": ("bench_evaluate.py", "rexground evaluate vs a straightforward implementation (speed, identity)"),
    "anatomy": ("bench_anatomy.py", "lung Dice against expert contours, lobe plausibility, seconds per CT"),
    "zero-shot": ("bench_zero_shot.py", "an engine on real-CT case folders (official metrics), CTs without the finding"),
    "onnx": ("bench_onnx.py", "ONNX vs torch eager, three findings vs one, peak memory for a big CT"),
    "phantoms": ("bench_phantoms.py", "train from scratch on phantoms for M minutes; held-out and prompt-swap Dice"),
    "text": ("bench_text.py", "parser accuracy on real sentences (confusion matrix), encoder size and speed"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark (see NAME --help)")
    parser.epilog = "\n".join(f"{name}: {help_text}" for name, (_, help_text) in BENCHMARKS.items())
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    script = BENCH_DIR / BENCHMARKS[args.name][0]
    if not script.is_file():
        raise RexgroundError(f"{script}: benchmark script not found (benchmarks run from a checkout of rexground)")
    return subprocess.call([sys.executable, str(script), *args.args])
