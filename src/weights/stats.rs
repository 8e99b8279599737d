//! Per-tensor statistics, streamed: two passes over a tensor's chunks (the
//! moments and the largest magnitude first, then the histogram, sparsity
//! and outliers, which need them), each chunk folded into a small
//! accumulator, so memory is one chunk per worker whatever the tensor's size.
//! Everything is accumulated in f64; NaN and ±Inf values are counted and
//! left out of every other statistic.

use serde::Serialize;

/// Histogram bins over `[-max_abs, max_abs]`.
pub const BINS: usize = 64;
/// An element is "zero" (sparsity) when `|x| <= SPARSE * max_abs`.
pub const SPARSE: f64 = 1e-6;
/// An element is an outlier when `|x - mean| > OUTLIER * std` (for the
/// zero-mean weight matrices this is `|x| > 6σ`; centred on the mean so that
/// norm gains, all near 1, are not every one an outlier).
pub const OUTLIER: f64 = 6.0;

/// First pass: counts and moments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moments {
    pub count: u64,
    pub nan: u64,
    pub inf: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub sum_abs: f64,
    pub max_abs: f64,
    /// Welford's running mean and sum of squared deviations (stable for
    /// tensors like norm gains, all close to one value).
    pub running_mean: f64,
    pub m2: f64,
}

impl Moments {
    pub fn add(&mut self, values: &[f32]) {
        for &v in values {
            if v.is_nan() {
                self.nan += 1;
            } else if v.is_infinite() {
                self.inf += 1;
            } else {
                let x = f64::from(v);
                self.count += 1;
                let delta = x - self.running_mean;
                self.running_mean += delta / self.count as f64;
                self.m2 += delta * (x - self.running_mean);
                self.sum += x;
                self.sum_sq += x * x;
                self.sum_abs += x.abs();
                self.max_abs = self.max_abs.max(x.abs());
            }
        }
    }

    pub fn merge(mut self, o: Moments) -> Moments {
        // Chan et al.'s combination of two partial (count, mean, m2).
        let n = self.count + o.count;
        if n > 0 {
            let delta = o.running_mean - self.running_mean;
            let (a, b) = (self.count as f64, o.count as f64);
            self.running_mean += delta * b / n as f64;
            self.m2 += o.m2 + delta * delta * a * b / n as f64;
        }
        self.count += o.count;
        self.nan += o.nan;
        self.inf += o.inf;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.sum_abs += o.sum_abs;
        self.max_abs = self.max_abs.max(o.max_abs);
        self
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum / self.count as f64 }
    }

    /// Population standard deviation (numpy's `std`, ddof 0).
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        (self.m2 / self.count as f64).max(0.0).sqrt()
    }
}

/// The histogram's bin edges: numpy's `histogram(x, 64, range=(-m, m))` in
/// f64 (`linspace` edges; an empty range widened by 0.5 each side, as numpy does).
#[derive(Debug, Clone)]
pub struct Bins {
    edges: Vec<f64>,
}

impl Bins {
    pub fn new(max_abs: f64) -> Bins {
        let (lo, hi) = if max_abs > 0.0 { (-max_abs, max_abs) } else { (-0.5, 0.5) };
        let step = (hi - lo) / BINS as f64;
        let mut edges: Vec<f64> = (0..=BINS).map(|i| lo + i as f64 * step).collect();
        edges[BINS] = hi;
        Bins { edges }
    }

    pub fn range(&self) -> (f64, f64) {
        (self.edges[0], self.edges[BINS])
    }

    /// The bin of `x` (inside the range), numpy's way: scaled index, then
    /// corrected against the edges; the top edge belongs to the last bin.
    fn index(&self, x: f64) -> usize {
        let (lo, hi) = self.range();
        let norm = BINS as f64 / (hi - lo);
        let mut i = (((x - lo) * norm) as usize).min(BINS - 1);
        if x < self.edges[i] {
            i = i.saturating_sub(1);
        } else if x >= self.edges[i + 1] && i != BINS - 1 {
            i += 1;
        }
        i
    }
}

/// Second pass.
#[derive(Debug, Clone)]
pub struct Shape {
    pub histogram: Vec<u64>,
    pub sparse: u64,
    pub outliers: u64,
}

impl Shape {
    pub fn new() -> Shape {
        Shape {
            histogram: vec![0; BINS],
            sparse: 0,
            outliers: 0,
        }
    }

    pub fn add(&mut self, values: &[f32], m: &Moments, bins: &Bins) {
        let (zero, far, mean) = (SPARSE * m.max_abs, OUTLIER * m.std(), m.mean());
        for &v in values {
            if !v.is_finite() {
                continue;
            }
            let x = f64::from(v);
            self.histogram[bins.index(x)] += 1;
            self.sparse += u64::from(x.abs() <= zero);
            self.outliers += u64::from((x - mean).abs() > far);
        }
    }

    pub fn merge(mut self, o: Shape) -> Shape {
        for (a, b) in self.histogram.iter_mut().zip(o.histogram) {
            *a += b;
        }
        self.sparse += o.sparse;
        self.outliers += o.outliers;
        self
    }
}

impl Default for Shape {
    fn default() -> Self {
        Shape::new()
    }
}

/// One tensor's statistics, as `stats --json` writes them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorStats {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: String,
    /// Finite elements.
    pub count: u64,
    pub rms: f64,
    pub mean: f64,
    pub mean_abs: f64,
    pub max_abs: f64,
    pub std: f64,
    /// Fraction with `|x| <= 1e-6 * max_abs`.
    pub sparsity: f64,
    /// Fraction with `|x - mean| > 6 * std`.
    pub outliers: f64,
    pub nan: u64,
    pub inf: u64,
    /// 64 counts over `histogram_range`.
    pub histogram: Vec<u64>,
    pub histogram_range: (f64, f64),
    /// Share of the elements read (1 for local files).
    pub sampled_fraction: f64,
    /// Why no statistics (the rest of the fields are then zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

impl TensorStats {
    pub fn from_passes(name: String, shape: Vec<u64>, dtype: String, m: &Moments, bins: &Bins, s: &Shape) -> Self {
        let n = m.count.max(1) as f64;
        TensorStats {
            name,
            shape,
            dtype,
            count: m.count,
            rms: (m.sum_sq / n).sqrt(),
            mean: m.mean(),
            mean_abs: m.sum_abs / n,
            max_abs: m.max_abs,
            std: m.std(),
            sparsity: s.sparse as f64 / n,
            outliers: s.outliers as f64 / n,
            nan: m.nan,
            inf: m.inf,
            histogram: s.histogram.clone(),
            histogram_range: bins.range(),
            sampled_fraction: 1.0,
            missing: None,
        }
    }

    pub fn missing(name: String, shape: Vec<u64>, dtype: String, why: String) -> Self {
        TensorStats {
            name,
            shape,
            dtype,
            count: 0,
            rms: 0.0,
            mean: 0.0,
            mean_abs: 0.0,
            max_abs: 0.0,
            std: 0.0,
            sparsity: 0.0,
            outliers: 0.0,
            nan: 0,
            inf: 0,
            histogram: Vec::new(),
            histogram_range: (0.0, 0.0),
            sampled_fraction: 0.0,
            missing: Some(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_shape_of_a_small_vector() {
        let v = [1.0f32, -2.0, 0.0, 4.0, f32::NAN, f32::INFINITY];
        let mut m = Moments::default();
        m.add(&v[..3]);
        let mut rest = Moments::default();
        rest.add(&v[3..]);
        let m = m.merge(rest);
        assert_eq!((m.count, m.nan, m.inf, m.max_abs), (4, 1, 1, 4.0));
        assert!((m.mean() - 0.75).abs() < 1e-12);
        let bins = Bins::new(m.max_abs);
        let mut s = Shape::new();
        s.add(&v, &m, &bins);
        assert_eq!(s.histogram.iter().sum::<u64>(), 4);
        assert_eq!(s.histogram[BINS - 1], 1, "the top edge is in the last bin");
        assert_eq!(s.histogram[0], 0);
        assert_eq!(s.sparse, 1);
        assert_eq!(s.outliers, 0);
        assert_eq!(Bins::new(0.0).range(), (-0.5, 0.5));
    }
}
