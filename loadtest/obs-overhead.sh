#!/usr/bin/env bash
# Cost of metrics + logging on message throughput: POST /groups/{id}/messages with wrk against a
# release build on loopback, with observability on (metrics recorder, RUST_LOG=info, JSON logs to
# a file as a container's stdout would be) and off (CONCLAVE_METRICS_ENABLED=false, RUST_LOG=off),
# alternating ROUNDS times in the same run so both see the same machine load.
# Usage: loadtest/obs-overhead.sh [seconds] [connections] [rounds]   (needs: wrk, curl, python3)
# CONCLAVE_BIN=path measures another build (default: the release binary, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-8}
ROUNDS=${3:-3}
BIN=${CONCLAVE_BIN:-${CARGO_TARGET_DIR:-target}/release/conclave}
[ -x "$BIN" ] || cargo build --release --locked
WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
json() { python3 -c "import sys,json; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

run() { # label, then env assignments
  local label=$1; shift
  local port data
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  data=$(mktemp -d -p "$WORK")
  env "$@" CONCLAVE_HTTP_ADDR=127.0.0.1:$port CONCLAVE_DATA_DIR="$data" CONCLAVE_LOG_FORMAT=json \
    CONCLAVE_MESSAGES_PER_USER=1000000 CONCLAVE_MESSAGES_PER_GROUP=1000000 CONCLAVE_MESSAGES_WINDOW=1s "$BIN" >"$data/stdout.log" 2>&1 &
  PID=$!
  local b=http://127.0.0.1:$port/api/v1
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  curl -sf -XPOST "$b/auth/register" -H 'content-type: application/json' -d '{"username":"bench","password":"bench-password"}' >/dev/null
  TOKEN=$(curl -sf -XPOST "$b/auth/login" -H 'content-type: application/json' -d '{"username":"bench","password":"bench-password"}' | json access_token)
  GROUP=$(curl -sf -XPOST "$b/groups" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"bench","visibility":"private"}' | json id)
  export TOKEN GROUP
  local out
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s loadtest/wrk/post_message.lua "http://127.0.0.1:$port")
  printf '%-4s %s req/s  %s  (log %s lines)\n' "$label" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(tail -1 <<<"$out")" "$(wc -l <"$data/stdout.log")"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

echo "POST /groups/{id}/messages, $CONNS connections, ${SECS}s per run, $ROUNDS rounds"
for _ in $(seq "$ROUNDS"); do
  run on RUST_LOG=info CONCLAVE_METRICS_ENABLED=true
  run off RUST_LOG=off CONCLAVE_METRICS_ENABLED=false
done
