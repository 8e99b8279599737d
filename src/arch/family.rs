//! A model's family: one of [`families::FAMILIES`] (naming rules, tensor
//! layout, display name) or a `model_type` tensorcity does not know.

use std::fmt;

use serde::{Serialize, Serializer};

use super::families::{self, FamilySpec};

#[derive(Debug, Clone)]
pub enum Family {
    Known(&'static FamilySpec),
    /// Any other `model_type`; kinds then come from generic rules.
    Unknown(String),
}

impl PartialEq for Family {
    fn eq(&self, other: &Family) -> bool {
        self.model_type() == other.model_type() && self.is_known() == other.is_known()
    }
}

impl Eq for Family {}

impl Family {
    /// From `config.json`'s `model_type`.
    pub fn from_model_type(model_type: &str) -> Family {
        families::FAMILIES
            .iter()
            .find(|f| f.model_type == model_type)
            .map_or_else(|| Family::Unknown(model_type.to_string()), |f| Family::Known(f))
    }

    /// Guesses the family of a bare `.safetensors` file (no config) from the
    /// tensor names that only one family uses.
    pub fn infer_from_names<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Option<Family> {
        families::FAMILIES
            .iter()
            .find(|f| {
                !f.signature.is_empty()
                    && f.signature
                        .iter()
                        .all(|needle| names.clone().any(|n| n.contains(needle)))
            })
            .map(|f| Family::Known(f))
    }

    /// The `model_type` string this family is written as in `config.json`.
    pub fn model_type(&self) -> &str {
        match self {
            Family::Known(f) => f.model_type,
            Family::Unknown(t) => t,
        }
    }

    pub fn is_known(&self) -> bool {
        matches!(self, Family::Known(_))
    }

    pub fn spec(&self) -> Option<&'static FamilySpec> {
        match self {
            Family::Known(f) => Some(f),
            Family::Unknown(_) => None,
        }
    }

    /// Display name for panels and summaries.
    pub fn display_name(&self) -> String {
        match self {
            Family::Known(f) => f.display.into(),
            Family::Unknown(t) if t.is_empty() => "unknown".into(),
            Family::Unknown(t) => format!("{t} (unknown family)"),
        }
    }

    /// The `model_type`s tensorcity knows, for messages.
    pub fn known_list() -> String {
        families::FAMILIES
            .iter()
            .map(|f| f.model_type)
            .collect::<Vec<_>>()
            .join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_files_are_recognised_by_names_only_their_family_uses() {
        let guess =
            |names: &[&str]| Family::infer_from_names(names.iter().copied()).map(|f| f.model_type().to_string());
        assert_eq!(guess(&["h.0.attn.c_attn.weight"]).as_deref(), Some("gpt2"));
        assert_eq!(
            guess(&["model.layers.0.self_attn.q_proj.weight"]).as_deref(),
            Some("llama")
        );
        assert_eq!(
            guess(&[
                "model.layers.0.self_attn.q_proj.weight",
                "model.layers.0.self_attn.q_proj.bias"
            ])
            .as_deref(),
            Some("qwen2")
        );
        assert_eq!(
            guess(&["gpt_neox.layers.0.attention.query_key_value.weight"]).as_deref(),
            Some("gpt_neox")
        );
        assert_eq!(
            guess(&["model.layers.0.self_attn.q_norm.weight"]).as_deref(),
            Some("qwen3")
        );
        assert_eq!(
            guess(&["model.layers.0.pre_feedforward_layernorm.weight"]).as_deref(),
            Some("gemma2")
        );
        assert_eq!(
            guess(&[
                "model.layers.0.self_attn.qkv_proj.weight",
                "model.layers.0.mlp.gate_up_proj.weight"
            ])
            .as_deref(),
            Some("phi3")
        );
        assert_eq!(
            guess(&["x.block_sparse_moe.experts.0.w1.weight"]).as_deref(),
            Some("mixtral")
        );
        assert_eq!(guess(&["foo.bar"]), None);
        assert_eq!(Family::from_model_type("gemma2").display_name(), "Gemma 2");
        assert!(!Family::from_model_type("falcon").is_known());
    }
}
