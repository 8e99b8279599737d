//! Everything a run exposes, in transformers' layout, and how the rows of a
//! cached generation step extend it: the capture of a prompt plus N cached
//! steps is the capture of one forward pass over the final sequence.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::{InferenceError, Tap};

#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub tokens: Vec<u32>,
    /// `hidden[i]`: `[T, hidden]`; 0 is the embeddings output, the last one is
    /// after the final norm (as transformers reports it).
    pub hidden: Vec<Tensor>,
    /// `attn[i]`: `[heads, T, T]`, row = query position, column = key position.
    pub attn: Vec<Tensor>,
    /// `mlp[i]`: `[T, intermediate]`, block `i`'s MLP activations.
    pub mlp: Vec<Tensor>,
    /// `router[i]`: `[T, experts]`, block `i`'s router logits (mixture of experts).
    pub router: Vec<Tensor>,
    /// `[T, vocab]` for causal language models.
    pub logits: Option<Tensor>,
}

impl Capture {
    pub fn new(tokens: &[u32]) -> Capture {
        Capture {
            tokens: tokens.to_vec(),
            ..Default::default()
        }
    }

    /// Puts in a tap whose rows start at position `from`: 0 for a full pass,
    /// the cached length for a generation step (then the rows are appended).
    pub fn push(&mut self, tap: Tap, tensor: Tensor, from: usize) -> Result<(), InferenceError> {
        let (list, i) = match tap {
            Tap::Hidden(i) => (&mut self.hidden, i),
            Tap::Attention(i) => (&mut self.attn, i),
            Tap::Mlp(i) => (&mut self.mlp, i),
            Tap::Router(i) => (&mut self.router, i),
            Tap::Lens => return Ok(()),
            Tap::Logits => {
                self.logits = Some(match (&self.logits, from) {
                    (Some(old), f) if f > 0 => extend_rows(tap, old, &tensor, from)?,
                    _ => tensor,
                });
                return Ok(());
            }
        };
        let len = list.len();
        match list.get_mut(i) {
            Some(old) if from > 0 => *old = extend_rows(tap, old, &tensor, from)?,
            Some(old) => *old = tensor,
            None if i == len => list.push(tensor),
            None => {
                return Err(InferenceError::Model {
                    what: "capture".into(),
                    detail: format!("{tap:?} arrived before the taps of the blocks below it"),
                });
            }
        }
        Ok(())
    }

    /// Writes the capture as safetensors: `tokens`, `hidden.{i}`, `attn.{i}`,
    /// `mlp.{i}`, `router.{i}`, `logits`.
    pub fn save(&self, path: &Path) -> Result<(), InferenceError> {
        let mut map = std::collections::HashMap::new();
        let ids: Vec<i64> = self.tokens.iter().map(|&t| t as i64).collect();
        map.insert("tokens".to_string(), Tensor::new(ids.as_slice(), &Device::Cpu)?);
        for (prefix, list) in [
            ("hidden", &self.hidden),
            ("attn", &self.attn),
            ("mlp", &self.mlp),
            ("router", &self.router),
        ] {
            for (i, t) in list.iter().enumerate() {
                map.insert(format!("{prefix}.{i}"), t.clone());
            }
        }
        if let Some(l) = &self.logits {
            map.insert("logits".to_string(), l.clone());
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let io = |error| InferenceError::Io {
                path: path.to_path_buf(),
                error,
            };
            let tmp = crate::output::beside(path).map_err(io)?;
            candle_core::safetensors::save(&map, tmp.path())?;
            crate::output::finish(tmp, path).map_err(io)?;
        }
        #[cfg(target_arch = "wasm32")]
        candle_core::safetensors::save(&map, path)?;
        Ok(())
    }
}

/// `old` (rows for positions `0..from`) extended by `new` (rows for the
/// positions after): a cat along the rows, and for attention maps the old
/// rows padded with zeros for the new keys (a causal query never sees later
/// keys, so those entries are exactly zero in a full pass too).
pub fn extend_rows(tap: Tap, old: &Tensor, new: &Tensor, from: usize) -> Result<Tensor, InferenceError> {
    let mismatch = |detail: String| InferenceError::Model {
        what: format!("{tap:?}"),
        detail,
    };
    if let Tap::Attention(_) = tap {
        let (heads, rows, keys) = old.dims3()?;
        let (new_heads, _, new_keys) = new.dims3()?;
        if rows != from || keys != from || new_heads != heads || new_keys < keys {
            return Err(mismatch(format!(
                "a step's attention {:?} does not extend {:?} at position {from}",
                new.dims(),
                old.dims()
            )));
        }
        let pad = Tensor::zeros((heads, rows, new_keys - keys), old.dtype(), old.device())?;
        let widened = Tensor::cat(&[old, &pad], 2)?;
        return Ok(Tensor::cat(&[&widened, new], 1)?);
    }
    let rows = old.dim(0)?;
    if rows != from || old.dims()[1..] != new.dims()[1..] {
        return Err(mismatch(format!(
            "a step's rows {:?} do not extend {:?} at position {from}",
            new.dims(),
            old.dims()
        )));
    }
    Ok(Tensor::cat(&[old, new], 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_rows_extend_with_zeros_for_the_new_keys() {
        let old = Tensor::ones((2, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let new = Tensor::full(2f32, (2, 1, 4), &Device::Cpu).unwrap();
        let out = extend_rows(Tap::Attention(0), &old, &new, 3).unwrap();
        assert_eq!(out.dims(), [2, 4, 4]);
        let v = out.to_vec3::<f32>().unwrap();
        assert_eq!(v[1][0], [1.0, 1.0, 1.0, 0.0]);
        assert_eq!(v[1][3], [2.0, 2.0, 2.0, 2.0]);
        assert!(extend_rows(Tap::Attention(0), &old, &new, 2).is_err());
        let h = Tensor::ones((3, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
        let r = Tensor::ones((1, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(extend_rows(Tap::Hidden(0), &h, &r, 3).unwrap().dims(), [4, 5]);
        assert!(extend_rows(Tap::Hidden(0), &h, &r.t().unwrap(), 3).is_err());
    }
}
