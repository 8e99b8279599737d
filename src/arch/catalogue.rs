//! The built-in catalogue: Hub configs shipped in the binary (`assets/catalogue/`),
//! from which [`super::synthesize`] lays out the exact tensor list offline.

use super::{ArchError, Architecture, ModelConfig};

/// A model the app knows without a network.
#[derive(Debug, Clone, Copy)]
pub struct CatalogueEntry {
    /// Hugging Face id, as the user types it.
    pub id: &'static str,
    /// Other ids that name the same checkpoint (the Hub's org-prefixed renames).
    pub aliases: &'static [&'static str],
    pub description: &'static str,
    pub config_json: &'static str,
}

macro_rules! entry {
    ($id:literal, [$($alias:literal),*], $file:literal, $desc:literal) => {
        CatalogueEntry {
            id: $id,
            aliases: &[$($alias),*],
            description: $desc,
            config_json: include_str!(concat!("../../assets/catalogue/", $file, ".json")),
        }
    };
}

const CATALOGUE: &[CatalogueEntry] = &[
    entry!("gpt2", ["openai-community/gpt2"], "gpt2", "GPT-2 small, 124M"),
    entry!(
        "gpt2-medium",
        ["openai-community/gpt2-medium"],
        "gpt2-medium",
        "GPT-2 medium, 355M"
    ),
    entry!("gpt2-xl", ["openai-community/gpt2-xl"], "gpt2-xl", "GPT-2 XL, 1.5B"),
    entry!(
        "bert-base-uncased",
        ["google-bert/bert-base-uncased"],
        "bert-base-uncased",
        "BERT base encoder, 110M"
    ),
    entry!(
        "sentence-transformers/all-MiniLM-L6-v2",
        [],
        "sentence-transformers--all-MiniLM-L6-v2",
        "MiniLM sentence encoder, 23M"
    ),
    entry!(
        "meta-llama/Llama-3.2-1B",
        [],
        "meta-llama--Llama-3.2-1B",
        "Llama 3.2, 1.2B, tied embeddings"
    ),
    entry!(
        "meta-llama/Llama-3.1-8B",
        [],
        "meta-llama--Llama-3.1-8B",
        "Llama 3.1, 8B"
    ),
    entry!(
        "meta-llama/Llama-3.1-405B",
        [],
        "meta-llama--Llama-3.1-405B",
        "Llama 3.1, 405B, 126 layers"
    ),
    entry!(
        "mistralai/Mistral-7B-v0.1",
        [],
        "mistralai--Mistral-7B-v0.1",
        "Mistral 7B"
    ),
    entry!(
        "mistralai/Mixtral-8x7B-v0.1",
        [],
        "mistralai--Mixtral-8x7B-v0.1",
        "Mixtral 8x7B mixture of experts, 47B"
    ),
    entry!(
        "EleutherAI/pythia-160m",
        [],
        "EleutherAI--pythia-160m",
        "Pythia 160M (GPT-NeoX), the interpretability standard"
    ),
    entry!(
        "google/gemma-2-2b",
        [],
        "google--gemma-2-2b",
        "Gemma 2, 2.6B, alternating local/global attention"
    ),
    entry!(
        "Qwen/Qwen3-0.6B",
        [],
        "Qwen--Qwen3-0.6B",
        "Qwen3, 0.6B, q/k norms, tied embeddings"
    ),
    entry!(
        "microsoft/Phi-3-mini-4k-instruct",
        [],
        "microsoft--Phi-3-mini-4k-instruct",
        "Phi-3 mini, 3.8B, fused qkv and gate/up"
    ),
    entry!(
        "Qwen/Qwen2.5-0.5B",
        [],
        "Qwen--Qwen2.5-0.5B",
        "Qwen2.5 0.5B, q/k/v biases"
    ),
];

/// Every catalogue entry, in display order.
pub fn catalogue() -> &'static [CatalogueEntry] {
    CATALOGUE
}

/// Looks an id up (case-insensitive, aliases included).
pub fn catalogue_entry(id: &str) -> Option<&'static CatalogueEntry> {
    CATALOGUE
        .iter()
        .find(|e| e.id.eq_ignore_ascii_case(id) || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(id)))
}

impl CatalogueEntry {
    pub fn config(&self) -> Result<ModelConfig, ArchError> {
        ModelConfig::from_json(self.config_json.as_bytes(), self.id)
    }

    /// The entry's architecture, synthesised from its config.
    pub fn architecture(&self) -> Result<Architecture, ArchError> {
        let config = self.config()?;
        let rows = super::synthesize(&config, self.id)?;
        Ok(Architecture::from_rows(self.id, "catalogue", Some(config), rows))
    }
}

/// Up to three catalogue ids that look like `id`, best first (for "did you mean").
pub fn closest_catalogue_names(id: &str) -> Vec<&'static str> {
    let needle = id.to_ascii_lowercase();
    let short = needle.rsplit('/').next().unwrap_or(&needle).to_string();
    let mut scored: Vec<(f64, &'static str)> = CATALOGUE
        .iter()
        .map(|e| {
            let full = e.id.to_ascii_lowercase();
            let tail = full.rsplit('/').next().unwrap_or(&full).to_string();
            let score = strsim::jaro_winkler(&needle, &full).max(strsim::jaro_winkler(&short, &tail));
            (score, e.id)
        })
        .filter(|(s, _)| *s > 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_synthesises() {
        for e in catalogue() {
            let arch = e.architecture().unwrap();
            assert!(arch.total_params() > 1_000_000, "{}", e.id);
        }
    }

    #[test]
    fn lookup_and_suggestions() {
        assert_eq!(catalogue_entry("OpenAI-Community/GPT2").map(|e| e.id), Some("gpt2"));
        assert!(catalogue_entry("gpt3").is_none());
        assert!(closest_catalogue_names("meta-llama/Llama-3.1-70B").contains(&"meta-llama/Llama-3.1-8B"));
        assert!(closest_catalogue_names("gtp2").contains(&"gpt2"));
    }
}
