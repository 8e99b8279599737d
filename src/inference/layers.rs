//! The building blocks every family shares, in one place: linear layers and
//! embeddings that keep a checkpoint's dtype (bf16/f16 stay half in memory and
//! are widened a block at a time when used: every product is computed in
//! f32), norms, activations, and what a pass carries (`Pass`, `Ops`);
//! rotary embeddings are in `rope`, masks and scaled dot-product attention
//! with the key/value cache in `attention` (both build on these).
//!
//! Tensors are `[batch, T, ..]` as in candle-transformers; the runner uses a
//! batch of one and drops that dimension from the taps.

use super::vb::VarBuilder;
use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{D, DType, Module, Tensor};

use super::cache::Cache;

/// Where a forward pass starts and what it may use.
pub struct Pass<'a> {
    /// Position of the first input token (the cache's length for a cached step).
    pub offset: usize,
    /// Each block appends its keys/values here and attends to all of them.
    pub cache: Option<&'a mut Cache>,
    pub ops: Ops,
    /// The pass's attention masks by sliding window (`None`: plain causal),
    /// built by the first block that needs one and shared by the rest.
    pub masks: Vec<(Option<usize>, candle_core::Tensor)>,
}

impl<'a> Pass<'a> {
    pub fn new(offset: usize, cache: Option<&'a mut Cache>, ops: Ops) -> Pass<'a> {
        Pass {
            offset,
            cache,
            ops,
            masks: Vec::new(),
        }
    }
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
/// matmul runs fastest on (measured with gemm's AVX-512 kernels: GPT-2-small's
/// 49 matrices times 128 rows take 98 ms against 174 ms through the transposed
/// `[out, in]` view, and at 13 rows 27 ms against 120 ms); half-precision
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
    /// A GGUF matrix, `[out, in]`, kept in its quantized blocks.
    Quantized(std::sync::Arc<QMatMul>, std::sync::Arc<QTensor>),
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

    /// `prefix.weight` (`[out, in]`) and, with `bias`, `prefix.bias`; a
    /// quantized (GGUF) weight stays quantized.
    pub fn load(vb: VarBuilder, fan_in: usize, fan_out: usize, bias: bool) -> candle_core::Result<Linear> {
        let bias = if bias {
            Some(vector(&vb, fan_out, "bias")?)
        } else {
            None
        };
        if let Some(q) = vb.quantized("weight") {
            let q = q?;
            if q.shape().dims() != [fan_out, fan_in] {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {}.weight", vb.prefix()),
                    expected: (fan_out, fan_in).into(),
                    got: q.shape().clone(),
                }
                .bt());
            }
            return Linear::quantized(q, bias);
        }
        let weight = vb.get((fan_out, fan_in), "weight")?;
        Linear::new(weight, bias)
    }

    fn quantized(q: QTensor, bias: Option<Tensor>) -> candle_core::Result<Linear> {
        let q = std::sync::Arc::new(q);
        Ok(Linear {
            weight: Weight::Quantized(std::sync::Arc::new(QMatMul::from_arc(q.clone())?), q),
            bias,
        })
    }

    /// Outputs `from..from + n` (a fused projection's part).
    pub fn rows(&self, from: usize, n: usize) -> candle_core::Result<Linear> {
        let bias = self.bias.as_ref().map(|b| b.narrow(0, from, n)).transpose()?;
        let weight = match &self.weight {
            Weight::InOut(w) => Weight::InOut(w.narrow(1, from, n)?.contiguous()?),
            Weight::OutIn(w) => Weight::OutIn(w.narrow(0, from, n)?.contiguous()?),
            // Rows are whole blocks in every ggml type: a byte range.
            Weight::Quantized(_, q) => {
                let (out, fan_in) = q.shape().dims2()?;
                let data = q.data()?;
                let row = data.len() / out.max(1);
                let end = (from + n).min(out);
                let part = data.get(from * row..end * row).unwrap_or_default();
                let storage =
                    QStorage::from_data(std::borrow::Cow::Borrowed(part), &candle_core::Device::Cpu, q.dtype())?;
                return Linear::quantized(QTensor::new(storage, (end.saturating_sub(from), fan_in))?, bias);
            }
        };
        Ok(Linear { weight, bias })
    }
}

/// Elements of a half-precision weight widened at a time (16 MB as f32):
/// small enough for the allocator to reuse one buffer instead of mapping
/// (and the kernel zeroing) fresh pages for every product.
const WIDEN_CHUNK: usize = 1 << 22;

/// Products of at most this many rows (a generation step: one row, or the
/// head's lens rows) split their inner dimension across threads.
#[cfg(not(target_arch = "wasm32"))]
const FEW_ROWS: usize = 4;

/// `x @ w` for a `[in, out]` weight. gemm multiplies a single row on one
/// thread (its gemv), and a few rows barely faster, though such a product only
/// streams the weight from memory: with the inner dimension split in one part
/// per thread and the partial products added, both cores read (measured on
/// GPT-2-small's 49 matrices at one row, in one run: 23.3 -> 15.5 ms per step;
/// `cargo bench --bench inference` shows it per token).
#[cfg(not(target_arch = "wasm32"))]
fn in_out_product(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    use rayon::prelude::*;
    let (rows, fan_in) = x.dims2()?;
    let threads = rayon::current_num_threads().min(fan_in / 256);
    if rows > FEW_ROWS || threads < 2 {
        return x.matmul(w);
    }
    let step = fan_in.div_ceil(threads);
    let starts: Vec<usize> = (0..fan_in).step_by(step).collect();
    let partials = starts
        .par_iter()
        .map(|&from| {
            let n = step.min(fan_in - from);
            x.narrow(1, from, n)?.matmul(&w.narrow(0, from, n)?)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let (first, rest) = partials
        .split_first()
        .ok_or_else(|| candle_core::Error::Msg("empty product".into()))?;
    rest.iter().try_fold(first.clone(), |sum, p| sum + p)
}

/// The browser build has one thread.
#[cfg(target_arch = "wasm32")]
fn in_out_product(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    x.matmul(w)
}

/// Products of at most this many rows with a `[out, in]` weight run as
/// `(w @ xᵀ)ᵀ`.
const FEW_OUT_IN_ROWS: usize = 16;

/// `x @ wᵀ` for a `[out, in]` weight (a tied head, a widened half-precision
/// block). gemm reads a transposed weight slowly for a few rows; `(w @ xᵀ)ᵀ`
/// reads it in its own layout (measured on GPT-2-small's tied head, 50,257 x
/// 768, in one run: 4 rows 17.2 -> 6.9 ms, 13 rows — a step with the logit
/// lens — 19.5 -> 8.0 ms, 32 rows even, 128 rows 43 against 87 ms the other
/// way, so more rows than [`FEW_OUT_IN_ROWS`] keep `x @ wᵀ`).
fn out_in_product(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    if x.dim(0)? > FEW_OUT_IN_ROWS {
        return x.matmul(&w.t()?);
    }
    w.matmul(&x.t()?.contiguous()?)?.t()?.contiguous()
}

impl Module for Linear {
    /// `[.., in]` -> `[.., out]`, the leading dims folded into one product.
    /// Half-precision weights are widened a block of output rows at a time.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let fan_in = x.dim(D::Minus1)?;
        let rows = x.elem_count() / fan_in.max(1);
        let x2 = x.reshape((rows, fan_in))?;
        let y = match &self.weight {
            Weight::InOut(w) => in_out_product(&x2, w)?,
            Weight::Quantized(q, _) => q.forward(&x2.contiguous()?)?,
            Weight::OutIn(w) if w.dtype() == DType::F32 || w.elem_count() <= WIDEN_CHUNK => {
                out_in_product(&x2, &wide(w)?)?
            }
            Weight::OutIn(w) => {
                let fan_out = w.dim(0)?;
                let step = (WIDEN_CHUNK / fan_in.max(1)).max(1);
                let parts = (0..fan_out)
                    .step_by(step)
                    .map(|start| {
                        let block = wide(&w.narrow(0, start, step.min(fan_out - start))?)?;
                        out_in_product(&x2, &block)
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
            Activation::GeluTanh => super::gelu::gelu_tanh(x),
            Activation::Relu => x.relu(),
        }
    }
}

/// `tanh(x / cap) * cap` (Gemma 2's logit soft-capping).
pub fn soft_cap(x: &Tensor, cap: f64) -> candle_core::Result<Tensor> {
    (x / cap)?.tanh()? * cap
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn few_rows_split_across_threads_give_the_whole_product() {
        let w = Tensor::randn(0f32, 1.0, (1000, 300), &Device::Cpu).unwrap();
        for rows in [1, 3, FEW_ROWS, FEW_ROWS + 1] {
            let x = Tensor::randn(0f32, 1.0, (rows, 1000), &Device::Cpu).unwrap();
            let y = Linear::from_in_out(w.clone(), None).unwrap().forward(&x).unwrap();
            assert_eq!(y.dims(), [rows, 300]);
            assert!(max_abs_diff(&y, &x.matmul(&w).unwrap()) < 1e-3, "{rows} rows");
        }
    }

    #[test]
    fn a_tied_head_gives_the_product_either_side_of_few_out_in_rows() {
        let table = Tensor::randn(0f32, 1.0, (500, 64), &Device::Cpu).unwrap();
        for rows in [1, 13, FEW_OUT_IN_ROWS, FEW_OUT_IN_ROWS + 1] {
            let x = Tensor::randn(0f32, 1.0, (1, rows, 64), &Device::Cpu).unwrap();
            let y = Linear::tied(table.clone()).forward(&x).unwrap();
            assert_eq!(y.dims(), [1, rows, 500]);
            let expected = x.matmul(&table.t().unwrap().unsqueeze(0).unwrap()).unwrap();
            assert!(max_abs_diff(&y, &expected) < 1e-4, "{rows} rows");
        }
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
        assert!(max_abs_diff(&y, &expected) < 1e-3);
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar::<f32>().unwrap()
    }
}
