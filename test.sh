#!/usr/bin/env bash
# Set up everything and run the whole test suite, slow tests included. This is what CI runs.
# Usage: ./test.sh [extra pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
scripts/setup-env.sh --train
export PYTHONUTF8=1  # subprocesses' output (progress bars) decodes as UTF-8 whatever the locale
.venv/bin/python -m pytest -m "" -n 2 "$@" test
