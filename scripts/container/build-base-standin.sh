#!/usr/bin/env bash
# Build a local stand-in for the Dockerfiles' base image (python:3.11-slim) where no registry can be
# reached: a Debian bookworm minbase (its python3 is 3.11, like the real image) imported under the exact
# name the FROM line uses. Needed only on hosts that cannot pull (see ../shared/docs/CONTAINERS.md).
# Usage: scripts/container/build-base-standin.sh IMAGE_NAME      (about 40 s, 300 MB; podman, as root)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${1:?usage: build-base-standin.sh IMAGE_NAME (e.g. docker.io/library/python:3.11-slim)}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "error: $tool missing (apt-get install -y podman runc debootstrap)" >&2; exit 1; }
done

ROOTFS="$(mktemp -d /var/tmp/rexground-base.XXXXXX)"
cleanup() { rm -rf "$ROOTFS"; }
trap cleanup EXIT

echo "building base-image stand-in $IMAGE from Debian bookworm ($MIRROR)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || { tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"
# Package downloads go through a TLS-inspecting proxy whose CA only the host's bundle carries.
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
# Debian marks its Python as distro-managed (pip --user refuses); the real image's Python is not.
rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
# The real image has python and pip on PATH under these names.
ln -sf /usr/bin/python3 "$ROOTFS/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/pip"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

tar -C "$ROOTFS" -c . | podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
echo "stand-in ready: $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec) )"
