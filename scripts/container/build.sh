#!/usr/bin/env bash
# Build the algorithm container image (./Dockerfile) and report its size.
# Usage: scripts/container/build.sh [--cpu] [--tag NAME]
#   --cpu   onnxruntime (CPU provider) instead of onnxruntime-gpu + CUDA 12 wheels: the smoke build CI uses
#   --tag   image name (default rexground-algorithm:gpu, or rexground-algorithm:cpu with --cpu)
# Uses docker when a Docker engine answers, podman otherwise (see common.sh; CONTAINER_ENGINE overrides).
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"

CPU=0
TAG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU=1 ;;
    --tag) TAG="$2"; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
TAG="${TAG:-rexground-algorithm:$([ "$CPU" = 1 ] && echo cpu || echo gpu)}"

BUILD_ARGS=()
if [ "$CPU" = 1 ]; then
  # Same onnxruntime version as the GPU pin in requirements.txt, CPU wheel.
  ORT_VERSION="$(sed -n 's/^onnxruntime-gpu\(\[[^]]*\]\)\{0,1\}==\([0-9.]*\).*/\2/p' "$REPO_ROOT/requirements.txt")"
  [ -n "$ORT_VERSION" ] || { echo "error: no onnxruntime-gpu pin in requirements.txt" >&2; exit 1; }
  BUILD_ARGS+=(--build-arg "ONNXRUNTIME=onnxruntime==$ORT_VERSION")
fi

ensure_base_image "$REPO_ROOT/Dockerfile"
echo "building $TAG with $ENGINE_NAME"
start=$SECONDS
"${ENGINE[@]}" build "${BUILD_FLAGS[@]}" "${BUILD_ARGS[@]}" -t "$TAG" -f "$REPO_ROOT/Dockerfile" "$REPO_ROOT"
size="$("${ENGINE[@]}" image inspect --format '{{.Size}}' "$TAG")"
echo "built $TAG in $((SECONDS - start)) s; image size $(numfmt --to=iec --suffix=B "$size") ($size bytes)"
