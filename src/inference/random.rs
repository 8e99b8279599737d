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

/// Matrices for [`random_quantized_model`], by name.
struct QuantizedMap(std::collections::HashMap<String, std::sync::Arc<candle_core::quantized::QTensor>>);

impl super::vb::Quantized for QuantizedMap {
    fn quantized(&self, name: &str) -> Option<candle_core::Result<candle_core::quantized::QTensor>> {
        let q = self.0.get(name)?;
        // A QTensor is not Clone: rebuild it from its blocks (load time only).
        Some(q.data().and_then(|data| {
            let storage = candle_core::quantized::QStorage::from_data(data, &Device::Cpu, q.dtype())?;
            candle_core::quantized::QTensor::new(storage, q.shape().clone())
        }))
    }
}

/// A model of `config`'s shape whose projection matrices are random and
/// quantized to `qtype` (as a GGUF file's are; norms and embeddings dense
/// f32), for benchmarks of quantized inference.
pub fn random_quantized_model(
    config: &ModelConfig,
    qtype: candle_core::quantized::GgmlDType,
) -> Result<super::Model, InferenceError> {
    use candle_core::Tensor;
    let rows = crate::arch::synthesize(config, &config.model_type)?;
    let mut dense = std::collections::HashMap::new();
    let mut quantized = std::collections::HashMap::new();
    for row in rows {
        let shape: Vec<usize> = row.shape.iter().map(|&d| d as usize).collect();
        let matrix = shape.len() == 2 && !row.name.contains("embed") && shape[1].is_multiple_of(qtype.block_size());
        let t = if shape.len() == 1 {
            Tensor::ones(shape, DType::F32, &Device::Cpu)?
        } else {
            (Tensor::randn(0f32, 1.0, shape, &Device::Cpu)? * 0.02)?
        };
        if matrix {
            let q = candle_core::quantized::QTensor::quantize(&t, qtype)?;
            quantized.insert(row.name, std::sync::Arc::new(q));
        } else {
            dense.insert(row.name, t);
        }
    }
    let vb = candle_nn::VarBuilder::from_tensors(dense, DType::F32, &Device::Cpu);
    let vb = super::vb::VarBuilder::with_quantized(vb, std::sync::Arc::new(QuantizedMap(quantized)));
    super::Model::from_config(config, vb, &config.model_type)
}
