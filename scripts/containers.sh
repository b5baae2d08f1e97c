#!/usr/bin/env bash
# Podman on machines without Docker or a reachable registry: one storage folder, a small containers.conf, and
# the base image the tools image builds FROM, made locally with debootstrap (Debian bookworm + python3).
#
#   scripts/containers.sh env    print `export ...` lines: CONTAINERS_CONF and PODMAN (podman with its flags)
#   scripts/containers.sh base   make localhost/wsovvis-base-python:bookworm unless it exists (needs root,
#                                debootstrap and the Debian mirror apt already uses)
#   scripts/containers.sh run CMD...
#                                run CMD with DOCKER_HOST pointing at a Docker-API socket: podman's own
#                                (`podman system service`, same storage as the builds) started for CMD and
#                                stopped after it; or the one DOCKER_HOST already names, left alone
#
# Storage lives in $WSOVVIS_CONTAINERS_DIR (default ~/.cache/wsovvis/containers).
# Needs: apt-get install -y podman buildah runc fuse-overlayfs slirp4netns debootstrap uidmap
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(realpath -m "${WSOVVIS_CONTAINERS_DIR:-$HOME/.cache/wsovvis/containers}")
BASE_IMAGE=localhost/wsovvis-base-python:bookworm
export CONTAINERS_CONF="$HERE/containers.conf"
PODMAN="podman --root $DIR/storage --runroot $DIR/run --storage-driver ${STORAGE_DRIVER:-overlay}"

debian_mirror() {
  # the first Debian mirror in this machine's apt sources (deb822 "URIs:" or one-line "deb" form)
  (grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[^[:space:]]+/debian/?$' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true) | awk '{print $NF}' | head -1
}

make_base() {
  if $PODMAN image exists "$BASE_IMAGE"; then
    echo "$BASE_IMAGE exists"
    return
  fi
  local mirror rootfs
  mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
  [ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt sources; set DEBIAN_MIRROR" >&2; exit 1; }
  rootfs="$DIR/rootfs-bookworm-python"
  mkdir -p "$DIR"
  if [ ! -x "$rootfs/usr/bin/python3" ]; then
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  fi
  tar --numeric-owner -C "$rootfs" -cf "$DIR/rootfs-bookworm-python.tar" .
  $PODMAN import --change 'CMD ["/bin/bash"]' "$DIR/rootfs-bookworm-python.tar" "$BASE_IMAGE"
  rm -f "$DIR/rootfs-bookworm-python.tar"
  $PODMAN run --rm "$BASE_IMAGE" python3 --version
}

run_with_service() {
  if [ -n "${DOCKER_HOST:-}" ]; then
    "$@"
    return
  fi
  local socket="$DIR/run/podman-$$.sock" pid status=0
  mkdir -p "$DIR/run"
  $PODMAN system service --time=0 "unix://$socket" >"$DIR/run/podman-service-$$.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do [ -S "$socket" ] && break; sleep 0.1; done
  [ -S "$socket" ] || { cat "$DIR/run/podman-service-$$.log" >&2; kill "$pid"; exit 1; }
  DOCKER_HOST="unix://$socket" "$@" || status=$?
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -f "$socket" "$DIR/run/podman-service-$$.log"
  return "$status"
}

case "${1:-}" in
  env) printf 'export CONTAINERS_CONF=%q\nexport PODMAN=%q\n' "$CONTAINERS_CONF" "$PODMAN" ;;
  base) make_base ;;
  run) shift; [ $# -gt 0 ] || { echo "usage: $0 run CMD..." >&2; exit 2; }; run_with_service "$@" ;;
  *) echo "usage: $0 env|base|run CMD..." >&2; exit 2 ;;
esac
