#!/usr/bin/env bash
# Schema-driven API testing (issue #18): schemathesis, pinned, in a virtual environment of its
# own (target/st-venv), against the live OpenAPI document of a `flowtrail serve` this script
# starts (temporary data directory, free ports) and stops. Every operation, positive and
# negative cases; checks: no 5xx (a 503 aside, which the contract allows), status codes,
# content types and bodies as documented (every error in the contract's JSON shape), and
# negative data refused. Two passes: a key of scope `all` for every operation outside the admin
# API, then a key of scope `admin` for the admin API.
#
# Usage: scripts/schemathesis.sh [embedded|scale] [max examples per operation, default 10]
#   scale: PostgreSQL, Redis and S3 from FLOWTRAIL_TEST_DATABASE_URL, FLOWTRAIL_TEST_REDIS_URL
#   and FLOWTRAIL_TEST_OBJECT_STORE_URL (run it under scripts/with-postgres.sh
#   scripts/with-s3.sh scripts/with-redis.sh).
# Prints one line per pass, `schemathesis <profile> <pass>: <cases> cases, <failures> failures`,
# appends it to target/schemathesis/summary.txt and exits non-zero on any failure.
# Needs target/debug/flowtrail (built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "[schemathesis] $*" >&2; }

profile=${1:-embedded}
examples=${2:-10}
venv=target/st-venv
version=4.32.5
out=target/schemathesis
mkdir -p "$out"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$version"; then
  say "python3 -m venv $venv; pip install schemathesis==$version"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
fi

flowtrail=target/debug/flowtrail
[ -x "$flowtrail" ] || cargo build -p flowtrail-server --bin flowtrail
data=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$data"
}
trap cleanup EXIT

engine=(--data-dir "$data")
case "$profile" in
  embedded) ;;
  scale)
    : "${FLOWTRAIL_TEST_DATABASE_URL:?run under scripts/with-postgres.sh}"
    : "${FLOWTRAIL_TEST_REDIS_URL:?run under scripts/with-redis.sh}"
    : "${FLOWTRAIL_TEST_OBJECT_STORE_URL:?run under scripts/with-s3.sh}"
    # A database and key prefixes of this run's own, in the servers the wrappers started
    # (with-s3.sh exports the AWS_* variables the server reads).
    db="schemathesis_$$"
    psql -q "$FLOWTRAIL_TEST_DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
    engine+=(
      --database-url "${FLOWTRAIL_TEST_DATABASE_URL%/*}/$db"
      --redis-url "$FLOWTRAIL_TEST_REDIS_URL" --redis-prefix "st$$"
      --object-store-url "$FLOWTRAIL_TEST_OBJECT_STORE_URL/st$$"
    )
    ;;
  *) say "unknown profile $profile (embedded or scale)"; exit 2 ;;
esac

key() {
  "$flowtrail" admin create-api-key --name "st-$1" --scope "$1" "${engine[@]}" 2>/dev/null
}
all_key=$(key all)
# Decoys first: generated ids (small numbers) revoke one of them rather than the key in use.
for _ in $(seq 1 20); do key read >/dev/null; done
admin_key=$(key admin)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
"$flowtrail" serve --addr "127.0.0.1:$port" --otlp-grpc-addr 0 "${engine[@]}" \
  >"$data/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$data/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

# The keys must work: with a key the server refuses, every case would pass on a 401.
for pair in "$all_key /api/v1/flows" "$admin_key /api/v1/admin/retention"; do
  set -- $pair
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$base$2")
  [ "$status" = 200 ] || { say "GET $2 with the test key answered $status"; exit 1; }
done

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection
failed=0
run() {
  local pass=$1 key=$2
  shift 2
  local report="$out/$profile-$pass.json"
  rm -f "$report"
  set +e
  SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=scripts "$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
    -H "Authorization: Bearer $key" --checks "$checks" -n "$examples" --workers 1 \
    --seed 18 --no-color --generation-database none \
    --report json --report-json-path "$report" "$@" >"$out/$profile-$pass.log" 2>&1
  local rc=$?
  set -e
  local summary
  summary=$("$venv/bin/python" - "$report" "$profile" "$pass" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
cases = report["test_cases"]
errors = sum(e.get("count", 1) for e in report.get("errors", []))
print(f"schemathesis {sys.argv[2]} {sys.argv[3]}: {cases['generated']} cases, "
      f"{cases['unique_failures']} failures, {errors} errors")
EOF
  ) || summary="schemathesis $profile $pass: no report"
  echo "$summary" | tee -a "$out/summary.txt"
  if [ "$rc" -ne 0 ]; then
    failed=1
    tail -n 80 "$out/$profile-$pass.log" >&2
  fi
}
run api "$all_key" --exclude-path-regex '^/api/v1/(admin/|events$)'
# The event stream never ends: each case waits for the client's timeout, so it gets few cases.
examples_all=$examples
examples=2
run events "$all_key" --include-path /api/v1/events --request-timeout 2
examples=$examples_all
run admin "$admin_key" --include-path-regex '^/api/v1/admin/'
if grep -q "panicked" "$data/server.log"; then
  say "the server panicked:"; grep -A5 "panicked" "$data/server.log" >&2; failed=1
fi
exit "$failed"
