//! GPT-NeoX (Pythia): a fused `query_key_value` laid out per head (each
//! head's query, key and value side by side), rotary embedding over the
//! first `partial_rotary_factor` (`rotary_pct`) of each head, LayerNorms with
//! biases, a GELU MLP, and — by default — the parallel residual
//! `x + attn(ln1(x)) + mlp(ln2(x))`.

use super::vb::VarBuilder;
use candle_core::{Module, Tensor};
use serde::Deserialize;

use super::attention::AttentionShape;
use super::family::{Emit, Pass, Transformer, bad_config, check_heads, family_config};
use super::layers::{Activation, Embedding, LayerNorm, Linear, Ops};
use super::rope::{RopeKeys, RopeTables, Rotary};
use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_context")]
    pub max_position_embeddings: usize,
    #[serde(default = "yes")]
    pub use_parallel_residual: bool,
    #[serde(default = "yes")]
    pub attention_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(flatten)]
    pub rope: RopeKeys,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_context() -> usize {
    2048
}
fn yes() -> bool {
    true
}

struct Attention {
    query_key_value: Linear,
    dense: Linear,
    shape: AttentionShape,
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        block: usize,
        pass: &mut Pass,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let s = &self.shape;
        let (b, t, _) = x.dims3()?;
        // [b, T, heads * 3d] -> [b, heads, T, 3d]: per head, q | k | v.
        let qkv = self
            .query_key_value
            .forward(x)?
            .reshape((b, t, s.heads, 3 * s.head_dim))?
            .transpose(1, 2)?;
        let part = |i: usize| qkv.narrow(3, i * s.head_dim, s.head_dim)?.contiguous();
        let q = rope.apply(&part(0)?, pass.ops)?;
        let k = rope.apply(&part(1)?, pass.ops)?;
        let (probs, context) = s.attend(&q, k, part(2)?, block, pass)?;
        Ok((probs, self.dense.forward(&context)?))
    }
}

struct Mlp {
    dense_h_to_4h: Linear,
    dense_4h_to_h: Linear,
    act: Activation,
}

struct Block {
    input_layernorm: LayerNorm,
    post_attention_layernorm: LayerNorm,
    attention: Attention,
    mlp: Mlp,
    parallel: bool,
}

impl Block {
    fn new(c: &Config, vb: VarBuilder, shape: AttentionShape, act: Activation) -> candle_core::Result<Block> {
        let (h, bias) = (c.hidden_size, c.attention_bias);
        Ok(Block {
            input_layernorm: LayerNorm::load(vb.pp("input_layernorm"), h, c.layer_norm_eps)?,
            post_attention_layernorm: LayerNorm::load(vb.pp("post_attention_layernorm"), h, c.layer_norm_eps)?,
            attention: Attention {
                query_key_value: Linear::load(vb.pp("attention.query_key_value"), h, 3 * h, bias)?,
                dense: Linear::load(vb.pp("attention.dense"), h, h, bias)?,
                shape,
            },
            mlp: Mlp {
                dense_h_to_4h: Linear::load(vb.pp("mlp.dense_h_to_4h"), h, c.intermediate_size, true)?,
                dense_4h_to_h: Linear::load(vb.pp("mlp.dense_4h_to_h"), c.intermediate_size, h, true)?,
                act,
            },
            parallel: c.use_parallel_residual,
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
        let (probs, attn) = self
            .attention
            .forward(&self.input_layernorm.forward(residual, ops)?, rope, i, pass)?;
        emit(Tap::Attention(i), probs)?;
        let mlp = |x: &Tensor, emit: &mut Emit| -> Result<Tensor, InferenceError> {
            let m = self.mlp.act.apply(&self.mlp.dense_h_to_4h.forward(x)?)?;
            emit(Tap::Mlp(i), m.clone())?;
            Ok(self.mlp.dense_4h_to_h.forward(&m)?)
        };
        if self.parallel {
            let m = mlp(&self.post_attention_layernorm.forward(residual, ops)?, emit)?;
            Ok(((residual + attn)? + m)?)
        } else {
            let residual = (residual + attn)?;
            let m = mlp(&self.post_attention_layernorm.forward(&residual, ops)?, emit)?;
            Ok((residual + m)?)
        }
    }
}

pub struct GptNeox {
    embed_in: Embedding,
    blocks: Vec<Block>,
    final_layer_norm: LayerNorm,
    embed_out: Linear,
    rotary: Rotary,
    context: usize,
}

pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Box<dyn Transformer>, InferenceError> {
    let c: Config = family_config(cfg, what)?;
    let heads = c.num_attention_heads;
    let head_dim = check_heads(what, c.hidden_size, heads, heads, None)?;
    if head_dim * heads != c.hidden_size {
        return Err(bad_config(
            what,
            "`hidden_size` must be `num_attention_heads` x head size",
        ));
    }
    let rotary = Rotary::new(&c.rope, head_dim, 10_000.0, 0.25).map_err(|e| bad_config(what, e))?;
    let act = Activation::from_name(&c.hidden_act).map_err(|e| bad_config(what, e))?;
    let g = vb.pp("gpt_neox");
    let blocks = (0..c.num_hidden_layers)
        .map(|i| {
            Block::new(
                &c,
                g.pp(format!("layers.{i}")),
                AttentionShape::new(heads, heads, head_dim),
                act,
            )
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let embed_in = Embedding::load(g.clone(), c.vocab_size, c.hidden_size, "embed_in.weight")?;
    // Published files call the head `embed_out`; some conversions `lm_head`.
    let head = ["embed_out", "lm_head"]
        .into_iter()
        .find(|n| vb.contains_tensor(&format!("{n}.weight")));
    let embed_out = match head {
        Some(name) if !c.tie_word_embeddings => Linear::load(vb.pp(name), c.hidden_size, c.vocab_size, false)?,
        _ => embed_in.as_head(),
    };
    Ok(Box::new(GptNeox {
        embed_in,
        blocks,
        final_layer_norm: LayerNorm::load(g.pp("final_layer_norm"), c.hidden_size, c.layer_norm_eps)?,
        embed_out,
        rotary,
        context: c.max_position_embeddings,
    }))
}

impl Transformer for GptNeox {
    fn blocks(&self) -> usize {
        self.blocks.len()
    }

    fn context(&self) -> usize {
        self.context
    }

    fn vocab(&self) -> usize {
        self.embed_in.vocab()
    }

    fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.embed_in.forward(ids)
    }

    fn forward(&self, embeds: &Tensor, pass: &mut Pass, emit: &mut Emit) -> Result<(), InferenceError> {
        let rope = self.rotary.at(pass.offset, embeds.dim(1)?, embeds.device())?;
        let mut xs = embeds.clone();
        for (i, block) in self.blocks.iter().enumerate() {
            emit(Tap::Hidden(i), xs.clone())?;
            xs = block.forward(&xs, &rope, i, pass, emit)?;
        }
        emit(
            Tap::Hidden(self.blocks.len()),
            self.final_layer_norm.forward(&xs, pass.ops)?,
        )?;
        Ok(())
    }

    fn final_norm(&self, x: &Tensor, ops: Ops) -> Option<candle_core::Result<Tensor>> {
        Some(self.final_layer_norm.forward(x, ops))
    }

    fn head(&self, normed: &Tensor) -> Option<candle_core::Result<Tensor>> {
        Some(self.embed_out.forward(normed))
    }
}
