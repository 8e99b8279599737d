//! Phi-3: the Llama decoder with fused weights — `qkv_proj` (queries, then
//! keys, then values) and `gate_up_proj` (gate, then up) — split once at load,
//! a partial rotary factor, and a sliding window on every block when the
//! config sets one.

use super::vb::VarBuilder;

use super::InferenceError;
use super::family::{Transformer, family_config};
use super::layers::{Activation, Linear};
use super::llama::{self, Attention, Decoder, FeedForward, Mlp};
use crate::arch::ModelConfig;

/// Phi-3's `config.json` uses Llama's keys (`partial_rotary_factor` lives in
/// `rope_parameters` or at the top level).
pub type Config = llama::Config;

pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Box<dyn Transformer>, InferenceError> {
    let c: Config = family_config(cfg, what)?;
    let spec = c.spec(what)?;
    let (hidden, inner, act): (usize, usize, Activation) = (spec.hidden, spec.inner, spec.act);
    let blocks = llama::blocks(
        &vb,
        &spec,
        |a, shape| {
            let (q, kv) = (shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim);
            let qkv = Linear::load(a.pp("qkv_proj"), hidden, q + 2 * kv, false)?;
            Ok(Attention {
                q: qkv.rows(0, q)?,
                k: qkv.rows(q, kv)?,
                v: qkv.rows(q + kv, kv)?,
                o: Linear::load(a.pp("o_proj"), q, hidden, false)?,
                q_norm: None,
                k_norm: None,
                shape,
            })
        },
        |b| {
            let gate_up = Linear::load(b.pp("mlp.gate_up_proj"), hidden, 2 * inner, false)?;
            Ok(Box::new(Mlp {
                gate: gate_up.rows(0, inner)?,
                up: gate_up.rows(inner, inner)?,
                down: Linear::load(b.pp("mlp.down_proj"), inner, hidden, false)?,
                act,
            }) as Box<dyn FeedForward>)
        },
    )?;
    Ok(Box::new(Decoder::new(vb, spec, blocks)?))
}
