#!/usr/bin/env bash
# Runs a command against a real Redis started for it: a temporary directory, a free loopback
# port, AOF with fsync on every write; stopped and removed afterwards. The command sees
# FLOWTRAIL_TEST_REDIS_URL. Usage: scripts/with-redis.sh <command> [args…]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "[with-redis] redis-server is not installed; run scripts/setup.sh test" >&2; exit 1; }
dir=$(mktemp -d /tmp/flowtrail-redis.XXXXXX)
while :; do
  port=$(( 20000 + RANDOM % 40000 ))
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
  --appendonly yes --appendfsync always --daemonize no > "$dir/server.log" 2>&1 &
server=$!
trap 'kill -CONT $server 2>/dev/null; kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
export FLOWTRAIL_TEST_REDIS_URL="redis://127.0.0.1:$port"
export FLOWTRAIL_TEST_REDIS_PID=$server
echo "[with-redis] $(redis-server --version | cut -d" " -f1-3) on port $port" >&2
"$@"
