"""The container definitions keep the platform's rules (checked without building: CI builds and runs them):
pinned base, non-root user, exec-form entrypoint, no torch, a build context without the venv, scripts that
parse, and the OCI wrapper really dropping the rlimits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = [REPO / "Dockerfile", REPO / "evaluation" / "Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_dockerfile_follows_the_platform_conventions(dockerfile):
    text = dockerfile.read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-bookworm", base.group(1))
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users[-1] == "user"  # runs as the non-root user
    assert "WORKDIR /opt/app" in text
    entry = re.search(r"^ENTRYPOINT (.+)$", text, re.M)
    assert entry and isinstance(json.loads(entry.group(1)), list)  # exec form
    assert "torch" not in text


def test_requirements_are_pinned_and_torch_free():
    for path in (REPO / "requirements.txt", REPO / "evaluation" / "requirements.txt"):
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        reqs = [line for line in lines if line]
        assert reqs and all(re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9.]*", r) for r in reqs), (
            reqs
        )
        assert not any(r.lower().startswith("torch") for r in reqs)
    gpu = [r for r in (REPO / "requirements.txt").read_text().splitlines() if r.startswith("onnxruntime")]
    assert gpu == ["onnxruntime-gpu[cuda,cudnn]==1.26.0"]  # the CUDA 12 pin the README explains


def test_build_context_leaves_out_the_venv_and_data():
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*")] == "*"  # allow-list: everything else stays out (.venv, out/, test/)
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {"inference.py", "requirements.txt", "resources", "rexground", "evaluation"}


SCRIPTS = [*sorted((REPO / "scripts" / "container").glob("*.sh")), REPO / "demo.sh", REPO / ".ci" / "run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse_and_stop_on_errors(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    if script.name != "common.sh":  # sourced, inherits the caller's options
        assert "set -euo pipefail" in text
        assert os.access(script, os.X_OK)


def test_oci_wrapper_drops_rlimits_and_keeps_the_arguments(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": ["true"], "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}]},
    }
    (bundle / "config.json").write_text(json.dumps(config))
    fake_runc = tmp_path / "runc"
    fake_runc.write_text(f"#!{sys.executable}\nimport sys, json; print(json.dumps(sys.argv[1:]))\n")
    fake_runc.chmod(0o755)
    env = {**os.environ, "REXGROUND_REAL_RUNC": str(fake_runc)}
    wrapper = REPO / "scripts" / "container" / "oci-runtime-no-rlimits"
    args = ["--root", "/run/runc", "create", "--bundle", str(bundle), "--pid-file", "p", "ctr"]
    out = subprocess.run([str(wrapper), *args], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == args
    kept = json.loads((bundle / "config.json").read_text())
    assert "rlimits" not in kept["process"] and kept["process"]["args"] == ["true"]
