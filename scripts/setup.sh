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
say "ready ($purpose)"
