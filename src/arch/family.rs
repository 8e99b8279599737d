//! Model families we know the naming rules (and, for the catalogue, the exact
//! tensor lists) of.

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    Gpt2,
    Llama,
    Mistral,
    Qwen2,
    Mixtral,
    Bert,
    /// Any other `model_type`; kinds then come from generic rules.
    Unknown(String),
}

impl Family {
    /// From `config.json`'s `model_type`.
    pub fn from_model_type(model_type: &str) -> Family {
        match model_type {
            "gpt2" => Family::Gpt2,
            "llama" => Family::Llama,
            "mistral" => Family::Mistral,
            "qwen2" => Family::Qwen2,
            "mixtral" => Family::Mixtral,
            "bert" => Family::Bert,
            other => Family::Unknown(other.to_string()),
        }
    }

    /// Guesses the family of a bare `.safetensors` file (no config) from the
    /// tensor names that only one family uses.
    pub fn infer_from_names<'a>(names: impl Iterator<Item = &'a str>) -> Option<Family> {
        let mut moe = false;
        let mut llama = false;
        let mut qkv_bias = false;
        for name in names {
            if name.contains("attn.c_attn.") {
                return Some(Family::Gpt2);
            }
            if name.contains("attention.self.query.") {
                return Some(Family::Bert);
            }
            moe |= name.contains("block_sparse_moe.experts.");
            llama |= name.contains("self_attn.q_proj.weight");
            qkv_bias |= name.contains("self_attn.q_proj.bias");
        }
        match (moe, llama, qkv_bias) {
            (true, _, _) => Some(Family::Mixtral),
            (_, true, true) => Some(Family::Qwen2),
            (_, true, false) => Some(Family::Llama),
            _ => None,
        }
    }

    /// The `model_type` string this family is written as in `config.json`.
    pub fn model_type(&self) -> &str {
        match self {
            Family::Gpt2 => "gpt2",
            Family::Llama => "llama",
            Family::Mistral => "mistral",
            Family::Qwen2 => "qwen2",
            Family::Mixtral => "mixtral",
            Family::Bert => "bert",
            Family::Unknown(t) => t,
        }
    }

    pub fn is_known(&self) -> bool {
        !matches!(self, Family::Unknown(_))
    }

    /// Display name for panels and summaries.
    pub fn display_name(&self) -> String {
        match self {
            Family::Gpt2 => "GPT-2".into(),
            Family::Llama => "Llama".into(),
            Family::Mistral => "Mistral".into(),
            Family::Qwen2 => "Qwen2".into(),
            Family::Mixtral => "Mixtral (MoE)".into(),
            Family::Bert => "BERT".into(),
            Family::Unknown(t) if t.is_empty() => "unknown".into(),
            Family::Unknown(t) => format!("{t} (unknown family)"),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

impl Serialize for Family {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.model_type())
    }
}
