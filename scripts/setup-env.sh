#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with every dependency, idempotently.
# Usage: scripts/setup-env.sh [--train]   (--train adds torch and onnx for training/export and their tests)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$SCRIPT_DIR")"
VENV="${REXGROUND_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
extras="test"
if [ "${1:-}" = "--train" ]; then
  # torch 2.13.0 is pinned so pip takes the CPU wheel that lies on disk instead of a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0" 2>&1 | grep -v -i warning || true
  extras="test,train"
fi
"$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]" 2>&1 | grep -v -i warning || true
"$VENV/bin/python" -c "import rexground, numpy, scipy, SimpleITK, onnxruntime, pydantic" 
echo "environment ready: $VENV"
