#!/usr/bin/env bash
# GPU check of the network engine, for a session lent a GPU machine (one prepared call, ~5 minutes):
# CUDA masks against CPU masks on a 512x512x400 phantom with three findings, and the CUDA timings.
#
# The device machines carry python3 with torch, numpy, scipy, onnx, tokenizers, tqdm, but neither
# onnxruntime-gpu nor SimpleITK/pydantic. Prepare wheels HERE first (the device cannot download):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl onnxruntime-gpu SimpleITK pydantic pydantic-core \
#     annotated-types typing-inspection onnxconverter-common
#   (onnxruntime-gpu needs CUDA 12 + cuDNN 9 libraries matching its build; if the machine's CUDA
#    libraries do not match, the script reports "CUDA session failed" and exits 3.)
# Then call the device tool's run with carry [".whl"] and command: bash bench/gpu_check.sh
# Results: printed, and $OUT/gpu_check.json.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$SCRIPT_DIR/.."
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  site="$(mktemp -d /tmp/gpu_site.XXXX)"
  trap 'rm -rf "$site"' EXIT
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# Report what onnxruntime sees (the engine itself preloads the nvidia-* wheels' CUDA libraries).
"$PY" - <<'PY' || true
import onnxruntime as ort
print("onnxruntime", ort.__version__, ort.get_available_providers())
PY
nvidia-smi || true
"$PY" bench/gpu_check.py --out "${OUT:-/tmp}/gpu_check.json" "$@"
# A realistic network size as well (random weights): the real preset at its own patch and spacing.
"$PY" bench/gpu_check.py --preset real --patch 128 160 160 --spacing 1.5 1.0 1.0 --skip-cpu \
  --out "${OUT:-/tmp}/gpu_check_real.json" "$@" || true
