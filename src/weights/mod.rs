//! The weights lens (no Bevy types): per-tensor statistics and the diff of
//! two checkpoints, streamed over the weight files in bounded chunks and
//! computed in parallel (rayon: tensors, and the chunks of each).

pub mod color;
pub mod diff;
pub mod moe;
#[cfg(not(target_arch = "wasm32"))]
pub mod plane;
#[cfg(not(target_arch = "wasm32"))]
pub mod source;
pub mod stats;
#[cfg(not(target_arch = "wasm32"))]
pub mod zoom;

#[cfg(not(target_arch = "wasm32"))]
use rayon::prelude::*;

#[cfg(not(target_arch = "wasm32"))]
use source::Tensor;
#[cfg(not(target_arch = "wasm32"))]
use stats::{Bins, Moments, Shape, TensorStats};

/// The share of a Hub model's weights read for its statistics unless told
/// otherwise (`stats --sample PCT`): 1 % of each tensor.
pub const DEFAULT_SAMPLE: f64 = 0.01;

/// Range requests in flight at once when sampling a Hub model (they wait on
/// the network, not the CPU).
#[cfg(not(target_arch = "wasm32"))]
const REMOTE_REQUESTS: usize = 8;

/// Statistics of every tensor, in the order given: local tensors read whole,
/// a Hub model's sampled ([`DEFAULT_SAMPLE`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn statistics(tensors: &[Tensor]) -> Vec<TensorStats> {
    statistics_with(tensors, None, &|_| {})
}

/// The fraction of `t` a sample reads: `sample` when given (1 or more: all),
/// else all of a local tensor and [`DEFAULT_SAMPLE`] of a remote one.
#[cfg(not(target_arch = "wasm32"))]
fn fraction_of(t: &Tensor, sample: Option<f64>) -> f64 {
    sample.unwrap_or(if t.is_remote() { DEFAULT_SAMPLE } else { 1.0 })
}

/// Bytes that [`statistics_with`] will read (each sampled range once; whole
/// tensors twice, one pass per statistic group).
#[cfg(not(target_arch = "wasm32"))]
pub fn planned_bytes(tensors: &[Tensor], sample: Option<f64>) -> u64 {
    tensors
        .iter()
        .filter(|t| t.missing().is_none())
        .map(|t| {
            let ranges = t.sample(fraction_of(t, sample));
            let passes = if is_whole(t, &ranges) { 2 } else { 1 };
            let elements: u64 = ranges.iter().map(|r| r.end - r.start).sum();
            passes * elements * t.stored_width()
        })
        .sum()
}

#[cfg(not(target_arch = "wasm32"))]
fn is_whole(t: &Tensor, ranges: &[std::ops::Range<u64>]) -> bool {
    ranges.iter().map(|r| r.end - r.start).sum::<u64>() >= t.elements()
}

/// Statistics of every tensor with `sample` of each read (see
/// [`fraction_of`]); `progress` is told the bytes of each read as it lands.
#[cfg(not(target_arch = "wasm32"))]
pub fn statistics_with(tensors: &[Tensor], sample: Option<f64>, progress: &(dyn Fn(u64) + Sync)) -> Vec<TensorStats> {
    let run = || {
        tensors
            .par_iter()
            .map(|t| tensor_stats(t, fraction_of(t, sample), progress))
            .collect()
    };
    let pool = tensors
        .iter()
        .any(Tensor::is_remote)
        .then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(REMOTE_REQUESTS)
                .build()
                .ok()
        })
        .flatten();
    match pool {
        Some(pool) => pool.install(run),
        None => run(),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn tensor_stats(t: &Tensor, fraction: f64, progress: &(dyn Fn(u64) + Sync)) -> TensorStats {
    let missing = |why: String| TensorStats::missing(t.name.clone(), t.shape.clone(), t.dtype.clone(), why);
    if let Some(why) = t.missing() {
        return missing(why.to_string());
    }
    let ranges = t.sample(fraction);
    if !is_whole(t, &ranges) {
        return sampled_stats(t, &ranges, progress).unwrap_or_else(missing);
    }
    let read = |r: &std::ops::Range<u64>| {
        let values = t.read(r.clone())?;
        progress((r.end - r.start) * t.stored_width());
        Ok::<_, String>(values)
    };
    let chunks = ranges;
    let first = chunks
        .par_iter()
        .map(|r| {
            let mut m = Moments::default();
            m.add(&read(r)?);
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
            s.add(&read(r)?, &m, &bins);
            Ok(s)
        })
        .try_reduce(Shape::new, |a, b| Ok(a.merge(b)));
    match second {
        Ok(s) => TensorStats::from_passes(t.name.clone(), t.shape.clone(), t.dtype.clone(), &m, &bins, &s),
        Err(why) => missing(why),
    }
}

/// Statistics from a sample: the ranges read once (a sample is at most a few
/// MB per tensor), both passes over the values in memory, and the standard
/// errors of the estimates.
#[cfg(not(target_arch = "wasm32"))]
fn sampled_stats(
    t: &Tensor,
    ranges: &[std::ops::Range<u64>],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<TensorStats, String> {
    let mut values = Vec::new();
    for r in ranges {
        values.extend(t.read(r.clone())?);
        progress((r.end - r.start) * t.stored_width());
    }
    let mut m = Moments::default();
    m.add(&values);
    let bins = Bins::new(m.max_abs);
    let mut s = Shape::new();
    s.add(&values, &m, &bins);
    let fraction = values.len() as f64 / t.elements().max(1) as f64;
    let mut stats = TensorStats::from_passes(t.name.clone(), t.shape.clone(), t.dtype.clone(), &m, &bins, &s);
    stats.sampled_fraction = fraction;
    stats.standard_error = stats::standard_errors(&values, source::SAMPLE_BLOCK as usize, fraction);
    Ok(stats)
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
