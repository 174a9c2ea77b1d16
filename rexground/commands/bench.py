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
    "anatomy": ("bench_anatomy.py", "lung Dice vs expert contours; --ts-dir: lobe Dice vs CT-RATE TotalSegmentator"),
    "zero-shot": ("bench_zero_shot.py", "an engine on real-CT case folders (official metrics), CTs without the finding"),
    "onnx": ("bench_onnx.py", "ONNX vs torch eager, three findings vs one, peak memory for a big CT"),
    "phantoms": ("bench_phantoms.py", "train from scratch on phantoms for M minutes; held-out and prompt-swap Dice"),
    "loader": ("bench_loader.py", "training loader: patches per second per CPU core, bytes read per patch"),
    "cache": ("bench_cache.py", "training cache at CT-RATE size: MB, build seconds per scan, storage options"),
    "step": ("bench_real_step.py", "the real 48.5M network on the CPU: train-step and validation memory, CPU s"),
    "text": ("bench_text.py", "parser accuracy (confusion matrix), unknown rate on report text (--reports), encoder speed"),
    "io": ("bench_io.py", "integrity-checked CT read vs the unchecked SimpleITK read (512 x 512 x 600 .nii.gz)"),
    "faults": ("bench_faults.py", "kill, fill the disk, break the inputs of predict and evaluate: a table"),
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
