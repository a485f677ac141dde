#!/usr/bin/env bash
# Browser benchmark in Debian's Chromium: the observations worker's filter time at 5,000 and
# 50,000 rows, the keystroke-to-table round trip, the IndexedDB reopen time, and the release
# WASM size. Builds what it needs (release site, debug server) and prints the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh test
scripts/build-site.sh
cargo build -p flowtrail-server
(cd end2end && npx playwright test --config bench.config.ts --reporter=line) | grep -E '^\[bench\]|passed|failed'
raw=$(stat -c %s target/site/pkg/flowtrail_bg.wasm)
gz=$(stat -c %s target/site/pkg/flowtrail_bg.wasm.gz)
echo "[bench] release WASM: $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip (target ≤ 500 KB gzip)"
