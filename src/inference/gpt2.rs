//! GPT-2 with taps: learned positions, pre-LN blocks, fused `c_attn`, tied
//! head. Its `Conv1D` weights are stored `[in, out]`; published files name
//! tensors with or without a `transformer.` prefix.

use super::vb::VarBuilder;
use candle_core::{Module, Tensor};
use serde::Deserialize;

use super::attention::AttentionShape;
use super::family::{Emit, Pass, Transformer, bad_config, family_config};
use super::layers::{Activation, Embedding, LayerNorm, Linear, Ops};
use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

/// GPT-2's `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_positions: usize,
    /// `null` means 4 x `n_embd`.
    pub n_inner: Option<usize>,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_activation")]
    pub activation_function: String,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_activation() -> String {
    "gelu_new".into()
}

/// GPT-2's `Conv1D` (`[in, out]`) as a [`Linear`]: that is the layout it
/// multiplies fastest in, and for training it stays the trainable variable.
fn conv1d(vb: VarBuilder, fan_in: usize, fan_out: usize) -> candle_core::Result<Linear> {
    let stored = vb.get((fan_in, fan_out), "weight")?;
    let bias = super::layers::vector(&vb, fan_out, "bias")?;
    Linear::from_in_out(stored, Some(bias))
}

struct Attention {
    c_attn: Linear,
    c_proj: Linear,
    shape: AttentionShape,
    hidden: usize,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder) -> candle_core::Result<Attention> {
        let h = cfg.n_embd;
        Ok(Attention {
            c_attn: conv1d(vb.pp("c_attn"), h, 3 * h)?,
            c_proj: conv1d(vb.pp("c_proj"), h, h)?,
            shape: AttentionShape::new(cfg.n_head, cfg.n_head, h / cfg.n_head),
            hidden: h,
        })
    }

    fn forward(&self, x: &Tensor, block: usize, pass: &mut Pass) -> candle_core::Result<(Tensor, Tensor)> {
        let qkv = self.c_attn.forward(x)?;
        let part = |i: usize| qkv.narrow(2, i * self.hidden, self.hidden);
        let heads = self.shape.heads;
        let (q, k, v) = (
            self.shape.split(&part(0)?, heads)?,
            self.shape.split(&part(1)?, heads)?,
            self.shape.split(&part(2)?, heads)?,
        );
        let (probs, context) = self.shape.attend(&q, k, v, block, pass)?;
        Ok((probs, self.c_proj.forward(&context)?))
    }
}

struct Mlp {
    c_fc: Linear,
    c_proj: Linear,
    act: Activation,
}

struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(cfg: &Config, vb: VarBuilder, act: Activation) -> candle_core::Result<Block> {
        let (h, inner) = (cfg.n_embd, cfg.n_inner.unwrap_or(4 * cfg.n_embd));
        Ok(Block {
            ln_1: LayerNorm::load(vb.pp("ln_1"), h, cfg.layer_norm_epsilon)?,
            attn: Attention::new(cfg, vb.pp("attn"))?,
            ln_2: LayerNorm::load(vb.pp("ln_2"), h, cfg.layer_norm_epsilon)?,
            mlp: Mlp {
                c_fc: conv1d(vb.pp("mlp.c_fc"), h, inner)?,
                c_proj: conv1d(vb.pp("mlp.c_proj"), inner, h)?,
                act,
            },
        })
    }

    fn forward(&self, xs: &Tensor, i: usize, pass: &mut Pass, emit: &mut Emit) -> Result<Tensor, InferenceError> {
        let residual = xs;
        let (probs, xs) = self.attn.forward(&self.ln_1.forward(residual, pass.ops)?, i, pass)?;
        emit(Tap::Attention(i), probs)?;
        let residual = (residual + xs)?;
        let m = self
            .mlp
            .act
            .apply(&self.mlp.c_fc.forward(&self.ln_2.forward(&residual, pass.ops)?)?)?;
        emit(Tap::Mlp(i), m.clone())?;
        Ok((residual + self.mlp.c_proj.forward(&m)?)?)
    }
}

pub struct Gpt2 {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    context: usize,
}

pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Box<dyn Transformer>, InferenceError> {
    Ok(Box::new(Gpt2::new(cfg, vb, what)?))
}

/// GPT-2 for training: its f32 weights are the `VarBuilder`'s variables as
/// they are (no copies), so the optimizer's updates are what the next pass uses.
pub fn load_trainable(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<super::Model, InferenceError> {
    Ok(super::Model::from_transformer(Box::new(Gpt2::new(cfg, vb, what)?)))
}

impl Gpt2 {
    fn new(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Gpt2, InferenceError> {
        let c: Config = family_config(cfg, what)?;
        if c.n_head == 0 || !c.n_embd.is_multiple_of(c.n_head) {
            return Err(bad_config(
                what,
                format!("`n_embd` ({}) is not divisible by `n_head` ({})", c.n_embd, c.n_head),
            ));
        }
        let act = Activation::from_name(&c.activation_function).map_err(|e| bad_config(what, e))?;
        let vb = if vb.contains_tensor("transformer.wte.weight") {
            vb.pp("transformer")
        } else {
            vb
        };
        let blocks = (0..c.n_layer)
            .map(|i| Block::new(&c, vb.pp(format!("h.{i}")), act))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Gpt2 {
            wte: Embedding::load(vb.clone(), c.vocab_size, c.n_embd, "wte.weight")?,
            wpe: Embedding::load(vb.clone(), c.n_positions, c.n_embd, "wpe.weight")?,
            ln_f: LayerNorm::load(vb.pp("ln_f"), c.n_embd, c.layer_norm_epsilon)?,
            blocks,
            context: c.n_positions,
        })
    }
}

impl Transformer for Gpt2 {
    fn blocks(&self) -> usize {
        self.blocks.len()
    }

    fn context(&self) -> usize {
        self.context
    }

    fn vocab(&self) -> usize {
        self.wte.vocab()
    }

    fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.wte.forward(ids)
    }

    fn forward(&self, embeds: &Tensor, pass: &mut Pass, emit: &mut Emit) -> Result<(), InferenceError> {
        let t = embeds.dim(1)?;
        let positions = Tensor::arange(pass.offset as u32, (pass.offset + t) as u32, embeds.device())?.unsqueeze(0)?;
        let mut xs = embeds.broadcast_add(&self.wpe.forward(&positions)?)?;
        for (i, block) in self.blocks.iter().enumerate() {
            emit(Tap::Hidden(i), xs.clone())?;
            xs = block.forward(&xs, i, pass, emit)?;
        }
        emit(Tap::Hidden(self.blocks.len()), self.ln_f.forward(&xs, pass.ops)?)?;
        Ok(())
    }

    fn final_norm(&self, x: &Tensor, ops: Ops) -> Option<candle_core::Result<Tensor>> {
        Some(self.ln_f.forward(x, ops))
    }

    /// The LM head is tied to the token embeddings.
    fn head(&self, normed: &Tensor) -> Option<candle_core::Result<Tensor>> {
        Some(self.wte.as_head().forward(normed))
    }
}
