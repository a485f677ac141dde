#!/usr/bin/env bash
# Sets up and runs every test: Rust unit, router, repository and SDK-integration tests, the
# schema-driven API tests (schemathesis), the Python SDK's, then the browser tests in Debian's
# Chromium, then the lints. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
scripts/setup.sh test
scripts/build-site.sh
# Incremental compilation only pays on a second build; in a fresh clone it doubles the disk
# that target/ takes. Export CARGO_INCREMENTAL=1 to keep it for local iterations.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# One feature set for every cargo command, so each crate and test binary is built once.
features=(--features flowtrail-server/redis-tests,flowtrail-server/python-tests)
# Every suite runs with a real PostgreSQL, a real S3-compatible server and a real Redis started.
# First on the embedded default (SQLite, local payloads, in-process queue; the Redis and
# scale-out suites use the engines directly), which also builds the binary and the examples the
# browser tests use; then the repository, API, live and crash suites again on the scale-out
# engines (PostgreSQL, every payload in S3, the Redis queue, rate limits and in-flight keys).
# (Both passes select the whole workspace, so cargo resolves the same features and the second
# one reuses the first one's binaries.)
scripts/with-postgres.sh scripts/with-s3.sh scripts/with-redis.sh bash -euo pipefail -c '
  cargo test "$@"
  FLOWTRAIL_TEST_ENGINES=scale cargo test "$@" --test repository --test api --test live --test crash --test sweep_crash
' engines --workspace --exclude flowtrail-frontend --exclude flowtrail-browser-worker \
  --exclude flowtrail-python "${features[@]}"
# Schema-driven API testing (issue #18), short form: schemathesis against the live OpenAPI
# document on both profiles, every operation, 10 generated cases each plus its coverage cases.
scripts/schemathesis.sh embedded 10
scripts/with-postgres.sh scripts/with-s3.sh scripts/with-redis.sh scripts/schemathesis.sh scale 10
# A full disk (issue #18): the embedded data directory on a small tmpfs fills up; 503s, reads
# still answered, recovery, every 202 stored once. Mounting needs root: said and left out
# otherwise (the domain's SQLITE_FULL unit test still runs).
point=$(mktemp -d)
if mount -t tmpfs -o size=1m tmpfs "$point" 2>/dev/null && umount "$point"; then
  python3 scripts/faults/disk_full.py target/debug/flowtrail "$point"
else
  echo "[test] the disk-full fault is left out: mounting a tmpfs needs root" >&2
fi
rmdir "$point"
# The Python SDK: its wheel built with maturin, installed in a fresh virtual environment,
# pytest against a server of the binary built above.
scripts/test-python-sdk.sh
(cd end2end && npx playwright test)
cargo fmt --all -- --check
cargo clippy --workspace --exclude flowtrail-frontend --exclude flowtrail-browser-worker --all-targets "${features[@]}" -- -D warnings
# The two browser crates, for the target they are built for.
cargo clippy -p flowtrail-frontend -p flowtrail-browser-worker --target wasm32-unknown-unknown \
  --profile wasm-release -- -D warnings
