//! Cuts the header (length prefix + JSON table of tensors) out of the embedded
//! model's weights file, so every build can draw its architecture while the web
//! build leaves the weights themselves out of the wasm (the page fetches them).

use std::path::Path;

const WEIGHTS: &str = "assets/models/shakespeare/model.safetensors";

fn main() {
    println!("cargo::rerun-if-changed={WEIGHTS}");
    let bytes = std::fs::read(WEIGHTS).unwrap_or_else(|e| panic!("{WEIGHTS}: {e}"));
    let prefix: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_else(|| panic!("{WEIGHTS}: shorter than a safetensors header"));
    let end = 8 + u64::from_le_bytes(prefix) as usize;
    let header = bytes
        .get(..end)
        .unwrap_or_else(|| panic!("{WEIGHTS}: header longer than the file"));
    let out = std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}"));
    let out = Path::new(&out);
    std::fs::write(out.join("embedded_header.safetensors"), header).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(out.join("embedded_weights_len.rs"), format!("{}", bytes.len())).unwrap_or_else(|e| panic!("{e}"));
}
