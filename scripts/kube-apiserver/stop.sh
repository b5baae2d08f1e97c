#!/usr/bin/env bash
# Stop what start.sh started. Usage: stop.sh "ETCD_PID APISERVER_PID [PORT]" (the line start.sh printed).
# The apiserver goes first: with etcd gone it would spend ~15 s retrying before it exits.
set -u
read -r EPID APID _ <<<"$1"
kill "$APID" 2>/dev/null
for _ in $(seq 100); do kill -0 "$APID" 2>/dev/null || break; sleep 0.1; done
kill -9 "$APID" 2>/dev/null
kill "$EPID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$EPID" 2>/dev/null || break; sleep 0.1; done
kill -9 "$EPID" 2>/dev/null
exit 0
