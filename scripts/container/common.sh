# Sourced by the container scripts: choose the container engine and how to call it.
#   docker  when a Docker engine answers (`docker info`), as on a workstation or the Grand Challenge tooling;
#   podman  otherwise (as root, see ../shared/docs/CONTAINERS.md), with the rlimits-dropping OCI runtime
#           wrapper when this host forbids raising resource limits in a new container.
# Override with CONTAINER_ENGINE=docker|podman. Defines: ENGINE (array to call), ENGINE_NAME, BUILD_FLAGS,
# REPO_ROOT and PYTHON (the host interpreter for helper scripts, default the project venv).
# shellcheck shell=bash
COMMON_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$COMMON_DIR/../.." && pwd)"
# The host interpreter the scripts use for their helpers (test-case generation, comparison): the project venv.
PYTHON="${PYTHON:-$REPO_ROOT/.venv/bin/python}"

_host_forbids_raising_rlimits() {
  # podman raises RLIMIT_NOFILE to 1048576 in new containers; where even root may not raise the hard limit
  # (a container host), that fails, so the limits are dropped from the OCI bundle by the wrapper.
  ! python3 -c 'import resource as r; r.setrlimit(r.RLIMIT_NOFILE, (1048576, 1048576))' 2>/dev/null
}

if [ -z "${CONTAINER_ENGINE:-}" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    CONTAINER_ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then
    CONTAINER_ENGINE=podman
  else
    echo "error: neither a Docker engine nor podman is available (apt-get install -y podman runc)" >&2
    exit 1
  fi
fi
ENGINE_NAME="$CONTAINER_ENGINE"
ENGINE=("$CONTAINER_ENGINE")
BUILD_FLAGS=()
if [ "$ENGINE_NAME" = podman ]; then
  if _host_forbids_raising_rlimits; then
    ENGINE+=(--runtime "$COMMON_DIR/oci-runtime-no-rlimits")
  fi
  # Nothing can be pulled here: use the local base image (or its stand-in, build-base-standin.sh);
  # the build itself needs the network for pip.
  BUILD_FLAGS+=(--pull=never --network host)
fi

# How the platform runs a container: no network, read-only root filesystem, only /tmp (tmpfs) and the
# mounted /output writable. Callers add the memory cap and the mounts.
PLATFORM_RUN=(run --rm --network none --read-only --tmpfs /tmp)

# The base image named by a Dockerfile's `ARG BASE_IMAGE=...` default (used by the stand-in builder).
base_image_of() {
  sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "$1" | head -n 1
}

# Make sure the Dockerfile's base image is present locally; on podman hosts without a registry build the
# stand-in. Docker hosts pull as usual.
ensure_base_image() {
  local dockerfile="$1" base
  base="$(base_image_of "$dockerfile")"
  [ -n "$base" ] || return 0
  if [ "$ENGINE_NAME" = podman ] && ! podman image exists "$base"; then
    "$COMMON_DIR/build-base-standin.sh" "$base"
  fi
}
