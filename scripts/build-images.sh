#!/usr/bin/env bash
# Build the project's images, tagged with the names wsovvis/images.py gives the images of this checkout: tag
# <version>-<digest of the sources they are built from> (WSOVVIS_IMAGE_TAG instead), so a code fix is a new image.
#
#   scripts/build-images.sh [--offline] [--local-base] [--push] [tools] [runtime] [runtime-cpu]
#                                                                           (default: tools runtime)
#
#   tools         the CPU tools image (TOOLS_IMAGE)
#   runtime       the runtime image's CUDA flavour (RUNTIME_IMAGE), for clusters; BASE a CUDA 13 devel image
#   runtime-cpu   its CPU flavour (RUNTIME_CPU_IMAGE), for local container runs (`wsovvis pipeline run --local
#                 --containers`): same Dockerfile, no CUDA op, the PyTorch deformable attention
#   --offline     tools image only: download the locked wheels on the host (pip download, hashes checked) into
#                 images/tools/wheels/ and build with no network, for machines whose containers cannot reach PyPI
#   --local-base  podman only: build FROM localhost/wsovvis-base-python:bookworm, made with debootstrap by
#                 scripts/containers.sh where no registry is reachable (implies --pull=never). The CUDA flavour
#                 then builds through its CPU stages only (no CUDA base image can be made here), and says so.
#   --push        push the built images (registry from WSOVVIS_IMAGE_REGISTRY; see wsovvis/images.py)
#
# Environment: CONTAINER_ENGINE (docker if its daemon answers, else podman with scripts/containers.sh's flags),
# TOOLS_BASE / RUNTIME_BASE (override the Dockerfiles' BASE), TORCH_CUDA_ARCH_LIST (CUDA flavour's ops),
# TORCH_INDEX_URL / TORCH_VERSION / TORCHVISION_VERSION (another torch build than the lock's),
# WSOVVIS_THIRD_PARTY_DIR (a folder with CutLER/, VNext/ and detectron2/ at the pins, used instead of the
# submodules of third_party/ when GitHub is unreachable), WSOVVIS_CA_BUNDLE (CA bundle copied into the images,
# default the host's /etc/ssl/certs/ca-certificates.crt; empty: none), WSOVVIS_WHEEL_DIRS (podman: colon-separated
# host folders of wheels mounted into the build and searched before PyPI), PYTHON (reads the image names and
# pins; default python3), WSOVVIS_IMAGE_REGISTRY / WSOVVIS_IMAGE_TAG / WSOVVIS_*_IMAGE (the names).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
LOCAL_BASE_IMAGE=localhost/wsovvis-base-python:bookworm
OFFLINE=0 LOCAL_BASE=0 PUSH=0 TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --offline) OFFLINE=1 ;;
    --local-base) LOCAL_BASE=1 ;;
    --push) PUSH=1 ;;
    tools | runtime | runtime-cpu) TARGETS+=("$arg") ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
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
if [ "$LOCAL_BASE" = 1 ] && [ "$CONTAINER_ENGINE" != podman ]; then
  echo "--local-base needs podman" >&2
  exit 2
fi

eval "$(cd "$ROOT" && PYTHONPATH="$ROOT" "$PYTHON" -m wsovvis.images)"
GIT_COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
STAGE=$ROOT/images/build # what the builds copy from outside the repository (ignored by git)
mkdir -p "$STAGE"
exec 9>"$STAGE/.lock"
flock -n 9 || { echo "another build-images.sh is using $STAGE; waiting for it" >&2; flock 9; }

# Appends to ARGS what every build gets: the CA bundle staged into the context, host networking and the wheel
# folders (podman).
add_common_args() {
  mkdir -p "$STAGE"
  local bundle=${WSOVVIS_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
  if [ -n "$bundle" ] && [ -f "$bundle" ]; then cp "$bundle" "$STAGE/ca-certificates.crt"; else : >"$STAGE/ca-certificates.crt"; fi
  [ "$CONTAINER_ENGINE" = podman ] || return 0
  [ "${1:-}" = no-network ] || ARGS+=(--network=host)
  local dirs=() links=() dir i=0
  IFS=: read -r -a dirs <<<"${WSOVVIS_WHEEL_DIRS:-}"
  for dir in "${dirs[@]}"; do
    [ -n "$dir" ] || continue
    [ -d "$dir" ] || { echo "WSOVVIS_WHEEL_DIRS: $dir is not a folder" >&2; exit 2; }
    ARGS+=(--volume "$(realpath "$dir"):/wheels/$i:ro")
    links+=("/wheels/$i")
    i=$((i + 1))
  done
  [ ${#links[@]} -eq 0 ] || ARGS+=(--build-arg "PIP_FIND_LINKS=${links[*]}")
}

add_local_base() {
  "$ROOT/scripts/containers.sh" base >&2
  ARGS+=(--pull=never --build-arg "BASE=$LOCAL_BASE_IMAGE")
}

build_tools() {
  ARGS=(build -f images/tools/Dockerfile -t "$TOOLS_IMAGE"
    --build-arg "WSOVVIS_IMAGE=$TOOLS_IMAGE" --build-arg "WSOVVIS_GIT_COMMIT=$GIT_COMMIT")
  if [ "$LOCAL_BASE" = 1 ]; then
    add_local_base
  elif [ -n "${TOOLS_BASE:-}" ]; then
    ARGS+=(--build-arg "BASE=$TOOLS_BASE")
  fi
  if [ "$OFFLINE" = 1 ]; then
    # the wheels must suit the image's python (3.11, glibc, this machine's architecture)
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "--offline needs PYTHON=python3.11")'
    "$PYTHON" -m pip download --quiet --no-deps --require-hashes -r "$ROOT/images/tools/requirements.lock" \
      -d "$ROOT/images/tools/wheels"
    add_common_args no-network
    ARGS+=(--network=none --build-arg WHEELS_ONLY=1)
  else
    add_common_args
  fi
  (cd "$ROOT" && "${ENGINE[@]}" "${ARGS[@]}" .)
  "${ENGINE[@]}" run --rm "$TOOLS_IMAGE" wsovvis --version
}

# The three upstream trees into images/build/third_party/: from $WSOVVIS_THIRD_PARTY_DIR/<name> when set, else
# the submodule third_party/<name>; a git checkout must be at the pin. Build artefacts of the host are left out.
# Sets THIRD_PARTY_PINS (an image label).
stage_third_party() {
  local pins name dir want head label=""
  pins=$("$PYTHON" - "$ROOT/third_party/pins.json" <<'PY'
import json, sys
path = sys.argv[1]
try:
    pins = json.load(open(path))
except FileNotFoundError:
    sys.exit(f"{path} not found: the runtime image is built at the pins listed there")
for name in ("CutLER", "VNext", "detectron2"):
    if name not in pins or "commit" not in pins[name]:
        sys.exit(f"{path}: needs an entry {name!r} with a 'commit'")
    print(name, pins[name]["commit"])
PY
  )
  rm -rf "$STAGE/third_party"
  mkdir -p "$STAGE/third_party"
  while read -r name want; do
    if [ -n "${WSOVVIS_THIRD_PARTY_DIR:-}" ]; then dir=$WSOVVIS_THIRD_PARTY_DIR/$name; else dir=$ROOT/third_party/$name; fi
    if [ ! -f "$dir/README.md" ]; then
      echo "third-party source $name is missing: $dir is empty or absent. Run" \
        "\`git submodule update --init --depth 1 third_party/$name\`, or set WSOVVIS_THIRD_PARTY_DIR to a folder" \
        "holding $name/ at commit $want (third_party/README.md)" >&2
      exit 1
    fi
    if head=$(git -C "$dir" rev-parse --show-toplevel 2>/dev/null) && [ "$(realpath "$head")" = "$(realpath "$dir")" ]; then
      head=$(git -C "$dir" rev-parse HEAD)
      [ "$head" = "$want" ] || { echo "third-party source $name: $dir is at $head, the pin is $want" >&2; exit 1; }
      echo "third-party source $name: $dir (git checkout at the pin)" >&2
    else
      echo "third-party source $name: $dir (not a git checkout: taken to be commit $want)" >&2
    fi
    # not what a build on the host leaves in the tree (`pip install -e` of VNext: its compiled _C*.so, build/,
    # *.egg-info): the image builds its own, and a changed artefact would rebuild every runtime layer
    tar -C "$dir" --exclude=.git --exclude=build --exclude='*.egg-info' --exclude=__pycache__ --exclude='*.pyc' \
      --exclude='*.so' -cf - . | tar -C "$STAGE/third_party" --one-top-level="$name" -xf -
    label+="$name@$want "
  done <<<"$pins"
  cp "$ROOT/third_party/pins.json" "$STAGE/pins.json" # what `wsovvis prepare` checks the trees against
  THIRD_PARTY_PINS=${label% }
}

# FLAVOUR cpu|cuda, image name
build_runtime_flavour() {
  local flavour=$1 image=$2
  [ "$OFFLINE" = 0 ] || { echo "the runtime image needs network (apt, PyPI); drop --offline" >&2; exit 2; }
  stage_third_party
  ARGS=(build -f images/runtime/Dockerfile --build-arg "FLAVOUR=$flavour"
    --build-arg "WSOVVIS_IMAGE=$image" --build-arg "WSOVVIS_GIT_COMMIT=$GIT_COMMIT"
    --build-arg "THIRD_PARTY_PINS=$THIRD_PARTY_PINS")
  add_common_args
  [ -z "${TORCH_INDEX_URL:-}" ] || ARGS+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
  [ -z "${TORCH_VERSION:-}" ] || ARGS+=(--build-arg "TORCH_VERSION=$TORCH_VERSION")
  [ -z "${TORCHVISION_VERSION:-}" ] || ARGS+=(--build-arg "TORCHVISION_VERSION=$TORCHVISION_VERSION")
  [ "$flavour" = cpu ] || [ -z "${TORCH_CUDA_ARCH_LIST:-}" ] || ARGS+=(--build-arg "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST")
  if [ -n "${RUNTIME_BASE:-}" ]; then
    ARGS+=(--build-arg "BASE=$RUNTIME_BASE")
  elif [ "$LOCAL_BASE" = 1 ]; then
    add_local_base
    if [ "$flavour" = cuda ]; then
      echo "runtime (cuda): no CUDA base image can be made here (set RUNTIME_BASE to a CUDA 13 devel image):" \
        "building its CPU stages only (apt, the locked packages, the sources); nothing is tagged" >&2
      (cd "$ROOT" && "${ENGINE[@]}" "${ARGS[@]}" --target sources .)
      echo "runtime (cuda): CPU stages built; the op compile and prepare stage did not run" >&2
      return
    fi
  fi
  (cd "$ROOT" && "${ENGINE[@]}" "${ARGS[@]}" -t "$image" .)
  "${ENGINE[@]}" run --rm "$image"
  BUILT+=("$image")
}

BUILT=()
for target in "${TARGETS[@]}"; do
  case "$target" in
    tools) build_tools; BUILT+=("$TOOLS_IMAGE") ;;
    runtime) build_runtime_flavour cuda "$RUNTIME_IMAGE" ;;
    runtime-cpu) build_runtime_flavour cpu "$RUNTIME_CPU_IMAGE" ;;
  esac
done
if [ "$PUSH" = 1 ]; then
  for image in "${BUILT[@]}"; do "${ENGINE[@]}" push "$image"; done
fi
echo "built: ${BUILT[*]:-nothing tagged}"
