#!/usr/bin/env bash
# The one command to see rexground work on a fresh machine: set up its own environment (.venv with the core
# dependencies: no torch, no GPU libraries) and ground a finding in the bundled real chest CT (TCIA
# Lung-PET-CT-Dx A0001, CC BY 4.0) with the default engine, writing the mask, an overlay picture and the
# per-finding record.
# Usage: ./demo.sh ["finding sentence" ...]   (default: the example's own finding)   OUT=dir ./demo.sh
#        REXGROUND_VENV=dir ./demo.sh   (another environment folder; default .venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
EXAMPLE="rexground/resources/example"
OUT="${OUT:-out/demo}"

scripts/setup-env.sh
VENV="${REXGROUND_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

FINDINGS=()
if [ $# -gt 0 ]; then
  for f in "$@"; do FINDINGS+=(--finding "$f"); done
else
  while IFS= read -r f; do FINDINGS+=(--finding "$f"); done < <(
    "$PY" -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["findings"]))' "$EXAMPLE/case.json")
fi

mkdir -p "$OUT"
"$VENV/bin/rexground" predict-case --ct "$EXAMPLE/ct.nii.gz" "${FINDINGS[@]}" \
  --out "$OUT/mask.nii.gz" --png "$OUT/overlay.png" --json "$OUT/results.json"
echo
echo "done: mask $OUT/mask.nii.gz, overlay $OUT/overlay.png, record $OUT/results.json"
