#!/usr/bin/env bash
# Run the evaluation container on a generated case with a hand-computed answer (evaluation/make_example.py),
# as the platform does: no network, read-only /input and ground truth, writable /output, memory cap;
# then check /output/metrics.json against the known aggregates.
# Usage: scripts/container/test-evaluation.sh [--tag NAME] [--memory 4g]
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"

TAG="rexground-evaluation:latest"
MEMORY="4g"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG="$2"; shift ;;
    --memory) MEMORY="$2"; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

WORK="$(mktemp -d /tmp/rexground-test-evaluation.XXXXXX)"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

"$PYTHON" "$REPO_ROOT/evaluation/make_example.py" "$WORK"
mkdir -p "$WORK/output"
chmod 777 "$WORK/output"
chmod -R a+rX "$WORK/input" "$WORK/ground_truth"
start=$SECONDS
"${ENGINE[@]}" "${PLATFORM_RUN[@]}" --memory "$MEMORY" --memory-swap "$MEMORY" \
  -v "$WORK/input:/input:ro" -v "$WORK/ground_truth:/opt/ml/input/data/ground_truth:ro" \
  -v "$WORK/output:/output" "$TAG"
echo "evaluation container ran in $((SECONDS - start)) s"
"$PYTHON" "$REPO_ROOT/evaluation/make_example.py" --check "$WORK/output/metrics.json" "$WORK/expected.json"
