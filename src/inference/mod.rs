//! Forward passes with taps (no Bevy types): every residual-stream state and
//! every attention-probability matrix of a real checkpoint, in transformers'
//! `output_hidden_states` / `output_attentions` layout, computed with candle on
//! the CPU in f32. One file per family, in candle-transformers' style; the
//! forward is written here because candle-transformers keeps these private.

mod bert;
pub mod gpt2;
mod llama;
pub mod stream;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::arch::{Family, ModelConfig};

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("{what}: {detail}")]
    Model { what: String, detail: String },
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
}

/// One tapped activation of a forward pass, in transformers' numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tap {
    /// `hidden_states[i]` (`[T, hidden]`): 0 = embeddings output, the last after the final norm.
    Hidden(usize),
    /// Attention probabilities of block `i` (`[heads, T, T]`).
    Attention(usize),
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
        let what = dir.display().to_string();
        let config_path = dir.join("config.json");
        let bytes = std::fs::read(&config_path).map_err(|e| InferenceError::Model {
            what: config_path.display().to_string(),
            detail: e.to_string(),
        })?;
        let config = ModelConfig::from_json(&bytes, &what).map_err(|e| InferenceError::Model {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        let files = weight_files(dir)?;
        // SAFETY: the files are memory-mapped read-only; tensorcity never writes them
        // while a model is loaded. (A file changed underneath by another program is the
        // same hazard every mmap-based loader, transformers included, accepts.)
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu)? };
        match Family::from_model_type(&config.model_type) {
            Family::Gpt2 => Ok(Model::Gpt2(gpt2::Gpt2::load(&config, vb, &what)?)),
            Family::Llama | Family::Mistral | Family::Qwen2 => {
                Ok(Model::Llama(llama::Llama::load(&config, vb, &what)?))
            }
            Family::Bert => Ok(Model::Bert(bert::Bert::load(&config, vb, &what)?)),
            other => Err(InferenceError::Unsupported(other.model_type().to_string())),
        }
    }

    /// One forward pass over `tokens`, handing each tap to `sink` as soon as it is
    /// computed (layer by layer). `sink` returning false cancels the pass.
    pub fn run(&self, tokens: &[u32], sink: &mut dyn FnMut(Tap, Tensor) -> bool) -> Result<(), InferenceError> {
        match self {
            Model::Gpt2(m) => m.run(tokens, sink),
            Model::Llama(m) => m.run(tokens, sink),
            Model::Bert(m) => m.run(tokens, sink),
        }
    }

    /// One forward pass over `tokens` with every tap recorded.
    pub fn capture(&self, tokens: &[u32]) -> Result<Capture, InferenceError> {
        let mut capture = Capture {
            tokens: tokens.to_vec(),
            hidden: Vec::new(),
            attn: Vec::new(),
            logits: None,
        };
        self.run(tokens, &mut |tap, tensor| {
            match tap {
                Tap::Hidden(_) => capture.hidden.push(tensor),
                Tap::Attention(_) => capture.attn.push(tensor),
                Tap::Logits => capture.logits = Some(tensor),
            }
            true
        })?;
        Ok(capture)
    }
}

/// Token ids of `text` from the folder's `tokenizer.json`, with the special
/// tokens its post-processor adds (as transformers' `tokenizer(text)` does).
pub fn tokenize(dir: &Path, text: &str) -> Result<Vec<u32>, InferenceError> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Err(InferenceError::Model {
            what: dir.display().to_string(),
            detail: "no tokenizer.json, so a text prompt cannot be tokenized; pass --token-ids instead".into(),
        });
    }
    let mut tokenizer = tokenizers::Tokenizer::from_file(&path).map_err(|e| InferenceError::Model {
        what: path.display().to_string(),
        detail: e.to_string(),
    })?;
    // Like transformers' `tokenizer(text)`: no padding to a fixed length and no
    // silent truncation (an over-long prompt is reported by the model instead).
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).map_err(|e| InferenceError::Model {
        what: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let encoding = tokenizer.encode(text, true).map_err(|e| InferenceError::Model {
        what: path.display().to_string(),
        detail: e.to_string(),
    })?;
    Ok(encoding.get_ids().to_vec())
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

fn weight_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, InferenceError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let parsed = crate::arch::read_index_file(&index).map_err(|e| InferenceError::Model {
            what: index.display().to_string(),
            detail: e.to_string(),
        })?;
        return Ok(parsed.into_iter().map(|s| dir.join(s)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(InferenceError::Model {
        what: dir.display().to_string(),
        detail: "no model.safetensors or model.safetensors.index.json: running a model needs its weights".into(),
    })
}
