#!/usr/bin/env bash
# Builds the web bundle: a self-contained static folder (index.html, the JS
# glue, the optimised wasm; shaders, catalogue and the embedded model are
# compiled in). Usage: web/build.sh [OUT_DIR]   (default: web/dist)
# Needs: the wasm32-unknown-unknown target, wasm-bindgen-cli at the version in
# Cargo.lock, and binaryen's wasm-opt (all installed by .ci/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-web/dist}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tensorcity/target}"

cargo build --locked --profile wasm-release --target wasm32-unknown-unknown --bin tensorcity
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/tensorcity.wasm"

rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" "$wasm"
# Debian's binaryen needs the features rustc 1.95 emits named explicitly.
wasm-opt -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-reference-types --enable-multivalue --enable-simd \
  "$out/tensorcity_bg.wasm" -o "$out/tensorcity_bg.wasm"
cp web/index.html "$out/"

raw=$(stat -c %s "$out/tensorcity_bg.wasm")
gz=$(gzip -9 -c "$out/tensorcity_bg.wasm" | wc -c)
echo "web bundle in $out: wasm $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzipped" >&2
