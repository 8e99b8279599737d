//! Choosing the next token: greedy or top-k sampling (candle-transformers'
//! `LogitsProcessor`), with NaN/Inf logits reported instead of sampled.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};

/// How to continue after the prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    Greedy,
    TopK { k: usize, temperature: f64, seed: u64 },
}

impl Decoding {
    pub fn sampler(self) -> LogitsProcessor {
        match self {
            Decoding::Greedy => LogitsProcessor::from_sampling(0, Sampling::ArgMax),
            Decoding::TopK { k, temperature, seed } => LogitsProcessor::from_sampling(
                seed,
                Sampling::TopK {
                    k: k.max(1),
                    temperature: temperature.max(1e-3),
                },
            ),
        }
    }
}

/// Samples the token after the last position; reports NaN/Inf logits instead of sampling garbage.
pub fn next_token(logits: &Tensor, sampler: &mut LogitsProcessor) -> Result<(u32, f32), String> {
    let last = logits
        .get(logits.dim(0).map_err(|e| e.to_string())?.saturating_sub(1))
        .map_err(|e| e.to_string())?;
    let values = last.to_vec1::<f32>().map_err(|e| e.to_string())?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err("the model produced NaN or infinite logits (are the weights corrupt?)".into());
    }
    let id = sampler.sample(&last).map_err(|e| e.to_string())?;
    let probs = candle_nn::ops::softmax_last_dim(&last)
        .and_then(|p| p.to_vec1::<f32>())
        .map_err(|e| e.to_string())?;
    Ok((id, probs.get(id as usize).copied().unwrap_or(0.0)))
}
