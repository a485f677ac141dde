#!/usr/bin/env bash
# Fuzzing (issue #18): every target of fuzz/ (cargo-fuzz, libFuzzer) for a time budget each,
# starting from the corpus kept in fuzz/corpus/<target>/ (new inputs go to
# target/fuzz-corpus/<target>/, outside the repository). Installs what it needs: cargo-fuzz
# (pinned) and a nightly toolchain (the `-Z` flags libFuzzer builds need; AddressSanitizer
# on). Without a nightly it falls back to the stable toolchain with RUSTC_BOOTSTRAP=1 and no
# sanitizer, and says so.
#
# Usage: scripts/fuzz.sh [seconds per target, default 60]
# Prints one line per target, `fuzz <target>: <executions> executions, <crashes> crashes`,
# appends them to target/fuzz-summary.txt, and exits non-zero when a target crashed (the
# crashing input is in fuzz/artifacts/<target>/: add it to fuzz/corpus/<target>/ once fixed).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "[fuzz] $*" >&2; }

seconds=${1:-60}
version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qF "$version"; then
  say "cargo install cargo-fuzz $version"
  cargo install --quiet --locked cargo-fuzz --version "$version" || exit 1
fi
toolchain=()
sanitizer=address
if rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  say "no nightly toolchain: stable with RUSTC_BOOTSTRAP=1, without a sanitizer"
  export RUSTC_BOOTSTRAP=1
  sanitizer=none
fi

targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^flowtrail-fuzz$')
summary=target/fuzz-summary.txt
mkdir -p target
: >"$summary"
failed=0
for target in $targets; do
  work=target/fuzz-corpus/$target
  mkdir -p "$work"
  log=target/fuzz-$target.log
  cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz -s "$sanitizer" "$target" "$work" "fuzz/corpus/$target" \
    -- -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1
  rc=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  crashes=$(ls "fuzz/artifacts/$target" 2>/dev/null | wc -l)
  line="fuzz $target: ${executions:-0} executions, $crashes crashes (${seconds} s, sanitizer $sanitizer)"
  echo "$line" | tee -a "$summary"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    tail -n 30 "$log" >&2
  fi
done
exit "$failed"
