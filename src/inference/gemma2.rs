//! Gemma 2: embeddings scaled by sqrt(hidden), `(1 + w)` RMSNorms before and
//! after both attention and the MLP, a GELU-tanh gated MLP, scores scaled by
//! `query_pre_attn_scalar^-1/2` and soft-capped (`attn_logit_softcapping`),
//! soft-capped final logits, and sliding-window blocks alternating with
//! global ones (`layer_types`; without it, even blocks slide).

use super::vb::VarBuilder;
use candle_core::{Module, Tensor};
use serde::Deserialize;

use super::attention::{AttentionShape, block_windows};
use super::family::{Emit, Pass, Transformer, bad_config, check_heads, family_config};
use super::layers::{Activation, Embedding, Linear, Ops, RmsNorm, soft_cap};
use super::llama::{Attention, Mlp};
use super::rope::{RopeKeys, RopeTables, Rotary};
use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_context")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_head_dim_f")]
    pub query_pre_attn_scalar: f64,
    pub sliding_window: Option<usize>,
    #[serde(default = "default_final_cap")]
    pub final_logit_softcapping: Option<f64>,
    #[serde(default = "default_attn_cap")]
    pub attn_logit_softcapping: Option<f64>,
    /// `hidden_activation` (older files: `hidden_act`).
    #[serde(alias = "hidden_act", default = "default_act")]
    pub hidden_activation: String,
    pub layer_types: Option<Vec<String>>,
    #[serde(default = "default_tied")]
    pub tie_word_embeddings: bool,
    #[serde(flatten)]
    pub rope: RopeKeys,
}

fn default_head_dim() -> usize {
    256
}
fn default_head_dim_f() -> f64 {
    256.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_context() -> usize {
    8192
}
fn default_final_cap() -> Option<f64> {
    Some(30.0)
}
fn default_attn_cap() -> Option<f64> {
    Some(50.0)
}
fn default_act() -> String {
    "gelu_pytorch_tanh".into()
}
fn default_tied() -> bool {
    true
}

struct Block {
    input_layernorm: RmsNorm,
    attn: Attention,
    post_attention_layernorm: RmsNorm,
    pre_feedforward_layernorm: RmsNorm,
    mlp: Mlp,
    post_feedforward_layernorm: RmsNorm,
}

impl Block {
    fn new(c: &Config, vb: VarBuilder, shape: AttentionShape, act: Activation) -> candle_core::Result<Block> {
        let (h, eps) = (c.hidden_size, c.rms_norm_eps);
        let norm = |name: &str| RmsNorm::load_plus_one(vb.pp(name), h, eps);
        Ok(Block {
            input_layernorm: norm("input_layernorm")?,
            attn: Attention::new(vb.pp("self_attn"), h, shape, c.attention_bias, c.attention_bias)?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm")?,
            mlp: Mlp::new(vb.pp("mlp"), h, c.intermediate_size, act, false)?,
            post_feedforward_layernorm: norm("post_feedforward_layernorm")?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        rope: &RopeTables,
        i: usize,
        pass: &mut Pass,
        emit: &mut Emit,
    ) -> Result<Tensor, InferenceError> {
        let ops = pass.ops;
        let residual = xs;
        let (probs, xs) = self
            .attn
            .forward(&self.input_layernorm.forward(residual, ops)?, rope, i, pass)?;
        emit(Tap::Attention(i), probs)?;
        let residual = (residual + self.post_attention_layernorm.forward(&xs, ops)?)?;
        let gated = self
            .mlp
            .gated(&self.pre_feedforward_layernorm.forward(&residual, ops)?)?;
        emit(Tap::Mlp(i), gated.clone())?;
        let xs = self
            .post_feedforward_layernorm
            .forward(&self.mlp.down.forward(&gated)?, ops)?;
        Ok((residual + xs)?)
    }
}

pub struct Gemma2 {
    embed_tokens: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: Rotary,
    normalizer: f64,
    final_cap: Option<f64>,
    context: usize,
}

pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Box<dyn Transformer>, InferenceError> {
    let c: Config = family_config(cfg, what)?;
    let heads = c.num_attention_heads;
    let kv_heads = c.num_key_value_heads.unwrap_or(heads);
    let head_dim = check_heads(what, c.hidden_size, heads, kv_heads, Some(c.head_dim))?;
    if c.query_pre_attn_scalar <= 0.0 {
        return Err(bad_config(what, "`query_pre_attn_scalar` must be positive"));
    }
    let rotary = Rotary::new(&c.rope, head_dim, 10_000.0, 1.0).map_err(|e| bad_config(what, e))?;
    let act = Activation::from_name(&c.hidden_activation).map_err(|e| bad_config(what, e))?;
    let alternating: Vec<String> = (0..c.num_hidden_layers)
        .map(|i| {
            if i % 2 == 0 {
                "sliding_attention"
            } else {
                "full_attention"
            }
            .to_string()
        })
        .collect();
    let types = c.layer_types.clone().unwrap_or(alternating);
    let window = c.sliding_window.or(Some(4096));
    let windows = block_windows(Some(&types), window, c.num_hidden_layers).map_err(|e| bad_config(what, e))?;
    let blocks = windows
        .into_iter()
        .enumerate()
        .map(|(i, window)| {
            let shape = AttentionShape {
                scale: 1.0 / c.query_pre_attn_scalar.sqrt(),
                soft_cap: c.attn_logit_softcapping,
                window,
                ..AttentionShape::new(heads, kv_heads, head_dim)
            };
            Block::new(&c, vb.pp(format!("model.layers.{i}")), shape, act)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let m = vb.pp("model");
    let embed_tokens = Embedding::load(m.clone(), c.vocab_size, c.hidden_size, "embed_tokens.weight")?;
    let lm_head = if !c.tie_word_embeddings && vb.contains_tensor("lm_head.weight") {
        Linear::load(vb.pp("lm_head"), c.hidden_size, c.vocab_size, false)?
    } else {
        embed_tokens.as_head()
    };
    Ok(Box::new(Gemma2 {
        embed_tokens,
        blocks,
        norm: RmsNorm::load_plus_one(m.pp("norm"), c.hidden_size, c.rms_norm_eps)?,
        lm_head,
        rotary,
        normalizer: (c.hidden_size as f64).sqrt(),
        final_cap: c.final_logit_softcapping,
        context: c.max_position_embeddings,
    }))
}

impl Gemma2 {
    fn capped_head(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let logits = self.lm_head.forward(x)?;
        match self.final_cap {
            Some(cap) => soft_cap(&logits, cap),
            None => Ok(logits),
        }
    }
}

impl Transformer for Gemma2 {
    fn blocks(&self) -> usize {
        self.blocks.len()
    }

    fn context(&self) -> usize {
        self.context
    }

    fn vocab(&self) -> usize {
        self.embed_tokens.vocab()
    }

    fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.embed_tokens.forward(ids)
    }

    fn forward(&self, embeds: &Tensor, pass: &mut Pass, emit: &mut Emit) -> Result<(), InferenceError> {
        let rope = self.rotary.at(pass.offset, embeds.dim(1)?, embeds.device())?;
        // transformers rounds the normalizer to the activations' dtype (f32 here).
        let mut xs = (embeds * (self.normalizer as f32) as f64)?;
        for (i, block) in self.blocks.iter().enumerate() {
            emit(Tap::Hidden(i), xs.clone())?;
            xs = block.forward(&xs, &rope, i, pass, emit)?;
        }
        emit(Tap::Hidden(self.blocks.len()), self.norm.forward(&xs, pass.ops)?)?;
        Ok(())
    }

    fn final_norm(&self, x: &Tensor, ops: Ops) -> Option<candle_core::Result<Tensor>> {
        Some(self.norm.forward(x, ops))
    }

    /// The head, soft-capped (`final_logit_softcapping`).
    fn head(&self, normed: &Tensor) -> Option<candle_core::Result<Tensor>> {
        Some(self.capped_head(normed))
    }
}
