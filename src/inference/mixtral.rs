//! Mixtral: the Mistral decoder whose MLP is a sparse mixture of experts. A
//! linear router scores every expert per token; the top `num_experts_per_tok`
//! (their softmax weights renormalised to sum to 1) each run a SwiGLU expert
//! (`w1` gate, `w3` up, `w2` down) and their outputs are summed with those
//! weights. The router's logits are tapped as `router.{i}` (`[T, experts]`,
//! transformers' `output_router_logits`).

use super::vb::VarBuilder;
use candle_core::{DType, Module, Tensor};
use serde::Deserialize;

use super::family::{Emit, Transformer, bad_config, family_config};
use super::layers::{Activation, Linear, Ops};
use super::llama::{self, Attention, Decoder, FeedForward};
use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub base: llama::Config,
    pub num_local_experts: usize,
    pub num_experts_per_tok: usize,
}

struct Expert {
    w1: Linear,
    w2: Linear,
    w3: Linear,
}

pub(super) struct SparseMoe {
    gate: Linear,
    experts: Vec<Expert>,
    top_k: usize,
    act: Activation,
}

impl SparseMoe {
    fn new(
        vb: VarBuilder,
        hidden: usize,
        inner: usize,
        experts: usize,
        top_k: usize,
        act: Activation,
    ) -> candle_core::Result<SparseMoe> {
        Ok(SparseMoe {
            gate: Linear::load(vb.pp("gate"), hidden, experts, false)?,
            experts: (0..experts)
                .map(|e| {
                    let x = vb.pp(format!("experts.{e}"));
                    Ok(Expert {
                        w1: Linear::load(x.pp("w1"), hidden, inner, false)?,
                        w2: Linear::load(x.pp("w2"), inner, hidden, false)?,
                        w3: Linear::load(x.pp("w3"), hidden, inner, false)?,
                    })
                })
                .collect::<candle_core::Result<_>>()?,
            top_k,
            act,
        })
    }
}

/// Per token, the `k` best experts by router probability, best first (ties:
/// the lower index) — the model's routing, and what the viewer shows.
pub fn top_experts(probs: &[Vec<f32>], k: usize) -> Vec<Vec<u32>> {
    probs
        .iter()
        .map(|row| {
            let mut order: Vec<u32> = (0..row.len() as u32).collect();
            order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
            order.truncate(k);
            order
        })
        .collect()
}

impl FeedForward for SparseMoe {
    fn forward(&self, x: &Tensor, block: usize, ops: Ops, emit: &mut Emit) -> Result<Tensor, InferenceError> {
        let (b, t, h) = x.dims3()?;
        let flat = x.reshape((b * t, h))?;
        let logits = self.gate.forward(&flat)?;
        emit(Tap::Router(block), logits.reshape((b, t, self.experts.len()))?)?;
        let probs = ops.softmax(&logits.to_dtype(DType::F32)?)?;
        let chosen = top_experts(&probs.to_vec2::<f32>()?, self.top_k);
        let k = self.top_k;
        let index: Vec<u32> = chosen.iter().flatten().copied().collect();
        let index = Tensor::from_vec(index, (b * t, k), x.device())?;
        let top = probs.gather(&index, 1)?;
        let weights = top.broadcast_div(&top.sum_keepdim(1)?)?.flatten_all()?;
        let mut out = flat.zeros_like()?;
        for (e, expert) in self.experts.iter().enumerate() {
            // (token, slot) pairs routed to this expert.
            let (rows, slots): (Vec<u32>, Vec<u32>) = chosen
                .iter()
                .enumerate()
                .flat_map(|(row, experts)| {
                    experts
                        .iter()
                        .position(|&x| x as usize == e)
                        .map(|slot| (row as u32, (row * k + slot) as u32))
                })
                .unzip();
            if rows.is_empty() {
                continue;
            }
            let n = rows.len();
            let rows = Tensor::from_vec(rows, n, x.device())?;
            let w = weights
                .index_select(&Tensor::from_vec(slots, n, x.device())?, 0)?
                .reshape((n, 1))?;
            let xs = flat.index_select(&rows, 0)?;
            let gated = (self.act.apply(&expert.w1.forward(&xs)?)? * expert.w3.forward(&xs)?)?;
            let y = expert.w2.forward(&gated)?.broadcast_mul(&w)?;
            out = out.index_add(&rows, &y, 0)?;
        }
        Ok(out.reshape((b, t, h))?)
    }
}

pub fn load(cfg: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Box<dyn Transformer>, InferenceError> {
    let c: Config = family_config(cfg, what)?;
    if c.num_local_experts == 0 {
        return Err(bad_config(what, "`num_local_experts` must be at least 1"));
    }
    if c.num_experts_per_tok == 0 || c.num_experts_per_tok > c.num_local_experts {
        return Err(bad_config(
            what,
            format!(
                "`num_experts_per_tok` ({}) must be between 1 and `num_local_experts` ({})",
                c.num_experts_per_tok, c.num_local_experts
            ),
        ));
    }
    let spec = c.base.spec(what)?;
    let blocks = llama::blocks(
        &vb,
        &spec,
        |a, shape| Attention::new(a, spec.hidden, shape, false, false),
        |b| {
            Ok(Box::new(SparseMoe::new(
                b.pp("block_sparse_moe"),
                spec.hidden,
                spec.inner,
                c.num_local_experts,
                c.num_experts_per_tok,
                spec.act,
            )?) as Box<dyn FeedForward>)
        },
    )?;
    Ok(Box::new(Decoder::new(vb, spec, blocks)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn top_experts_are_the_most_probable_best_first() {
        let probs = vec![vec![0.1, 0.6, 0.3], vec![0.5, 0.2, 0.3]];
        assert_eq!(super::top_experts(&probs, 2), vec![vec![1, 2], vec![0, 2]]);
    }
}
