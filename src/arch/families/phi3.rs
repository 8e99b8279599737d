//! Phi-3: the Llama layout with fused `qkv_proj` and `gate_up_proj`.

use super::FamilySpec;
use super::llama::{Parts, RULES, decoder};

pub const PHI3: FamilySpec = FamilySpec {
    model_type: "phi3",
    display: "Phi-3",
    rules: RULES,
    signature: &["self_attn.qkv_proj.", "mlp.gate_up_proj."],
    tied_by_default: false,
    synthesize: |out| {
        decoder(
            out,
            Parts {
                fused: true,
                ..Parts::default()
            },
        )
    },
};
