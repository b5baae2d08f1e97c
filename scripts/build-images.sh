#!/usr/bin/env bash
# Build the project's images, tagged with the names of wsovvis/images.py.
#
#   scripts/build-images.sh [--offline] [--local-base] [--push] [tools] [runtime]     (default: tools runtime)
#
#   --offline     tools image only: download the locked wheels on the host (pip download, hashes checked) into
#                 images/tools/wheels/ and build with no network, for machines whose containers cannot reach PyPI
#   --local-base  podman only: build the tools image FROM localhost/wsovvis-base-python:bookworm, made with
#                 debootstrap by scripts/containers.sh where no registry is reachable (implies --pull=never)
#   --push        push the built images (registry from WSOVVIS_IMAGE_REGISTRY; see wsovvis/images.py)
#
# Environment: CONTAINER_ENGINE (docker if its daemon answers, else podman with scripts/containers.sh's flags),
# TOOLS_BASE / RUNTIME_BASE (override the Dockerfiles' BASE), TORCH_CUDA_ARCH_LIST (runtime ops),
# PYTHON (reads the image names and pins; default python3), WSOVVIS_IMAGE_REGISTRY / WSOVVIS_IMAGE_TAG /
# WSOVVIS_TOOLS_IMAGE / WSOVVIS_RUNTIME_IMAGE (the names).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
OFFLINE=0 LOCAL_BASE=0 PUSH=0 TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --offline) OFFLINE=1 ;;
    --local-base) LOCAL_BASE=1 ;;
    --push) PUSH=1 ;;
    tools | runtime) TARGETS+=("$arg") ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see $0 --help)" >&2; exit 2 ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(tools runtime)

if [ -z "${CONTAINER_ENGINE:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then CONTAINER_ENGINE=docker; else CONTAINER_ENGINE=podman; fi
fi
if [ "$CONTAINER_ENGINE" = podman ]; then
  eval "$("$ROOT/scripts/containers.sh" env)"
  read -r -a ENGINE <<<"$PODMAN"
else
  read -r -a ENGINE <<<"$CONTAINER_ENGINE"
fi

eval "$(cd "$ROOT" && PYTHONPATH="$ROOT" "$PYTHON" -m wsovvis.images)"

build_tools() {
  local args=(build -f images/tools/Dockerfile -t "$TOOLS_IMAGE")
  if [ "$LOCAL_BASE" = 1 ]; then
    [ "$CONTAINER_ENGINE" = podman ] || { echo "--local-base needs podman" >&2; exit 2; }
    "$ROOT/scripts/containers.sh" base
    args+=(--pull=never --build-arg BASE=localhost/wsovvis-base-python:bookworm)
  elif [ -n "${TOOLS_BASE:-}" ]; then
    args+=(--build-arg "BASE=$TOOLS_BASE")
  fi
  if [ "$OFFLINE" = 1 ]; then
    # the wheels must suit the image's python (3.11, glibc, this machine's architecture)
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "--offline needs PYTHON=python3.11")'
    "$PYTHON" -m pip download --quiet --no-deps --require-hashes -r "$ROOT/images/tools/requirements.lock" \
      -d "$ROOT/images/tools/wheels"
    args+=(--network=none --build-arg WHEELS_ONLY=1)
  elif [ "$CONTAINER_ENGINE" = podman ]; then
    args+=(--network=host)
  fi
  (cd "$ROOT" && "${ENGINE[@]}" "${args[@]}" .)
  "${ENGINE[@]}" run --rm "$TOOLS_IMAGE" wsovvis --version
}

build_runtime() {
  [ "$OFFLINE" = 0 ] || { echo "the runtime image needs network (apt, PyPI, github.com); drop --offline" >&2; exit 2; }
  local args=(build -f images/runtime/Dockerfile -t "$RUNTIME_IMAGE")
  [ -z "${RUNTIME_BASE:-}" ] || args+=(--build-arg "BASE=$RUNTIME_BASE")
  [ -z "${TORCH_CUDA_ARCH_LIST:-}" ] || args+=(--build-arg "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST")
  [ "$CONTAINER_ENGINE" != podman ] || args+=(--network=host)
  local pins pin_args
  pins=$("$PYTHON" - "$ROOT/third_party/pins.json" <<'PY'
import json, sys
path = sys.argv[1]
try:
    pins = json.load(open(path))
except FileNotFoundError:
    sys.exit(f"{path} not found: the runtime image is built at the pins listed there")
for name, arg in (("CutLER", "CUTLER"), ("VNext", "VNEXT"), ("detectron2", "DETECTRON2")):
    if name not in pins or not {"url", "commit"} <= pins[name].keys():
        sys.exit(f"{path}: needs an entry {name!r} with 'url' and 'commit'")
    for key in ("url", "commit"):
        print("--build-arg", f"{arg}_{key.upper()}={pins[name][key]}", sep="\n")
PY
  )
  mapfile -t pin_args <<<"$pins"
  (cd "$ROOT" && "${ENGINE[@]}" "${args[@]}" "${pin_args[@]}" .)
}

for target in "${TARGETS[@]}"; do
  "build_$target"
  if [ "$PUSH" = 1 ]; then
    if [ "$target" = tools ]; then "${ENGINE[@]}" push "$TOOLS_IMAGE"; else "${ENGINE[@]}" push "$RUNTIME_IMAGE"; fi
  fi
done
echo "built: ${TARGETS[*]} ($TOOLS_IMAGE, $RUNTIME_IMAGE)"
