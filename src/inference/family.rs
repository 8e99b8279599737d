//! The seam every family module implements: the [`Transformer`] trait the
//! runner calls through [`super::Model`], the tap sink it reports to, and the
//! checks every family's config goes through (a missing or contradictory
//! field is one error naming it).

use candle_core::Tensor;

use super::layers::Ops;
pub use super::layers::Pass;
use super::{InferenceError, Tap};
use crate::arch::ModelConfig;

/// Hands a tapped tensor on; an error stops the pass.
pub type Emit<'a> = dyn FnMut(Tap, Tensor) -> Result<(), InferenceError> + 'a;

/// A family's forward pass with taps.
pub trait Transformer: Send + Sync {
    /// Transformer blocks (hidden states are one more).
    fn blocks(&self) -> usize;
    /// Longest sequence the model takes.
    fn context(&self) -> usize;
    fn vocab(&self) -> usize;
    /// Whether it predicts next tokens (decoders) or encodes (BERT).
    fn causal(&self) -> bool {
        true
    }
    /// Token embeddings `[b, T, hidden]` as looked up, before any scaling or
    /// positions: what saliency differentiates against.
    fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor>;
    /// The blocks from `embed`'s output, for positions `pass.offset..`; taps
    /// carry the batch dimension first and only the new positions' rows
    /// (attention `[b, heads, T, offset + T]`). The last is
    /// `Tap::Hidden(blocks)`, after the final norm where there is one; the
    /// logits are [`super::Model`]'s to compute from it (with [`Transformer::head`]).
    fn forward(&self, embeds: &Tensor, pass: &mut Pass, emit: &mut Emit) -> Result<(), InferenceError>;
    /// The final norm of residual-stream states `[.., hidden]`; `None` for
    /// models without a head.
    fn final_norm(&self, x: &Tensor, ops: Ops) -> Option<candle_core::Result<Tensor>>;
    /// The LM head of normed states `[.., hidden]` -> `[.., vocab]` (with any
    /// soft-capping); `None` for models without one.
    fn head(&self, normed: &Tensor) -> Option<candle_core::Result<Tensor>>;
}

/// Parses a family's serde `Config` from `config.json`; a missing or
/// mistyped field is one error naming it.
pub fn family_config<T: serde::de::DeserializeOwned>(cfg: &ModelConfig, what: &str) -> Result<T, InferenceError> {
    serde_json::from_value(cfg.raw.clone()).map_err(|e| InferenceError::Model {
        what: format!("{what} config.json"),
        detail: format!(
            "{e}; expected a `{}` config.json as transformers writes it",
            cfg.model_type
        ),
    })
}

/// A contradiction in `config.json`, naming the field.
pub fn bad_config(what: &str, detail: impl Into<String>) -> InferenceError {
    InferenceError::Model {
        what: format!("{what} config.json"),
        detail: detail.into(),
    }
}

/// Checks what grouped-query attention with RoPE needs of the head counts.
pub fn check_heads(
    what: &str,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: Option<usize>,
) -> Result<usize, InferenceError> {
    if heads == 0 || kv_heads == 0 {
        return Err(bad_config(
            what,
            "`num_attention_heads` and `num_key_value_heads` must be at least 1",
        ));
    }
    if !heads.is_multiple_of(kv_heads) {
        return Err(bad_config(
            what,
            format!("`num_attention_heads` ({heads}) is not a multiple of `num_key_value_heads` ({kv_heads})"),
        ));
    }
    let head_dim = match head_dim {
        Some(d) => d,
        None if hidden.is_multiple_of(heads) => hidden / heads,
        None => {
            return Err(bad_config(
                what,
                format!(
                    "`hidden_size` ({hidden}) is not divisible by `num_attention_heads` ({heads}) and no `head_dim` is given"
                ),
            ));
        }
    };
    if head_dim == 0 {
        return Err(bad_config(what, "`head_dim` must be at least 1"));
    }
    Ok(head_dim)
}
