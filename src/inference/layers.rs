//! The building blocks every family shares, in one place: linear layers and
//! embeddings that keep a checkpoint's dtype (bf16/f16 stay half in memory and
//! are widened one matrix at a time when used: every product is computed in
//! f32), norms, activations, rotary embeddings, masks, and scaled dot-product
//! attention with an optional key/value cache.
//!
//! Tensors are `[batch, T, ..]` as in candle-transformers; the runner uses a
//! batch of one and drops that dimension from the taps.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::cache::Cache;

/// Where a forward pass starts and what it may use.
pub struct Pass<'a> {
    /// Position of the first input token (the cache's length for a cached step).
    pub offset: usize,
    /// Each block appends its keys/values here and attends to all of them.
    pub cache: Option<&'a mut Cache>,
    pub ops: Ops,
}

/// Which kernels to use: candle's fused norm/softmax/rope kernels have no
/// gradient, so saliency (`grad`) runs the composed versions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ops {
    pub grad: bool,
}

impl Ops {
    pub fn softmax(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.grad {
            candle_nn::ops::softmax(x, D::Minus1)
        } else {
            candle_nn::ops::softmax_last_dim(x)
        }
    }

    /// `x / rms(x) * w`.
    pub fn rms_norm(&self, x: &Tensor, w: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
        if self.grad {
            candle_nn::ops::rms_norm_slow(x, w, eps)
        } else {
            candle_nn::ops::rms_norm(&x.contiguous()?, w, eps)
        }
    }

    /// Rotary embedding of `x` (`[b, heads, T, d]`), rotate-half layout.
    pub fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
        if self.grad {
            candle_nn::rotary_emb::rope_slow(x, cos, sin)
        } else {
            candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)
        }
    }
}

/// Reads a 1-D parameter (norm gains, biases) as f32.
pub fn vector(vb: &VarBuilder, n: usize, name: &str) -> candle_core::Result<Tensor> {
    vb.get(n, name)?.to_dtype(DType::F32)
}

/// Widens half-precision weights for a product (a no-op for f32). This is
/// where a bf16 model spends its extra time: candle converts one element at a
/// time (a matrix per call, freed after the product).
pub fn wide(w: &Tensor) -> candle_core::Result<Tensor> {
    if w.dtype() == DType::F32 {
        Ok(w.clone())
    } else {
        w.to_dtype(DType::F32)
    }
}

/// `x @ W^T + b`. f32 weights are kept `[in, out]`, the layout candle's
/// matmul runs fastest on (measured: a 128x3072 by 3072x768 product takes
/// 3.7 ms against 5.0 ms for the transposed `[out, in]` view); half-precision
/// weights stay `[out, in]` as stored, so a block of output rows is
/// contiguous when it is widened.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

#[derive(Debug, Clone)]
enum Weight {
    InOut(Tensor),
    OutIn(Tensor),
}

impl Linear {
    /// From a `[out, in]` weight (`nn.Linear`'s layout).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Linear> {
        let weight = if weight.dtype() == DType::F32 {
            Weight::InOut(weight.t()?.contiguous()?)
        } else {
            Weight::OutIn(weight)
        };
        Ok(Linear { weight, bias })
    }

    /// From a `[in, out]` weight (GPT-2's `Conv1D`), kept as it is when f32 —
    /// a training variable stays the variable, so its updates show through.
    pub fn from_in_out(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Linear> {
        let weight = if weight.dtype() == DType::F32 {
            Weight::InOut(weight)
        } else {
            Weight::OutIn(weight.t()?.contiguous()?)
        };
        Ok(Linear { weight, bias })
    }

    /// A head that shares a `[vocab, hidden]` table (tied embeddings): no copy.
    pub fn tied(table: Tensor) -> Linear {
        Linear {
            weight: Weight::OutIn(table),
            bias: None,
        }
    }

    /// `prefix.weight` (`[out, in]`) and, with `bias`, `prefix.bias`.
    pub fn load(vb: VarBuilder, fan_in: usize, fan_out: usize, bias: bool) -> candle_core::Result<Linear> {
        let weight = vb.get((fan_out, fan_in), "weight")?;
        let bias = if bias {
            Some(vector(&vb, fan_out, "bias")?)
        } else {
            None
        };
        Linear::new(weight, bias)
    }

    /// Outputs `from..from + n` (a fused projection's part).
    pub fn rows(&self, from: usize, n: usize) -> candle_core::Result<Linear> {
        Ok(Linear {
            weight: match &self.weight {
                Weight::InOut(w) => Weight::InOut(w.narrow(1, from, n)?.contiguous()?),
                Weight::OutIn(w) => Weight::OutIn(w.narrow(0, from, n)?.contiguous()?),
            },
            bias: self.bias.as_ref().map(|b| b.narrow(0, from, n)).transpose()?,
        })
    }
}

/// Elements of a half-precision weight widened at a time (16 MB as f32):
/// small enough for the allocator to reuse one buffer instead of mapping
/// (and the kernel zeroing) fresh pages for every product.
const WIDEN_CHUNK: usize = 1 << 22;

impl Module for Linear {
    /// `[.., in]` -> `[.., out]`, the leading dims folded into one product.
    /// Half-precision weights are widened a block of output rows at a time.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let fan_in = x.dim(D::Minus1)?;
        let rows = x.elem_count() / fan_in.max(1);
        let x2 = x.reshape((rows, fan_in))?;
        let y = match &self.weight {
            Weight::InOut(w) => x2.matmul(w)?,
            Weight::OutIn(w) if w.dtype() == DType::F32 || w.elem_count() <= WIDEN_CHUNK => {
                x2.matmul(&wide(w)?.t()?)?
            }
            Weight::OutIn(w) => {
                let fan_out = w.dim(0)?;
                let step = (WIDEN_CHUNK / fan_in.max(1)).max(1);
                let parts = (0..fan_out)
                    .step_by(step)
                    .map(|start| {
                        let block = wide(&w.narrow(0, start, step.min(fan_out - start))?)?;
                        x2.matmul(&block.t()?)
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&parts, 1)?
            }
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut shape = x.dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = y.dim(1)?;
        }
        y.reshape(shape)
    }
}

/// A token-embedding table in the checkpoint's dtype; rows come out f32.
#[derive(Debug, Clone)]
pub struct Embedding {
    table: Tensor,
}

impl Embedding {
    pub fn load(vb: VarBuilder, vocab: usize, hidden: usize, name: &str) -> candle_core::Result<Embedding> {
        Ok(Embedding {
            table: vb.get((vocab, hidden), name)?,
        })
    }

    /// `[b, T]` ids -> `[b, T, hidden]`.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let dims = ids.dims().to_vec();
        let rows = wide(&self.table.index_select(&ids.flatten_all()?, 0)?)?;
        let mut shape = dims;
        shape.push(self.table.dim(1)?);
        rows.reshape(shape)
    }

    /// The table as an output head (`[.., hidden]` -> `[.., vocab]`): tied heads.
    pub fn as_head(&self) -> Linear {
        Linear::tied(self.table.clone())
    }

    pub fn vocab(&self) -> usize {
        self.table.dim(0).unwrap_or(0)
    }
}

/// RMSNorm; Gemma's `(1 + w)` form is stored with the 1 added at load.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<RmsNorm> {
        Ok(RmsNorm {
            weight: vector(&vb, size, "weight")?,
            eps: eps as f32,
        })
    }

    /// Gemma's `x / rms(x) * (1 + w)`.
    pub fn load_plus_one(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<RmsNorm> {
        let mut norm = RmsNorm::load(vb, size, eps)?;
        norm.weight = (norm.weight + 1.0)?;
        Ok(norm)
    }

    pub fn forward(&self, x: &Tensor, ops: Ops) -> candle_core::Result<Tensor> {
        ops.rms_norm(x, &self.weight, self.eps)
    }
}

/// LayerNorm with a bias (GPT-2, GPT-NeoX, BERT).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// `weight`/`bias`, or the old `gamma`/`beta` names.
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
        let (w, b) = if vb.contains_tensor("gamma") {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(LayerNorm {
            weight: vector(&vb, size, w)?,
            bias: vector(&vb, size, b)?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor, ops: Ops) -> candle_core::Result<Tensor> {
        if ops.grad {
            candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps as f32)
        } else {
            candle_nn::LayerNorm::new(self.weight.clone(), self.bias.clone(), self.eps).forward(x)
        }
    }
}

/// An MLP nonlinearity, by its `hidden_act` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// `gelu` (erf).
    GeluErf,
    /// `gelu_new` / `gelu_pytorch_tanh` (tanh approximation).
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn from_name(name: &str) -> Result<Activation, String> {
        match name {
            "silu" | "swish" => Ok(Activation::Silu),
            "gelu" => Ok(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(format!(
                "activation `{other}` is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh, relu are)"
            )),
        }
    }

    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Silu => x.silu(),
            Activation::GeluErf => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
        }
    }
}

/// `tanh(x / cap) * cap` (Gemma 2's logit soft-capping).
pub fn soft_cap(x: &Tensor, cap: f64) -> candle_core::Result<Tensor> {
    (x / cap)?.tanh()? * cap
}

/// The rotary-embedding keys of a `config.json`, in every spelling in use:
/// transformers >= 5's `rope_parameters`, the older `rope_theta` +
/// `rope_scaling`, and GPT-NeoX's `rotary_emb_base` / `rotary_pct`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeKeys {
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeParameters>,
    pub rope_parameters: Option<RopeParameters>,
    pub partial_rotary_factor: Option<f64>,
    pub rotary_pct: Option<f64>,
    pub rotary_emb_base: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    pub rope_theta: Option<f64>,
    #[serde(alias = "type")]
    pub rope_type: Option<String>,
    pub partial_rotary_factor: Option<f64>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<f64>,
}

impl RopeKeys {
    fn params(&self) -> Option<&RopeParameters> {
        self.rope_parameters.as_ref().or(self.rope_scaling.as_ref())
    }

    pub fn theta(&self, default: f64) -> f64 {
        self.params()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .or(self.rotary_emb_base)
            .unwrap_or(default)
    }

    /// The fraction of each head's dimensions that rotate (GPT-NeoX, Phi).
    pub fn partial_factor(&self, default: f64) -> f64 {
        self.params()
            .and_then(|p| p.partial_rotary_factor)
            .or(self.partial_rotary_factor)
            .or(self.rotary_pct)
            .unwrap_or(default)
    }
}

/// Rotary position embedding over the first `dims` dimensions of each head.
#[derive(Debug, Clone)]
pub struct Rotary {
    inv_freq: Vec<f32>,
    dims: usize,
}

impl Rotary {
    /// For heads of `head_dim`, with `rotary_factor` of it rotating and RoPE
    /// scaling as the keys say (`default` and Llama 3.1's `llama3`).
    pub fn new(keys: &RopeKeys, head_dim: usize, default_theta: f64, default_factor: f64) -> Result<Rotary, String> {
        let factor = keys.partial_factor(default_factor);
        let dims = (head_dim as f64 * factor) as usize;
        if dims == 0 || !dims.is_multiple_of(2) || dims > head_dim {
            return Err(format!(
                "rotary embedding over {dims} of head_dim {head_dim} (partial_rotary_factor {factor}) needs an even, \
                 non-zero count; check head_dim and partial_rotary_factor"
            ));
        }
        let theta = keys.theta(default_theta);
        let mut inv: Vec<f64> = (0..dims / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / dims as f64))
            .collect();
        let scaling = keys.params();
        match scaling.and_then(|s| s.rope_type.as_deref()).unwrap_or("default") {
            "default" => {}
            "llama3" => {
                let s = scaling.ok_or("llama3 rope scaling without parameters")?;
                let need =
                    |v: Option<f64>, k: &str| v.ok_or(format!("llama3 rope scaling needs `{k}` in rope_parameters"));
                let factor = need(s.factor, "factor")?;
                let low = need(s.low_freq_factor, "low_freq_factor")?;
                let high = need(s.high_freq_factor, "high_freq_factor")?;
                let old = need(s.original_max_position_embeddings, "original_max_position_embeddings")?;
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
        Ok(Rotary {
            inv_freq: inv.into_iter().map(|f| f as f32).collect(),
            dims,
        })
    }

    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// cos/sin tables `[T, dims / 2]` for positions `offset..offset + T`.
    pub fn tables(&self, offset: usize, t: usize, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let inv = Tensor::from_vec(self.inv_freq.clone(), (1, half), device)?;
        let pos = Tensor::arange(offset as u32, (offset + t) as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((t, 1))?;
        let freqs = pos.broadcast_mul(&inv)?;
        Ok((freqs.cos()?, freqs.sin()?))
    }

    /// The tables for positions `offset..offset + T`, ready to apply.
    pub fn at(&self, offset: usize, t: usize, device: &Device) -> candle_core::Result<RopeTables<'_>> {
        let (cos, sin) = self.tables(offset, t, device)?;
        Ok(RopeTables { rotary: self, cos, sin })
    }
}

/// One pass's rotary tables.
pub struct RopeTables<'a> {
    rotary: &'a Rotary,
    cos: Tensor,
    sin: Tensor,
}

impl RopeTables<'_> {
    /// Rotates the first `dims` dimensions of `x` (`[b, heads, T, head_dim]`).
    pub fn apply(&self, x: &Tensor, ops: Ops) -> candle_core::Result<Tensor> {
        let head_dim = x.dim(D::Minus1)?;
        let dims = self.rotary.dims;
        if dims == head_dim {
            return ops.rope(x, &self.cos, &self.sin);
        }
        let rotated = ops.rope(&x.narrow(D::Minus1, 0, dims)?, &self.cos, &self.sin)?;
        let pass = x.narrow(D::Minus1, dims, head_dim - dims)?;
        Tensor::cat(&[&rotated, &pass], D::Minus1)
    }
}

/// `[T, offset + T]` additive mask for queries at `offset..offset + T`: keys
/// after the query are hidden, and with a `window` so are keys `window` or
/// more positions back (transformers' sliding window: `q - k < window`).
pub fn causal_mask(t: usize, offset: usize, window: Option<usize>, device: &Device) -> candle_core::Result<Tensor> {
    let keys = offset + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            let q = offset + i;
            (0..keys).map(move |k| {
                let visible = k <= q && window.is_none_or(|w| q - k < w);
                if visible { 0.0 } else { f32::NEG_INFINITY }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, keys), device)
}

/// The shape of one block's attention.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies the scores (1/sqrt(head_dim) unless the family says otherwise).
    pub scale: f64,
    /// Gemma 2's `attn_logit_softcapping`.
    pub soft_cap: Option<f64>,
    /// Causal (decoders) or bidirectional (BERT).
    pub causal: bool,
    /// This block's sliding window, if it has one.
    pub window: Option<usize>,
}

impl AttentionShape {
    /// `heads` query heads of `head_dim` over `kv_heads` key/value heads.
    pub fn new(heads: usize, kv_heads: usize, head_dim: usize) -> AttentionShape {
        AttentionShape {
            heads,
            kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f64).sqrt(),
            soft_cap: None,
            causal: true,
            window: None,
        }
    }

    /// `[b, T, n * head_dim]` -> `[b, n, T, head_dim]`.
    pub fn split(&self, x: &Tensor, n: usize) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        x.reshape((b, t, n, self.head_dim))?.transpose(1, 2)?.contiguous()
    }

    /// Scaled dot-product attention of the pass's new positions
    /// `offset..offset + T`: `q` `[b, heads, T, d]`, `k`/`v` `[b, kv_heads, T, d]`
    /// (rotated already). With a cache, `k`/`v` are appended to `block`'s entry and the queries
    /// attend to every cached position. Returns the probabilities
    /// `[b, heads, T, offset + T]` and the heads' outputs `[b, T, heads * d]`.
    pub fn attend(
        &self,
        q: &Tensor,
        k: Tensor,
        v: Tensor,
        block: usize,
        pass: &mut Pass,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, _, t, _) = q.dims4()?;
        let (offset, ops) = (pass.offset, pass.ops);
        let (k, v) = match pass.cache.as_deref_mut() {
            Some(cache) => cache.append(block, &k, &v)?,
            None => (k, v),
        };
        let n_rep = self.heads / self.kv_heads.max(1);
        let k = candle_transformers::utils::repeat_kv(k, n_rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, n_rep)?.contiguous()?;
        let mut scores = (q.matmul(&k.t()?)? * self.scale)?;
        if let Some(cap) = self.soft_cap {
            scores = soft_cap(&scores, cap)?;
        }
        if self.causal {
            scores = scores.broadcast_add(&causal_mask(t, offset, self.window, q.device())?)?;
        }
        let probs = ops.softmax(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        Ok((probs, context))
    }
}

/// Per-block sliding windows from transformers' `layer_types`
/// (`sliding_attention` / `full_attention`), or `window` on every block when
/// the config has no list.
pub fn block_windows(
    layer_types: Option<&[String]>,
    window: Option<usize>,
    blocks: usize,
) -> Result<Vec<Option<usize>>, String> {
    match layer_types {
        None => Ok(vec![window; blocks]),
        Some(types) if types.len() != blocks => Err(format!(
            "`layer_types` lists {} blocks but `num_hidden_layers` is {blocks}",
            types.len()
        )),
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(None),
                "sliding_attention" => window
                    .map(Some)
                    .ok_or_else(|| "`layer_types` has sliding_attention blocks but no `sliding_window`".to_string()),
                other => Err(format!(
                    "layer type `{other}` is not supported (full_attention, sliding_attention are)"
                )),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_hide_the_future_and_keys_beyond_the_window() {
        let m = causal_mask(2, 3, Some(2), &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // query 3 sees keys 2, 3; query 4 sees 3, 4.
        let visible: Vec<Vec<bool>> = m.iter().map(|r| r.iter().map(|v| *v == 0.0).collect()).collect();
        assert_eq!(visible[0], [false, false, true, true, false]);
        assert_eq!(visible[1], [false, false, false, true, true]);
    }

    #[test]
    fn old_and_new_rope_keys_agree_and_llama3_scaling_applies() {
        let keys = |json: &str| serde_json::from_str::<RopeKeys>(json).unwrap();
        let new = keys(
            r#"{"rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        );
        let old = keys(
            r#"{"rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        );
        let plain = keys(r#"{"rope_theta":500000.0}"#);
        let rotary = |k: &RopeKeys| Rotary::new(k, 64, 10_000.0, 1.0).unwrap().inv_freq;
        let (a, b, c) = (rotary(&new), rotary(&old), rotary(&plain));
        assert_eq!(a, b);
        assert_eq!(a[0], c[0]);
        assert!((a[31] * 32.0 - c[31]).abs() / c[31] < 1e-5);
        assert!(Rotary::new(&keys(r#"{"rope_scaling":{"type":"yarn"}}"#), 64, 1e4, 1.0).is_err());
        // GPT-NeoX's old spelling: a quarter of each head rotates.
        let neox = keys(r#"{"rotary_pct":0.25,"rotary_emb_base":10000}"#);
        assert_eq!(Rotary::new(&neox, 64, 1e4, 1.0).unwrap().dims, 16);
        assert!(Rotary::new(&keys("{}"), 7, 1e4, 1.0).is_err(), "odd head_dim");
    }

    #[test]
    fn half_weights_widened_in_blocks_give_the_whole_product() {
        // More rows than one widening block holds, and a last block that is short.
        let (out, inp) = ((WIDEN_CHUNK / 512) * 2 + 3, 512);
        let w = Tensor::randn(0f32, 1.0, (out, inp), &Device::Cpu).unwrap();
        let half = w.to_dtype(DType::BF16).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, inp), &Device::Cpu).unwrap();
        let y = Linear::new(half.clone(), None).unwrap().forward(&x).unwrap();
        let expected = x
            .reshape((6, inp))
            .unwrap()
            .matmul(&half.to_dtype(DType::F32).unwrap().t().unwrap())
            .unwrap()
            .reshape((2, 3, out))
            .unwrap();
        assert_eq!(y.dims(), [2, 3, out]);
        let d = (y - expected)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-3);
    }

    #[test]
    fn layer_types_map_to_windows() {
        let types = ["sliding_attention".to_string(), "full_attention".to_string()];
        assert_eq!(block_windows(Some(&types), Some(4), 2).unwrap(), [Some(4), None]);
        assert!(block_windows(Some(&types), None, 2).is_err());
        assert!(block_windows(Some(&types), Some(4), 3).is_err());
        assert_eq!(block_windows(None, Some(8), 2).unwrap(), [Some(8), Some(8)]);
    }
}
