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

/// A GGUF file of 1,000 tensors (Q4_K matrices, F32 norms) and a
/// 150,000-token vocabulary in its header (~2 MB of strings), the tensor data
/// a sparse hole: what `info model.gguf` reads.
static BIG_GGUF: LazyLock<(tempfile::TempDir, std::path::PathBuf)> = LazyLock::new(|| {
    fn string(b: &mut Vec<u8>, s: &str) {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    }
    fn kv_u32(b: &mut Vec<u8>, key: &str, v: u32) {
        string(b, key);
        b.extend(4u32.to_le_bytes());
        b.extend(v.to_le_bytes());
    }
    let (blocks, hidden, ff, vocab) = (111u32, 4096u64, 14336u64, 150_000u64);
    let mut tensors: Vec<(String, Vec<u64>, u32)> = vec![("token_embd.weight".into(), vec![hidden, vocab], 12)];
    for b in 0..blocks {
        for (name, dims, ty) in [
            ("attn_norm", vec![hidden], 0),
            ("attn_q", vec![hidden, hidden], 12),
            ("attn_k", vec![hidden, 1024], 12),
            ("attn_v", vec![hidden, 1024], 12),
            ("attn_output", vec![hidden, hidden], 12),
            ("ffn_norm", vec![hidden], 0),
            ("ffn_gate", vec![hidden, ff], 12),
            ("ffn_up", vec![hidden, ff], 12),
            ("ffn_down", vec![ff, hidden], 12),
        ] {
            tensors.push((format!("blk.{b}.{name}.weight"), dims, ty));
        }
    }
    tensors.push(("output_norm.weight".into(), vec![hidden], 0));
    assert_eq!(tensors.len(), 1001);
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend(8u64.to_le_bytes());
    string(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes());
    string(&mut b, "llama");
    kv_u32(&mut b, "llama.block_count", blocks);
    kv_u32(&mut b, "llama.embedding_length", hidden as u32);
    kv_u32(&mut b, "llama.feed_forward_length", ff as u32);
    kv_u32(&mut b, "llama.attention.head_count", 32);
    kv_u32(&mut b, "llama.attention.head_count_kv", 8);
    kv_u32(&mut b, "llama.context_length", 8192);
    string(&mut b, "tokenizer.ggml.tokens");
    b.extend(9u32.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend(vocab.to_le_bytes());
    for i in 0..vocab {
        string(&mut b, &format!("tok{i:07}"));
    }
    let mut offset = 0u64;
    for (name, dims, ty) in &tensors {
        string(&mut b, name);
        b.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(ty.to_le_bytes());
        b.extend(offset.to_le_bytes());
        let n: u64 = dims.iter().product();
        let bytes = if *ty == 12 { n / 256 * 144 } else { n * 4 };
        offset += bytes.div_ceil(32) * 32;
    }
    let start = (b.len() as u64).div_ceil(32) * 32;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.gguf");
    std::fs::write(&path, &b).expect("write");
    let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(start + offset).expect("extend");
    (dir, path)
});

#[divan::bench(sample_count = 10)]
fn info_gguf_1000_tensors_150k_vocab() -> u64 {
    let a = arch::load_gguf_file(&BIG_GGUF.1).expect("valid");
    a.total_params()
}
