#!/usr/bin/env bash
# Runs a command against a real Redis started for it: a temporary directory, a free loopback
# port, AOF with fsync on every write; stopped and removed afterwards. The command sees
# FLOWTRAIL_TEST_REDIS_URL and FLOWTRAIL_TEST_REDIS_CTL, a script for tests that pause or
# restart the server: `ctl pid|stop|start|restart` (stop is SIGKILL, as in a crash; the AOF
# brings back every acknowledged write at the next start).
# Usage: scripts/with-redis.sh <command> [args…]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "[with-redis] redis-server is not installed; run scripts/setup.sh test" >&2; exit 1; }
dir=$(mktemp -d /tmp/flowtrail-redis.XXXXXX)
while :; do
  port=$(( 20000 + RANDOM % 40000 ))
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
cat >"$dir/ctl" <<EOF
#!/usr/bin/env bash
set -euo pipefail
dir=$(printf %q "$dir")
port=$port
$(cat scripts/engine-ctl.sh)
start() {
  setsid redis-server --port "\$port" --bind 127.0.0.1 --dir "\$dir" --save "" \\
    --appendonly yes --appendfsync always --daemonize no </dev/null >>"\$dir/server.log" 2>&1 &
  echo \$! >"\$dir/pid"
  wait_port "\$port"
}
main "\$@"
EOF
chmod +x "$dir/ctl"
trap '"$dir/ctl" stop 2>/dev/null || true; rm -rf "$dir"' EXIT
"$dir/ctl" start
export FLOWTRAIL_TEST_REDIS_URL="redis://127.0.0.1:$port"
export FLOWTRAIL_TEST_REDIS_CTL="$dir/ctl"
echo "[with-redis] $(redis-server --version | cut -d" " -f1-3) on port $port" >&2
"$@"
