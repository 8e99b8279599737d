//! Llama-style decoders with taps: Llama (incl. Llama 3.1/3.2's `llama3` RoPE
//! scaling), Mistral, Qwen2 (q/k/v biases). Grouped-query attention, SwiGLU,
//! RMSNorm, tied or untied head. Config keys in the older `rope_theta` /
//! `rope_scaling` and the newer `rope_parameters` forms.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde_json::Value;

use super::gpt2::causal_mask;
use super::{InferenceError, Tap};
use crate::arch::{Family, ModelConfig};

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

struct Block {
    input_norm: Tensor,
    attn: Attention,
    post_norm: Tensor,
    mlp: Mlp,
}

pub struct Llama {
    embed: Embedding,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    inv_freq: Vec<f32>,
    context: usize,
    vocab: usize,
    sliding_window: Option<usize>,
}

fn linear(vb: VarBuilder, fan_in: usize, fan_out: usize, bias: bool) -> candle_core::Result<Linear> {
    let w = vb.get((fan_out, fan_in), "weight")?;
    let b = if bias { Some(vb.get(fan_out, "bias")?) } else { None };
    Ok(Linear::new(w, b))
}

impl Llama {
    pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Llama, InferenceError> {
        let need = |v: Option<u64>, key: &str| super::need(v, key, what);
        let hidden = need(cfg.hidden_size, "hidden_size")?;
        let heads = need(cfg.num_heads, "num_attention_heads")?;
        let kv_heads = need(cfg.num_kv_heads, "num_key_value_heads")?;
        let layers = need(cfg.num_layers, "num_hidden_layers")?;
        let vocab = need(cfg.vocab_size, "vocab_size")?;
        let inner = need(cfg.intermediate_size, "intermediate_size")?;
        let head_dim = need(cfg.head_dim(), "head_dim")?;
        let context = cfg.max_positions.map_or(usize::MAX, |v| v as usize);
        if kv_heads == 0 || heads % kv_heads != 0 || head_dim % 2 != 0 {
            return Err(InferenceError::Model {
                what: what.to_string(),
                detail: format!(
                    "{heads} heads, {kv_heads} kv heads and head_dim {head_dim} do not fit grouped-query attention"
                ),
            });
        }
        let family = Family::from_model_type(&cfg.model_type);
        let flag = |key: &str| cfg.raw_field(key).and_then(Value::as_bool).unwrap_or(false);
        let qkv_bias = family == Family::Qwen2 || flag("attention_bias");
        let o_bias = family != Family::Qwen2 && flag("attention_bias");
        let mlp_bias = flag("mlp_bias");
        let eps = cfg.raw_field("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6) as f32;
        let sliding_window = match family {
            Family::Mistral | Family::Mixtral => cfg
                .raw_field("sliding_window")
                .and_then(Value::as_u64)
                .map(|w| w as usize),
            Family::Qwen2 if flag("use_sliding_window") => cfg
                .raw_field("sliding_window")
                .and_then(Value::as_u64)
                .map(|w| w as usize),
            _ => None,
        };
        let inv_freq = rope_inv_freq(cfg, head_dim).map_err(|detail| InferenceError::Model {
            what: what.to_string(),
            detail,
        })?;
        let m = vb.pp("model");
        let blocks = (0..layers)
            .map(|i| {
                let b = m.pp(format!("layers.{i}"));
                let a = b.pp("self_attn");
                let f = b.pp("mlp");
                Ok(Block {
                    input_norm: b.get(hidden, "input_layernorm.weight")?,
                    attn: Attention {
                        q: linear(a.pp("q_proj"), hidden, heads * head_dim, qkv_bias)?,
                        k: linear(a.pp("k_proj"), hidden, kv_heads * head_dim, qkv_bias)?,
                        v: linear(a.pp("v_proj"), hidden, kv_heads * head_dim, qkv_bias)?,
                        o: linear(a.pp("o_proj"), heads * head_dim, hidden, o_bias)?,
                    },
                    post_norm: b.get(hidden, "post_attention_layernorm.weight")?,
                    mlp: Mlp {
                        gate: linear(f.pp("gate_proj"), hidden, inner, mlp_bias)?,
                        up: linear(f.pp("up_proj"), hidden, inner, mlp_bias)?,
                        down: linear(f.pp("down_proj"), inner, hidden, mlp_bias)?,
                    },
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let embed_weight = m.get((vocab, hidden), "embed_tokens.weight")?;
        // Tied heads are not stored: fall back to the embeddings when `lm_head.weight` is absent.
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            vb.get((vocab, hidden), "lm_head.weight")?
        } else {
            embed_weight.clone()
        };
        Ok(Llama {
            embed: Embedding::new(embed_weight, hidden),
            norm: m.get(hidden, "norm.weight")?,
            blocks,
            lm_head,
            heads,
            kv_heads,
            head_dim,
            eps,
            inv_freq,
            context,
            vocab,
            sliding_window,
        })
    }

    /// Transformer blocks (hidden states are one more).
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Longest sequence the model takes.
    pub fn context(&self) -> usize {
        self.context
    }

    pub fn run(&self, tokens: &[u32], sink: &mut dyn FnMut(Tap, Tensor) -> bool) -> Result<(), InferenceError> {
        let mut emit = super::emitter(sink);
        let t = tokens.len();
        super::check_tokens(tokens, self.vocab, self.context)?;
        let device = self.embed.embeddings().device().clone();
        let (cos, sin) = self.rope_tables(t, &device)?;
        let mask = match self.sliding_window {
            Some(w) if w < t => sliding_mask(t, w, &device)?,
            _ => causal_mask(t, &device)?,
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let n_rep = self.heads / self.kv_heads;
        let mut xs = self.embed.forward(&Tensor::new(tokens, &device)?)?;
        for (i, block) in self.blocks.iter().enumerate() {
            emit(Tap::Hidden(i), xs.clone())?;
            let residual = &xs;
            let x = candle_nn::ops::rms_norm(residual, &block.input_norm, self.eps)?;
            let shape = |y: Tensor, n: usize| -> candle_core::Result<Tensor> {
                y.reshape((1, t, n, self.head_dim))?.transpose(1, 2)?.contiguous()
            };
            let q = shape(block.attn.q.forward(&x)?, self.heads)?;
            let k = shape(block.attn.k.forward(&x)?, self.kv_heads)?;
            let v = shape(block.attn.v.forward(&x)?, self.kv_heads)?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
            // Query head h reads key/value head h / n_rep.
            let k = repeat_kv(k.squeeze(0)?, n_rep)?;
            let v = repeat_kv(v.squeeze(0)?, n_rep)?;
            let q = q.squeeze(0)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(0, 1)?
                .reshape((t, self.heads * self.head_dim))?;
            emit(Tap::Attention(i), probs)?;
            let xs_attn = (residual + block.attn.o.forward(&context)?)?;
            let y = candle_nn::ops::rms_norm(&xs_attn, &block.post_norm, self.eps)?;
            let gated = (block.mlp.gate.forward(&y)?.silu()? * block.mlp.up.forward(&y)?)?;
            emit(Tap::Mlp(i), gated.clone())?;
            xs = (&xs_attn + block.mlp.down.forward(&gated)?)?;
        }
        let last = candle_nn::ops::rms_norm(&xs, &self.norm, self.eps)?;
        let logits = self.lens(&last, true)?;
        emit(Tap::Hidden(self.blocks.len()), last)?;
        emit(Tap::Logits, logits)?;
        Ok(())
    }

    /// Residual-stream state(s) `[.., hidden]` through the final RMSNorm and the
    /// head: the logit lens (pass `normed` for the last, already normed, state).
    pub fn lens(&self, hidden: &Tensor, normed: bool) -> Result<Tensor, InferenceError> {
        let x = if normed {
            hidden.clone()
        } else {
            candle_nn::ops::rms_norm(hidden, &self.norm, self.eps)?
        };
        Ok(x.broadcast_matmul(&self.lm_head.t()?)?)
    }

    /// cos/sin tables `[T, head_dim / 2]` for positions 0..T.
    fn rope_tables(&self, t: usize, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let inv = Tensor::from_vec(self.inv_freq.clone(), (1, half), device)?;
        let pos = Tensor::arange(0u32, t as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((t, 1))?;
        let freqs = pos.broadcast_mul(&inv)?;
        Ok((freqs.cos()?, freqs.sin()?))
    }
}

/// Key/value heads repeated so each query head has its own: `[kv, T, d]` -> `[kv * n_rep, T, d]`.
fn repeat_kv(xs: Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    if n_rep == 1 {
        return Ok(xs);
    }
    let (kv, t, d) = xs.dims3()?;
    xs.unsqueeze(1)?
        .broadcast_as((kv, n_rep, t, d))?
        .reshape((kv * n_rep, t, d))
}

/// Causal mask that also hides keys more than `window` positions back.
fn sliding_mask(t: usize, window: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..t).map(move |j| {
                if j <= i && i - j < window {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, t), device)
}

/// RoPE inverse frequencies, with the `llama3` scaling of Llama 3.1/3.2 when
/// the config asks for it. Reads `rope_parameters` (transformers >= 5) or the
/// older `rope_theta` + `rope_scaling`.
pub fn rope_inv_freq(cfg: &ModelConfig, head_dim: usize) -> Result<Vec<f32>, String> {
    let params = cfg.raw_field("rope_parameters").and_then(Value::as_object);
    let scaling = params.or_else(|| cfg.raw_field("rope_scaling").and_then(Value::as_object));
    let theta = params
        .and_then(|p| p.get("rope_theta"))
        .or_else(|| cfg.raw_field("rope_theta"))
        .and_then(Value::as_f64)
        .unwrap_or(10_000.0);
    let mut inv: Vec<f64> = (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64))
        .collect();
    let kind = scaling
        .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => {}
        "llama3" => {
            let s = scaling.ok_or("llama3 rope scaling without parameters")?;
            let get = |k: &str| {
                s.get(k)
                    .and_then(Value::as_f64)
                    .ok_or(format!("llama3 rope scaling needs `{k}`"))
            };
            let (factor, low, high, old) = (
                get("factor")?,
                get("low_freq_factor")?,
                get("high_freq_factor")?,
                get("original_max_position_embeddings")?,
            );
            let (low_wavelen, high_wavelen) = (old / low, old / high);
            for f in &mut inv {
                let wavelen = 2.0 * std::f64::consts::PI / *f;
                if wavelen > low_wavelen {
                    *f /= factor;
                } else if wavelen >= high_wavelen {
                    let smooth = (old / wavelen - low) / (high - low);
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
        other => {
            return Err(format!(
                "rope scaling `{other}` is not supported yet (default and llama3 are)"
            ));
        }
    }
    Ok(inv.into_iter().map(|f| f as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> ModelConfig {
        ModelConfig::from_json(json.as_bytes(), "test").unwrap()
    }

    #[test]
    fn old_and_new_rope_keys_agree_and_llama3_scaling_applies() {
        let new = cfg(
            r#"{"model_type":"llama","rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        );
        let old = cfg(
            r#"{"model_type":"llama","rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        );
        let plain = cfg(r#"{"model_type":"llama","rope_theta":500000.0}"#);
        let (a, b, c) = (
            rope_inv_freq(&new, 64).unwrap(),
            rope_inv_freq(&old, 64).unwrap(),
            rope_inv_freq(&plain, 64).unwrap(),
        );
        assert_eq!(a, b);
        // High frequencies are kept, the lowest are divided by the factor.
        assert_eq!(a[0], c[0]);
        assert!((a[31] * 32.0 - c[31]).abs() / c[31] < 1e-5);
        assert!(rope_inv_freq(&cfg(r#"{"rope_scaling":{"type":"yarn"}}"#), 64).is_err());
    }
}
