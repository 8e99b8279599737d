//! GGUF (llama.cpp, Ollama, LM Studio) headers: the metadata and tensor infos
//! in front of the data, read without touching the data. Every count, length,
//! type and offset is checked against the file before it is used, so a
//! truncated or hostile header is an error naming the problem, never a panic
//! or a large allocation. GGUF names (`blk.N.attn_q.weight`, `ffn_gate_exps`)
//! become their Hugging Face counterparts so kinds and layers work as for
//! safetensors; fused expert tensors become one tensor per expert.

use serde_json::{Map, Value, json};

use super::{ArchError, HeaderTensor};

const MAGIC: &[u8; 4] = b"GGUF";
/// Bounds no real file comes near (llama.cpp's own readers have similar ones).
const MAX_TENSORS: u64 = 1 << 20;
const MAX_KEYS: u64 = 1 << 16;
const MAX_STRING: u64 = 1 << 24;
const MAX_ARRAY: u64 = 1 << 26;
const MAX_DIMS: u32 = 4;
/// The largest header read (a 256k-token vocabulary is ~5 MB).
pub const MAX_HEADER_BYTES: u64 = 64 << 20;

/// `ggml_type` id -> (name, elements per block, bytes per block).
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

/// Bytes per parameter of a dtype: a ggml type (`Q4_K`: 144 bytes per 256
/// = 0.5625) or a safetensors one (`BF16`: 2).
pub fn bytes_per_param(dtype: &str) -> Option<f64> {
    if let Some(&(_, _, block, bytes)) = GGML_TYPES.iter().find(|t| t.1 == dtype) {
        return Some(bytes as f64 / block as f64);
    }
    Some(match dtype {
        "F64" | "I64" | "U64" | "C64" => 8.0,
        "F32" | "I32" | "U32" => 4.0,
        "F16" | "BF16" | "I16" | "U16" => 2.0,
        "F8_E4M3" | "F8_E5M2" | "F8_E8M0" | "I8" | "U8" | "BOOL" => 1.0,
        "F6_E2M3" | "F6_E3M2" => 0.75,
        "F4" => 0.5,
        _ => return None,
    })
}

/// A dtype with its size, for tooltips and listings: `Q4_0 (0.5625 B/param)`.
pub fn dtype_label(dtype: &str) -> String {
    match bytes_per_param(dtype) {
        Some(b) => format!("{dtype} ({} B/param)", (b * 10_000.0).round() / 10_000.0),
        None => dtype.to_string(),
    }
}

/// What the header says.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    /// Scalar metadata (arrays are summarised by their length in `array_lens`).
    pub metadata: Map<String, Value>,
    pub array_lens: Map<String, Value>,
    pub tensors: Vec<GgufTensor>,
    /// Where the tensor data starts.
    pub data_start: u64,
    /// The `tokenizer.ggml.*` arrays (tokens, merges, token types, scores),
    /// kept for building the tokenizer; other arrays are only counted.
    pub tokenizer: std::collections::BTreeMap<String, GgufArray>,
}

/// A metadata array's values.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufArray {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensor {
    pub name: String,
    /// ggml order (innermost first).
    pub dims: Vec<u64>,
    pub ggml_type: &'static str,
    pub offset: u64,
    pub bytes: u64,
}

/// Why a header could not be read yet, or at all.
#[derive(Debug, PartialEq)]
pub enum GgufProblem {
    /// The bytes given end inside the header: read at least this many.
    NeedMore(u64),
    Bad(String),
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], GgufProblem> {
        let end = (self.at as u64).saturating_add(n);
        if end > self.bytes.len() as u64 {
            return Err(GgufProblem::NeedMore(end.max(self.bytes.len() as u64 * 2)));
        }
        let out = &self.bytes[self.at..end as usize];
        self.at = end as usize;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufProblem> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, GgufProblem> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, GgufProblem> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn string(&mut self, file_len: u64) -> Result<String, GgufProblem> {
        let n = self.u64()?;
        if n > MAX_STRING || n > file_len {
            return Err(bad(format!(
                "a string of {n} bytes, beyond the file or the 16 MB limit"
            )));
        }
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

fn bad(detail: String) -> GgufProblem {
    GgufProblem::Bad(detail)
}

/// Bytes of one scalar of GGUF value type `t` (`None`: string or array).
fn scalar_size(t: u32) -> Result<Option<u64>, GgufProblem> {
    Ok(match t {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        8 | 9 => None,
        other => return Err(bad(format!("an unknown metadata value type {other}"))),
    })
}

fn scalar(t: u32, raw: &[u8]) -> Value {
    let b8 = |r: &[u8]| {
        let mut a = [0u8; 8];
        a[..r.len()].copy_from_slice(r);
        a
    };
    match t {
        0 => json!(raw[0]),
        1 => json!(raw[0] as i8),
        2 => json!(u16::from_le_bytes([raw[0], raw[1]])),
        3 => json!(i16::from_le_bytes([raw[0], raw[1]])),
        4 => json!(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
        5 => json!(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
        6 => json!(f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
        7 => json!(raw[0] != 0),
        10 => json!(u64::from_le_bytes(b8(raw))),
        11 => json!(i64::from_le_bytes(b8(raw))),
        _ => json!(f64::from_le_bytes(b8(raw))),
    }
}

/// Parses a header from the file's first bytes (`file_len`: the whole file's size).
pub fn parse(bytes: &[u8], file_len: u64) -> Result<GgufHeader, GgufProblem> {
    let mut c = Cursor { bytes, at: 0 };
    if c.take(4)? != MAGIC {
        return Err(bad("not a GGUF file (it does not start with `GGUF`)".into()));
    }
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        return Err(bad(format!(
            "GGUF version {version}; tensorcity reads versions 2 and 3"
        )));
    }
    let (tensor_count, kv_count) = (c.u64()?, c.u64()?);
    if tensor_count > MAX_TENSORS || kv_count > MAX_KEYS {
        return Err(bad(format!(
            "{tensor_count} tensors and {kv_count} metadata keys, over the limits ({MAX_TENSORS}, {MAX_KEYS})"
        )));
    }
    let (mut metadata, mut array_lens) = (Map::new(), Map::new());
    let mut tokenizer = std::collections::BTreeMap::new();
    for _ in 0..kv_count {
        let key = c.string(file_len)?;
        let t = c.u32()?;
        match (t, scalar_size(t)?) {
            (_, Some(n)) => {
                let raw = c.take(n)?;
                metadata.insert(key, scalar(t, raw));
            }
            (8, None) => {
                let s = c.string(file_len)?;
                metadata.insert(key, Value::String(s));
            }
            _ => {
                let (item, n) = (c.u32()?, c.u64()?);
                if n > MAX_ARRAY || n > file_len {
                    return Err(bad(format!("metadata array `{key}` of {n} items, over the limit")));
                }
                let keep = key.starts_with("tokenizer.ggml.");
                match scalar_size(item)? {
                    Some(size) => {
                        let raw = c.take(n.saturating_mul(size))?;
                        if keep && size > 0 {
                            let values = raw
                                .chunks_exact(size as usize)
                                .map(|v| scalar(item, v).as_f64().unwrap_or(0.0))
                                .collect();
                            tokenizer.insert(key.clone(), GgufArray::Numbers(values));
                        }
                    }
                    None if item == 8 => {
                        let mut strings = Vec::new();
                        for _ in 0..n {
                            let len = c.u64()?;
                            if len > MAX_STRING {
                                return Err(bad(format!("a string of {len} bytes in `{key}`")));
                            }
                            let raw = c.take(len)?;
                            if keep {
                                strings.push(String::from_utf8_lossy(raw).into_owned());
                            }
                        }
                        if keep {
                            tokenizer.insert(key.clone(), GgufArray::Strings(strings));
                        }
                    }
                    None => return Err(bad(format!("metadata array `{key}` nests arrays"))),
                }
                array_lens.insert(key, json!(n));
            }
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= 1 << 16 => a,
            _ => return Err(bad(format!("general.alignment {v} is not a power of two"))),
        },
    };
    let mut infos = Vec::with_capacity(tensor_count.min(4096) as usize);
    for _ in 0..tensor_count {
        let name = c.string(file_len)?;
        let n_dims = c.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS})"
            )));
        }
        let dims = (0..n_dims).map(|_| c.u64()).collect::<Result<Vec<_>, _>>()?;
        let id = c.u32()?;
        let offset = c.u64()?;
        let Some(&(_, type_name, block, block_bytes)) = GGML_TYPES.iter().find(|t| t.0 == id) else {
            return Err(bad(format!("tensor `{name}` has unknown ggml type {id}")));
        };
        let elements = super::element_count(&dims).filter(|&n| n < 1 << 50);
        let Some(elements) = elements else {
            return Err(bad(format!("tensor `{name}` has absurd dimensions {dims:?}")));
        };
        if dims[0] % block != 0 {
            return Err(bad(format!(
                "tensor `{name}`: {} elements per row is not a multiple of {type_name}'s block of {block}",
                dims[0]
            )));
        }
        if offset % alignment != 0 {
            return Err(bad(format!(
                "tensor `{name}` starts at {offset}, not aligned to {alignment}"
            )));
        }
        infos.push(GgufTensor {
            name,
            dims,
            ggml_type: type_name,
            offset,
            bytes: elements / block * block_bytes,
        });
    }
    let data_start = (c.at as u64).div_ceil(alignment) * alignment;
    let mut spans: Vec<(u64, u64, &str)> = infos
        .iter()
        .map(|t| (t.offset, t.offset.saturating_add(t.bytes), t.name.as_str()))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if let [(_, end, a), (start, _, b)] = pair
            && start < end
        {
            return Err(bad(format!(
                "tensors `{a}` and `{b}` overlap in the data; the file is corrupt"
            )));
        }
    }
    for t in &infos {
        let end = data_start.saturating_add(t.offset).saturating_add(t.bytes);
        if end > file_len {
            return Err(bad(format!(
                "tensor `{}` ends at byte {end} but the file has {file_len}; the file is truncated (download it again)",
                t.name
            )));
        }
    }
    Ok(GgufHeader {
        version,
        metadata,
        array_lens,
        tensors: infos,
        data_start,
        tokenizer,
    })
}

/// Reads a header from `read_at(offset, len)` (a file, or Range requests),
/// starting with `first` bytes and growing the prefix until the header is
/// complete (`file_len`: `u64::MAX` when unknown; then the data offsets are
/// not checked against it).
pub fn read(
    file_len: u64,
    first: u64,
    what: &str,
    mut read_at: impl FnMut(u64, u64) -> Result<Vec<u8>, ArchError>,
) -> Result<(GgufHeader, Vec<u8>), ArchError> {
    let fail = |detail: String| ArchError::BadGguf {
        what: what.to_string(),
        detail,
    };
    let mut bytes = Vec::new();
    let mut want = first.min(file_len);
    loop {
        if want > MAX_HEADER_BYTES {
            return Err(fail(format!(
                "a header over {} MB; the file is corrupt",
                MAX_HEADER_BYTES >> 20
            )));
        }
        if want > bytes.len() as u64 {
            let more = read_at(bytes.len() as u64, want - bytes.len() as u64)?;
            if more.is_empty() {
                return Err(fail("the file ends inside its GGUF header; it is truncated".into()));
            }
            bytes.extend(more);
        }
        match parse(&bytes, file_len) {
            Ok(header) => return Ok((header, bytes)),
            Err(GgufProblem::Bad(detail)) => return Err(fail(detail)),
            Err(GgufProblem::NeedMore(n)) if n > file_len || bytes.len() as u64 >= file_len => {
                return Err(fail("the file ends inside its GGUF header; it is truncated".into()));
            }
            Err(GgufProblem::NeedMore(n)) => want = n.min(file_len),
        }
    }
}

/// The architecture a header describes, with a notice naming its quant types.
pub fn architecture(header: &GgufHeader, name: String, source: &str) -> Result<super::Architecture, ArchError> {
    let config = super::ModelConfig::from_value(config(header), &name)?;
    let mut arch = super::Architecture::from_rows(name, source, Some(config), rows(header));
    let mut types: Vec<&str> = header.tensors.iter().map(|t| t.ggml_type).collect();
    types.sort_unstable();
    types.dedup();
    arch.notices.push(format!(
        "GGUF v{}: {} tensors in {}",
        header.version,
        header.tensors.len(),
        types.join(", ")
    ));
    Ok(arch)
}

/// The Hugging Face `model_type` of a GGUF `general.architecture`.
fn model_type(arch: &str, experts: bool) -> &str {
    match arch {
        "llama" if experts => "mixtral",
        "gptneox" => "gpt_neox",
        "qwen2moe" => "qwen2_moe",
        other => other,
    }
}

/// A `config.json` of the metadata (the keys tensorcity's `ModelConfig` reads).
pub fn config(header: &GgufHeader) -> Value {
    let m = &header.metadata;
    let arch = m.get("general.architecture").and_then(Value::as_str).unwrap_or("");
    let key = |k: &str| m.get(&format!("{arch}.{k}")).cloned();
    let experts = key("expert_count").and_then(|v| v.as_u64()).unwrap_or(0);
    let vocab = key("vocab_size").or_else(|| header.array_lens.get("tokenizer.ggml.tokens").cloned());
    let tied = !header.tensors.iter().any(|t| t.name == "output.weight");
    let mut c = Map::new();
    c.insert("model_type".into(), json!(model_type(arch, experts > 0)));
    for (hf, gguf) in [
        ("num_hidden_layers", "block_count"),
        ("hidden_size", "embedding_length"),
        ("intermediate_size", "feed_forward_length"),
        ("num_attention_heads", "attention.head_count"),
        ("num_key_value_heads", "attention.head_count_kv"),
        ("max_position_embeddings", "context_length"),
        ("rope_theta", "rope.freq_base"),
        ("rms_norm_eps", "attention.layer_norm_rms_epsilon"),
        ("sliding_window", "attention.sliding_window"),
        ("head_dim", "attention.key_length"),
        ("layer_norm_eps", "attention.layer_norm_epsilon"),
        ("use_parallel_residual", "use_parallel_residual"),
        ("attn_logit_softcapping", "attn_logit_softcapping"),
        ("final_logit_softcapping", "final_logit_softcapping"),
    ] {
        if let Some(v) = key(gguf) {
            c.insert(hf.into(), v);
        }
    }
    let int = |k: &str| key(k).and_then(|v| v.as_u64()).filter(|&v| v > 0);
    let (hidden, heads) = (int("embedding_length"), int("attention.head_count"));
    let head_dim = int("attention.key_length").or_else(|| Some(hidden? / heads?));
    // Partial rotary embeddings (GPT-NeoX, Phi): the rotated dimensions per head.
    if let (Some(rotated), Some(hd)) = (key("rope.dimension_count").and_then(|v| v.as_u64()), head_dim)
        && rotated < hd
    {
        c.insert("partial_rotary_factor".into(), json!(rotated as f64 / hd as f64));
    }
    // Gemma 2 scales queries by 1/sqrt(head_dim), except the 27B (hidden 4608), by
    // 1/sqrt(hidden / heads): what llama.cpp does, as GGUF has no key for it.
    if arch == "gemma2" {
        let scalar = match (hidden, heads) {
            (Some(4608), Some(heads)) => Some(4608 / heads),
            _ => head_dim,
        };
        if let Some(q) = scalar {
            c.insert("query_pre_attn_scalar".into(), json!(q));
        }
    }
    if experts > 0 {
        c.insert("num_local_experts".into(), json!(experts));
        if let Some(k) = key("expert_used_count") {
            c.insert("num_experts_per_tok".into(), k);
        }
    }
    if let Some(v) = vocab {
        c.insert("vocab_size".into(), v);
    }
    c.insert("tie_word_embeddings".into(), json!(tied));
    Value::Object(c)
}

/// The Hugging Face name of a GGUF tensor name (`None`: keep the GGUF name).
pub fn hf_name(arch: &str, name: &str) -> Option<String> {
    let (stem, suffix) = name.rsplit_once('.').filter(|(_, s)| *s == "weight" || *s == "bias")?;
    let neox = arch == "gptneox";
    let top = match (stem, neox) {
        ("token_embd", false) => Some("model.embed_tokens"),
        ("output_norm", false) => Some("model.norm"),
        ("output", false) => Some("lm_head"),
        ("token_embd", true) => Some("gpt_neox.embed_in"),
        ("output_norm", true) => Some("gpt_neox.final_layer_norm"),
        ("output", true) => Some("embed_out"),
        _ => None,
    };
    if let Some(top) = top {
        return Some(format!("{top}.{suffix}"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    layer.parse::<u32>().ok()?;
    let gemma = arch.starts_with("gemma");
    let inner = match (part, neox) {
        ("attn_norm", true) => "input_layernorm",
        ("attn_qkv", true) => "attention.query_key_value",
        ("attn_output", true) => "attention.dense",
        ("ffn_norm", true) => "post_attention_layernorm",
        ("ffn_up", true) => "mlp.dense_h_to_4h",
        ("ffn_down", true) => "mlp.dense_4h_to_h",
        ("attn_norm", false) => "input_layernorm",
        ("attn_q", false) => "self_attn.q_proj",
        ("attn_k", false) => "self_attn.k_proj",
        ("attn_v", false) => "self_attn.v_proj",
        ("attn_qkv", false) => "self_attn.qkv_proj",
        ("attn_output", false) => "self_attn.o_proj",
        ("attn_q_norm", false) => "self_attn.q_norm",
        ("attn_k_norm", false) => "self_attn.k_norm",
        ("post_attention_norm", false) => "post_attention_layernorm",
        ("ffn_norm", false) if gemma => "pre_feedforward_layernorm",
        ("post_ffw_norm", false) => "post_feedforward_layernorm",
        ("ffn_norm", false) => "post_attention_layernorm",
        ("ffn_gate", false) => "mlp.gate_proj",
        ("ffn_up", false) if arch == "phi3" => "mlp.gate_up_proj",
        ("ffn_up", false) => "mlp.up_proj",
        ("ffn_down", false) => "mlp.down_proj",
        ("ffn_gate_inp", false) => "block_sparse_moe.gate",
        _ => return None,
    };
    let base = if neox { "gpt_neox.layers" } else { "model.layers" };
    Some(format!("{base}.{layer}.{inner}.{suffix}"))
}

/// A fused expert tensor (`blk.N.ffn_gate_exps`, `[experts, out, in]`):
/// its layer, the Mixtral name of its part (`w1`/`w2`/`w3`) and its number of
/// experts; drawn and loaded as one tensor per expert.
pub fn fused_experts<'t>(arch: &str, t: &'t GgufTensor) -> Option<(&'t str, &'static str, u64)> {
    let (_, w) = [("ffn_gate_exps", "w1"), ("ffn_down_exps", "w2"), ("ffn_up_exps", "w3")]
        .into_iter()
        .find(|(g, _)| t.name.contains(&format!(".{g}.")))?;
    let layer = t
        .name
        .strip_prefix("blk.")
        .and_then(|r| r.split('.').next())
        .filter(|l| l.parse::<u32>().is_ok())?;
    let n = *t.dims.last()?;
    (t.dims.len() == 3 && n <= 4096 && arch != "gptneox").then_some((layer, w, n))
}

/// Rows for [`super::Architecture::from_rows`]: Hugging Face names and
/// shapes (outermost first), the ggml type as the dtype; a fused expert tensor
/// (`blk.N.ffn_gate_exps`, `[experts, out, in]`) as one tensor per expert.
pub fn rows(header: &GgufHeader) -> Vec<HeaderTensor> {
    let arch = header
        .metadata
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = Vec::with_capacity(header.tensors.len());
    for t in &header.tensors {
        let shape: Vec<u64> = t.dims.iter().rev().copied().collect();
        if let (Some((layer, w, n)), Some((_, inner))) = (fused_experts(arch, t), shape.split_first()) {
            let suffix = t.name.rsplit('.').next().unwrap_or("weight");
            for e in 0..n {
                out.push(HeaderTensor {
                    name: format!("model.layers.{layer}.block_sparse_moe.experts.{e}.{w}.{suffix}"),
                    shape: inner.to_vec(),
                    dtype: t.ggml_type.to_string(),
                    shard: None,
                });
            }
            continue;
        }
        out.push(HeaderTensor {
            name: hf_name(arch, &t.name).unwrap_or_else(|| t.name.clone()),
            shape,
            dtype: t.ggml_type.to_string(),
            shard: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal header: one key, one tensor.
    fn header(dims: &[u64], ggml: u32, offset: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        let key = b"general.architecture";
        b.extend((key.len() as u64).to_le_bytes());
        b.extend(key);
        b.extend(8u32.to_le_bytes());
        b.extend(5u64.to_le_bytes());
        b.extend(b"llama");
        let name = b"blk.0.attn_q.weight";
        b.extend((name.len() as u64).to_le_bytes());
        b.extend(name);
        b.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(ggml.to_le_bytes());
        b.extend(offset.to_le_bytes());
        b
    }

    #[test]
    fn a_minimal_header_parses_and_every_cut_asks_for_more() {
        let b = header(&[64, 32], 8, 0);
        let data = (b.len() as u64).div_ceil(32) * 32 + 64 * 32 / 32 * 34;
        let h = parse(&b, data).unwrap();
        assert_eq!(h.tensors[0].ggml_type, "Q8_0");
        assert_eq!(h.tensors[0].bytes, 2 * 34 * 32);
        assert_eq!(rows(&h)[0].name, "model.layers.0.self_attn.q_proj.weight");
        assert_eq!(rows(&h)[0].shape, [32, 64]);
        for cut in 0..b.len() {
            assert!(
                matches!(parse(&b[..cut], data), Err(GgufProblem::NeedMore(_))),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn hostile_headers_are_named() {
        let big: u64 = 1 << 40;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"GGML....".to_vec(), "not a GGUF file"),
            (header(&[64, 32], 99, 0), "unknown ggml type 99"),
            (header(&[64, 32], 8, 3), "not aligned"),
            (header(&[60, 32], 8, 0), "not a multiple of Q8_0's block of 32"),
            (header(&[1 << 30, 1 << 30], 0, 0), "absurd dimensions"),
            (header(&[64, 32], 8, 1 << 20), "the file is truncated"),
        ];
        for (bytes, expected) in cases {
            match parse(&bytes, 1 << 16) {
                Err(GgufProblem::Bad(m)) => assert!(m.contains(expected), "{m}"),
                other => panic!("{expected}: {other:?}"),
            }
        }
        let mut version = header(&[64, 32], 8, 0);
        version[4] = 9;
        assert!(matches!(parse(&version, 1 << 16), Err(GgufProblem::Bad(m)) if m.contains("version 9")));
        let mut counts = header(&[64, 32], 8, 0);
        counts[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&counts, 1 << 16), Err(GgufProblem::Bad(m)) if m.contains("over the limits")));
        let mut v1 = header(&[64, 32], 8, 0);
        v1[4] = 1;
        assert!(matches!(parse(&v1, 1 << 16), Err(GgufProblem::Bad(m)) if m.contains("version 1")));
        let mut many = header(&[64, 32], 8, 0);
        many[8..16].copy_from_slice(&big.to_le_bytes());
        assert!(matches!(parse(&many, 1 << 16), Err(GgufProblem::Bad(m)) if m.contains("over the limits")));
        // Two tensors of 64x32 Q8_0 (2,176 bytes each), the second starting inside the first.
        let mut two = header(&[64, 32], 8, 0);
        two[8..16].copy_from_slice(&2u64.to_le_bytes());
        let name = b"blk.0.attn_k.weight";
        two.extend((name.len() as u64).to_le_bytes());
        two.extend(name);
        two.extend(2u32.to_le_bytes());
        [64u64, 32].iter().for_each(|d| two.extend(d.to_le_bytes()));
        two.extend(8u32.to_le_bytes());
        two.extend(1024u64.to_le_bytes());
        assert!(
            matches!(parse(&two, 1 << 16), Err(GgufProblem::Bad(m)) if m.contains("overlap")),
            "{:?}",
            parse(&two, 1 << 16)
        );
        let mut string = header(&[64, 32], 8, 0);
        string[24..32].copy_from_slice(&big.to_le_bytes());
        assert!(matches!(parse(&string, 1 << 16), Err(GgufProblem::Bad(m)) if m.contains("a string of")));
    }
}
