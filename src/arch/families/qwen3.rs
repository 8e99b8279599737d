//! Qwen3: the Llama layout with per-head `q_norm` / `k_norm`.

use super::FamilySpec;
use super::llama::{Parts, RULES, decoder};

pub const QWEN3: FamilySpec = FamilySpec {
    model_type: "qwen3",
    display: "Qwen3",
    rules: RULES,
    signature: &["self_attn.q_norm."],
    tied_by_default: false,
    synthesize: |out| {
        decoder(
            out,
            Parts {
                qk_norm: true,
                ..Parts::default()
            },
        )
    },
};
