#!/usr/bin/env bash
# REST latency of POST and GET /messages against a release build on loopback, with wrk.
# Usage: loadtest/rest-latency.sh [seconds] [connections]   (needs: wrk, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-8}
PORT=${PORT:-18181}
BIN=${CARGO_TARGET_DIR:-target}/release/conclave
[ -x "$BIN" ] || cargo build --release --locked
DATA=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
# Message sending is limited per user by default; lift the limit for the measurement only.
CONCLAVE_HTTP_ADDR=127.0.0.1:$PORT CONCLAVE_DATA_DIR=$DATA CONCLAVE_MESSAGES_PER_USER=1000000 CONCLAVE_MESSAGES_PER_GROUP=1000000 \
  CONCLAVE_MESSAGES_WINDOW=1s RUST_LOG=warn "$BIN" >"$DATA/server.log" 2>&1 &
PID=$!
B=http://127.0.0.1:$PORT/api/v1
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$DATA/server.log"; exit 1; }
json() { python3 -c "import sys,json; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
curl -sf -XPOST $B/auth/register -H 'content-type: application/json' -d '{"username":"bench","password":"bench-password"}' >/dev/null
export TOKEN=$(curl -sf -XPOST $B/auth/login -H 'content-type: application/json' -d '{"username":"bench","password":"bench-password"}' | json access_token)
export GROUP=$(curl -sf -XPOST $B/groups -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"bench","visibility":"private"}' | json id)
echo "POST /groups/{id}/messages ($CONNS connections, ${SECS}s):"
wrk -t"$(( CONNS < 2 ? 1 : 2 ))" -c"$CONNS" -d"${SECS}s" -s loadtest/wrk/post_message.lua "http://127.0.0.1:$PORT" | tail -1
echo "GET /groups/{id}/messages?limit=50 ($CONNS connections, ${SECS}s):"
wrk -t"$(( CONNS < 2 ? 1 : 2 ))" -c"$CONNS" -d"${SECS}s" -s loadtest/wrk/get_messages.lua "http://127.0.0.1:$PORT" | tail -1
