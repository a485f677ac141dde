#!/usr/bin/env bash
# The Python SDK's suite (issue #17): builds the `flowtrail` wheel with maturin in a virtual
# environment of its own (target/py-build-venv), installs it in a fresh one
# (target/py-test-venv, with pytest and pandas from PyPI), starts `flowtrail serve` on the
# embedded default (a temporary data directory, a free port) and runs sdk-python/tests
# against it. Exits non-zero on any failure; the server is stopped in every case.
# Needs target/debug/flowtrail (scripts/test.sh builds it first; built here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "[test-python-sdk] $*" >&2; }

build_venv=target/py-build-venv
test_venv=target/py-test-venv
maturin_version=1.16.0
test_requirements=(pytest==9.2.0 pytest-timeout==2.4.0 pandas==3.1.1)

if ! "$build_venv/bin/maturin" --version 2>/dev/null | grep -qF "$maturin_version"; then
  say "python3 -m venv $build_venv; pip install maturin==$maturin_version"
  rm -rf "$build_venv"
  python3 -m venv "$build_venv"
  "$build_venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin==$maturin_version"
fi
# The dev profile shares target/ with the rest of the workspace; abi3: one wheel, CPython 3.9+.
rm -rf target/wheels/py-sdk
"$build_venv/bin/maturin" build --profile dev --manifest-path sdk-python/Cargo.toml \
  --interpreter python3 --out target/wheels/py-sdk --quiet >&2
wheel=$(ls target/wheels/py-sdk/flowtrail-*.whl)
case "$wheel" in
  *-cp39-abi3-*) say "built $wheel" ;;
  *) say "not an abi3 wheel for CPython >= 3.9: $wheel"; exit 1 ;;
esac

# A fresh environment per run: the wheel as a user installs it.
rm -rf "$test_venv"
python3 -m venv "$test_venv"
"$test_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "${test_requirements[@]}" "$wheel"

flowtrail=target/debug/flowtrail
[ -x "$flowtrail" ] || cargo build -p flowtrail-server --bin flowtrail
data=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$data"
}
trap cleanup EXIT
key=$("$flowtrail" admin create-api-key --name py-sdk --scope all --data-dir "$data" 2>/dev/null)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$flowtrail" serve --addr "127.0.0.1:$port" --otlp-grpc-addr 0 --data-dir "$data" \
  >"$data/server.log" 2>&1 &
server_pid=$!
ready() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$port/readyz" >/dev/null 2>&1
}
for _ in $(seq 1 300); do
  ready && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$data/server.log" >&2; exit 1; }
  sleep 0.2
done
ready || { say "the server did not get ready"; cat "$data/server.log" >&2; exit 1; }

FLOWTRAIL_URL="http://127.0.0.1:$port" FLOWTRAIL_API_KEY="$key" \
  "$test_venv/bin/python" -m pytest sdk-python/tests -p no:cacheprovider --timeout 180 -q -rs
