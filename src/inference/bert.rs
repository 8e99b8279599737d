//! BERT encoders with taps: absolute positions, token type 0, post-LN blocks,
//! bidirectional attention. Tensor names with or without a `bert.` prefix,
//! LayerNorm as `weight`/`bias` or the old `gamma`/`beta`.

use super::vb::VarBuilder;
use candle_core::{Module, Tensor};
use serde::Deserialize;

use super::attention::AttentionShape;
use super::family::{Emit, Pass, Transformer, bad_config, check_heads, family_config};
use super::layers::{Activation, Embedding, LayerNorm, Linear};
use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_types")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_types() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

impl Layer {
    fn new(c: &Config, l: VarBuilder) -> candle_core::Result<Layer> {
        let (h, inner, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        Ok(Layer {
            query: Linear::load(l.pp("attention.self.query"), h, h, true)?,
            key: Linear::load(l.pp("attention.self.key"), h, h, true)?,
            value: Linear::load(l.pp("attention.self.value"), h, h, true)?,
            attn_out: Linear::load(l.pp("attention.output.dense"), h, h, true)?,
            attn_norm: LayerNorm::load(l.pp("attention.output.LayerNorm"), h, eps)?,
            intermediate: Linear::load(l.pp("intermediate.dense"), h, inner, true)?,
            output: Linear::load(l.pp("output.dense"), inner, h, true)?,
            out_norm: LayerNorm::load(l.pp("output.LayerNorm"), h, eps)?,
        })
    }
}

pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    shape: AttentionShape,
    context: usize,
    act: Activation,
}

pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Box<dyn Transformer>, InferenceError> {
    let c: Config = family_config(cfg, what)?;
    let heads = c.num_attention_heads;
    let head_dim = check_heads(what, c.hidden_size, heads, heads, None)?;
    let act = Activation::from_name(&c.hidden_act).map_err(|e| bad_config(what, e))?;
    let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
        vb.pp("bert")
    } else {
        vb
    };
    let e = vb.pp("embeddings");
    let layers = (0..c.num_hidden_layers)
        .map(|i| Layer::new(&c, vb.pp(format!("encoder.layer.{i}"))))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let h = c.hidden_size;
    Ok(Box::new(Bert {
        word: Embedding::load(e.clone(), c.vocab_size, h, "word_embeddings.weight")?,
        position: Embedding::load(e.clone(), c.max_position_embeddings, h, "position_embeddings.weight")?,
        token_type: e
            .get((c.type_vocab_size, h), "token_type_embeddings.weight")?
            .to_dtype(candle_core::DType::F32)?,
        embed_norm: LayerNorm::load(e.pp("LayerNorm"), h, c.layer_norm_eps)?,
        layers,
        shape: AttentionShape {
            causal: false,
            ..AttentionShape::new(heads, heads, head_dim)
        },
        context: c.max_position_embeddings,
        act,
    }))
}

impl Transformer for Bert {
    fn blocks(&self) -> usize {
        self.layers.len()
    }

    fn context(&self) -> usize {
        self.context
    }

    fn vocab(&self) -> usize {
        self.word.vocab()
    }

    fn causal(&self) -> bool {
        false
    }

    fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.word.forward(ids)
    }

    fn forward(&self, embeds: &Tensor, pass: &mut Pass, emit: &mut Emit) -> Result<(), InferenceError> {
        let ops = pass.ops;
        let t = embeds.dim(1)?;
        let positions = Tensor::arange(pass.offset as u32, (pass.offset + t) as u32, embeds.device())?.unsqueeze(0)?;
        // Every token is segment 0, as `tokenizer(text)` gives for one sentence.
        let segment = self.token_type.get(0)?;
        let embedded = (embeds.broadcast_add(&self.position.forward(&positions)?)?).broadcast_add(&segment)?;
        let mut xs = self.embed_norm.forward(&embedded, ops)?;
        emit(Tap::Hidden(0), xs.clone())?;
        let s = &self.shape;
        for (i, layer) in self.layers.iter().enumerate() {
            let q = s.split(&layer.query.forward(&xs)?, s.heads)?;
            let k = s.split(&layer.key.forward(&xs)?, s.heads)?;
            let v = s.split(&layer.value.forward(&xs)?, s.heads)?;
            // Bidirectional: no mask for a single unpadded sequence.
            let (probs, context) = s.attend(&q, k, v, i, pass)?;
            emit(Tap::Attention(i), probs)?;
            let after_attn = layer
                .attn_norm
                .forward(&(layer.attn_out.forward(&context)? + &xs)?, ops)?;
            let inner = self.act.apply(&layer.intermediate.forward(&after_attn)?)?;
            emit(Tap::Mlp(i), inner.clone())?;
            xs = layer
                .out_norm
                .forward(&(layer.output.forward(&inner)? + &after_attn)?, ops)?;
            emit(Tap::Hidden(i + 1), xs.clone())?;
        }
        Ok(())
    }

    fn final_norm(&self, _x: &Tensor, _ops: super::layers::Ops) -> Option<candle_core::Result<Tensor>> {
        None
    }

    fn head(&self, _normed: &Tensor) -> Option<candle_core::Result<Tensor>> {
        None
    }
}
