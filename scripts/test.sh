#!/usr/bin/env bash
# Sets up and runs every test: Rust unit, router, repository and SDK-integration tests, then
# the browser tests in Debian's Chromium, then the lints. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
scripts/setup.sh test
scripts/build-site.sh
# Builds the binary and the examples the browser tests use, then runs the Rust suites.
cargo test --workspace --exclude flowtrail-frontend --exclude flowtrail-worker
# The same repository, API, SDK and crash suites on the scale-out engines: a real PostgreSQL,
# a real S3-compatible server (every payload in S3) and a real Redis (shared rate limits and
# in-flight keys), plus the tests that need Redis itself.
scripts/with-postgres.sh scripts/with-s3.sh scripts/with-redis.sh cargo test \
  -p flowtrail-domain --test repository \
  -p flowtrail-server --features flowtrail-server/redis-tests --test api --test live --test crash --test redis --test scale_out
(cd end2end && npx playwright test)
cargo fmt --all -- --check
cargo clippy --workspace --exclude flowtrail-frontend --exclude flowtrail-worker --all-targets --features flowtrail-server/redis-tests -- -D warnings
# The two browser crates, for the target they are built for.
cargo clippy -p flowtrail-frontend -p flowtrail-worker --target wasm32-unknown-unknown \
  --profile wasm-release -- -D warnings
