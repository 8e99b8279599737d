//! GPT-NeoX (Pythia): `gpt_neox.` prefix, `embed_in` / `embed_out`, a fused
//! per-head `query_key_value`, LayerNorms with biases.

use super::{FamilySpec, Layout};
use crate::arch::{ArchError, TensorKind};

pub const GPT_NEOX: FamilySpec = FamilySpec {
    model_type: "gpt_neox",
    display: "GPT-NeoX",
    rules: &[
        ("embed_in.", TensorKind::Embedding),
        ("attention.query_key_value.", TensorKind::AttentionQkv),
        ("attention.dense.", TensorKind::AttentionOutput),
        ("mlp.dense_h_to_4h.", TensorKind::MlpUp),
        ("mlp.dense_4h_to_h.", TensorKind::MlpDown),
        ("norm", TensorKind::Norm),
        ("embed_out.", TensorKind::LmHead),
        ("lm_head.", TensorKind::LmHead),
    ],
    signature: &["attention.query_key_value."],
    tied_by_default: false,
    synthesize,
};

fn synthesize(out: &mut Layout) -> Result<(), ArchError> {
    let c = out.config;
    let layers = out.need(c.num_layers, "num_hidden_layers")?;
    let h = out.need(c.hidden_size, "hidden_size")?;
    let v = out.need(c.vocab_size, "vocab_size")?;
    let inner = out.need(c.intermediate_size, "intermediate_size")?;
    let bias = c.raw_field("attention_bias").and_then(|b| b.as_bool()).unwrap_or(true);
    out.check_count(layers, 12)?;
    out.push("gpt_neox.embed_in.weight", &[v, h]);
    for i in 0..layers {
        let b = format!("gpt_neox.layers.{i}");
        out.norm(&format!("{b}.input_layernorm"), h, true);
        out.norm(&format!("{b}.post_attention_layernorm"), h, true);
        out.linear(&format!("{b}.attention.query_key_value"), h, 3 * h, bias);
        out.linear(&format!("{b}.attention.dense"), h, h, bias);
        out.linear(&format!("{b}.mlp.dense_h_to_4h"), h, inner, true);
        out.linear(&format!("{b}.mlp.dense_4h_to_h"), inner, h, true);
    }
    out.norm("gpt_neox.final_layer_norm", h, true);
    if !c.tied_embeddings() {
        out.push("embed_out.weight", &[v, h]);
    }
    Ok(())
}
