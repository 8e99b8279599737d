//! Benchmarks for the architecture core (`cargo bench --bench arch`):
//! `info` on the 405B catalogue entry, and header parsing of a synthetic
//! 100,000-tensor safetensors file, in memory and from disk. divan's allocation
//! profiler reports the peak bytes allocated alongside the times.

use std::sync::LazyLock;

use tensorcity::arch::{self, parse_header};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

/// Header JSON of a 100,000-tensor file (F16 tensors of varied shapes).
static BIG_HEADER: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut header = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut offset = 0u64;
    for i in 0..100_000u64 {
        let (a, b) = (16 + i % 64, 8 + i % 32);
        let end = offset + a * b * 2;
        header.push_str(&format!(
            ",\"model.layers.{}.block.experts.{}.w{}.weight\":{{\"dtype\":\"F16\",\"shape\":[{a},{b}],\"data_offsets\":[{offset},{end}]}}",
            i / 1000,
            (i / 3) % 333,
            i % 3
        ));
        offset = end;
    }
    header.push('}');
    header.into_bytes()
});

static BIG_FILE: LazyLock<(tempfile::TempDir, std::path::PathBuf)> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.safetensors");
    // Header only plus a sparse tail: the file length is right, the data is a hole.
    let json = &*BIG_HEADER;
    let rows = parse_header(json, None, "bench").expect("valid header");
    let data: u64 = rows.iter().map(|r| r.shape.iter().product::<u64>() * 2).sum();
    let mut blob = (json.len() as u64).to_le_bytes().to_vec();
    blob.extend_from_slice(json);
    std::fs::write(&path, &blob).expect("write");
    let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(blob.len() as u64 + data).expect("extend");
    (dir, path)
});

#[divan::bench]
fn info_llama_405b_catalogue() -> String {
    let entry = arch::catalogue_entry("meta-llama/Llama-3.1-405B").expect("in catalogue");
    let a = entry.architecture().expect("synthesises");
    a.summary().to_text()
}

#[divan::bench]
fn info_llama_405b_json() -> Vec<u8> {
    let a = arch::catalogue_entry("meta-llama/Llama-3.1-405B")
        .expect("in catalogue")
        .architecture()
        .expect("ok");
    serde_json::to_vec(&a.to_json()).expect("json")
}

#[divan::bench(sample_count = 20)]
fn parse_header_100k_tensors_in_memory() -> usize {
    parse_header(divan::black_box(&BIG_HEADER), None, "bench")
        .expect("valid")
        .len()
}

#[divan::bench(sample_count = 20)]
fn load_file_100k_tensors_from_disk() -> u64 {
    let a = arch::load_safetensors_file(&BIG_FILE.1).expect("valid");
    a.total_params()
}
