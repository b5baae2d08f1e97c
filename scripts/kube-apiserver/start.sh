#!/usr/bin/env bash
# Start etcd + a real kube-apiserver (built by build.sh) on loopback, for the `apiserver` tests only:
# HTTPS with a self-signed certificate, RBAC authorization as on a real cluster (the static bearer token in the
# kubeconfig is an admin in system:masters; service accounts get tokens from the TokenRequest API and only what their
# bindings grant), free ports (so parallel runs coexist). No scheduler, controllers or kubelet: nothing runs pods.
# Usage: start.sh [WORKDIR]  -> prints "ETCD_PID APISERVER_PID PORT" and writes WORKDIR/kubeconfig.
# Stop with: stop.sh "ETCD_PID APISERVER_PID".  Binary: $KUBE_APISERVER (default ~/.cache/wsovvis-dev/bin).
set -euo pipefail
W=$(realpath -m "${1:-$(mktemp -d /tmp/wsovvis-kapi-XXXX)}")
mkdir -p "$W"
BIN=${KUBE_APISERVER:-$HOME/.cache/wsovvis-dev/bin/kube-apiserver}
[ -x "$BIN" ] || { echo "no kube-apiserver at $BIN: run scripts/kube-apiserver/build.sh first (once per machine, 5-12 min)" >&2; exit 1; }
command -v etcd >/dev/null || { echo "etcd not found: run scripts/kube-apiserver/build.sh (installs etcd-server)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=${KUBE_APISERVER_PORT:-$(free_port)}
ETCD_CLIENT=$(free_port)
ETCD_PEER=$(free_port)
TOKEN=test-token

etcd --name default --data-dir "$W/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER" >"$W/etcd.log" 2>&1 &
EPID=$!

echo "$TOKEN,admin,admin,\"system:masters\"" >"$W/tokens.csv"
cat >"$W/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$PORT", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: $TOKEN}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
KC
[ -f "$W/sa.key" ] || openssl genrsa -out "$W/sa.key" 2048 2>/dev/null

"$BIN" --etcd-servers="http://127.0.0.1:$ETCD_CLIENT" \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$W/sa.key" \
  --service-account-signing-key-file="$W/sa.key" --service-cluster-ip-range=10.96.0.0/24 \
  --token-auth-file="$W/tokens.csv" --bind-address=127.0.0.1 --secure-port="$PORT" \
  --advertise-address=127.0.0.1 --cert-dir="$W/certs" --authorization-mode=RBAC >"$W/apiserver.log" 2>&1 &
APID=$!

for _ in $(seq 1 600); do
  if [ "$(curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$PORT/readyz" 2>/dev/null)" = ok ]; then
    echo "$EPID $APID $PORT"
    exit 0
  fi
  kill -0 "$EPID" 2>/dev/null || { echo "etcd exited:" >&2; tail -20 "$W/etcd.log" >&2; kill "$APID" 2>/dev/null; exit 1; }
  kill -0 "$APID" 2>/dev/null || { echo "kube-apiserver exited:" >&2; tail -20 "$W/apiserver.log" >&2; kill "$EPID"; exit 1; }
  sleep 0.1
done
echo "kube-apiserver not ready in 60 s; log: $W/apiserver.log" >&2
tail -20 "$W/apiserver.log" >&2
kill "$APID" "$EPID"
exit 1
