#!/usr/bin/env bash
# Assert that an environment is the core install: no torch, no nvidia-* (CUDA) wheel, no triton.
# CI runs it on the environment ./demo.sh made in a fresh clone. Usage: scripts/check-core-env.sh [VENV]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${REXGROUND_VENV:-$ROOT/.venv}}"
listing="$("$VENV/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null)"
heavy="$(grep -i -E '^(torch|torchvision|triton|nvidia-[a-z0-9-]+)==' <<<"$listing" || true)"
if [ -n "$heavy" ]; then
  echo "check-core-env: $VENV is not the core install; it has $(echo $heavy | tr ' ' ',')" >&2
  exit 1
fi
echo "check-core-env: $VENV has no torch, nvidia-* or triton ($(wc -l <<<"$listing") packages)"
