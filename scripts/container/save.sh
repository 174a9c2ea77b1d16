#!/usr/bin/env bash
# Save the algorithm image as a gzipped tarball (what Grand Challenge uploads as the container) and, when a
# model package is given, pack it as model.tar.gz (extracted by the platform to /opt/ml/model).
# Usage: scripts/container/save.sh [--tag NAME] [--model DIR] [--out DIR]
#   --tag    image to save (default rexground-algorithm:gpu)
#   --model  model package folder (manifest.json + files); checked with its hashes before packing
#   --out    where the files go (default ./out)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"

TAG="rexground-algorithm:gpu"
MODEL=""
OUT="$REPO_ROOT/out"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG="$2"; shift ;;
    --model) MODEL="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"

TMP_FILES=()
cleanup() { rm -f "${TMP_FILES[@]}"; }
trap cleanup EXIT

image_file="$OUT/$(echo "$TAG" | tr '/:' '__').tar.gz"
TMP_FILES+=("$image_file.partial")
echo "saving $TAG -> $image_file"
# pigz compresses on every core (the image is hundreds of MB); gzip otherwise. Same .tar.gz either way.
GZIP_CMD=(gzip -c)
command -v pigz >/dev/null && GZIP_CMD=(pigz -c)
"${ENGINE[@]}" save "$TAG" | "${GZIP_CMD[@]}" > "$image_file.partial"
mv "$image_file.partial" "$image_file"
echo "image tarball: $image_file ($(du -h "$image_file" | cut -f1))"

if [ -n "$MODEL" ]; then
  "$PYTHON" -c "import sys; from rexground.infer.package import load_package; load_package(sys.argv[1])" "$MODEL"
  model_file="$OUT/model.tar.gz"
  TMP_FILES+=("$model_file.partial")
  # The package's files at the archive root: the platform extracts it to /opt/ml/model/.
  tar -C "$MODEL" --exclude ./README.md --exclude ./.gitignore -czf "$model_file.partial" .
  mv "$model_file.partial" "$model_file"
  echo "model package: $model_file ($(du -h "$model_file" | cut -f1))"
fi
