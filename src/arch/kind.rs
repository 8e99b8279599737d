//! Component kinds: what each tensor does, decided by per-family naming rules
//! (never by alphabet), plus buffer detection and the forward order inside a block.

use serde::{Deserialize, Serialize};

use super::Family;
use super::families::{self, Rules};

/// What a tensor is for. The order of the variants is the legend order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorKind {
    Embedding,
    PositionEmbedding,
    AttentionQuery,
    AttentionKey,
    AttentionValue,
    AttentionQkv,
    AttentionOutput,
    MlpGate,
    /// A fused gate and up projection (Phi-3's `gate_up_proj`).
    MlpGateUp,
    MlpUp,
    MlpDown,
    Expert,
    Router,
    Norm,
    LmHead,
    Pooler,
    Other,
}

impl TensorKind {
    pub const ALL: [TensorKind; 17] = [
        TensorKind::Embedding,
        TensorKind::PositionEmbedding,
        TensorKind::AttentionQuery,
        TensorKind::AttentionKey,
        TensorKind::AttentionValue,
        TensorKind::AttentionQkv,
        TensorKind::AttentionOutput,
        TensorKind::MlpGate,
        TensorKind::MlpGateUp,
        TensorKind::MlpUp,
        TensorKind::MlpDown,
        TensorKind::Expert,
        TensorKind::Router,
        TensorKind::Norm,
        TensorKind::LmHead,
        TensorKind::Pooler,
        TensorKind::Other,
    ];

    /// Short label for legends and tables.
    pub fn label(self) -> &'static str {
        match self {
            TensorKind::Embedding => "embedding",
            TensorKind::PositionEmbedding => "position embedding",
            TensorKind::AttentionQuery => "attention query",
            TensorKind::AttentionKey => "attention key",
            TensorKind::AttentionValue => "attention value",
            TensorKind::AttentionQkv => "attention fused qkv",
            TensorKind::AttentionOutput => "attention output",
            TensorKind::MlpGate => "mlp gate",
            TensorKind::MlpGateUp => "mlp fused gate/up",
            TensorKind::MlpUp => "mlp up",
            TensorKind::MlpDown => "mlp down",
            TensorKind::Expert => "expert",
            TensorKind::Router => "router",
            TensorKind::Norm => "norm",
            TensorKind::LmHead => "lm head",
            TensorKind::Pooler => "pooler",
            TensorKind::Other => "other",
        }
    }
}

/// Kind of a tensor under its family's naming rules.
pub fn classify(family: &Family, name: &str) -> TensorKind {
    let unknown: Vec<Rules> = families::FAMILIES
        .iter()
        .map(|f| f.rules)
        .chain([families::GENERIC_RULES])
        .collect();
    let sets: &[Rules] = match family.spec() {
        Some(spec) => std::slice::from_ref(&spec.rules),
        None => &unknown,
    };
    // A needle ending in `.` names whole path segments (`lm_head.` matches
    // `lm_head.weight`, not `extra_lm_head.weight`); other needles match anywhere
    // (`norm` in `input_layernorm`).
    let padded = format!("{name}.");
    sets.iter()
        .flat_map(|rules| rules.iter())
        .find(|(needle, _)| matches_rule(&padded, needle))
        .map_or(TensorKind::Other, |&(_, kind)| kind)
}

fn matches_rule(name: &str, needle: &str) -> bool {
    if needle.ends_with('.') {
        name.match_indices(needle)
            .any(|(i, _)| i == 0 || name.as_bytes()[i - 1] == b'.')
    } else {
        name.contains(needle)
    }
}

/// Buffers that some published checkpoints carry: GPT-2's causal mask
/// (`attn.bias` [1,1,n,n], `attn.masked_bias`), BERT's `position_ids`, older
/// Llama files' `rotary_emb.inv_freq`. transformers' `num_parameters()` skips them.
pub fn is_buffer(name: &str, _dtype: &str, shape: &[u64]) -> bool {
    let last_two = name.rsplitn(3, '.').take(2).collect::<Vec<_>>();
    match last_two.as_slice() {
        ["bias", "attn"] => shape.len() == 4,
        ["masked_bias", "attn"] => true,
        [last, ..] => matches!(*last, "inv_freq" | "position_ids" | "token_type_ids"),
        [] => false,
    }
}

/// Where a tensor sits in its block's forward pass: `(major, minor)`.
/// Majors: 0 embeddings, 1 pre-attention norm, 2-5 attention, 6 the norm between
/// attention and MLP (post-attention LN in BERT), 7 router, 8-10 MLP / experts,
/// 11 post-MLP norm (BERT), 20+ final norm and heads.
pub fn forward_rank(clean_name: &str, kind: TensorKind) -> (u8, u8) {
    let last = clean_name.rsplit('.').next().unwrap_or("");
    let param_minor = match last {
        "weight" | "gamma" => 0,
        "bias" | "beta" => 1,
        _ => 2,
    };
    let in_block = [".h.", "layers.", "layer.", "blocks."]
        .iter()
        .any(|m| clean_name.starts_with(&m[1..]) || clean_name.contains(m));
    let major = match kind {
        TensorKind::Embedding | TensorKind::PositionEmbedding => 0,
        TensorKind::AttentionQuery | TensorKind::AttentionQkv => 2,
        TensorKind::AttentionKey => 3,
        TensorKind::AttentionValue => 4,
        TensorKind::AttentionOutput => 5,
        TensorKind::Router => 7,
        TensorKind::MlpGate | TensorKind::MlpGateUp | TensorKind::Expert => 8,
        TensorKind::MlpUp => 9,
        TensorKind::MlpDown => 10,
        TensorKind::Norm if clean_name.contains("embeddings.") => 0,
        TensorKind::Norm if !in_block => 20,
        TensorKind::Norm => norm_rank(clean_name),
        TensorKind::LmHead => 21,
        TensorKind::Pooler => 22,
        TensorKind::Other if clean_name.contains("attn.") => 5,
        TensorKind::Other => 23,
    };
    let minor = if major == 0 {
        // Token embeddings, then positions, token types, the embedding norm.
        let sub = match kind {
            TensorKind::PositionEmbedding => 1,
            TensorKind::Embedding if clean_name.contains("token_type") => 2,
            TensorKind::Embedding => 0,
            _ => 3,
        };
        sub * 3 + param_minor
    } else if kind == TensorKind::Expert {
        let part = match clean_name.rsplit('.').nth(1).unwrap_or("") {
            "w1" | "gate_proj" => 0,
            "w3" | "up_proj" => 1,
            _ => 2,
        };
        part * 3 + param_minor
    } else {
        param_minor
    };
    (major, minor)
}

fn norm_rank(clean_name: &str) -> u8 {
    if clean_name.contains("attention.output.LayerNorm")
        || clean_name.contains("ln_2")
        || clean_name.contains("post_attention")
    {
        6
    } else if clean_name.contains("output.LayerNorm") || clean_name.contains("post_feedforward") {
        11
    } else if clean_name.contains("pre_feedforward") {
        // Gemma 2: after the post-attention norm, before the MLP.
        7
    } else if clean_name.contains("q_norm") || clean_name.contains("k_norm") {
        4
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_family_rules() {
        let g = Family::from_model_type("gpt2");
        assert_eq!(classify(&g, "h.0.attn.c_attn.weight"), TensorKind::AttentionQkv);
        assert_eq!(classify(&g, "h.0.attn.c_proj.bias"), TensorKind::AttentionOutput);
        assert_eq!(classify(&g, "h.0.mlp.c_proj.weight"), TensorKind::MlpDown);
        assert_eq!(classify(&g, "transformer.wpe.weight"), TensorKind::PositionEmbedding);
        assert_eq!(classify(&g, "ln_f.weight"), TensorKind::Norm);
        let m = Family::from_model_type("mixtral");
        assert_eq!(
            classify(&m, "model.layers.0.block_sparse_moe.gate.weight"),
            TensorKind::Router
        );
        assert_eq!(
            classify(&m, "model.layers.0.block_sparse_moe.experts.3.w1.weight"),
            TensorKind::Expert
        );
        assert_eq!(classify(&m, "model.layers.0.mlp.gate_proj.weight"), TensorKind::MlpGate);
        assert_eq!(classify(&m, "model.norm.weight"), TensorKind::Norm);
        assert_eq!(
            classify(&m, "model.layers.0.post_attention_layernorm.weight"),
            TensorKind::Norm
        );
        assert_eq!(classify(&m, "model.layers.0.input_layernorm.weight"), TensorKind::Norm);
        assert_eq!(classify(&m, "lm_head.weight"), TensorKind::LmHead);
        let b = Family::from_model_type("bert");
        assert_eq!(
            classify(&b, "encoder.layer.0.attention.output.dense.weight"),
            TensorKind::AttentionOutput
        );
        assert_eq!(classify(&b, "encoder.layer.0.output.dense.weight"), TensorKind::MlpDown);
        assert_eq!(
            classify(&b, "encoder.layer.0.attention.output.LayerNorm.weight"),
            TensorKind::Norm
        );
        assert_eq!(classify(&b, "pooler.dense.weight"), TensorKind::Pooler);
        let u = Family::Unknown("falcon".into());
        assert_eq!(
            classify(&u, "model.layers.0.self_attn.q_proj.weight"),
            TensorKind::AttentionQuery
        );
        assert_eq!(classify(&u, "model.final_layernorm.weight"), TensorKind::Norm);
        assert_eq!(classify(&u, "something.else"), TensorKind::Other);
    }

    #[test]
    fn buffers_are_recognised() {
        assert!(is_buffer("h.0.attn.bias", "F32", &[1, 1, 1024, 1024]));
        assert!(!is_buffer("h.0.attn.c_attn.bias", "F32", &[2304]));
        assert!(is_buffer("embeddings.position_ids", "I64", &[1, 512]));
        assert!(is_buffer("model.layers.0.self_attn.rotary_emb.inv_freq", "F32", &[64]));
        assert!(!is_buffer("model.layers.0.self_attn.q_proj.bias", "F32", &[896]));
    }

    #[test]
    fn forward_rank_orders_a_block() {
        let k = |n| classify(&Family::from_model_type("bert"), n);
        let names = [
            "encoder.layer.attention.self.query.weight",
            "encoder.layer.attention.output.dense.weight",
            "encoder.layer.attention.output.LayerNorm.weight",
            "encoder.layer.intermediate.dense.weight",
            "encoder.layer.output.dense.weight",
            "encoder.layer.output.LayerNorm.weight",
        ];
        let ranks: Vec<_> = names.iter().map(|n| forward_rank(n, k(n))).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
    }
}
