//! The catalogue's trick: a family's exact tensor list (names, shapes, dtypes, in
//! the order the published checkpoint stores them per module) from `config.json`
//! alone, so a 405B model can be drawn without a byte of its weights.

use super::families::Layout;
use super::{ArchError, Family, HeaderTensor, ModelConfig};

/// Synthesises the tensor list of a checkpoint with this config, following the
/// files as published on the Hub (each family's layout is in `families/`):
/// GPT-2 without a `transformer.` prefix and with its causal-mask buffers,
/// BERT as the base `BertModel`, Llama-style decoders as `...ForCausalLM` (no
/// `lm_head` when embeddings are tied), Mixtral with per-expert `w1`/`w2`/`w3`.
pub fn synthesize(config: &ModelConfig, what: &str) -> Result<Vec<HeaderTensor>, ArchError> {
    let family = Family::from_model_type(&config.model_type);
    let Some(spec) = family.spec() else {
        let t = if config.model_type.is_empty() {
            "(none)"
        } else {
            config.model_type.as_str()
        };
        return Err(ArchError::UnsupportedConfig {
            what: what.to_string(),
            detail: format!(
                "model_type `{t}` is not one the catalogue can lay out from config.json alone ({}); open its .safetensors file or folder instead",
                Family::known_list()
            ),
        });
    };
    let dtype = config
        .raw_field("torch_dtype")
        .or_else(|| config.raw_field("dtype"))
        .and_then(|v| v.as_str())
        .map_or("F32", torch_dtype_to_safetensors)
        .to_string();
    let mut out = Layout {
        config,
        what,
        family: spec.display,
        rows: Vec::new(),
        dtype,
    };
    (spec.synthesize)(&mut out)?;
    // Every shape must have a representable element count.
    for row in &out.rows {
        if super::element_count(&row.shape).is_none() {
            return Err(ArchError::UnsupportedConfig {
                what: what.to_string(),
                detail: format!("tensor `{}` of shape {:?} is too large to count", row.name, row.shape),
            });
        }
    }
    Ok(out.rows)
}

/// `torch_dtype` strings as safetensors dtype names.
fn torch_dtype_to_safetensors(t: &str) -> &'static str {
    match t {
        "bfloat16" => "BF16",
        "float16" | "half" => "F16",
        "float64" | "double" => "F64",
        _ => "F32",
    }
}
