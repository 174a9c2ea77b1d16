#!/usr/bin/env bash
# Build the evaluation container image (evaluation/Dockerfile, repository root as context) and report its size.
# Usage: scripts/container/build-evaluation.sh [--tag NAME]   (default rexground-evaluation:latest)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"

TAG="rexground-evaluation:latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG="$2"; shift ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
ensure_base_image "$REPO_ROOT/evaluation/Dockerfile"
echo "building $TAG with $ENGINE_NAME"
start=$SECONDS
"${ENGINE[@]}" build "${BUILD_FLAGS[@]}" -t "$TAG" -f "$REPO_ROOT/evaluation/Dockerfile" "$REPO_ROOT"
size="$("${ENGINE[@]}" image inspect --format '{{.Size}}' "$TAG")"
echo "built $TAG in $((SECONDS - start)) s; image size $(numfmt --to=iec --suffix=B "$size") ($size bytes)"
