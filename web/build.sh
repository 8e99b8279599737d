#!/usr/bin/env bash
# Builds the web bundle: a self-contained static folder (index.html, the
# inference worker script, the JS glue, the optimised wasm with shaders and
# catalogue compiled in, and the embedded model's weights and tokenizer, which
# the page fetches). Usage: web/build.sh [OUT_DIR]   (default: web/dist)
# Needs: the wasm32-unknown-unknown target, wasm-bindgen-cli at the version in
# Cargo.lock, and binaryen's wasm-opt (all installed by .ci/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-web/dist}"
# Cargo's own target directory (./target unless CARGO_TARGET_DIR or a cargo
# config says otherwise), the same one `cargo run` and .ci/test build into.
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

cargo build --locked --profile wasm-release --target wasm32-unknown-unknown --bin tensorcity
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/tensorcity.wasm"

rm -rf "$out"
mkdir -p "$out"
# wasm-opt runs before wasm-bindgen: run after it, Debian's binaryen 108
# points the `__wbindgen_externrefs` export at the function table, which then
# fails in the browser ("WebAssembly.Table.set(): ... must be a Wasm function
# object"). -Os, not -Oz: binaryen 108's -Oz rewrites a closure descriptor so
# that wasm-bindgen finds no function at its table index ("failed to find `0`
# in function table"). The features rustc 1.95
# emits must be named explicitly.
wasm-opt -Os \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-reference-types --enable-multivalue --enable-simd \
  "$wasm" -o "$out/tensorcity.wasm"
wasm-bindgen --target web --no-typescript --out-dir "$out" "$out/tensorcity.wasm"
rm "$out/tensorcity.wasm"
cp web/index.html web/worker.js "$out/"
mkdir -p "$out/models/shakespeare"
cp assets/models/shakespeare/model.safetensors assets/models/shakespeare/tokenizer.json "$out/models/shakespeare/"

raw=$(stat -c %s "$out/tensorcity_bg.wasm")
gz=$(gzip -9 -c "$out/tensorcity_bg.wasm" | wc -c)
echo "web bundle in $out: wasm $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzipped" >&2
