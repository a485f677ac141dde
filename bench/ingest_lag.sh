#!/usr/bin/env bash
# Prints the lag from 202 to queryable for example flows sent by the SDK to a real server.
# Usage: bench/ingest_lag.sh [runs]   (builds release binaries; run scripts/setup.sh first)
# The lag is read from the queue itself: enqueued_at is stamped in the transaction whose commit
# precedes the 202, finished_at after the flow's SQL transaction committed (queryable).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
cargo build --release -q -p flowtrail-server
cargo build --release -q -p flowtrail-sdk --example competitor_selection
bin=target/release/flowtrail
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --data-dir "$data" --addr "127.0.0.1:$port" --otlp-grpc-addr 0 > "$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
key=$("$bin" admin create-api-key --data-dir "$data" --name bench)
start=$(date +%s.%N)
FLOWTRAIL_URL="http://127.0.0.1:$port" FLOWTRAIL_API_KEY="$key" \
  target/release/examples/competitor_selection --seed 1 --runs "$runs" | tail -1
end=$(date +%s.%N)
for _ in $(seq 100); do
  left=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^flowtrail_queue_depth/ {print $2}')
  [ "$left" = 0 ] && break
  sleep 0.1
done
python3 - "$data/flowtrail.db" "$runs" "$start" "$end" <<'PY'
import sqlite3, sys
db, runs, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rows = sorted(r[0] for r in sqlite3.connect(db).execute(
    "SELECT finished_at - enqueued_at FROM ingest_jobs WHERE state = 'done'"))
pct = lambda p: rows[min(len(rows) - 1, int(p * len(rows)))]
print(f"flows stored: {len(rows)} of {runs} (sequential SDK client, ~100 KB each, 5 steps)")
print(f"202 -> queryable lag: p50 {pct(.5)} ms, p99 {pct(.99)} ms, max {rows[-1]} ms")
print(f"client wall time: {end - start:.2f} s")
PY
