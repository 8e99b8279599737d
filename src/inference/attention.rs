//! Scaled dot-product attention of a pass's new positions, with the causal
//! (and sliding-window) mask and the key/value cache, and the per-block
//! windows of a config's `layer_types`.

use candle_core::{Device, Tensor};

use super::layers::{Pass, soft_cap};

/// `[T, offset + T]` additive mask for queries at `offset..offset + T`: keys
/// after the query are hidden, and with a `window` so are keys `window` or
/// more positions back (transformers' sliding window: `q - k < window`).
pub fn causal_mask(t: usize, offset: usize, window: Option<usize>, device: &Device) -> candle_core::Result<Tensor> {
    let keys = offset + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            let q = offset + i;
            (0..keys).map(move |k| {
                let visible = k <= q && window.is_none_or(|w| q - k < w);
                if visible { 0.0 } else { f32::NEG_INFINITY }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, keys), device)
}

/// The shape of one block's attention.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies the scores (1/sqrt(head_dim) unless the family says otherwise).
    pub scale: f64,
    /// Gemma 2's `attn_logit_softcapping`.
    pub soft_cap: Option<f64>,
    /// Causal (decoders) or bidirectional (BERT).
    pub causal: bool,
    /// This block's sliding window, if it has one.
    pub window: Option<usize>,
}

impl AttentionShape {
    /// `heads` query heads of `head_dim` over `kv_heads` key/value heads.
    pub fn new(heads: usize, kv_heads: usize, head_dim: usize) -> AttentionShape {
        AttentionShape {
            heads,
            kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f64).sqrt(),
            soft_cap: None,
            causal: true,
            window: None,
        }
    }

    /// `[b, T, n * head_dim]` -> `[b, n, T, head_dim]`.
    pub fn split(&self, x: &Tensor, n: usize) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        x.reshape((b, t, n, self.head_dim))?.transpose(1, 2)?.contiguous()
    }

    /// Scaled dot-product attention of the pass's new positions
    /// `offset..offset + T`: `q` `[b, heads, T, d]`, `k`/`v` `[b, kv_heads, T, d]`
    /// (rotated already). With a cache, `k`/`v` are appended to `block`'s entry and the queries
    /// attend to every cached position. Returns the probabilities
    /// `[b, heads, T, offset + T]` and the heads' outputs `[b, T, heads * d]`.
    pub fn attend(
        &self,
        q: &Tensor,
        k: Tensor,
        v: Tensor,
        block: usize,
        pass: &mut Pass,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, _, t, _) = q.dims4()?;
        let (offset, ops) = (pass.offset, pass.ops);
        let (k, v) = match pass.cache.as_deref_mut() {
            Some(cache) => cache.append(block, &k, &v)?,
            None => (k, v),
        };
        let n_rep = self.heads / self.kv_heads.max(1);
        let k = candle_transformers::utils::repeat_kv(k, n_rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, n_rep)?.contiguous()?;
        let mut scores = (q.matmul(&k.t()?)? * self.scale)?;
        if let Some(cap) = self.soft_cap {
            scores = soft_cap(&scores, cap)?;
        }
        if self.causal {
            let mask = match pass.masks.iter().find(|(w, _)| *w == self.window) {
                Some((_, m)) => m.clone(),
                None => {
                    let m = causal_mask(t, offset, self.window, q.device())?;
                    pass.masks.push((self.window, m.clone()));
                    m
                }
            };
            scores = scores.broadcast_add(&mask)?;
        }
        let probs = ops.softmax(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        Ok((probs, context))
    }
}

/// Per-block sliding windows from transformers' `layer_types`
/// (`sliding_attention` / `full_attention`), or `window` on every block when
/// the config has no list.
pub fn block_windows(
    layer_types: Option<&[String]>,
    window: Option<usize>,
    blocks: usize,
) -> Result<Vec<Option<usize>>, String> {
    match layer_types {
        None => Ok(vec![window; blocks]),
        Some(types) if types.len() != blocks => Err(format!(
            "`layer_types` lists {} blocks but `num_hidden_layers` is {blocks}",
            types.len()
        )),
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(None),
                "sliding_attention" => window
                    .map(Some)
                    .ok_or_else(|| "`layer_types` has sliding_attention blocks but no `sliding_window`".to_string()),
                other => Err(format!(
                    "layer type `{other}` is not supported (full_attention, sliding_attention are)"
                )),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_hide_the_future_and_keys_beyond_the_window() {
        let m = causal_mask(2, 3, Some(2), &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // query 3 sees keys 2, 3; query 4 sees 3, 4.
        let visible: Vec<Vec<bool>> = m.iter().map(|r| r.iter().map(|v| *v == 0.0).collect()).collect();
        assert_eq!(visible[0], [false, false, true, true, false]);
        assert_eq!(visible[1], [false, false, false, true, true]);
    }

    #[test]
    fn layer_types_map_to_windows() {
        let types = ["sliding_attention".to_string(), "full_attention".to_string()];
        assert_eq!(block_windows(Some(&types), Some(4), 2).unwrap(), [Some(4), None]);
        assert!(block_windows(Some(&types), None, 2).is_err());
        assert!(block_windows(Some(&types), Some(4), 3).is_err());
        assert_eq!(block_windows(None, Some(8), 2).unwrap(), [Some(8), Some(8)]);
    }
}
