//! The parts of a Hugging Face `config.json` that describe a model's shape,
//! read under both the GPT-2 (`n_layer`, `n_embd`) and modern key names.

use serde::Serialize;
use serde_json::{Map, Value};

use super::ArchError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    pub model_type: String,
    pub architectures: Vec<String>,
    pub num_layers: Option<u64>,
    pub hidden_size: Option<u64>,
    pub num_heads: Option<u64>,
    pub num_kv_heads: Option<u64>,
    pub head_dim: Option<u64>,
    pub intermediate_size: Option<u64>,
    pub vocab_size: Option<u64>,
    pub max_positions: Option<u64>,
    pub type_vocab_size: Option<u64>,
    pub num_experts: Option<u64>,
    pub experts_per_token: Option<u64>,
    /// As written; `None` means the family's default (see [`ModelConfig::tied_embeddings`]).
    pub tie_word_embeddings: Option<bool>,
    /// The whole `config.json`, for the inference code and for `--json`.
    #[serde(skip)]
    pub raw: Value,
}

impl ModelConfig {
    /// Parses `config.json` bytes. `what` names the file in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<ModelConfig, ArchError> {
        let raw: Value = serde_json::from_slice(bytes).map_err(|e| ArchError::BadConfig {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        Self::from_value(raw, what)
    }

    pub fn from_value(raw: Value, what: &str) -> Result<ModelConfig, ArchError> {
        let bad = |detail: String| ArchError::BadConfig {
            what: what.to_string(),
            detail,
        };
        let Value::Object(top) = &raw else {
            return Err(bad("top level is not an object".into()));
        };
        // Multimodal configs keep the language model's sizes in `text_config`.
        let text = top.get("text_config").and_then(Value::as_object);
        let get = |keys: &[&str]| -> Result<Option<u64>, ArchError> {
            for map in std::iter::once(top).chain(text) {
                for key in keys {
                    match map.get(*key) {
                        None | Some(Value::Null) => {}
                        Some(v) => {
                            return v
                                .as_u64()
                                .map(Some)
                                .ok_or_else(|| bad(format!("`{key}` must be a non-negative integer, got {v}")));
                        }
                    }
                }
            }
            Ok(None)
        };
        let model_type = match top.get("model_type") {
            Some(Value::String(s)) => s.clone(),
            None => String::new(),
            Some(v) => return Err(bad(format!("`model_type` must be a string, got {v}"))),
        };
        let architectures = top
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let num_heads = get(&["num_attention_heads", "n_head"])?;
        Ok(ModelConfig {
            architectures,
            num_layers: get(&["num_hidden_layers", "n_layer", "num_layers"])?,
            hidden_size: get(&["hidden_size", "n_embd", "d_model"])?,
            num_kv_heads: get(&["num_key_value_heads"])?.or(num_heads),
            num_heads,
            head_dim: get(&["head_dim"])?,
            intermediate_size: get(&["intermediate_size", "n_inner"])?,
            vocab_size: get(&["vocab_size"])?,
            max_positions: get(&["max_position_embeddings", "n_positions"])?,
            type_vocab_size: get(&["type_vocab_size"])?,
            num_experts: get(&["num_local_experts", "num_experts"])?,
            experts_per_token: get(&["num_experts_per_tok"])?,
            tie_word_embeddings: top.get("tie_word_embeddings").and_then(Value::as_bool),
            model_type,
            raw,
        })
    }

    /// Whether the LM head shares the embedding matrix (then no `lm_head.weight`
    /// is stored). transformers' defaults: true for GPT-2, BERT and Gemma 2,
    /// false for the Llama family unless the config says otherwise.
    pub fn tied_embeddings(&self) -> bool {
        self.tie_word_embeddings.unwrap_or_else(|| {
            super::Family::from_model_type(&self.model_type)
                .spec()
                .is_some_and(|f| f.tied_by_default)
        })
    }

    /// Per-head dimension: explicit `head_dim` or hidden / heads.
    pub fn head_dim(&self) -> Option<u64> {
        self.head_dim
            .or_else(|| Some(self.hidden_size? / self.num_heads.filter(|&h| h > 0)?))
    }

    /// A field of the raw JSON (for options the summary does not model).
    pub fn raw_field(&self, key: &str) -> Option<&Value> {
        self.raw.as_object().and_then(|m: &Map<String, Value>| m.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gpt2_and_llama_key_names() {
        let g = ModelConfig::from_json(
            br#"{"model_type":"gpt2","n_layer":12,"n_embd":768,"n_head":12,"n_positions":1024,"vocab_size":50257}"#,
            "c",
        )
        .unwrap();
        assert_eq!(
            (g.num_layers, g.hidden_size, g.num_kv_heads, g.head_dim()),
            (Some(12), Some(768), Some(12), Some(64))
        );
        assert!(g.tied_embeddings());
        let l = ModelConfig::from_json(br#"{"model_type":"llama","num_hidden_layers":16,"hidden_size":2048,"num_attention_heads":32,"num_key_value_heads":8}"#, "c").unwrap();
        assert_eq!(l.num_kv_heads, Some(8));
        assert!(!l.tied_embeddings());
    }

    #[test]
    fn rejects_bad_json_and_bad_types() {
        assert!(ModelConfig::from_json(b"[1,2]", "c").is_err());
        assert!(ModelConfig::from_json(b"{", "c").is_err());
        assert!(ModelConfig::from_json(br#"{"n_layer":-3}"#, "c").is_err());
        assert!(ModelConfig::from_json(br#"{"model_type":5}"#, "c").is_err());
    }
}
