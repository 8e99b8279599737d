//! Mixtral: the Mistral layout with a `block_sparse_moe` (router `gate` and
//! per-expert `w1`/`w2`/`w3`) in place of the MLP.

use super::FamilySpec;
use super::llama::{Parts, RULES, decoder};

pub const MIXTRAL: FamilySpec = FamilySpec {
    model_type: "mixtral",
    display: "Mixtral (MoE)",
    rules: RULES,
    signature: &["block_sparse_moe.experts."],
    tied_by_default: false,
    synthesize: |out| {
        let experts = out.need(out.config.num_experts, "num_local_experts")?;
        decoder(
            out,
            Parts {
                experts,
                ..Parts::default()
            },
        )
    },
};
