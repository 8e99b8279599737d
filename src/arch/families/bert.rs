//! BERT: the base `BertModel` as published (embeddings with token types and a
//! LayerNorm, post-LN encoder layers, the pooler).

use super::{FamilySpec, Layout};
use crate::arch::{ArchError, TensorKind};

pub const BERT: FamilySpec = FamilySpec {
    model_type: "bert",
    display: "BERT",
    rules: &[
        ("word_embeddings.", TensorKind::Embedding),
        ("token_type_embeddings.", TensorKind::Embedding),
        ("position_embeddings.", TensorKind::PositionEmbedding),
        ("LayerNorm.", TensorKind::Norm),
        ("attention.self.query.", TensorKind::AttentionQuery),
        ("attention.self.key.", TensorKind::AttentionKey),
        ("attention.self.value.", TensorKind::AttentionValue),
        ("attention.output.dense.", TensorKind::AttentionOutput),
        ("intermediate.dense.", TensorKind::MlpUp),
        ("output.dense.", TensorKind::MlpDown),
        ("pooler.", TensorKind::Pooler),
        ("cls.", TensorKind::LmHead),
    ],
    signature: &["attention.self.query."],
    tied_by_default: true,
    synthesize,
};

fn synthesize(out: &mut Layout) -> Result<(), ArchError> {
    let c = out.config;
    let layers = out.need(c.num_layers, "num_hidden_layers")?;
    let h = out.need(c.hidden_size, "hidden_size")?;
    let v = out.need(c.vocab_size, "vocab_size")?;
    let p = out.need(c.max_positions, "max_position_embeddings")?;
    let inner = out.need(c.intermediate_size, "intermediate_size")?;
    let types = c.type_vocab_size.unwrap_or(2);
    out.check_count(layers, 16)?;
    out.push("embeddings.word_embeddings.weight", &[v, h]);
    out.push("embeddings.position_embeddings.weight", &[p, h]);
    out.push("embeddings.token_type_embeddings.weight", &[types, h]);
    out.norm("embeddings.LayerNorm", h, true);
    for i in 0..layers {
        let b = format!("encoder.layer.{i}");
        for part in ["query", "key", "value"] {
            out.linear(&format!("{b}.attention.self.{part}"), h, h, true);
        }
        out.linear(&format!("{b}.attention.output.dense"), h, h, true);
        out.norm(&format!("{b}.attention.output.LayerNorm"), h, true);
        out.linear(&format!("{b}.intermediate.dense"), h, inner, true);
        out.linear(&format!("{b}.output.dense"), inner, h, true);
        out.norm(&format!("{b}.output.LayerNorm"), h, true);
    }
    out.linear("pooler.dense", h, h, true);
    Ok(())
}
