//! GPT-2 with taps. Conv1D weights are stored `[in, out]`; published files name
//! tensors with or without a `transformer.` prefix.

use candle_core::{D, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

/// GPT-2's `Conv1D`: `x @ W + b` with `W` stored `[in, out]`. For inference
/// it is kept as `[out, in]` (transposed once at load): candle's CPU matmul
/// runs about 20% faster on that layout, the one `candle_nn::Linear` uses.
/// For training it stays the trainable variable itself.
struct Conv1D {
    weight: Weight,
    bias: Tensor,
}

enum Weight {
    /// `[in, out]` as stored (the training variable).
    InOut(Tensor),
    /// `[out, in]`, contiguous.
    OutIn(Tensor),
}

impl Conv1D {
    fn load(vb: VarBuilder, fan_in: usize, fan_out: usize, trainable: bool) -> candle_core::Result<Self> {
        let stored = vb.get((fan_in, fan_out), "weight")?;
        Ok(Conv1D {
            weight: if trainable {
                Weight::InOut(stored)
            } else {
                Weight::OutIn(stored.t()?.contiguous()?)
            },
            bias: vb.get(fan_out, "bias")?,
        })
    }

    /// `[.., in]` -> `[.., out]` (leading dims flattened into one matmul).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (rows, fan_in) = (x.elem_count() / x.dim(D::Minus1)?, x.dim(D::Minus1)?);
        let mut shape = x.dims().to_vec();
        let (fan_out, w) = match &self.weight {
            Weight::InOut(w) => (w.dim(1)?, w.clone()),
            Weight::OutIn(w) => (w.dim(0)?, w.t()?),
        };
        if let Some(last) = shape.last_mut() {
            *last = fan_out;
        }
        x.reshape((rows, fan_in))?
            .matmul(&w)?
            .broadcast_add(&self.bias)?
            .reshape(shape)
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
}

pub struct Gpt2 {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    heads: usize,
    hidden: usize,
    context: usize,
    vocab: usize,
    eps: f64,
    /// Use ops that candle can backpropagate through (slower): for training.
    differentiable: bool,
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    Ok(LayerNorm::new(vb.get(size, "weight")?, vb.get(size, "bias")?, eps))
}

impl Gpt2 {
    pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Gpt2, InferenceError> {
        Gpt2::load_with(cfg, vb, what, false)
    }

    /// For training: the weights stay the `VarBuilder`'s variables and the ops
    /// are differentiable.
    pub fn load_trainable(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Gpt2, InferenceError> {
        let mut model = Gpt2::load_with(cfg, vb, what, true)?;
        model.differentiable = true;
        Ok(model)
    }

    fn load_with(cfg: &ModelConfig, vb: VarBuilder, what: &str, trainable: bool) -> Result<Gpt2, InferenceError> {
        let need = |v: Option<u64>, key: &str| super::need(v, key, what);
        let hidden = need(cfg.hidden_size, "n_embd")?;
        let heads = need(cfg.num_heads, "n_head")?;
        let layers = need(cfg.num_layers, "n_layer")?;
        let vocab = need(cfg.vocab_size, "vocab_size")?;
        let context = need(cfg.max_positions, "n_positions")?;
        let inner = cfg.intermediate_size.map_or(4 * hidden, |v| v as usize);
        let eps = cfg
            .raw_field("layer_norm_epsilon")
            .and_then(|v| v.as_f64())
            .unwrap_or(1e-5);
        if heads == 0 || hidden % heads != 0 {
            return Err(InferenceError::Model {
                what: what.to_string(),
                detail: format!("n_embd {hidden} is not divisible by n_head {heads}"),
            });
        }
        let vb = if vb.contains_tensor("transformer.wte.weight") {
            vb.pp("transformer")
        } else {
            vb
        };
        let blocks = (0..layers)
            .map(|i| {
                let b = vb.pp(format!("h.{i}"));
                Ok(Block {
                    ln_1: layer_norm(b.pp("ln_1"), hidden, eps)?,
                    c_attn: Conv1D::load(b.pp("attn.c_attn"), hidden, 3 * hidden, trainable)?,
                    attn_proj: Conv1D::load(b.pp("attn.c_proj"), hidden, hidden, trainable)?,
                    ln_2: layer_norm(b.pp("ln_2"), hidden, eps)?,
                    c_fc: Conv1D::load(b.pp("mlp.c_fc"), hidden, inner, trainable)?,
                    mlp_proj: Conv1D::load(b.pp("mlp.c_proj"), inner, hidden, trainable)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Gpt2 {
            wte: Embedding::new(vb.get((vocab, hidden), "wte.weight")?, hidden),
            wpe: Embedding::new(vb.get((context, hidden), "wpe.weight")?, hidden),
            ln_f: layer_norm(vb.pp("ln_f"), hidden, eps)?,
            blocks,
            heads,
            hidden,
            context,
            vocab,
            eps,
            differentiable: false,
        })
    }

    /// Longest sequence the position embeddings cover.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Switches to ops with gradients (candle's fused layer-norm and softmax
    /// kernels have none), for training.
    pub fn set_differentiable(&mut self, on: bool) {
        self.differentiable = on;
    }

    fn norm(&self, ln: &LayerNorm, x: &Tensor) -> candle_core::Result<Tensor> {
        self.norm_with(ln, x, self.differentiable)
    }

    fn norm_with(&self, ln: &LayerNorm, x: &Tensor, differentiable: bool) -> candle_core::Result<Tensor> {
        match (differentiable, ln.bias()) {
            (true, Some(bias)) => candle_nn::ops::layer_norm_slow(x, ln.weight(), bias, self.eps as f32),
            _ => ln.forward(x),
        }
    }

    fn softmax(&self, x: &Tensor, differentiable: bool) -> candle_core::Result<Tensor> {
        if differentiable {
            candle_nn::ops::softmax(x, D::Minus1)
        } else {
            candle_nn::ops::softmax_last_dim(x)
        }
    }

    /// Transformer blocks (hidden states are one more).
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    pub fn run(&self, tokens: &[u32], sink: &mut dyn FnMut(Tap, Tensor) -> bool) -> Result<(), InferenceError> {
        let mut emit = super::emitter(sink);
        super::check_tokens(tokens, self.vocab, self.context)?;
        let ids = Tensor::new(tokens, self.wte.embeddings().device())?.unsqueeze(0)?;
        // One sequence: the taps drop the batch dimension.
        self.forward(&ids, &mut |tap, t| emit(tap, t.squeeze(0)?))
    }

    /// `[B, T, vocab]` logits of a batch of `[B, T]` token ids, no taps (training).
    pub fn batch_logits(&self, ids: &Tensor) -> Result<Tensor, InferenceError> {
        let mut logits = None;
        self.forward(ids, &mut |tap, t| {
            if tap == Tap::Logits {
                logits = Some(t);
            }
            Ok(())
        })?;
        logits.ok_or_else(|| InferenceError::Model {
            what: "gpt2".into(),
            detail: "the forward pass produced no logits".into(),
        })
    }

    /// Residual-stream state(s) `[.., hidden]` through the final norm and the tied
    /// head: the logit lens (the last hidden state is already normed: pass `normed`).
    pub fn lens(&self, hidden: &Tensor, normed: bool) -> Result<Tensor, InferenceError> {
        let x = if normed {
            hidden.clone()
        } else {
            self.norm(&self.ln_f, hidden)?
        };
        Ok(x.broadcast_matmul(&self.wte.embeddings().t()?)?)
    }

    /// Gradient x input saliency: how much each token's embedding moves the
    /// logit of `target` (default: the predicted next token) at the last
    /// position — the gradient of that logit with respect to each token
    /// embedding (candle backprop), dotted with the embedding. Returns the
    /// target and one score per token.
    pub fn saliency(&self, tokens: &[u32], target: Option<u32>) -> Result<(u32, Vec<f32>), InferenceError> {
        super::check_tokens(tokens, self.vocab, self.context)?;
        let ids = Tensor::new(tokens, self.wte.embeddings().device())?.unsqueeze(0)?;
        let embedded = self.wte.forward(&ids)?;
        let input = candle_core::Var::from_tensor(&embedded)?;
        let mut logits = None;
        self.forward_from(
            input.as_tensor(),
            &mut |tap, t| {
                if tap == Tap::Logits {
                    logits = Some(t);
                }
                Ok(())
            },
            true,
        )?;
        let bad = |detail: &str| InferenceError::Model {
            what: "saliency".into(),
            detail: detail.into(),
        };
        let logits = logits.ok_or_else(|| bad("no logits"))?;
        let last = logits.get(0)?.get(tokens.len() - 1)?;
        let target = match target {
            Some(t) => t,
            None => last.argmax(0)?.to_scalar::<u32>()?,
        };
        let grads = last.get(target as usize)?.backward()?;
        let grad = grads
            .get(input.as_tensor())
            .ok_or_else(|| bad("no gradient reached the embeddings"))?;
        let scores = (grad * &embedded)?.sum(D::Minus1)?.squeeze(0)?.to_vec1::<f32>()?;
        Ok((target, scores))
    }

    /// The forward over `[B, T]` ids; taps carry the batch dimension first.
    fn forward(
        &self,
        ids: &Tensor,
        emit: &mut dyn FnMut(Tap, Tensor) -> Result<(), InferenceError>,
    ) -> Result<(), InferenceError> {
        self.forward_from(&self.wte.forward(ids)?, emit, self.differentiable)
    }

    /// The forward from token embeddings `[B, T, hidden]` (positions added here).
    fn forward_from(
        &self,
        embedded: &Tensor,
        emit: &mut dyn FnMut(Tap, Tensor) -> Result<(), InferenceError>,
        differentiable: bool,
    ) -> Result<(), InferenceError> {
        let (b, t, _) = embedded.dims3()?;
        let device = embedded.device();
        let positions = Tensor::arange(0u32, t as u32, device)?;
        let mut xs = embedded.broadcast_add(&self.wpe.forward(&positions)?)?;
        let mask = causal_mask(t, device)?;
        let head_dim = self.hidden / self.heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for (i, block) in self.blocks.iter().enumerate() {
            emit(Tap::Hidden(i), xs.clone())?;
            let residual = &xs;
            let qkv = block
                .c_attn
                .forward(&self.norm_with(&block.ln_1, residual, differentiable)?)?;
            // [B, T, 3H] -> three [B, heads, T, head_dim]
            let split = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(D::Minus1, i * self.hidden, self.hidden)?
                    .reshape((b, t, self.heads, head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let probs = self.softmax(&scores, differentiable)?;
            let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, self.hidden))?;
            emit(Tap::Attention(i), probs)?;
            let xs_attn = (residual + block.attn_proj.forward(&context)?)?;
            let m = block
                .c_fc
                .forward(&self.norm_with(&block.ln_2, &xs_attn, differentiable)?)?
                .gelu()?;
            emit(Tap::Mlp(i), m.clone())?;
            xs = (&xs_attn + block.mlp_proj.forward(&m)?)?;
        }
        let last = self.norm_with(&self.ln_f, &xs, differentiable)?;
        // The LM head is tied to the token embeddings.
        let logits = self.lens(&last, true)?;
        emit(Tap::Hidden(self.blocks.len()), last)?;
        emit(Tap::Logits, logits)?;
        Ok(())
    }
}

/// `[T, T]` additive mask: 0 on and below the diagonal, -inf above.
pub(super) fn causal_mask(t: usize, device: &candle_core::Device) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(mask, (t, t), device)
}

/// Fresh GPT-2 weights for `config` in `varmap` (for training and benchmarks):
/// N(0, 0.02) matrices, zero biases, unit LayerNorm gains, GPT-2's names.
pub fn init_weights(
    varmap: &candle_nn::VarMap,
    config: &ModelConfig,
    device: &candle_core::Device,
) -> Result<(), InferenceError> {
    let rows = crate::arch::synthesize(config, "gpt2").map_err(|e| InferenceError::Model {
        what: "gpt2".into(),
        detail: e.to_string(),
    })?;
    for row in rows {
        if row.name.ends_with(".attn.bias") && row.shape.len() == 4 {
            continue; // the causal-mask buffer, not a parameter
        }
        let shape: Vec<usize> = row.shape.iter().map(|&d| d as usize).collect();
        let is_norm = row.name.contains("ln_");
        let init = match (is_norm, row.name.ends_with(".weight")) {
            (true, true) => candle_nn::Init::Const(1.0),
            (_, false) => candle_nn::Init::Const(0.0),
            (false, true) => candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        };
        varmap.get(shape, &row.name, init, candle_core::DType::F32, device)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gradient x input equals the finite-difference derivative of the target
    /// logit when one token's embedding is scaled by (1 + h).
    #[test]
    fn saliency_matches_finite_differences() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inference/gpt2-tiny");
        let model = match crate::inference::Model::load(&dir).unwrap() {
            crate::inference::Model::Gpt2(m) => m,
            _ => unreachable!(),
        };
        let tokens = [5u32, 17, 3, 42];
        let (target, scores) = model.saliency(&tokens, None).unwrap();
        let ids = Tensor::new(&tokens[..], model.wte.embeddings().device())
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let embedded = model.wte.forward(&ids).unwrap();
        let logit = |i: usize, h: f64| -> f64 {
            let mut scale = vec![1.0f32; tokens.len()];
            scale[i] += h as f32;
            let s = Tensor::from_vec(scale, (1, tokens.len(), 1), embedded.device()).unwrap();
            let mut out = None;
            model
                .forward_from(
                    &embedded.broadcast_mul(&s).unwrap(),
                    &mut |tap, t| {
                        if tap == Tap::Logits {
                            out = Some(t);
                        }
                        Ok(())
                    },
                    false,
                )
                .unwrap();
            let l = out.unwrap().get(0).unwrap().get(tokens.len() - 1).unwrap();
            l.get(target as usize).unwrap().to_scalar::<f32>().unwrap() as f64
        };
        for (i, &s) in scores.iter().enumerate() {
            let fd = (logit(i, 1e-2) - logit(i, -1e-2)) / 2e-2;
            assert!((fd - s as f64).abs() < 1e-3 + 1e-2 * fd.abs(), "token {i}: {s} vs {fd}");
        }
    }
}
