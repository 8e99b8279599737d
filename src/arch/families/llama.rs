//! Llama, Mistral and Qwen2 (`...ForCausalLM` as published: `model.` prefix,
//! no `lm_head` when the embeddings are tied), and the decoder layout the
//! other Llama-style families (Qwen3, Phi-3, Mixtral, Gemma 2) build on.

use super::{FamilySpec, Layout, Rules};
use crate::arch::{ArchError, TensorKind};

/// The Llama-style names (shared by every decoder in its shape).
pub const RULES: Rules = &[
    ("embed_tokens.", TensorKind::Embedding),
    ("experts.", TensorKind::Expert),
    ("block_sparse_moe.gate.", TensorKind::Router),
    ("mlp.gate.", TensorKind::Router),
    ("shared_expert_gate.", TensorKind::Router),
    ("qkv_proj.", TensorKind::AttentionQkv),
    ("W_pack.", TensorKind::AttentionQkv),
    ("q_proj.", TensorKind::AttentionQuery),
    ("k_proj.", TensorKind::AttentionKey),
    ("v_proj.", TensorKind::AttentionValue),
    ("o_proj.", TensorKind::AttentionOutput),
    ("gate_up_proj.", TensorKind::MlpGateUp),
    ("gate_proj.", TensorKind::MlpGate),
    ("up_proj.", TensorKind::MlpUp),
    ("down_proj.", TensorKind::MlpDown),
    ("norm", TensorKind::Norm),
    ("lm_head.", TensorKind::LmHead),
];

pub const LLAMA: FamilySpec = FamilySpec {
    model_type: "llama",
    display: "Llama",
    rules: RULES,
    signature: &["self_attn.q_proj.weight"],
    tied_by_default: false,
    synthesize: |out| decoder(out, Parts::default()),
};

pub const MISTRAL: FamilySpec = FamilySpec {
    model_type: "mistral",
    display: "Mistral",
    rules: RULES,
    // Not told apart from Llama by names alone.
    signature: &[],
    tied_by_default: false,
    synthesize: |out| decoder(out, Parts::default()),
};

pub const QWEN2: FamilySpec = FamilySpec {
    model_type: "qwen2",
    display: "Qwen2",
    rules: RULES,
    signature: &["self_attn.q_proj.bias"],
    tied_by_default: false,
    synthesize: |out| {
        decoder(
            out,
            Parts {
                qkv_bias: Some(true),
                ..Parts::default()
            },
        )
    },
};

/// How a Llama-style decoder's blocks differ by family.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parts {
    /// q/k/v biases (default: `attention_bias`).
    pub qkv_bias: Option<bool>,
    /// Qwen3's per-head `q_norm` / `k_norm`.
    pub qk_norm: bool,
    /// Phi-3's fused `qkv_proj` and `gate_up_proj`.
    pub fused: bool,
    /// Mixtral's `block_sparse_moe` with this many experts instead of an MLP.
    pub experts: u64,
    /// Gemma 2's pre/post feed-forward norms.
    pub sandwich_norms: bool,
}

/// `model.embed_tokens`, the blocks, `model.norm`, `lm_head` (untied).
pub fn decoder(out: &mut Layout, parts: Parts) -> Result<(), ArchError> {
    let c = out.config;
    let layers = out.need(c.num_layers, "num_hidden_layers")?;
    let h = out.need(c.hidden_size, "hidden_size")?;
    let v = out.need(c.vocab_size, "vocab_size")?;
    let heads = out.need(c.num_heads, "num_attention_heads")?;
    let kv = out.need(c.num_kv_heads, "num_key_value_heads")?;
    let hd = out.need(c.head_dim(), "head_dim")?;
    let inner = out.need(c.intermediate_size, "intermediate_size")?;
    let attn_bias = out.flag("attention_bias");
    let qkv_bias = parts.qkv_bias.unwrap_or(attn_bias);
    let mlp_bias = out.flag("mlp_bias");
    out.check_count(layers, 11 + 3 * parts.experts)?;
    out.push("model.embed_tokens.weight", &[v, h]);
    for i in 0..layers {
        let b = format!("model.layers.{i}");
        if parts.fused {
            out.linear(&format!("{b}.self_attn.o_proj"), heads * hd, h, attn_bias);
            out.linear(&format!("{b}.self_attn.qkv_proj"), h, (heads + 2 * kv) * hd, qkv_bias);
        } else {
            out.linear(&format!("{b}.self_attn.q_proj"), h, heads * hd, qkv_bias);
            out.linear(&format!("{b}.self_attn.k_proj"), h, kv * hd, qkv_bias);
            out.linear(&format!("{b}.self_attn.v_proj"), h, kv * hd, qkv_bias);
            out.linear(&format!("{b}.self_attn.o_proj"), heads * hd, h, attn_bias);
        }
        if parts.qk_norm {
            out.norm(&format!("{b}.self_attn.q_norm"), hd, false);
            out.norm(&format!("{b}.self_attn.k_norm"), hd, false);
        }
        if parts.experts > 0 {
            out.linear(&format!("{b}.block_sparse_moe.gate"), h, parts.experts, false);
            for e in 0..parts.experts {
                let x = format!("{b}.block_sparse_moe.experts.{e}");
                out.linear(&format!("{x}.w1"), h, inner, false);
                out.linear(&format!("{x}.w2"), inner, h, false);
                out.linear(&format!("{x}.w3"), h, inner, false);
            }
        } else if parts.fused {
            out.linear(&format!("{b}.mlp.gate_up_proj"), h, 2 * inner, mlp_bias);
            out.linear(&format!("{b}.mlp.down_proj"), inner, h, mlp_bias);
        } else {
            out.linear(&format!("{b}.mlp.gate_proj"), h, inner, mlp_bias);
            out.linear(&format!("{b}.mlp.up_proj"), h, inner, mlp_bias);
            out.linear(&format!("{b}.mlp.down_proj"), inner, h, mlp_bias);
        }
        out.norm(&format!("{b}.input_layernorm"), h, false);
        out.norm(&format!("{b}.post_attention_layernorm"), h, false);
        if parts.sandwich_norms {
            out.norm(&format!("{b}.pre_feedforward_layernorm"), h, false);
            out.norm(&format!("{b}.post_feedforward_layernorm"), h, false);
        }
    }
    out.norm("model.norm", h, false);
    if !out.config.tied_embeddings() {
        out.push("lm_head.weight", &[v, h]);
    }
    Ok(())
}
