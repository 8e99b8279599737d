//! GPT-2: `wte`/`wpe`, fused `c_attn`, `Conv1D` weights stored `[in, out]`,
//! published without a `transformer.` prefix and with causal-mask buffers.

use super::{FamilySpec, Layout};
use crate::arch::{ArchError, TensorKind};

pub const GPT2: FamilySpec = FamilySpec {
    model_type: "gpt2",
    display: "GPT-2",
    rules: &[
        ("wte.", TensorKind::Embedding),
        ("wpe.", TensorKind::PositionEmbedding),
        ("attn.c_attn.", TensorKind::AttentionQkv),
        ("attn.q_attn.", TensorKind::AttentionQuery),
        ("attn.c_proj.", TensorKind::AttentionOutput),
        ("mlp.c_fc.", TensorKind::MlpUp),
        ("mlp.c_proj.", TensorKind::MlpDown),
        ("ln_", TensorKind::Norm),
        ("lm_head.", TensorKind::LmHead),
    ],
    signature: &["attn.c_attn."],
    tied_by_default: true,
    synthesize,
};

fn synthesize(out: &mut Layout) -> Result<(), ArchError> {
    let c = out.config;
    let layers = out.need(c.num_layers, "n_layer")?;
    let h = out.need(c.hidden_size, "n_embd")?;
    let v = out.need(c.vocab_size, "vocab_size")?;
    let p = out.need(c.max_positions, "n_positions")?;
    let inner = c.intermediate_size.unwrap_or(4 * h);
    out.check_count(layers, 13)?;
    out.push("wte.weight", &[v, h]);
    out.push("wpe.weight", &[p, h]);
    for i in 0..layers {
        let b = format!("h.{i}");
        out.norm(&format!("{b}.ln_1"), h, true);
        out.push_typed(&format!("{b}.attn.bias"), &[1, 1, p, p], "F32");
        conv1d(out, &format!("{b}.attn.c_attn"), h, 3 * h);
        conv1d(out, &format!("{b}.attn.c_proj"), h, h);
        out.norm(&format!("{b}.ln_2"), h, true);
        conv1d(out, &format!("{b}.mlp.c_fc"), h, inner);
        conv1d(out, &format!("{b}.mlp.c_proj"), inner, h);
    }
    out.norm("ln_f", h, true);
    if !c.tied_embeddings() {
        out.push("lm_head.weight", &[v, h]);
    }
    Ok(())
}

/// GPT-2's `Conv1D`: weight stored transposed, `[in, out]`.
fn conv1d(out: &mut Layout, prefix: &str, fan_in: u64, fan_out: u64) {
    out.push(&format!("{prefix}.weight"), &[fan_in, fan_out]);
    out.push(&format!("{prefix}.bias"), &[fan_out]);
}
