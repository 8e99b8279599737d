//! Structure-aware inputs: headers that are valid in their framing and
//! plausible in their content (the names, dtypes, shapes and offsets real
//! checkpoints have), with the mistakes a corrupt or hostile file makes mixed
//! in (offsets that overlap or run past the data, absurd dimensions, unknown
//! dtypes). Random bytes rarely get past a JSON or GGUF parser; these reach the
//! validation and everything after it.

use arbitrary::{Arbitrary, Result, Unstructured};

const NAMES: &[&str] = &[
    "model.embed_tokens.weight",
    "model.layers.{}.self_attn.q_proj.weight",
    "model.layers.{}.self_attn.k_proj.weight",
    "model.layers.{}.mlp.experts.{}.w1.weight",
    "model.layers.{}.input_layernorm.weight",
    "h.{}.attn.c_attn.weight",
    "h.{}.mlp.c_fc.bias",
    "lm_head.weight",
    "wte.weight",
    "blk.{}.attn_q.weight",
    "blk.{}.ffn_gate_exps.weight",
    "token_embd.weight",
    "",
    "__metadata__",
];

const DTYPES: &[&str] = &["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "Q4", "f32", ""];

fn name(u: &mut Unstructured) -> Result<String> {
    let mut name = u.choose(NAMES)?.to_string();
    while name.contains("{}") {
        let n: u16 = u.int_in_range(0..=u16::MAX)?;
        let n = if u.ratio(7, 8)? { n % 40 } else { n };
        name = name.replacen("{}", &n.to_string(), 1);
    }
    Ok(name)
}

/// A dimension: small mostly, sometimes zero, sometimes absurd.
fn dim(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=9)? {
        0 => 0,
        1 => u64::MAX / u.int_in_range(1..=8)?,
        2 => u.int_in_range(1u64..=1 << 40)?,
        _ => u.int_in_range(1u64..=64)?,
    })
}

fn shape(u: &mut Unstructured) -> Result<Vec<u64>> {
    let max_rank = if u.ratio(1, 16)? { 9 } else { 3 };
    let rank = u.int_in_range(0..=max_rank)?;
    (0..rank).map(|_| dim(u)).collect()
}

/// A `.safetensors` file: prefix, JSON header, data.
pub fn safetensors(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let mut entries = Vec::new();
    let mut at = 0u64;
    let count = u.int_in_range(0..=24).ok()?;
    for _ in 0..count {
        let name = name(&mut u).ok()?;
        let dtype = *u.choose(DTYPES).ok()?;
        let shape = shape(&mut u).ok()?;
        let elems = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX);
        let width = match dtype {
            "F32" => 4,
            "F16" | "BF16" => 2,
            "I64" => 8,
            _ => 1,
        };
        let len = elems.saturating_mul(width);
        let (start, end) = match u.int_in_range(0..=7).ok()? {
            0 => (u64::arbitrary(&mut u).ok()?, u64::arbitrary(&mut u).ok()?),
            1 => (at.saturating_sub(u.int_in_range(1..=16).ok()?), at.saturating_add(len)),
            2 => (at, at.saturating_add(len).saturating_add(1)),
            _ => (at, at.saturating_add(len)),
        };
        at = end.max(at);
        let shape = shape.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let escaped: String = name.chars().flat_map(char::escape_default).collect();
        entries.push(format!(
            r#""{escaped}":{{"dtype":"{dtype}","shape":[{shape}],"data_offsets":[{start},{end}]}}"#
        ));
    }
    if u.ratio(1, 4).ok()? {
        entries.push(r#""__metadata__":{"format":"pt"}"#.into());
    }
    let mut json = format!("{{{}}}", entries.join(","));
    if u.ratio(1, 8).ok()? {
        json.truncate(u.int_in_range(0..=json.len()).ok()?);
    }
    while u.ratio(1, 2).ok()? && json.len() % 8 != 0 {
        json.push(' ');
    }
    let data_len = if u.ratio(3, 4).ok()? {
        at.min(1 << 16)
    } else {
        u.int_in_range(0..=4096).ok()?
    };
    let claimed = if u.ratio(7, 8).ok()? {
        json.len() as u64
    } else {
        u64::arbitrary(&mut u).ok()?
    };
    let mut file = claimed.to_le_bytes().to_vec();
    file.extend_from_slice(json.as_bytes());
    file.resize(file.len() + data_len as usize, 0);
    Some(file)
}

/// GGUF metadata value types.
const U32: u32 = 4;
const I32: u32 = 5;
const F32: u32 = 6;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U64: u32 = 10;

const ARCHS: &[&str] = &[
    "llama", "gpt2", "gptneox", "qwen2", "qwen3", "gemma2", "phi3", "bert", "mamba", "",
];
const KEYS: &[&str] = &[
    "block_count",
    "context_length",
    "embedding_length",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.layer_norm_rms_epsilon",
    "rope.dimension_count",
    "rope.freq_base",
    "expert_count",
    "expert_used_count",
    "attention.sliding_window",
    "attn_logit_softcapping",
    "vocab_size",
];
/// ggml tensor types: the common ones, the K-quants, an IQ type and nonsense.
const GGML_TYPES: &[u32] = &[0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 16, 30, 99];
const TOKEN_TEXT: &[&str] = &["<s>", "</s>", "Ġthe", "a", "Ċ", "<|endoftext|>", "", "\u{0}"];

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// A GGUF header (v2/v3): metadata a model would have, tensor infos, padding.
pub fn gguf(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let arch = *u.choose(ARCHS).ok()?;
    let mut kvs: Vec<Vec<u8>> = Vec::new();
    let mut kv = |key: &str, ty: u32, value: &[u8]| {
        let mut out = Vec::new();
        string(&mut out, key);
        out.extend(ty.to_le_bytes());
        out.extend(value);
        kvs.push(out);
    };
    let mut s = Vec::new();
    string(&mut s, arch);
    kv("general.architecture", STRING, &s);
    for _ in 0..u.int_in_range(0..=KEYS.len()).ok()? {
        let key = format!("{arch}.{}", u.choose(KEYS).ok()?);
        match u.int_in_range(0..=3).ok()? {
            0 => kv(&key, F32, &f32::arbitrary(&mut u).ok()?.to_le_bytes()),
            1 => kv(&key, U64, &u64::arbitrary(&mut u).ok()?.to_le_bytes()),
            2 => kv(&key, I32, &i32::arbitrary(&mut u).ok()?.to_le_bytes()),
            _ => kv(&key, U32, &u.int_in_range(0u32..=128).ok()?.to_le_bytes()),
        }
    }
    if u.ratio(1, 3).ok()? {
        let mut s = Vec::new();
        string(&mut s, u.choose(&["gpt2", "llama", "bert"]).ok()?);
        kv("tokenizer.ggml.model", STRING, &s);
        let n = u.int_in_range(0u64..=16).ok()?;
        let claimed = if u.ratio(7, 8).ok()? {
            n
        } else {
            u64::arbitrary(&mut u).ok()?
        };
        let mut tokens = STRING.to_le_bytes().to_vec();
        tokens.extend(claimed.to_le_bytes());
        for _ in 0..n {
            string(&mut tokens, u.choose(TOKEN_TEXT).ok()?);
        }
        kv("tokenizer.ggml.tokens", ARRAY, &tokens);
        let mut merges = STRING.to_le_bytes().to_vec();
        merges.extend(2u64.to_le_bytes());
        string(&mut merges, "Ġ t");
        string(&mut merges, u.choose(&["h e", "the", "", " "]).ok()?);
        kv("tokenizer.ggml.merges", ARRAY, &merges);
        kv(
            "tokenizer.ggml.bos_token_id",
            U32,
            &u.int_in_range(0u32..=20).ok()?.to_le_bytes(),
        );
        kv("tokenizer.ggml.add_bos_token", BOOL, &[u8::from(u.ratio(1, 2).ok()?)]);
    }
    let mut infos = Vec::new();
    let tensors = u.int_in_range(0..=16).ok()?;
    let mut offset = 0u64;
    for _ in 0..tensors {
        string(&mut infos, &name(&mut u).ok()?);
        let shape = shape(&mut u).ok()?;
        infos.extend((shape.len() as u32).to_le_bytes());
        for d in &shape {
            infos.extend(d.to_le_bytes());
        }
        infos.extend(u.choose(GGML_TYPES).ok()?.to_le_bytes());
        let this = if u.ratio(7, 8).ok()? {
            offset
        } else {
            u64::arbitrary(&mut u).ok()?
        };
        infos.extend(this.to_le_bytes());
        offset = offset.saturating_add(u.int_in_range(0u64..=4096).ok()? * 32);
    }
    let mut file = b"GGUF".to_vec();
    file.extend(u.choose(&[3u32, 3, 2, 1]).ok()?.to_le_bytes());
    file.extend((tensors as u64).to_le_bytes());
    file.extend((kvs.len() as u64).to_le_bytes());
    for kv in &kvs {
        file.extend(kv);
    }
    file.extend(infos);
    while !file.len().is_multiple_of(32) {
        file.push(0);
    }
    let data_len = if u.ratio(3, 4).ok()? {
        offset.min(1 << 16)
    } else {
        u.int_in_range(0..=256).ok()?
    };
    file.resize(file.len() + data_len as usize, 0);
    if u.ratio(1, 8).ok()? {
        file.truncate(u.int_in_range(0..=file.len()).ok()?);
    }
    Some(file)
}
