"""The learning benchmark runs end to end, and scores a saved run again (a few seconds of training; the numbers
are not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_phantoms_trains_scores_and_prints_the_table(tmp_path):
    cmd = [
        sys.executable, str(REPO / "bench" / "bench_phantoms.py"), "--minutes", "0.1", "--train-cases", "3",
        "--val-cases", "2", "--threads", "1", "--text-encoder", "hashing-test", "--out", str(tmp_path / "b"),
        "--coords",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "held-out per-case Dice" in out and "swap pairs: swapped Dice" in out
    assert "anatomy gate maps: 4" in out  # anatomy channels and the gate are the default
    assert "coord_lateral" in out  # --coords adds the lung coordinate channels
    assert (tmp_path / "b" / "run" / "checkpoints" / "last.pt").is_file()

    # The saved network is scored again without training, with two thresholds and another tiling.
    again = [
        *cmd[:2], "--eval-only", str(tmp_path / "b"), "--val-cases", "2", "--threads", "1", "--threshold", "0.4",
        "0.3", "--tile-step", "1.0",
    ]  # fmt: skip
    done = subprocess.run(again, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "earlier run" in done.stdout and "held-out per-case Dice" in done.stdout
    assert "training for" not in done.stdout
    sweep = done.stdout.split("threshold  per-case")[1].splitlines()[1:3]  # one row per threshold
    assert [row.split()[0] for row in sweep] == ["0.40", "0.30"]


def test_the_training_set_skips_phantoms_without_findings(capsys):
    """``bench_phantoms.py --seed 2`` crashed building its training set: phantom 3031 has no finding."""
    import importlib.util

    from rexground.train.config import DataConfig, InputSpec

    spec_file = importlib.util.spec_from_file_location("bench_phantoms", REPO / "bench" / "bench_phantoms.py")
    bench = importlib.util.module_from_spec(spec_file)
    spec_file.loader.exec_module(bench)
    spec = InputSpec(patch_size_zyx=(16, 16, 16), spacing_zyx=(6.0, 6.0, 6.0), text_encoder="hashing-test")
    cases, _ = bench._phantoms(range(3030, 3033), "train", spec, DataConfig(), paired_fraction=0.5)
    assert len(cases) == 2 and all(c.n_findings for c in cases)
    assert "train: 1 of 3 phantoms drew no finding and were skipped" in capsys.readouterr().out
