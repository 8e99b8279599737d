//! The catalogue's trick: a family's exact tensor list (names, shapes, dtypes, in
//! the order the published checkpoint stores them per module) from `config.json`
//! alone, so a 405B model can be drawn without a byte of its weights.

use super::{ArchError, Family, HeaderTensor, ModelConfig};

/// Upper bound on synthesised tensors; a config asking for more is not a real model.
const MAX_TENSORS: u64 = 5_000_000;
/// Upper bound on a single dimension (2^40): beyond it a config is corrupt.
const MAX_DIM: u64 = 1 << 40;

/// Synthesises the tensor list of a checkpoint with this config, following the
/// files as published on the Hub: GPT-2 without a `transformer.` prefix and with
/// its causal-mask buffers, BERT as the base `BertModel`, Llama-style decoders as
/// `...ForCausalLM` (no `lm_head` when embeddings are tied), Mixtral with
/// per-expert `w1`/`w2`/`w3` tensors.
pub fn synthesize(config: &ModelConfig, what: &str) -> Result<Vec<HeaderTensor>, ArchError> {
    let family = Family::from_model_type(&config.model_type);
    let need = |value: Option<u64>, key: &str| -> Result<u64, ArchError> {
        match value {
            Some(v) if v > 0 && v <= MAX_DIM => Ok(v),
            Some(v) => Err(ArchError::UnsupportedConfig {
                what: what.to_string(),
                detail: format!("`{key}` = {v} is not a plausible model size (must be 1..2^40)"),
            }),
            None => Err(ArchError::UnsupportedConfig {
                what: what.to_string(),
                detail: format!("config.json has no `{key}`, needed to lay out a {family} model"),
            }),
        }
    };
    let dtype = config
        .raw_field("torch_dtype")
        .or_else(|| config.raw_field("dtype"))
        .and_then(|v| v.as_str())
        .map_or("F32", torch_dtype_to_safetensors)
        .to_string();
    let mut out = Tensors {
        rows: Vec::new(),
        dtype,
    };
    let layers = need(config.num_layers, "num_hidden_layers")?;
    let h = need(config.hidden_size, "hidden_size")?;
    let v = need(config.vocab_size, "vocab_size")?;
    match family {
        Family::Gpt2 => {
            let p = need(config.max_positions, "n_positions")?;
            let inner = config.intermediate_size.unwrap_or(4 * h);
            check_count(layers, 13, what)?;
            out.push("wte.weight", &[v, h]);
            out.push("wpe.weight", &[p, h]);
            for i in 0..layers {
                let b = format!("h.{i}");
                out.push(&format!("{b}.ln_1.weight"), &[h]);
                out.push(&format!("{b}.ln_1.bias"), &[h]);
                out.push_typed(&format!("{b}.attn.bias"), &[1, 1, p, p], "F32");
                out.linear_conv1d(&format!("{b}.attn.c_attn"), h, 3 * h);
                out.linear_conv1d(&format!("{b}.attn.c_proj"), h, h);
                out.push(&format!("{b}.ln_2.weight"), &[h]);
                out.push(&format!("{b}.ln_2.bias"), &[h]);
                out.linear_conv1d(&format!("{b}.mlp.c_fc"), h, inner);
                out.linear_conv1d(&format!("{b}.mlp.c_proj"), inner, h);
            }
            out.push("ln_f.weight", &[h]);
            out.push("ln_f.bias", &[h]);
            if !config.tied_embeddings() {
                out.push("lm_head.weight", &[v, h]);
            }
        }
        Family::Bert => {
            let p = need(config.max_positions, "max_position_embeddings")?;
            let inner = need(config.intermediate_size, "intermediate_size")?;
            let types = config.type_vocab_size.unwrap_or(2);
            check_count(layers, 16, what)?;
            out.push("embeddings.word_embeddings.weight", &[v, h]);
            out.push("embeddings.position_embeddings.weight", &[p, h]);
            out.push("embeddings.token_type_embeddings.weight", &[types, h]);
            out.norm("embeddings.LayerNorm", h, true);
            for i in 0..layers {
                let b = format!("encoder.layer.{i}");
                for part in ["query", "key", "value"] {
                    out.linear(&format!("{b}.attention.self.{part}"), h, h, true);
                }
                out.linear(&format!("{b}.attention.output.dense"), h, h, true);
                out.norm(&format!("{b}.attention.output.LayerNorm"), h, true);
                out.linear(&format!("{b}.intermediate.dense"), h, inner, true);
                out.linear(&format!("{b}.output.dense"), inner, h, true);
                out.norm(&format!("{b}.output.LayerNorm"), h, true);
            }
            out.linear("pooler.dense", h, h, true);
        }
        Family::Llama | Family::Mistral | Family::Qwen2 | Family::Mixtral => {
            let heads = need(config.num_heads, "num_attention_heads")?;
            let kv = need(config.num_kv_heads, "num_key_value_heads")?;
            let hd = need(config.head_dim(), "head_dim")?;
            let inner = need(config.intermediate_size, "intermediate_size")?;
            let attn_bias = config
                .raw_field("attention_bias")
                .and_then(|b| b.as_bool())
                .unwrap_or(false);
            let qkv_bias = family == Family::Qwen2 || attn_bias;
            let mlp_bias = config.raw_field("mlp_bias").and_then(|b| b.as_bool()).unwrap_or(false);
            let experts = if family == Family::Mixtral {
                need(config.num_experts, "num_local_experts")?
            } else {
                0
            };
            check_count(layers, 9 + 3 * experts, what)?;
            out.push("model.embed_tokens.weight", &[v, h]);
            for i in 0..layers {
                let b = format!("model.layers.{i}");
                out.linear(&format!("{b}.self_attn.q_proj"), h, heads * hd, qkv_bias);
                out.linear(&format!("{b}.self_attn.k_proj"), h, kv * hd, qkv_bias);
                out.linear(&format!("{b}.self_attn.v_proj"), h, kv * hd, qkv_bias);
                out.linear(&format!("{b}.self_attn.o_proj"), heads * hd, h, attn_bias);
                if experts > 0 {
                    out.linear(&format!("{b}.block_sparse_moe.gate"), h, experts, false);
                    for e in 0..experts {
                        let x = format!("{b}.block_sparse_moe.experts.{e}");
                        out.linear(&format!("{x}.w1"), h, inner, false);
                        out.linear(&format!("{x}.w2"), inner, h, false);
                        out.linear(&format!("{x}.w3"), h, inner, false);
                    }
                } else {
                    out.linear(&format!("{b}.mlp.gate_proj"), h, inner, mlp_bias);
                    out.linear(&format!("{b}.mlp.up_proj"), h, inner, mlp_bias);
                    out.linear(&format!("{b}.mlp.down_proj"), inner, h, mlp_bias);
                }
                out.norm(&format!("{b}.input_layernorm"), h, false);
                out.norm(&format!("{b}.post_attention_layernorm"), h, false);
            }
            out.norm("model.norm", h, false);
            if !config.tied_embeddings() {
                out.push("lm_head.weight", &[v, h]);
            }
        }
        Family::Unknown(t) => {
            let t = if t.is_empty() { "(none)".to_string() } else { t };
            return Err(ArchError::UnsupportedConfig {
                what: what.to_string(),
                detail: format!(
                    "model_type `{t}` is not one the catalogue can lay out from config.json alone (gpt2, bert, llama, mistral, qwen2, mixtral); open its .safetensors file or folder instead"
                ),
            });
        }
    }
    // Every shape must have a representable element count.
    for row in &out.rows {
        if row.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).is_none() {
            return Err(ArchError::UnsupportedConfig {
                what: what.to_string(),
                detail: format!("tensor `{}` of shape {:?} is too large to count", row.name, row.shape),
            });
        }
    }
    Ok(out.rows)
}

fn check_count(layers: u64, per_layer: u64, what: &str) -> Result<(), ArchError> {
    match layers.checked_mul(per_layer) {
        Some(n) if n <= MAX_TENSORS => Ok(()),
        _ => Err(ArchError::UnsupportedConfig {
            what: what.to_string(),
            detail: format!("{layers} layers would need over {MAX_TENSORS} tensors; the config is not a real model"),
        }),
    }
}

/// `torch_dtype` strings as safetensors dtype names.
fn torch_dtype_to_safetensors(t: &str) -> &'static str {
    match t {
        "bfloat16" => "BF16",
        "float16" | "half" => "F16",
        "float64" | "double" => "F64",
        _ => "F32",
    }
}

struct Tensors {
    rows: Vec<HeaderTensor>,
    dtype: String,
}

impl Tensors {
    fn push(&mut self, name: &str, shape: &[u64]) {
        let dtype = self.dtype.clone();
        self.push_typed(name, shape, &dtype);
    }

    fn push_typed(&mut self, name: &str, shape: &[u64], dtype: &str) {
        self.rows.push(HeaderTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype: dtype.to_string(),
            shard: None,
        });
    }

    /// `nn.Linear`: weight `[out, in]`.
    fn linear(&mut self, prefix: &str, fan_in: u64, fan_out: u64, bias: bool) {
        self.push(&format!("{prefix}.weight"), &[fan_out, fan_in]);
        if bias {
            self.push(&format!("{prefix}.bias"), &[fan_out]);
        }
    }

    /// GPT-2's `Conv1D`: weight stored transposed, `[in, out]`.
    fn linear_conv1d(&mut self, prefix: &str, fan_in: u64, fan_out: u64) {
        self.push(&format!("{prefix}.weight"), &[fan_in, fan_out]);
        self.push(&format!("{prefix}.bias"), &[fan_out]);
    }

    fn norm(&mut self, prefix: &str, h: u64, bias: bool) {
        self.push(&format!("{prefix}.weight"), &[h]);
        if bias {
            self.push(&format!("{prefix}.bias"), &[h]);
        }
    }
}
