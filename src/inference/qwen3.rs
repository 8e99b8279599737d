//! Qwen3: the Llama decoder with an RMSNorm over each query and key head
//! (`q_norm` / `k_norm`, applied before RoPE), an explicit `head_dim` and no
//! q/k/v biases. Its `config.json` has Llama's keys (plus `layer_types` for
//! sliding-window blocks when `use_sliding_window` is set).

use super::vb::VarBuilder;

use super::InferenceError;
use super::family::{Transformer, family_config};
use super::layers::RmsNorm;
use super::llama::{self, Attention, Decoder, FeedForward, Mlp};
use crate::arch::ModelConfig;

pub type Config = llama::Config;

pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Box<dyn Transformer>, InferenceError> {
    let c: Config = family_config(cfg, what)?;
    let spec = c.spec(what)?;
    let blocks = llama::blocks(
        &vb,
        &spec,
        |a, shape| {
            let mut attn = Attention::new(a.clone(), spec.hidden, shape, c.attention_bias, c.attention_bias)?;
            attn.q_norm = Some(RmsNorm::load(a.pp("q_norm"), shape.head_dim, spec.eps)?);
            attn.k_norm = Some(RmsNorm::load(a.pp("k_norm"), shape.head_dim, spec.eps)?);
            Ok(attn)
        },
        |b| Ok(Box::new(Mlp::new(b.pp("mlp"), spec.hidden, spec.inner, spec.act, false)?) as Box<dyn FeedForward>),
    )?;
    Ok(Box::new(Decoder::new(vb, spec, blocks)?))
}
