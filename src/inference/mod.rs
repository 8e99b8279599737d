//! Forward passes with taps (no Bevy types): every residual-stream state and
//! every attention-probability matrix of a real checkpoint, in transformers'
//! `output_hidden_states` / `output_attentions` layout, computed with candle on
//! the CPU in f32. One file per family, in candle-transformers' style; the
//! forward is written here because candle-transformers keeps these private.

mod bert;
mod files;
pub mod gpt2;
mod llama;
pub mod stream;
#[cfg(not(target_arch = "wasm32"))]
mod weights;
pub mod wire;

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

pub use files::ModelFiles;

use crate::arch::{Family, ModelConfig};

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("{what}: {detail}")]
    Model { what: String, detail: String },
    /// The model's files, header or config (keeps the architecture's error).
    #[error(transparent)]
    Arch(#[from] crate::arch::ArchError),
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("model family `{0}` cannot run; tensorcity runs gpt2, llama, mistral, qwen2 and bert checkpoints")]
    Unsupported(String),
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
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
    /// `[T, vocab]` (causal language models).
    Logits,
}

/// Everything one forward pass exposes.
#[derive(Debug, Clone)]
pub struct Capture {
    pub tokens: Vec<u32>,
    /// `hidden[i]`: `[T, hidden]`; 0 is the embeddings output, the last one is
    /// after the final norm (as transformers reports it).
    pub hidden: Vec<Tensor>,
    /// `attn[i]`: `[heads, T, T]`, row = query position, column = key position.
    pub attn: Vec<Tensor>,
    /// `mlp[i]`: `[T, intermediate]`, block `i`'s MLP activations.
    pub mlp: Vec<Tensor>,
    /// `[T, vocab]` for causal language models.
    pub logits: Option<Tensor>,
}

impl Capture {
    /// Writes the capture as safetensors: `tokens`, `hidden.{i}`, `attn.{i}`, `logits`.
    pub fn save(&self, path: &Path) -> Result<(), InferenceError> {
        let mut map = std::collections::HashMap::new();
        let ids: Vec<i64> = self.tokens.iter().map(|&t| t as i64).collect();
        map.insert("tokens".to_string(), Tensor::new(ids.as_slice(), &Device::Cpu)?);
        for (i, h) in self.hidden.iter().enumerate() {
            map.insert(format!("hidden.{i}"), h.clone());
        }
        for (i, a) in self.attn.iter().enumerate() {
            map.insert(format!("attn.{i}"), a.clone());
        }
        for (i, m) in self.mlp.iter().enumerate() {
            map.insert(format!("mlp.{i}"), m.clone());
        }
        if let Some(l) = &self.logits {
            map.insert("logits".to_string(), l.clone());
        }
        candle_core::safetensors::save(&map, path)?;
        Ok(())
    }
}

/// A loaded model that can run.
pub enum Model {
    Gpt2(gpt2::Gpt2),
    Llama(llama::Llama),
    Bert(bert::Bert),
}

impl Model {
    /// Loads a model folder (`config.json` + safetensors weights, memory-mapped).
    pub fn load(dir: &Path) -> Result<Model, InferenceError> {
        ModelFiles::from_dir(dir)?.load()
    }

    /// Builds the family's forward from a config and weights.
    pub fn from_config(config: &ModelConfig, vb: VarBuilder, what: &str) -> Result<Model, InferenceError> {
        match Family::from_model_type(&config.model_type) {
            Family::Gpt2 => Ok(Model::Gpt2(gpt2::Gpt2::load(config, vb, what)?)),
            Family::Llama | Family::Mistral | Family::Qwen2 => Ok(Model::Llama(llama::Llama::load(config, vb, what)?)),
            Family::Bert => Ok(Model::Bert(bert::Bert::load(config, vb, what)?)),
            other => Err(InferenceError::Unsupported(other.model_type().to_string())),
        }
    }

    /// Longest sequence one forward pass takes.
    pub fn context(&self) -> usize {
        match self {
            Model::Gpt2(m) => m.context(),
            Model::Llama(m) => m.context(),
            Model::Bert(m) => m.context(),
        }
    }

    /// Transformer blocks.
    pub fn num_layers(&self) -> usize {
        match self {
            Model::Gpt2(m) => m.num_layers(),
            Model::Llama(m) => m.num_layers(),
            Model::Bert(m) => m.num_layers(),
        }
    }

    /// Gradient x input saliency of each token for `target` (default: the
    /// predicted next token) at the last position; GPT-2 family only so far.
    pub fn saliency(&self, tokens: &[u32], target: Option<u32>) -> Result<(u32, Vec<f32>), InferenceError> {
        match self {
            Model::Gpt2(m) => m.saliency(tokens, target),
            Model::Llama(_) | Model::Bert(_) => Err(InferenceError::Model {
                what: "saliency".into(),
                detail: "gradient x input is computed for GPT-2-family models so far".into(),
            }),
        }
    }

    /// Whether this model predicts next tokens (has logits to generate from).
    pub fn is_causal(&self) -> bool {
        !matches!(self, Model::Bert(_))
    }

    /// The logit lens: residual-stream state(s) `[.., hidden]` through the final
    /// norm and the LM head (`normed`: the state is already after the final norm).
    /// `None` for models without a head.
    pub fn lens(&self, hidden: &Tensor, normed: bool) -> Option<Result<Tensor, InferenceError>> {
        match self {
            Model::Gpt2(m) => Some(m.lens(hidden, normed)),
            Model::Llama(m) => Some(m.lens(hidden, normed)),
            Model::Bert(_) => None,
        }
    }

    /// One forward pass over `tokens`, handing each tap to `sink` as soon as it is
    /// computed (layer by layer). `sink` returning false cancels the pass.
    /// A hidden state with NaN/Inf stops the pass with [`InferenceError::NonFinite`].
    pub fn run(&self, tokens: &[u32], sink: &mut dyn FnMut(Tap, Tensor) -> bool) -> Result<(), InferenceError> {
        let mut non_finite = None;
        let mut checked = |tap: Tap, t: Tensor| {
            if let Tap::Hidden(layer) = tap
                && !all_finite(&t)
            {
                non_finite = Some(layer);
                return false;
            }
            sink(tap, t)
        };
        let result = match self {
            Model::Gpt2(m) => m.run(tokens, &mut checked),
            Model::Llama(m) => m.run(tokens, &mut checked),
            Model::Bert(m) => m.run(tokens, &mut checked),
        };
        match (result, non_finite) {
            (Err(InferenceError::Cancelled), Some(layer)) => Err(InferenceError::NonFinite { layer }),
            (result, _) => result,
        }
    }

    /// One forward pass over `tokens` with every tap recorded.
    pub fn capture(&self, tokens: &[u32]) -> Result<Capture, InferenceError> {
        let mut capture = Capture {
            tokens: tokens.to_vec(),
            hidden: Vec::new(),
            attn: Vec::new(),
            mlp: Vec::new(),
            logits: None,
        };
        self.run(tokens, &mut |tap, tensor| {
            match tap {
                Tap::Hidden(_) => capture.hidden.push(tensor),
                Tap::Attention(_) => capture.attn.push(tensor),
                Tap::Mlp(_) => capture.mlp.push(tensor),
                Tap::Logits => capture.logits = Some(tensor),
            }
            true
        })?;
        Ok(capture)
    }
}

/// A config value a family needs, or an error naming the key.
pub(crate) fn need(value: Option<u64>, key: &str, what: &str) -> Result<usize, InferenceError> {
    value.map(|v| v as usize).ok_or_else(|| InferenceError::Model {
        what: what.to_string(),
        detail: format!("config.json has no `{key}`"),
    })
}

/// Wraps a tap sink so that a `false` from it becomes [`InferenceError::Cancelled`].
pub(crate) fn emitter(
    sink: &mut dyn FnMut(Tap, Tensor) -> bool,
) -> impl FnMut(Tap, Tensor) -> Result<(), InferenceError> + '_ {
    move |tap, t| {
        if sink(tap, t) {
            Ok(())
        } else {
            Err(InferenceError::Cancelled)
        }
    }
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

/// Whether every value of a tensor is finite (false when it cannot be read).
pub fn all_finite(t: &Tensor) -> bool {
    t.flatten_all()
        .and_then(|f| f.to_dtype(candle_core::DType::F32))
        .and_then(|f| f.to_vec1::<f32>())
        .is_ok_and(|v| v.iter().all(|x| x.is_finite()))
}

/// The `k` most likely entries of a logits row `[vocab]`: (id, probability), best first.
pub fn top_k(logits: &Tensor, k: usize) -> Result<Vec<(u32, f32)>, InferenceError> {
    let probs = candle_nn::ops::softmax_last_dim(&logits.to_dtype(candle_core::DType::F32)?)?.to_vec1::<f32>()?;
    let mut order: Vec<u32> = (0..probs.len() as u32).collect();
    let k = k.min(order.len());
    if k == 0 {
        return Ok(Vec::new());
    }
    order.select_nth_unstable_by(k - 1, |&a, &b| probs[b as usize].total_cmp(&probs[a as usize]));
    let mut best: Vec<(u32, f32)> = order[..k].iter().map(|&i| (i, probs[i as usize])).collect();
    best.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(best)
}
