#!/usr/bin/env bash
# Runs a command against a real PostgreSQL server started for it: a new cluster in a
# temporary directory, on a free loopback port, stopped and removed afterwards.
# The command sees FLOWTRAIL_TEST_DATABASE_URL (an admin URL on database `postgres`) and
# FLOWTRAIL_TEST_POSTGRES_CTL (a script: `ctl pid|stop|start|restart`).
# Usage: scripts/with-postgres.sh <command> [args…]
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "[with-postgres] PostgreSQL is not installed; run scripts/setup.sh test" >&2
  exit 1
fi
dir=$(mktemp -d /tmp/flowtrail-pg.XXXXXX)
# A free loopback port: nothing answers on it.
while :; do
  port=$(( 20000 + RANDOM % 40000 ))
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
# initdb refuses to run as root: run the server as the `postgres` user then.
as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  as=(runuser -u postgres --)
fi
# A control script for tests that pause or restart the server (`ctl pid|stop|start|restart`;
# stop is an immediate shutdown, as after a crash: no checkpoint, recovery at the next start).
cat >"$dir/ctl" <<EOF
#!/usr/bin/env bash
set -euo pipefail
case "\${1:-}" in
  pid) head -n 1 $(printf %q "$dir/data/postmaster.pid") ;;
  stop) ${as[*]} $(printf %q "$bin/pg_ctl") -D $(printf %q "$dir/data") -m immediate -w stop >/dev/null ;;
  start) ${as[*]} $(printf %q "$bin/pg_ctl") -D $(printf %q "$dir/data") -l $(printf %q "$dir/server.log") -w -t 60 start \\
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=300" >/dev/null ;;
  restart) "\$0" stop; "\$0" start ;;
  *) echo "usage: \$0 pid|stop|start|restart" >&2; exit 2 ;;
esac
EOF
chmod +x "$dir/ctl"
stop() {
  # A test that paused the server may have died before resuming it.
  pkill -CONT -u postgres 2>/dev/null || true
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
"${as[@]}" "$bin/initdb" -D "$dir/data" -U flowtrail -A trust --no-sync >/dev/null
"$dir/ctl" start
export FLOWTRAIL_TEST_DATABASE_URL="postgres://flowtrail@127.0.0.1:$port/postgres"
export FLOWTRAIL_TEST_POSTGRES_CTL="$dir/ctl"
echo "[with-postgres] PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on port $port" >&2
"$@"
