//! What a family module loads its weights from: candle's `VarBuilder` for
//! dense tensors plus, for a GGUF model, its quantized matrices, which
//! [`Linear`](super::layers::Linear) keeps quantized and multiplies with
//! directly. The same calls (`pp`, `get`, `contains_tensor`) as candle's.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{Shape, Tensor};

/// `tensor` when it has the shape a module asked for, else candle's shape error.
pub(crate) fn expect_shape(tensor: Tensor, s: Shape, name: &str) -> candle_core::Result<Tensor> {
    if tensor.shape() != &s {
        return Err(candle_core::Error::UnexpectedShape {
            msg: format!("shape mismatch for {name}"),
            expected: s,
            got: tensor.shape().clone(),
        }
        .bt());
    }
    Ok(tensor)
}

/// A source of quantized matrices by full tensor name.
pub trait Quantized: Send + Sync {
    /// `None` when the tensor is not stored quantized (or not at all).
    fn quantized(&self, name: &str) -> Option<candle_core::Result<QTensor>>;
}

#[derive(Clone)]
pub struct VarBuilder<'a> {
    dense: candle_nn::VarBuilder<'a>,
    quantized: Option<Arc<dyn Quantized>>,
}

impl<'a> From<candle_nn::VarBuilder<'a>> for VarBuilder<'a> {
    fn from(dense: candle_nn::VarBuilder<'a>) -> Self {
        VarBuilder { dense, quantized: None }
    }
}

impl<'a> VarBuilder<'a> {
    /// Dense tensors from `dense`, quantized matrices from `quantized`.
    pub fn with_quantized(dense: candle_nn::VarBuilder<'a>, quantized: Arc<dyn Quantized>) -> Self {
        VarBuilder {
            dense,
            quantized: Some(quantized),
        }
    }

    pub fn pp<S: ToString>(&self, s: S) -> Self {
        VarBuilder {
            dense: self.dense.pp(s),
            quantized: self.quantized.clone(),
        }
    }

    pub fn get<S: Into<Shape>>(&self, s: S, name: &str) -> candle_core::Result<Tensor> {
        self.dense.get(s, name)
    }

    pub fn prefix(&self) -> String {
        self.dense.prefix()
    }

    pub fn contains_tensor(&self, name: &str) -> bool {
        self.dense.contains_tensor(name)
    }

    /// `name` under this prefix as a quantized matrix, when it is stored so.
    pub fn quantized(&self, name: &str) -> Option<candle_core::Result<QTensor>> {
        let full = match self.dense.prefix() {
            p if p.is_empty() => name.to_string(),
            p => format!("{p}.{name}"),
        };
        self.quantized.as_ref()?.quantized(&full)
    }
}
