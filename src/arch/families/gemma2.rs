//! Gemma 2: the Llama layout with norms before and after both attention and
//! the MLP (`pre_feedforward_layernorm`, `post_feedforward_layernorm`) and
//! tied embeddings.

use super::FamilySpec;
use super::llama::{Parts, RULES, decoder};

pub const GEMMA2: FamilySpec = FamilySpec {
    model_type: "gemma2",
    display: "Gemma 2",
    rules: RULES,
    signature: &["pre_feedforward_layernorm."],
    tied_by_default: true,
    synthesize: |out| {
        decoder(
            out,
            Parts {
                sandwich_norms: true,
                ..Parts::default()
            },
        )
    },
};
