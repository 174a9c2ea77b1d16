"""configs/real.toml at CT-RATE size, end to end on the CPU: two ``synth --size real`` phantoms (512 x 512 x 251
and 512 x 512 x 364) prepared by ``rexground prepare`` (two workers), two training steps of ``rexground train``
on that cache (128 x 160 x 160 patches at 1.5 x 1 x 1 mm, 9 input channels, the anatomy gate, batch 2 x 3
prompts, 8 DataLoader workers) and validation of the held-out scan on its whole grid, with peak memory
printed (``pytest -s``) and bounded.

What is NOT the real configuration, on purpose, and only this (``OVERRIDES``): the network's widths
(``net.features`` 4 ... 32 instead of 32 ... 320, one block per stage; the same five stages and strides, so
the same patch contract, anatomy gate and heads), the test-only sentence embedder (no model files), and
validation tiles without overlap (the whole grid is still predicted and scored). Why: the 48.5M-parameter
network costs 12.8 GB and 144 CPU seconds per patch for a forward and backward pass in fp32 here (7.3 GB and
78 s with ``amp = "bf16"``), so two steps of batch 2 would take about ten minutes of the two-core CI machine,
and fp32 batch 2 (about 25 GB) does not fit its 24 GiB at all (``bench/bench_real_step.py`` measures it);
even the narrow network spends most of its time in the per-prompt full-resolution tensors of the decoder
and in validation's native-grid resampling. Everything else is read from configs/real.toml unchanged, and
the test checks that it was.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("blosc2")

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = {
    "net": {
        "features": [4, 8, 16, 24, 32],
        "encoder_blocks": [1, 1, 1, 1, 1],
        "cond_dim": 16,
        "embed_dim": 4,
    },
    "input": {"text_encoder": "hashing-test"},
    "steps": 2,
    "val_every": 2,
    "checkpoint_every": 2,
    "log_every": 1,
    "tile_step": 1.0,
}


def _config(tmp_path: Path) -> Path:
    raw = tomllib.loads((REPO / "configs" / "real.toml").read_text())
    for key, value in OVERRIDES.items():
        if isinstance(value, dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    path = tmp_path / "real_narrow.json"
    path.write_text(json.dumps(raw))
    return path


def _run(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, "-m", "rexground.cli", *args], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=900
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return done, max(after, before) / 2**20  # GiB, the largest process so far


@pytest.mark.slow
def test_real_config_prepares_trains_and_validates_at_ct_rate_size(tmp_path):
    from rexground.synth import write_dataset
    from rexground.train.config import load_config

    data = tmp_path / "data"
    write_dataset(data, 2, seed=0, size="real")  # train_100_b_1 (512x512x251), valid_101_b_2 (512x512x364)
    cfg_path = _config(tmp_path)
    cfg, real = load_config(cfg_path), load_config(REPO / "configs" / "real.toml")
    assert cfg.input.model_copy(update={"text_encoder": real.input.text_encoder}) == real.input
    assert (cfg.data, cfg.optim, cfg.loss, cfg.batch_size, cfg.amp) == (real.data, real.optim, real.loss, real.batch_size, real.amp)  # fmt: skip
    assert (
        cfg.net.strides == real.net.strides and cfg.net.anatomy_gate_maps == real.net.anatomy_gate_maps == 4
    )
    cache = tmp_path / "cache"

    done, prepare_peak = _run("prepare", "--data", str(data), "--config", str(cfg_path), "--out", str(cache), "--workers", "2", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 prepared" not in done.stdout and "1 prepared, 0 already cached, 0 failed" in done.stdout
    summary = next(p for p in cache.iterdir() if p.is_dir()) / "prepare-shard0of1.json"
    by_split = {name: split["prepared"] for name, split in json.loads(summary.read_text()).items()}
    # The cache target (<= 40 MB a scan) is the training set's. A validation scan holds its CT as the float32
    # network input (exactly what inference computes) and its whole native labels: larger, and only 200 scans.
    assert by_split[cfg.data.train_split] and all(r["bytes"] < 40 * 2**20 for r in by_split[cfg.data.train_split])

    run = tmp_path / "run"
    done, train_peak = _run("train", "--config", str(cfg_path), "--data", str(data), "--out", str(run), "--cache", str(cache), "--device", "cpu", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "prepare" not in done.stderr  # the cache prepared above was used as it is
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    val = [r for r in records if "val" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["loss"] == r["loss"] for r in steps)  # finite
    assert len(val) == 1 and val[0]["val"]["n_cases"] == 1 and 0.0 <= val[0]["val"]["dice_per_case"] <= 1.0
    assert (run / "checkpoints" / "last.pt").is_file()
    step_peak = max(r["peak_rss_gb"] for r in steps)
    sizes = ", ".join(f"{split} {r['bytes'] / 2**20:.1f} MB" for split, rs in by_split.items() for r in rs)
    print(
        f"\nreal-size pipeline: prepare peak {prepare_peak:.2f} GiB ({sizes} per scan); "
        f"training steps peak {step_peak:.2f} GiB; after validation {val[0]['peak_rss_gb']:.2f} GiB; "
        f"largest train process {train_peak:.2f} GiB"
    )
    assert prepare_peak < 8 and train_peak < 10  # on a 24 GiB machine shared by two test workers
