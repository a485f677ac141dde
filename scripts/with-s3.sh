#!/usr/bin/env bash
# Runs a command against a real S3-compatible server (s3s-fs, from crates.io) started for it:
# a temporary root directory with bucket `flowtrail`, on a free loopback port, stopped and
# removed afterwards. The command sees the standard AWS_* variables,
# FLOWTRAIL_TEST_OBJECT_STORE_URL=s3://flowtrail/test and FLOWTRAIL_TEST_S3_CTL, a script for
# tests that pause or restart the server: `ctl pid|stop|start|restart` (stop is SIGKILL).
# Usage: scripts/with-s3.sh <command> [args…]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v s3s-fs >/dev/null || { echo "[with-s3] s3s-fs is not installed; run scripts/setup.sh test" >&2; exit 1; }
dir=$(mktemp -d /tmp/flowtrail-s3.XXXXXX)
mkdir -p "$dir/root/flowtrail"
while :; do
  port=$(( 20000 + RANDOM % 40000 ))
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
export AWS_ACCESS_KEY_ID=flowtrail-test AWS_SECRET_ACCESS_KEY=flowtrail-test-secret
export AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true AWS_ENDPOINT_URL="http://127.0.0.1:$port"
cat >"$dir/ctl" <<EOF
#!/usr/bin/env bash
set -euo pipefail
dir=$(printf %q "$dir")
port=$port
s3s=$(printf %q "$(command -v s3s-fs)")
$(cat scripts/engine-ctl.sh)
start() {
  setsid "\$s3s" --host 127.0.0.1 --port "\$port" --access-key $AWS_ACCESS_KEY_ID \\
    --secret-key $AWS_SECRET_ACCESS_KEY "\$dir/root" </dev/null >>"\$dir/server.log" 2>&1 &
  echo \$! >"\$dir/pid"
  wait_port "\$port"
}
main "\$@"
EOF
chmod +x "$dir/ctl"
trap '"$dir/ctl" stop 2>/dev/null || true; rm -rf "$dir"' EXIT
"$dir/ctl" start
export FLOWTRAIL_TEST_OBJECT_STORE_URL=s3://flowtrail/test
export FLOWTRAIL_TEST_S3_CTL="$dir/ctl"
echo "[with-s3] s3s-fs on port $port" >&2
"$@"
