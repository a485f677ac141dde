#!/usr/bin/env bash
# Installs what building (and, with `test`, testing) Flow Trail needs, skipping what is there.
# Idempotent: a second run takes seconds. Usage: scripts/setup.sh [run|test]
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-test}
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# Debian packages: a C compiler (for zstd/SQLite), Node.js for the WASM optimiser and the
# browser tests, zopfli for the site's gzip files, and Chromium for the browser tests.
packages=()
command -v cc >/dev/null || packages+=(build-essential)
command -v npm >/dev/null || packages+=(nodejs npm)
# zopfli: the precompressed .gz files of the site, 4–5 % smaller than gzip -9, still gzip.
command -v zopfli >/dev/null || packages+=(zopfli)
if [ "$purpose" = test ]; then
  [ -x /usr/bin/chromium ] || packages+=(chromium)
  # The scale-out suites run against a real PostgreSQL (scripts/with-postgres.sh).
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
  command -v redis-server >/dev/null || packages+=(redis-server)
  # The OpenTelemetry Python test's virtual environment (Debian splits venv and ensurepip out).
  python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
  # scripts/schemathesis.sh checks its keys and waits for the server with curl.
  command -v curl >/dev/null || packages+=(curl)
  # Injected write and fsync errors (scripts/faults/write_errors.py): libfiu's fiu-run/fiu-ctrl.
  command -v fiu-ctrl >/dev/null || packages+=(fiu-utils)
fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  say "apt-get install ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# The WASM target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# Lints run by the test command.
if [ "$purpose" = test ]; then
  for component in clippy rustfmt; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
  done
fi

# The S3-compatible server of the scale-out suites (scripts/with-s3.sh). 0.14.1 is the newest
# release that builds with this toolchain (rustc 1.95).
if [ "$purpose" = test ] && ! s3s-fs --version 2>/dev/null | grep -q "0.14.1"; then
  say "cargo install s3s-fs 0.14.1"
  cargo install s3s-fs --version 0.14.1 --features binary --locked --force
fi

# wasm-bindgen CLI at exactly the lockfile's wasm-bindgen version (the schemas must match).
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  say "cargo install wasm-bindgen-cli $want (found: ${have:-none})"
  cargo install wasm-bindgen-cli --version "$want" --force
fi

# Node packages: binaryen's wasm-opt (Debian's is too old and breaks hydration) and Playwright
# (its browser download is skipped: the tests drive Debian's Chromium).
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "npm ci in end2end/"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
# The official OpenTelemetry Python SDK and exporters (PyPI), pinned, in a virtual environment
# for server/tests/otel_python.rs. Made again only when a pinned version is missing.
if [ "$purpose" = test ]; then
  otel_python=(
    opentelemetry-sdk==1.45.2
    opentelemetry-exporter-otlp-proto-http==1.45.2
    opentelemetry-exporter-otlp-proto-grpc==1.45.2
    openinference-semantic-conventions==0.1.42
  )
  venv=target/otel-venv
  installed=$("$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null || true)
  for requirement in "${otel_python[@]}"; do
    if ! grep -qixF "$requirement" <<<"$installed"; then
      say "python3 -m venv $venv; pip install ${otel_python[*]}"
      python3 -m venv "$venv"
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${otel_python[@]}"
      break
    fi
  done
fi
say "ready ($purpose)"
