"""The fault table of the batch route (bench/bench_faults.py) in a small size: three phantom scans, every
fault, the real commands in subprocesses (SIGKILL, RLIMIT_FSIZE, a read-only folder, a vanishing CT folder,
two runs on one folder, broken predictions for evaluate). Every row must keep all good output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_fault_loses_no_good_output():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_faults.py"), "--cases", "7"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    out = done.stdout
    for fault in ("SIGKILL mid-scan", "SIGKILL while a file is being written", "disk full writing a scan file",
                  "disk full writing the zip", "read-only output folder", "CT folder disappears mid-run",
                  "two runs, same scans", "two runs, --shard 0/2 and 1/2", "evaluate: truncated",
                  "evaluate: wrong shape", "evaluate: float 0.7", "evaluate: values 0/255", "evaluate: NaN",
                  "evaluate: every prediction truncated"):  # fmt: skip
        assert fault in out, fault
    assert "0 failed" in out and "bytes of good output lost: 0" in out
    assert "zip identical to the uninterrupted run's: yes" in out
