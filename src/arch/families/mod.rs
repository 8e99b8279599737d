//! What tensorcity knows about each model family's files, one file per
//! family: its `model_type`, display name, the naming rules that give every
//! tensor its kind, the tensor names only it uses (to recognise a bare
//! `.safetensors` file), and how its published checkpoint lists tensors for a
//! `config.json` (the catalogue's layout). Adding a family: one file here and
//! one line in [`FAMILIES`] (plus, to run it, one in `inference::FAMILIES`).

mod bert;
mod gemma2;
mod gpt2;
mod gpt_neox;
mod llama;
mod mixtral;
mod phi3;
mod qwen3;

use super::{ArchError, HeaderTensor, ModelConfig, TensorKind};

/// Naming rules: the first needle a tensor name contains gives its kind. A
/// needle ending in `.` names whole path segments.
pub type Rules = &'static [(&'static str, TensorKind)];

/// One family's rules.
#[derive(Debug)]
pub struct FamilySpec {
    /// `config.json`'s `model_type`.
    pub model_type: &'static str,
    pub display: &'static str,
    pub rules: Rules,
    /// Name fragments only this family's checkpoints use; a bare file whose
    /// tensors contain all of them is taken to be this family (empty: never
    /// guessed from names).
    pub signature: &'static [&'static str],
    /// Whether the LM head shares the embeddings when `tie_word_embeddings` is absent.
    pub tied_by_default: bool,
    /// The published checkpoint's tensors for a config.
    pub synthesize: fn(&mut Layout) -> Result<(), ArchError>,
}

/// Every known family, most specific signature first (Qwen2 before Llama:
/// both use `q_proj`, only Qwen2 has its bias).
pub const FAMILIES: &[&FamilySpec] = &[
    &gpt2::GPT2,
    &bert::BERT,
    &gpt_neox::GPT_NEOX,
    &gemma2::GEMMA2,
    &mixtral::MIXTRAL,
    &qwen3::QWEN3,
    &phi3::PHI3,
    &llama::QWEN2,
    &llama::MISTRAL,
    &llama::LLAMA,
];

/// Last-resort rules for families we do not know, tried after every family's.
pub const GENERIC_RULES: Rules = &[
    ("embed", TensorKind::Embedding),
    ("norm", TensorKind::Norm),
    ("ln", TensorKind::Norm),
    ("head", TensorKind::LmHead),
];

/// Upper bound on a single dimension (2^40): beyond it a config is corrupt.
const MAX_DIM: u64 = 1 << 40;
/// Upper bound on synthesised tensors; a config asking for more is not a real
/// model (every published one has fewer: Kimi K2, 61 layers x 384 experts,
/// has ~70,000), and laying it out would take seconds (a fuzzed 77,776-layer
/// Gemma 2 config, ~860,000 tensors, was a libFuzzer timeout).
const MAX_TENSORS: u64 = 100_000;

/// A config being laid out as a tensor list.
pub struct Layout<'a> {
    pub config: &'a ModelConfig,
    pub what: &'a str,
    pub family: &'static str,
    pub rows: Vec<HeaderTensor>,
    pub dtype: String,
}

impl Layout<'_> {
    /// A size the family needs, or an error naming the key.
    pub fn need(&self, value: Option<u64>, key: &str) -> Result<u64, ArchError> {
        match value {
            Some(v) if v > 0 && v <= MAX_DIM => Ok(v),
            Some(v) => Err(ArchError::UnsupportedConfig {
                what: self.what.to_string(),
                detail: format!("`{key}` = {v} is not a plausible model size (must be 1..2^40)"),
            }),
            None => Err(ArchError::UnsupportedConfig {
                what: self.what.to_string(),
                detail: format!("config.json has no `{key}`, needed to lay out a {} model", self.family),
            }),
        }
    }

    pub fn flag(&self, key: &str) -> bool {
        self.config.raw_field(key).and_then(|b| b.as_bool()).unwrap_or(false)
    }

    /// Refuses configs that would list more than [`MAX_TENSORS`] tensors.
    pub fn check_count(&self, layers: u64, per_layer: u64) -> Result<(), ArchError> {
        match layers.checked_mul(per_layer) {
            Some(n) if n <= MAX_TENSORS => Ok(()),
            _ => Err(ArchError::UnsupportedConfig {
                what: self.what.to_string(),
                detail: format!(
                    "{layers} layers of {per_layer} tensors would be over {MAX_TENSORS} tensors; the config is not a real model"
                ),
            }),
        }
    }

    pub fn push(&mut self, name: &str, shape: &[u64]) {
        let dtype = self.dtype.clone();
        self.push_typed(name, shape, &dtype);
    }

    pub fn push_typed(&mut self, name: &str, shape: &[u64], dtype: &str) {
        self.rows.push(HeaderTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype: dtype.to_string(),
            shard: None,
        });
    }

    /// `nn.Linear`: weight `[out, in]`.
    pub fn linear(&mut self, prefix: &str, fan_in: u64, fan_out: u64, bias: bool) {
        self.push(&format!("{prefix}.weight"), &[fan_out, fan_in]);
        if bias {
            self.push(&format!("{prefix}.bias"), &[fan_out]);
        }
    }

    pub fn norm(&mut self, prefix: &str, h: u64, bias: bool) {
        self.push(&format!("{prefix}.weight"), &[h]);
        if bias {
            self.push(&format!("{prefix}.bias"), &[h]);
        }
    }
}
