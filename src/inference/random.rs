//! Random weights for any runnable family, from its `config.json` alone (the
//! catalogue's tensor list): for benchmarks of real model shapes and for the
//! training program's starting point. N(0, 0.02) matrices, unit norm gains,
//! zero biases, in `dtype`.

use candle_core::{DType, Device};
use candle_nn::{Init, VarMap};

use super::InferenceError;
use crate::arch::ModelConfig;

/// Fills `varmap` with fresh weights named as the family's checkpoints are.
pub fn init_weights(
    varmap: &VarMap,
    config: &ModelConfig,
    dtype: DType,
    device: &Device,
) -> Result<(), InferenceError> {
    let rows = crate::arch::synthesize(config, &config.model_type)?;
    for row in rows {
        if row.name.ends_with(".attn.bias") && row.shape.len() == 4 {
            continue; // GPT-2's causal-mask buffer, not a parameter
        }
        let shape: Vec<usize> = row.shape.iter().map(|&d| d as usize).collect();
        let gain = shape.len() == 1 && row.name.ends_with(".weight");
        let init = match (gain, row.name.ends_with(".bias")) {
            (true, _) => Init::Const(1.0),
            (false, true) => Init::Const(0.0),
            (false, false) => Init::Randn { mean: 0.0, stdev: 0.02 },
        };
        varmap.get(shape, &row.name, init, dtype, device)?;
    }
    Ok(())
}

/// A model of `config`'s shape with random weights in `dtype`. The weights
/// are plain tensors, not training variables: outputs computed from a
/// variable keep its whole op graph (and every widened copy of a half
/// precision weight) alive for as long as they live.
pub fn random_model(config: &ModelConfig, dtype: DType) -> Result<super::Model, InferenceError> {
    let varmap = VarMap::new();
    init_weights(&varmap, config, dtype, &Device::Cpu)?;
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = varmap
        .data()
        .lock()
        .map_err(|_| InferenceError::Model {
            what: "random weights".into(),
            detail: "the weights lock was poisoned".into(),
        })?
        .drain()
        .map(|(name, var)| (name, var.as_tensor().detach()))
        .collect();
    let vb = candle_nn::VarBuilder::from_tensors(tensors, dtype, &Device::Cpu);
    super::Model::from_config(config, vb.into(), &config.model_type)
}
