//! Rotary position embeddings: the `config.json` keys in every spelling in
//! use, inverse frequencies (with Llama 3.1's `llama3` scaling and a partial
//! rotary factor), and one pass's cos/sin tables.

use candle_core::{D, DType, Device, Tensor};
use serde::Deserialize;

use super::layers::Ops;

/// The rotary-embedding keys of a `config.json`, in every spelling in use:
/// transformers >= 5's `rope_parameters`, the older `rope_theta` +
/// `rope_scaling`, and GPT-NeoX's `rotary_emb_base` / `rotary_pct`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeKeys {
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeParameters>,
    pub rope_parameters: Option<RopeParameters>,
    pub partial_rotary_factor: Option<f64>,
    pub rotary_pct: Option<f64>,
    pub rotary_emb_base: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    pub rope_theta: Option<f64>,
    #[serde(alias = "type")]
    pub rope_type: Option<String>,
    pub partial_rotary_factor: Option<f64>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<f64>,
}

impl RopeKeys {
    fn params(&self) -> Option<&RopeParameters> {
        self.rope_parameters.as_ref().or(self.rope_scaling.as_ref())
    }

    pub fn theta(&self, default: f64) -> f64 {
        self.params()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .or(self.rotary_emb_base)
            .unwrap_or(default)
    }

    /// The fraction of each head's dimensions that rotate (GPT-NeoX, Phi).
    pub fn partial_factor(&self, default: f64) -> f64 {
        self.params()
            .and_then(|p| p.partial_rotary_factor)
            .or(self.partial_rotary_factor)
            .or(self.rotary_pct)
            .unwrap_or(default)
    }
}

/// Rotary position embedding over the first `dims` dimensions of each head.
#[derive(Debug, Clone)]
pub struct Rotary {
    inv_freq: Vec<f32>,
    dims: usize,
}

impl Rotary {
    /// For heads of `head_dim`, with `rotary_factor` of it rotating and RoPE
    /// scaling as the keys say (`default` and Llama 3.1's `llama3`).
    pub fn new(keys: &RopeKeys, head_dim: usize, default_theta: f64, default_factor: f64) -> Result<Rotary, String> {
        let factor = keys.partial_factor(default_factor);
        let dims = (head_dim as f64 * factor) as usize;
        if dims == 0 || !dims.is_multiple_of(2) || dims > head_dim {
            return Err(format!(
                "rotary embedding over {dims} of head_dim {head_dim} (partial_rotary_factor {factor}) needs an even, \
                 non-zero count; check head_dim and partial_rotary_factor"
            ));
        }
        let theta = keys.theta(default_theta);
        let mut inv: Vec<f64> = (0..dims / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / dims as f64))
            .collect();
        let scaling = keys.params();
        match scaling.and_then(|s| s.rope_type.as_deref()).unwrap_or("default") {
            "default" => {}
            "llama3" => {
                let s = scaling.ok_or("llama3 rope scaling without parameters")?;
                let need =
                    |v: Option<f64>, k: &str| v.ok_or(format!("llama3 rope scaling needs `{k}` in rope_parameters"));
                let factor = need(s.factor, "factor")?;
                let low = need(s.low_freq_factor, "low_freq_factor")?;
                let high = need(s.high_freq_factor, "high_freq_factor")?;
                let old = need(s.original_max_position_embeddings, "original_max_position_embeddings")?;
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                for f in &mut inv {
                    let wavelen = 2.0 * std::f64::consts::PI / *f;
                    if wavelen > low_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (old / wavelen - low) / (high - low);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
            other => {
                return Err(format!(
                    "rope scaling `{other}` is not supported yet (default and llama3 are)"
                ));
            }
        }
        Ok(Rotary {
            inv_freq: inv.into_iter().map(|f| f as f32).collect(),
            dims,
        })
    }

    /// cos/sin tables `[T, dims / 2]` for positions `offset..offset + T`.
    pub fn tables(&self, offset: usize, t: usize, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let inv = Tensor::from_vec(self.inv_freq.clone(), (1, half), device)?;
        let pos = Tensor::arange(offset as u32, (offset + t) as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((t, 1))?;
        let freqs = pos.broadcast_mul(&inv)?;
        Ok((freqs.cos()?, freqs.sin()?))
    }

    /// The tables for positions `offset..offset + T`, ready to apply.
    pub fn at(&self, offset: usize, t: usize, device: &Device) -> candle_core::Result<RopeTables<'_>> {
        let (cos, sin) = self.tables(offset, t, device)?;
        Ok(RopeTables { rotary: self, cos, sin })
    }
}

/// One pass's rotary tables.
pub struct RopeTables<'a> {
    rotary: &'a Rotary,
    cos: Tensor,
    sin: Tensor,
}

impl RopeTables<'_> {
    /// Rotates the first `dims` dimensions of `x` (`[b, heads, T, head_dim]`).
    pub fn apply(&self, x: &Tensor, ops: Ops) -> candle_core::Result<Tensor> {
        let head_dim = x.dim(D::Minus1)?;
        let dims = self.rotary.dims;
        if dims == head_dim {
            return ops.rope(x, &self.cos, &self.sin);
        }
        let rotated = ops.rope(&x.narrow(D::Minus1, 0, dims)?, &self.cos, &self.sin)?;
        let pass = x.narrow(D::Minus1, dims, head_dim - dims)?;
        Tensor::cat(&[&rotated, &pass], D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_new_rope_keys_agree_and_llama3_scaling_applies() {
        let keys = |json: &str| serde_json::from_str::<RopeKeys>(json).unwrap();
        let new = keys(
            r#"{"rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        );
        let old = keys(
            r#"{"rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        );
        let plain = keys(r#"{"rope_theta":500000.0}"#);
        let rotary = |k: &RopeKeys| Rotary::new(k, 64, 10_000.0, 1.0).unwrap().inv_freq;
        let (a, b, c) = (rotary(&new), rotary(&old), rotary(&plain));
        assert_eq!(a, b);
        assert_eq!(a[0], c[0]);
        assert!((a[31] * 32.0 - c[31]).abs() / c[31] < 1e-5);
        assert!(Rotary::new(&keys(r#"{"rope_scaling":{"type":"yarn"}}"#), 64, 1e4, 1.0).is_err());
        // GPT-NeoX's old spelling: a quarter of each head rotates.
        let neox = keys(r#"{"rotary_pct":0.25,"rotary_emb_base":10000}"#);
        assert_eq!(Rotary::new(&neox, 64, 1e4, 1.0).unwrap().dims, 16);
        assert!(Rotary::new(&keys("{}"), 7, 1e4, 1.0).is_err(), "odd head_dim");
    }
}
