//! Llama-style decoders with taps: Llama (incl. Llama 3.1/3.2's `llama3` RoPE
//! scaling), Mistral (sliding window), Qwen2 (q/k/v biases). Grouped-query
//! attention, SwiGLU, RMSNorm, tied or untied head. The pieces here
//! (`Attention`, `Mlp`, `Block`, `Decoder`) also build Qwen3, Phi-3 and
//! Mixtral, which differ in a norm, a fused weight or the feed-forward.

use super::vb::VarBuilder;
use candle_core::{Module, Tensor};
use serde::Deserialize;

use super::attention::{AttentionShape, block_windows};
use super::family::{Emit, Pass, Transformer, bad_config, check_heads, family_config};
use super::layers::{Activation, Embedding, Linear, Ops, RmsNorm};
use super::rope::{RopeKeys, RopeTables, Rotary};
use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

/// The `config.json` keys of Llama, Mistral and Qwen2 (and what Qwen3, Phi-3
/// and Mixtral share with them).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Defaults to `num_attention_heads` (no grouping).
    pub num_key_value_heads: Option<usize>,
    /// Defaults to `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// No limit when absent.
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    pub sliding_window: Option<usize>,
    /// Qwen2/Qwen3: the window applies only when this is set.
    #[serde(default)]
    pub use_sliding_window: bool,
    pub layer_types: Option<Vec<String>>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(flatten)]
    pub rope: RopeKeys,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_act() -> String {
    "silu".into()
}

/// What the blocks are built from once a config is checked.
pub(super) struct Spec {
    pub hidden: usize,
    pub inner: usize,
    pub blocks: usize,
    pub vocab: usize,
    pub eps: f64,
    pub shapes: Vec<AttentionShape>,
    pub rotary: Rotary,
    pub act: Activation,
    pub context: usize,
    pub tied: bool,
}

impl Config {
    /// Checks the config and derives the per-block attention shapes.
    pub(super) fn spec(&self, what: &str) -> Result<Spec, InferenceError> {
        let heads = self.num_attention_heads;
        let kv_heads = self.num_key_value_heads.unwrap_or(heads);
        let head_dim = check_heads(what, self.hidden_size, heads, kv_heads, self.head_dim)?;
        let rotary = Rotary::new(&self.rope, head_dim, 10_000.0, 1.0).map_err(|e| bad_config(what, e))?;
        let window = match self.model_type.as_str() {
            "qwen2" | "qwen3" => self.sliding_window.filter(|_| self.use_sliding_window),
            "llama" => None,
            _ => self.sliding_window,
        };
        let layer_types = self.layer_types.as_deref().filter(|_| window.is_some());
        let windows = block_windows(layer_types, window, self.num_hidden_layers).map_err(|e| bad_config(what, e))?;
        let shapes = windows
            .into_iter()
            .map(|window| AttentionShape {
                window,
                ..AttentionShape::new(heads, kv_heads, head_dim)
            })
            .collect();
        Ok(Spec {
            hidden: self.hidden_size,
            inner: self.intermediate_size,
            blocks: self.num_hidden_layers,
            vocab: self.vocab_size,
            eps: self.rms_norm_eps,
            shapes,
            rotary,
            act: Activation::from_name(&self.hidden_act).map_err(|e| bad_config(what, e))?,
            context: self.max_position_embeddings.unwrap_or(usize::MAX),
            tied: self.tie_word_embeddings,
        })
    }
}

/// Grouped-query attention with RoPE; Qwen3 adds per-head q/k RMSNorms.
pub(super) struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub shape: AttentionShape,
}

impl Attention {
    /// `q_proj` / `k_proj` / `v_proj` / `o_proj`.
    pub fn new(
        vb: VarBuilder,
        hidden: usize,
        shape: AttentionShape,
        qkv_bias: bool,
        o_bias: bool,
    ) -> candle_core::Result<Attention> {
        let (q, kv) = (shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim);
        Ok(Attention {
            q: Linear::load(vb.pp("q_proj"), hidden, q, qkv_bias)?,
            k: Linear::load(vb.pp("k_proj"), hidden, kv, qkv_bias)?,
            v: Linear::load(vb.pp("v_proj"), hidden, kv, qkv_bias)?,
            o: Linear::load(vb.pp("o_proj"), q, hidden, o_bias)?,
            q_norm: None,
            k_norm: None,
            shape,
        })
    }

    /// Returns the attention probabilities and the block's attention output.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        block: usize,
        pass: &mut Pass,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let s = &self.shape;
        let mut q = s.split(&self.q.forward(x)?, s.heads)?;
        let mut k = s.split(&self.k.forward(x)?, s.kv_heads)?;
        let v = s.split(&self.v.forward(x)?, s.kv_heads)?;
        if let Some(norm) = &self.q_norm {
            q = norm.forward(&q, pass.ops)?;
        }
        if let Some(norm) = &self.k_norm {
            k = norm.forward(&k, pass.ops)?;
        }
        let q = rope.apply(&q, pass.ops)?;
        let k = rope.apply(&k, pass.ops)?;
        let (probs, context) = s.attend(&q, k, v, block, pass)?;
        Ok((probs, self.o.forward(&context)?))
    }
}

/// What follows attention in a block: a dense MLP or a mixture of experts.
pub(super) trait FeedForward: Send + Sync {
    /// Block `block`'s feed-forward of `x`, reporting its taps.
    fn forward(&self, x: &Tensor, block: usize, ops: Ops, emit: &mut Emit) -> Result<Tensor, InferenceError>;
}

/// SwiGLU: `down(act(gate(x)) * up(x))`; the product is the `mlp.{i}` tap.
pub(super) struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    pub act: Activation,
}

impl Mlp {
    pub fn new(vb: VarBuilder, hidden: usize, inner: usize, act: Activation, bias: bool) -> candle_core::Result<Mlp> {
        Ok(Mlp {
            gate: Linear::load(vb.pp("gate_proj"), hidden, inner, bias)?,
            up: Linear::load(vb.pp("up_proj"), hidden, inner, bias)?,
            down: Linear::load(vb.pp("down_proj"), inner, hidden, bias)?,
            act,
        })
    }

    /// `act(gate(x)) * up(x)`, the input of `down`.
    pub fn gated(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.act.apply(&self.gate.forward(x)?)? * self.up.forward(x)?
    }
}

impl FeedForward for Mlp {
    fn forward(&self, x: &Tensor, block: usize, _ops: Ops, emit: &mut Emit) -> Result<Tensor, InferenceError> {
        let gated = self.gated(x)?;
        emit(Tap::Mlp(block), gated.clone())?;
        Ok(self.down.forward(&gated)?)
    }
}

/// Pre-norm block: `x + attn(norm(x))`, then `x + ffn(norm(x))`.
pub(super) struct Block {
    pub input_layernorm: RmsNorm,
    pub attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub ffn: Box<dyn FeedForward>,
}

impl Block {
    fn forward(
        &self,
        xs: &Tensor,
        rope: &RopeTables,
        i: usize,
        pass: &mut Pass,
        emit: &mut Emit,
    ) -> Result<Tensor, InferenceError> {
        let residual = xs;
        let (probs, xs) = self
            .attn
            .forward(&self.input_layernorm.forward(residual, pass.ops)?, rope, i, pass)?;
        emit(Tap::Attention(i), probs)?;
        let residual = (residual + xs)?;
        let xs = self.ffn.forward(
            &self.post_attention_layernorm.forward(&residual, pass.ops)?,
            i,
            pass.ops,
            emit,
        )?;
        Ok((residual + xs)?)
    }
}

/// Embeddings, blocks, final norm and head: the whole decoder.
pub(super) struct Decoder {
    pub embed_tokens: Embedding,
    pub blocks: Vec<Block>,
    pub norm: RmsNorm,
    pub lm_head: Linear,
    pub rotary: Rotary,
    pub context: usize,
}

impl Decoder {
    /// `model.embed_tokens`, `model.norm` and `lm_head` (the embeddings when
    /// tied or when no `lm_head.weight` is stored) around `blocks`.
    pub fn new(vb: VarBuilder, spec: Spec, blocks: Vec<Block>) -> candle_core::Result<Decoder> {
        let m = vb.pp("model");
        let embed_tokens = Embedding::load(m.clone(), spec.vocab, spec.hidden, "embed_tokens.weight")?;
        let lm_head = if !spec.tied && vb.contains_tensor("lm_head.weight") {
            Linear::load(vb.pp("lm_head"), spec.hidden, spec.vocab, false)?
        } else {
            embed_tokens.as_head()
        };
        Ok(Decoder {
            embed_tokens,
            norm: RmsNorm::load(m.pp("norm"), spec.hidden, spec.eps)?,
            blocks,
            lm_head,
            rotary: spec.rotary,
            context: spec.context,
        })
    }
}

impl Transformer for Decoder {
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
        let mut xs = embeds.clone();
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

    fn head(&self, normed: &Tensor) -> Option<candle_core::Result<Tensor>> {
        Some(self.lm_head.forward(normed))
    }
}

/// Blocks with `attn` built per block from `vb.pp("self_attn")` and the
/// shape, and `ffn` from `vb.pp("mlp")` (or whatever the family names it).
pub(super) fn blocks(
    vb: &VarBuilder,
    spec: &Spec,
    mut attn: impl FnMut(VarBuilder, AttentionShape) -> candle_core::Result<Attention>,
    mut ffn: impl FnMut(VarBuilder) -> candle_core::Result<Box<dyn FeedForward>>,
) -> candle_core::Result<Vec<Block>> {
    (0..spec.blocks)
        .map(|i| {
            let b = vb.pp(format!("model.layers.{i}"));
            Ok(Block {
                input_layernorm: RmsNorm::load(b.pp("input_layernorm"), spec.hidden, spec.eps)?,
                attn: attn(b.pp("self_attn"), spec.shapes[i])?,
                post_attention_layernorm: RmsNorm::load(b.pp("post_attention_layernorm"), spec.hidden, spec.eps)?,
                ffn: ffn(b)?,
            })
        })
        .collect()
}

/// Llama, Mistral and Qwen2.
pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Box<dyn Transformer>, InferenceError> {
    let c: Config = family_config(cfg, what)?;
    let spec = c.spec(what)?;
    // Qwen2 has q/k/v biases and none on o_proj; Llama's `attention_bias` covers all four.
    let qwen2 = c.model_type == "qwen2";
    let (qkv_bias, o_bias) = (qwen2 || c.attention_bias, !qwen2 && c.attention_bias);
    let blocks = blocks(
        &vb,
        &spec,
        |a, shape| Attention::new(a, spec.hidden, shape, qkv_bias, o_bias),
        |b| Ok(Box::new(Mlp::new(b.pp("mlp"), spec.hidden, spec.inner, spec.act, c.mlp_bias)?) as Box<dyn FeedForward>),
    )?;
    Ok(Box::new(Decoder::new(vb, spec, blocks)?))
}
