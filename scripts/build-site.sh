#!/usr/bin/env bash
# Builds the dashboard's browser assets into target/site: the WASM bundle (cargo → wasm-bindgen
# → wasm-opt), the stylesheet and public files. This is what cargo-leptos does, without the
# 18-minute install (see ARCHITECTURE.md, "Build").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile=${SITE_PROFILE:-wasm-release}
site=target/site
out="$site/pkg.new"

# The page's bundle (frontend) and the Web Worker's (browser-worker), in one cargo run so shared
# crates build once.
cargo build -p flowtrail-frontend -p flowtrail-browser-worker --lib --target wasm32-unknown-unknown \
  --profile "$profile"
dir=$profile
[ "$profile" = dev ] && dir=debug
rm -rf "$out"
mkdir -p "$out"
for crate in frontend:flowtrail browser_worker:flowtrail_browser_worker; do
  wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name "${crate#*:}" \
    "target/wasm32-unknown-unknown/$dir/flowtrail_${crate%%:*}.wasm"
  if [ "$profile" != dev ]; then
    end2end/node_modules/.bin/wasm-opt -Oz "$out/${crate#*:}_bg.wasm" -o "$out/${crate#*:}_bg.wasm"
  fi
done
cp style/main.css "$out/flowtrail.css"
# Precompressed copies: the server sends them to browsers that accept gzip. zopfli writes
# standard gzip, 4–5 % smaller than `gzip -9` (slower to write, same to read).
for file in "$out"/*.js "$out"/*.wasm "$out"/*.css; do
  zopfli --gzip -c "$file" > "$file.gz"
done
cp -r public/. "$site/"
rm -rf "$site/pkg"
mv "$out" "$site/pkg"
raw=$(stat -c %s "$site/pkg/flowtrail_bg.wasm")
gz=$(stat -c %s "$site/pkg/flowtrail_bg.wasm.gz")
wraw=$(stat -c %s "$site/pkg/flowtrail_browser_worker_bg.wasm")
wgz=$(stat -c %s "$site/pkg/flowtrail_browser_worker_bg.wasm.gz")
echo "[build-site] $site/pkg ready ($profile): page WASM $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip;" \
  "worker WASM $((wraw / 1024)) KiB raw, $((wgz / 1024)) KiB gzip" >&2
