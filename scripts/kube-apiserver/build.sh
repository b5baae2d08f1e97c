#!/usr/bin/env bash
# Build a real kube-apiserver (v1.20.2) from Debian bookworm's `kubernetes` source package, for the
# `apiserver` tests, and install what start.sh and those tests drive besides it when absent (etcd, kubectl, curl,
# openssl). Needs root (apt-get) and Debian's mirror only. Once per machine: skips the build when
# $OUT/kube-apiserver already runs.
#   OUT   where the binary goes      (default ~/.cache/wsovvis-dev/bin)
#   WORK  source and Go build cache  (default ~/.cache/wsovvis-dev/kube-src; safe to delete afterwards)
set -euo pipefail
OUT=$(realpath -m "${OUT:-$HOME/.cache/wsovvis-dev/bin}")
WORK=$(realpath -m "${WORK:-$HOME/.cache/wsovvis-dev/kube-src}")
mkdir -p "$OUT" "$WORK"

# one build at a time per machine; a second caller waits and then finds the binary
exec 9>"$WORK/.build.lock"
flock 9

# apt-get install, refreshing the package lists first when a fresh machine has none yet
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q "$@" >/dev/null 2>&1 || {
    apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q "$@" >/dev/null
  }
}

# kubectl is the `kubectl` package where an apt source offers one (Kubernetes' own repository), else Debian's
# kubernetes-client. The manifests need kubectl >= 1.22 (its kustomize reads `labels:`); Debian's is 1.20.
install_tools() {
  command -v etcd >/dev/null || apt_install etcd-server etcd-client
  command -v curl >/dev/null || apt_install curl
  command -v openssl >/dev/null || apt_install openssl
  if ! command -v kubectl >/dev/null; then
    apt_install kubectl 2>/dev/null || apt_install kubernetes-client
    echo "installed $(kubectl version --client 2>/dev/null | head -1)"
  fi
}

if [ -x "$OUT/kube-apiserver" ] && "$OUT/kube-apiserver" --version >/dev/null 2>&1; then
  echo "kube-apiserver already built: $OUT/kube-apiserver ($("$OUT/kube-apiserver" --version))"
  install_tools
  exit 0
fi

mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial"
apt_install golang-go rsync golang-github-modern-go-reflect2-dev
install_tools

# deb-src for the Debian mirror this machine's apt already uses, in a private apt config (/etc/apt untouched)
MIRROR=$( (grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[^[:space:]]+/debian/?$' \
  /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true) | awk '{print $NF}' | head -1)
[ -n "$MIRROR" ] || { echo "no Debian mirror found in /etc/apt sources" >&2; exit 1; }
echo "deb-src $MIRROR bookworm main" >"$WORK/sources.list"
APT=(-o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null -o APT::Sandbox::User=root
  -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache")
apt-get "${APT[@]}" update -q >/dev/null
(cd "$WORK" && apt-get "${APT[@]}" source --download-only kubernetes >/dev/null)
rm -rf "$WORK/src" && mkdir "$WORK/src"
tar -xzf "$(ls "$WORK"/kubernetes_*.orig.tar.gz | head -1)" -C "$WORK/src"
cd "$WORK"/src/kubernetes-*

# the vendored reflect2 v1.0.1 panics under Go >= 1.18 (mapiterinit); Debian ships the fixed 1.0.2
R=vendor/github.com/modern-go/reflect2
rm -f "$R"/*.go "$R"/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$R"/
rm -f "$R"/*_test.go

echo "building kube-apiserver (log: $WORK/build.log) ..."
GOCACHE=${GOCACHE:-$WORK/gocache} GOPROXY=off GOTOOLCHAIN=local make WHAT=cmd/kube-apiserver >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; exit 1; }
install -m 0755 _output/bin/kube-apiserver "$OUT/kube-apiserver.tmp"
mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
"$OUT/kube-apiserver" --version
