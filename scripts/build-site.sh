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

cargo build -p flowtrail-frontend --lib --target wasm32-unknown-unknown --profile "$profile"
dir=$profile
[ "$profile" = dev ] && dir=debug
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name flowtrail \
  "target/wasm32-unknown-unknown/$dir/flowtrail_frontend.wasm"
if [ "$profile" != dev ]; then
  end2end/node_modules/.bin/wasm-opt -Oz "$out/flowtrail_bg.wasm" -o "$out/flowtrail_bg.wasm"
fi
cp style/main.css "$out/flowtrail.css"
# Precompressed copies: the server sends them to browsers that accept gzip.
for file in "$out"/*.js "$out"/*.wasm "$out"/*.css; do
  gzip -9 -k -f "$file"
done
cp -r public/. "$site/"
rm -rf "$site/pkg"
mv "$out" "$site/pkg"
raw=$(stat -c %s "$site/pkg/flowtrail_bg.wasm")
gz=$(stat -c %s "$site/pkg/flowtrail_bg.wasm.gz")
echo "[build-site] $site/pkg ready: WASM $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip ($profile)" >&2
