//! The key/value cache of a generation: one entry per block (candle-nn's
//! growable `KvCache`, keys and values `[b, kv_heads, T, head_dim]`), so each
//! generated token runs one position instead of the whole sequence.

use candle_core::Tensor;

/// Positions the cache allocates at first; it grows as needed.
const INITIAL: usize = 256;

#[derive(Debug, Clone)]
pub struct Cache {
    blocks: Vec<candle_nn::kv_cache::KvCache>,
}

impl Cache {
    pub fn new(blocks: usize, context: usize) -> Cache {
        let initial = context.clamp(1, INITIAL);
        Cache {
            blocks: (0..blocks)
                .map(|_| candle_nn::kv_cache::KvCache::new(2, initial))
                .collect(),
        }
    }

    /// Positions cached so far (those of block 0; every block holds the same).
    pub fn len(&self) -> usize {
        self.blocks.first().map_or(0, |b| b.current_seq_len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the new positions' keys and values to `block`'s entry and
    /// returns all of that block's keys and values.
    pub fn append(&mut self, block: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let entry = self
            .blocks
            .get_mut(block)
            .ok_or_else(|| candle_core::Error::Msg(format!("no cache entry for block {block}")))?;
        entry.append(&k.contiguous()?, &v.contiguous()?)
    }
}
