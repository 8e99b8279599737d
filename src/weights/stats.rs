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
}

impl Moments {
    pub fn add(&mut self, values: &[f32]) {
        let (mut sum, mut sum_sq, mut sum_abs, mut max_abs) = (0f64, 0f64, 0f64, 0f64);
        let mut finite = 0u64;
        for &v in values {
            if v.is_finite() {
                let x = f64::from(v);
                finite += 1;
                sum += x;
                sum_sq += x * x;
                sum_abs += x.abs();
                max_abs = max_abs.max(x.abs());
            } else if v.is_nan() {
                self.nan += 1;
            } else {
                self.inf += 1;
            }
        }
        self.count += finite;
        self.sum += sum;
        self.sum_sq += sum_sq;
        self.sum_abs += sum_abs;
        self.max_abs = self.max_abs.max(max_abs);
    }

    pub fn merge(mut self, o: Moments) -> Moments {
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
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// The standard deviation from the moments alone (the outlier threshold;
    /// the reported one is the second pass's exact two-pass value).
    pub fn rough_std(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        (self.sum_sq / self.count as f64 - self.mean().powi(2)).max(0.0).sqrt()
    }
}

/// The histogram's bin edges: numpy's `histogram(x, 64, range=(-m, m))` in
/// f64 (`linspace` edges; an empty range widened by 0.5 each side, as numpy does).
#[derive(Debug, Clone)]
pub struct Bins {
    edges: [f64; BINS + 1],
    lo: f64,
    norm: f64,
}

impl Bins {
    pub fn new(max_abs: f64) -> Bins {
        let (lo, hi) = if max_abs > 0.0 {
            (-max_abs, max_abs)
        } else {
            (-0.5, 0.5)
        };
        let step = (hi - lo) / BINS as f64;
        let mut edges = [0f64; BINS + 1];
        for (i, e) in edges.iter_mut().enumerate() {
            *e = lo + i as f64 * step;
        }
        edges[BINS] = hi;
        Bins {
            edges,
            lo,
            norm: BINS as f64 / (hi - lo),
        }
    }

    pub fn range(&self) -> (f64, f64) {
        (self.edges[0], self.edges[BINS])
    }

    /// The bin of `x` (inside the range), numpy's way: scaled index, then
    /// corrected against the edges; the top edge belongs to the last bin.
    #[inline]
    fn index(&self, x: f64) -> usize {
        let i = (((x - self.lo) * self.norm) as usize).min(BINS - 1);
        if x < self.edges[i] {
            i.saturating_sub(1)
        } else if i < BINS - 1 && x >= self.edges[i + 1] {
            i + 1
        } else {
            i
        }
    }
}

/// Second pass.
#[derive(Debug, Clone)]
pub struct Shape {
    pub histogram: Vec<u64>,
    pub sparse: u64,
    pub outliers: u64,
    /// Σ (x − mean)²: the exact (two-pass) variance, as numpy computes it.
    pub m2: f64,
}

impl Shape {
    pub fn new() -> Shape {
        Shape {
            histogram: vec![0; BINS],
            sparse: 0,
            outliers: 0,
            m2: 0.0,
        }
    }

    pub fn add(&mut self, values: &[f32], m: &Moments, bins: &Bins) {
        let (zero, mean) = (SPARSE * m.max_abs, m.mean());
        // No outliers in a constant tensor (its deviations are rounding).
        let far = match OUTLIER * m.rough_std() {
            f if f > 0.0 => f,
            _ => f64::INFINITY,
        };
        let (mut sparse, mut outliers, mut m2) = (0u64, 0u64, 0f64);
        for &v in values {
            if !v.is_finite() {
                continue;
            }
            let x = f64::from(v);
            let d = x - mean;
            self.histogram[bins.index(x)] += 1;
            sparse += u64::from(x.abs() <= zero);
            outliers += u64::from(d.abs() > far);
            m2 += d * d;
        }
        self.sparse += sparse;
        self.outliers += outliers;
        self.m2 += m2;
    }

    pub fn merge(mut self, o: Shape) -> Shape {
        for (a, b) in self.histogram.iter_mut().zip(o.histogram) {
            *a += b;
        }
        self.sparse += o.sparse;
        self.outliers += o.outliers;
        self.m2 += o.m2;
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
    /// For a sample: the standard errors of the estimates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard_error: Option<StandardErrors>,
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
            std: (s.m2 / n).sqrt(),
            sparsity: s.sparse as f64 / n,
            outliers: s.outliers as f64 / n,
            nan: m.nan,
            inf: m.inf,
            histogram: s.histogram.clone(),
            histogram_range: bins.range(),
            sampled_fraction: 1.0,
            standard_error: None,
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
            standard_error: None,
            missing: Some(why),
        }
    }
}

/// Standard errors of a sample's estimates of the tensor's statistics.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct StandardErrors {
    pub rms: f64,
    pub mean_abs: f64,
    pub std: f64,
}

/// The standard errors of RMS, mean |x| and std estimated from `values`, a
/// sample of `fraction` of a tensor read as consecutive blocks of `block`
/// elements from evenly spread places. Each block is one observation (so
/// the correlation inside a row or block is accounted for), the errors of the
/// block means carry a finite-population correction (a whole tensor has
/// none), and RMS and std follow from the mean square and the variance by
/// the delta method. `None` with fewer than two blocks.
pub fn standard_errors(values: &[f32], block: usize, fraction: f64) -> Option<StandardErrors> {
    let blocks: Vec<(f64, f64, f64, f64)> = values
        .chunks_exact(block.max(1))
        .map(|b| {
            let (mut s, mut s2, mut sa, mut n) = (0f64, 0f64, 0f64, 0f64);
            for &v in b.iter().filter(|v| v.is_finite()) {
                let x = f64::from(v);
                s += x;
                s2 += x * x;
                sa += x.abs();
                n += 1.0;
            }
            let n = n.max(1.0);
            (s2 / n, sa / n, s / n, s2 / n - (s / n).powi(2))
        })
        .collect();
    let k = blocks.len();
    if k < 2 {
        return None;
    }
    let fpc = (1.0 - fraction.clamp(0.0, 1.0)).sqrt();
    let se = |pick: fn(&(f64, f64, f64, f64)) -> f64| {
        let mean = blocks.iter().map(pick).sum::<f64>() / k as f64;
        let var = blocks.iter().map(|b| (pick(b) - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
        ((var / k as f64).sqrt() * fpc, mean)
    };
    let (se_ms, ms) = se(|b| b.0);
    let (se_abs, _) = se(|b| b.1);
    let (se_var, var) = se(|b| b.3);
    let ratio = |se: f64, of: f64| if of > 0.0 { se / (2.0 * of.sqrt()) } else { 0.0 };
    Some(StandardErrors {
        rms: ratio(se_ms, ms),
        mean_abs: se_abs,
        std: ratio(se_var, var),
    })
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

    #[test]
    fn standard_errors_shrink_with_the_sample_and_vanish_for_the_whole() {
        // A deterministic pseudo-random tensor, uniform in [-1, 1): RMS 1/sqrt(3).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let values: Vec<f32> = (0..1 << 16)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        let small = standard_errors(&values[..8192], 1024, 0.01).unwrap();
        let large = standard_errors(&values, 1024, 0.01).unwrap();
        assert!(large.rms < small.rms / 2.0, "{small:?} {large:?}");
        // Theory for iid uniform: SE(rms) = sd(x^2) / (2 rms sqrt(n)).
        let n = values.len() as f64;
        let theory = (4.0f64 / 45.0).sqrt() / (2.0 * (1.0f64 / 3.0).sqrt() * n.sqrt());
        assert!((large.rms / theory - 1.0).abs() < 0.35, "{} vs {theory}", large.rms);
        assert_eq!(standard_errors(&values, 1024, 1.0).unwrap().rms, 0.0);
        assert!(standard_errors(&values[..1000], 1024, 0.5).is_none());
    }
}
