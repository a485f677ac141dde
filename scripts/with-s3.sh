#!/usr/bin/env bash
# Runs a command against a real S3-compatible server (s3s-fs, from crates.io) started for it:
# a temporary root directory with bucket `flowtrail`, on a free loopback port, stopped and
# removed afterwards. The command sees the standard AWS_* variables and
# FLOWTRAIL_TEST_OBJECT_STORE_URL=s3://flowtrail/test.
# Usage: scripts/with-s3.sh <command> [args…]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v s3s-fs >/dev/null || { echo "[with-s3] s3s-fs is not installed; run scripts/setup.sh test" >&2; exit 1; }
dir=$(mktemp -d /tmp/flowtrail-s3.XXXXXX)
mkdir -p "$dir/flowtrail"
while :; do
  port=$(( 20000 + RANDOM % 40000 ))
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
export AWS_ACCESS_KEY_ID=flowtrail-test AWS_SECRET_ACCESS_KEY=flowtrail-test-secret
export AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true AWS_ENDPOINT_URL="http://127.0.0.1:$port"
s3s-fs --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" "$dir" > "$dir/server.log" 2>&1 &
server=$!
export FLOWTRAIL_TEST_S3_PID=$server
trap 'kill -CONT $server 2>/dev/null; kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
export FLOWTRAIL_TEST_OBJECT_STORE_URL=s3://flowtrail/test
echo "[with-s3] s3s-fs on port $port" >&2
"$@"
