#!/usr/bin/env bash
# The ingest benchmark on both profiles, one after the other, for a side-by-side reading:
# the embedded default, then PostgreSQL + Redis Streams + S3 (real servers started in temporary
# directories by the with-*.sh scripts). Usage: bench/scale_out.sh   (after scripts/setup.sh test)
# Knobs: BENCH_SECONDS (10), BENCH_CONNECTIONS (32).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p flowtrail-server --bench ingest
scripts/with-postgres.sh scripts/with-s3.sh scripts/with-redis.sh \
  cargo bench -q -p flowtrail-server --bench ingest
