//! The weights lens (no Bevy types): per-tensor statistics and the diff of
//! two checkpoints, streamed over the weight files in bounded chunks and
//! computed in parallel (rayon: tensors, and the chunks of each).

pub mod color;
pub mod diff;
pub mod moe;
#[cfg(not(target_arch = "wasm32"))]
pub mod source;
pub mod stats;

#[cfg(not(target_arch = "wasm32"))]
use rayon::prelude::*;

#[cfg(not(target_arch = "wasm32"))]
use source::Tensor;
#[cfg(not(target_arch = "wasm32"))]
use stats::{Bins, Moments, Shape, TensorStats};

/// Statistics of every tensor, in the order given.
#[cfg(not(target_arch = "wasm32"))]
pub fn statistics(tensors: &[Tensor]) -> Vec<TensorStats> {
    tensors.par_iter().map(tensor_stats).collect()
}

#[cfg(not(target_arch = "wasm32"))]
fn tensor_stats(t: &Tensor) -> TensorStats {
    let missing = |why: String| TensorStats::missing(t.name.clone(), t.shape.clone(), t.dtype.clone(), why);
    if let Some(why) = t.missing() {
        return missing(why.to_string());
    }
    let chunks = t.chunks();
    let first = chunks
        .par_iter()
        .map(|r| {
            let mut m = Moments::default();
            m.add(&t.read(r.clone())?);
            Ok(m)
        })
        .try_reduce(Moments::default, |a, b| Ok(a.merge(b)));
    let m: Moments = match first {
        Ok(m) => m,
        Err(why) => return missing(why),
    };
    let bins = Bins::new(m.max_abs);
    let second = chunks
        .par_iter()
        .map(|r| {
            let mut s = Shape::new();
            s.add(&t.read(r.clone())?, &m, &bins);
            Ok(s)
        })
        .try_reduce(Shape::new, |a, b| Ok(a.merge(b)));
    match second {
        Ok(s) => TensorStats::from_passes(t.name.clone(), t.shape.clone(), t.dtype.clone(), &m, &bins, &s),
        Err(why) => missing(why),
    }
}

/// Statistics of each row (outermost index) of a tensor read whole — a
/// router's `[experts, hidden]`, one row per expert — named `NAME[i]`.
#[cfg(not(target_arch = "wasm32"))]
pub fn row_statistics(t: &Tensor) -> Result<Vec<TensorStats>, String> {
    if let Some(why) = t.missing() {
        return Err(why.to_string());
    }
    let values = t.read(0..t.elements())?;
    let rows = t.shape.first().copied().unwrap_or(1).max(1) as usize;
    let width = values.len() / rows;
    Ok(values
        .chunks(width.max(1))
        .enumerate()
        .map(|(i, row)| {
            let mut m = Moments::default();
            m.add(row);
            let bins = Bins::new(m.max_abs);
            let mut s = Shape::new();
            s.add(row, &m, &bins);
            TensorStats::from_passes(
                format!("{}[{i}]", t.name),
                vec![width as u64],
                t.dtype.clone(),
                &m,
                &bins,
                &s,
            )
        })
        .collect())
}

/// The mixture-of-experts map of `stat` for a checkpoint's tensors and their
/// statistics; `None` for a model without experts.
#[cfg(not(target_arch = "wasm32"))]
pub fn expert_map(tensors: &[Tensor], stats: &[TensorStats], stat: color::Stat) -> Option<moe::ExpertMap> {
    let routers: std::collections::BTreeMap<u32, Vec<TensorStats>> = tensors
        .iter()
        .filter_map(|t| Some((moe::router_of(&t.name)?, row_statistics(t).ok()?)))
        .collect();
    moe::map(stats, &routers, stat)
}
