//! Forward passes with taps (no Bevy types): every residual-stream state and
//! every attention-probability matrix of a real checkpoint, in transformers'
//! `output_hidden_states` / `output_attentions` layout, computed with candle on
//! the CPU in f32 (half-precision weights stay half in memory). One file per
//! family in candle-transformers' shape (a serde `Config` mirroring its
//! `config.json`, `Attention` / `Mlp` / `Block` with `new(cfg, vb)`), shared
//! pieces in `layers`, one trait (`model::Transformer`) the runner calls; the
//! forward is written here because candle-transformers keeps its taps private.
//! Adding a family: one file here, one line in `model::FAMILIES`.

mod attention;
mod bert;
pub mod cache;
mod capture;
mod family;
mod files;
mod gelu;
mod gemma2;
pub mod gguf;
pub mod gguf_tokenizer;
pub mod gpt2;
mod gpt_neox;
pub mod layers;
mod llama;
mod mixtral;
mod model;
mod phi3;
mod qwen3;
pub mod random;
mod rope;
pub mod sample;
pub mod stream;
pub mod vb;
#[cfg(not(target_arch = "wasm32"))]
mod weights;
pub mod wire;

use candle_core::Tensor;

pub use cache::Cache;
pub use capture::{Capture, extend_rows};
pub use family::Transformer;
pub use files::ModelFiles;
pub use layers::Pass;
pub use mixtral::top_experts;
pub use model::{FAMILIES, Model, runnable_families};

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("{what}: {detail}")]
    Model { what: String, detail: String },
    /// The model's files, header or config (keeps the architecture's error).
    #[error(transparent)]
    Arch(#[from] crate::arch::ArchError),
    #[error("{path}: {error}", path = path.display())]
    Io {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("model family `{0}` cannot run; tensorcity runs {families} checkpoints", families = runnable_families())]
    Unsupported(String),
    #[error("token id {id} is outside the vocabulary of {vocab} tokens (ids 0 to {max})", max = .vocab.saturating_sub(1))]
    TokenOutOfRange { id: u32, vocab: usize },
    #[error("{len} tokens exceed the model's context of {max}; shorten the prompt")]
    TooLong { len: usize, max: usize },
    #[error("no tokens to run")]
    Empty,
    #[error("the run was cancelled")]
    Cancelled,
    #[error("hidden state {layer} contains NaN or infinite values")]
    NonFinite { layer: usize },
}

/// One tapped activation of a forward pass, in transformers' numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tap {
    /// `hidden_states[i]` (`[T, hidden]`): 0 = embeddings output, the last after the final norm.
    Hidden(usize),
    /// Attention probabilities of block `i` (`[heads, T, T]`).
    Attention(usize),
    /// MLP activations of block `i` (`[T, intermediate]`, after the nonlinearity;
    /// SwiGLU's gated product for Llama-style models).
    Mlp(usize),
    /// Router logits of mixture-of-experts block `i` (`[T, experts]`, before
    /// the softmax: transformers' `output_router_logits`).
    Router(usize),
    /// `[T, vocab]` (causal language models).
    Logits,
    /// The logit lens at the last position, `[blocks - 1, vocab]`: row `b` is
    /// block `b`'s output through the final norm and the head (only when
    /// asked for, see `Model::run_with_lens`; the runner turns it into top-k
    /// frames and does not stream it).
    Lens,
}

/// Rejects empty input, ids outside the vocabulary and prompts over the context.
pub(crate) fn check_tokens(tokens: &[u32], vocab: usize, context: usize) -> Result<(), InferenceError> {
    if tokens.is_empty() {
        return Err(InferenceError::Empty);
    }
    if tokens.len() > context {
        return Err(InferenceError::TooLong {
            len: tokens.len(),
            max: context,
        });
    }
    if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
        return Err(InferenceError::TokenOutOfRange { id, vocab });
    }
    Ok(())
}

/// Counts the physical cores once and hands the count to candle and rayon
/// through `RAYON_NUM_THREADS` (unless it is set). Without it candle counts
/// them before every matrix product by reading `/proc/cpuinfo` (3.5 % of a
/// generation's samples in `perf`, most of a small model's time).
///
/// Also shortens how long candle's own pool (the element-wise ops') spins
/// after each op before it parks (`CANDLE_BARRIER_POOL_SPIN_LIMIT`, unless
/// set: [`BARRIER_SPINS`] instead of candle's 25,000): its spinning thread
/// took a core from the matrix product that follows every bias or residual
/// add (gemm runs on rayon's threads, a second pool). On the 2-core machine a
/// 128-token GPT-2-small forward went ~300 -> ~240 ms; generation steps did
/// not change (`cargo bench --bench inference`, README Performance).
///
/// # Safety
/// Sets an environment variable: call it before any other thread is started
/// (first thing in `main`).
#[cfg(not(target_arch = "wasm32"))]
pub unsafe fn count_threads_once() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: the caller runs this before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", num_cpus::get_physical().max(1).to_string()) };
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY: as above.
        unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", BARRIER_SPINS.to_string()) };
    }
}

/// Spins of candle's element-wise pool before it parks (see [`count_threads_once`]).
#[cfg(not(target_arch = "wasm32"))]
const BARRIER_SPINS: u32 = 100;

/// Whether every value of a tensor is finite (false when it cannot be read).
pub fn all_finite(t: &Tensor) -> bool {
    t.flatten_all()
        .and_then(|f| f.to_dtype(candle_core::DType::F32))
        .and_then(|f| f.to_vec1::<f32>())
        .is_ok_and(|v| v.iter().all(|x| x.is_finite()))
}

/// The `k` most likely entries of a logits row `[vocab]`: (id, probability),
/// best first (ties: the lower id first). One pass keeping the best `k` (k is
/// small: 5 in the viewer), not a sort of the vocabulary.
pub fn top_k(logits: &Tensor, k: usize) -> Result<Vec<(u32, f32)>, InferenceError> {
    let probs = candle_nn::ops::softmax_last_dim(&logits.to_dtype(candle_core::DType::F32)?)?.to_vec1::<f32>()?;
    let k = k.min(probs.len());
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return Ok(best);
    }
    for (i, &p) in probs.iter().enumerate() {
        if best.len() < k || best.last().is_some_and(|w| p > w.1) {
            let at = best.partition_point(|b| b.1 >= p);
            best.insert(at, (i as u32, p));
            best.truncate(k);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    #[test]
    fn top_k_is_the_best_k_in_order() {
        let logits = candle_core::Tensor::new(&[0.0f32, 3.0, 1.0, 3.0, -2.0, 2.0], &candle_core::Device::Cpu).unwrap();
        let top = super::top_k(&logits, 3).unwrap();
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 3, 5]);
        assert!(top[0].1 == top[1].1 && top[1].1 > top[2].1);
        assert_eq!(super::top_k(&logits, 10).unwrap().len(), 6);
        assert!(super::top_k(&logits, 0).unwrap().is_empty());
    }
}
