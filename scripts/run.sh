#!/usr/bin/env bash
# Sets up, builds and starts Flow Trail on the embedded default (SQLite + ./data) at
# http://127.0.0.1:3000, with a first admin and an API key for the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh run
scripts/build-site.sh
cargo build --release -p flowtrail-server
bin=target/release/flowtrail

export FLOWTRAIL_DATA_DIR=${FLOWTRAIL_DATA_DIR:-./data}
export FLOWTRAIL_ADDR=${FLOWTRAIL_ADDR:-127.0.0.1:3000}
export FLOWTRAIL_SITE_ROOT=${FLOWTRAIL_SITE_ROOT:-target/site}
mkdir -p "$FLOWTRAIL_DATA_DIR"
umask 077
# First admin: kept in the data directory so later starts print the same sign-in.
export FLOWTRAIL_ADMIN_EMAIL=${FLOWTRAIL_ADMIN_EMAIL:-admin@flowtrail.local}
if [ -z "${FLOWTRAIL_ADMIN_PASSWORD:-}" ]; then
  [ -s "$FLOWTRAIL_DATA_DIR/admin-password" ] || head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$FLOWTRAIL_DATA_DIR/admin-password"
  FLOWTRAIL_ADMIN_PASSWORD=$(cat "$FLOWTRAIL_DATA_DIR/admin-password")
  export FLOWTRAIL_ADMIN_PASSWORD
fi
# An API key for the examples, created once.
if [ ! -s "$FLOWTRAIL_DATA_DIR/example-api-key" ]; then
  "$bin" admin create-api-key --team default --name examples --scope all > "$FLOWTRAIL_DATA_DIR/example-api-key"
fi
key=$(cat "$FLOWTRAIL_DATA_DIR/example-api-key")
cat <<MSG

  Flow Trail is starting at http://$FLOWTRAIL_ADDR
  Sign in as:  $FLOWTRAIL_ADMIN_EMAIL
  Password:    $FLOWTRAIL_ADMIN_PASSWORD   (kept in $FLOWTRAIL_DATA_DIR/admin-password)

  Send example flows (in another terminal):
    FLOWTRAIL_URL=http://$FLOWTRAIL_ADDR FLOWTRAIL_API_KEY=$key \\
      cargo run --release -p flowtrail-sdk --example competitor_selection -- --runs 5

MSG
exec "$bin" serve
