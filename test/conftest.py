"""Shared fixtures: the real data beside the checkout (skipped cleanly where ../shared is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REXGROUND_SHARED", REPO_ROOT.parent / "shared"))
REAL_CT = SHARED / "data" / "real-ct"
FINDINGS_JSONL = SHARED / "data" / "findings" / "val_half_a.jsonl"


@pytest.fixture(scope="session")
def real_ct_dir() -> Path:
    if not REAL_CT.is_dir():
        pytest.skip(f"real CTs not present at {REAL_CT}")
    return REAL_CT


@pytest.fixture(scope="session")
def findings_jsonl() -> Path:
    if not FINDINGS_JSONL.is_file():
        pytest.skip(f"real finding sentences not present at {FINDINGS_JSONL}")
    return FINDINGS_JSONL
