//! Cube sizes: trunkplot's log scale relative to one model, plus an absolute
//! mode on a fixed log range so two models can be compared at the same scale.

/// Parameter range of the absolute mode: 1 to 10^10 elements (the largest single
/// tensors today, 405B-class LM heads, hold ~2x10^9).
pub const ABSOLUTE_RANGE: (f64, f64) = (1.0, 1e10);

const MIN_SIZE: f64 = 0.5;
const SPAN: f64 = 1.5;

/// `0.5 + 1.5 * (ln n - ln n_min) / (ln n_max - ln n_min)`: edge lengths 0.5..2.0.
/// When every tensor has the same count the range is empty: all get the middle size.
pub fn cube_size_relative(n: u64, n_min: u64, n_max: u64) -> f32 {
    let (ln, lo, hi) = (ln1(n), ln1(n_min), ln1(n_max));
    if hi - lo <= f64::EPSILON {
        return (MIN_SIZE + SPAN / 2.0) as f32;
    }
    (MIN_SIZE + SPAN * ((ln - lo) / (hi - lo)).clamp(0.0, 1.0)) as f32
}

/// The same scale on the fixed [`ABSOLUTE_RANGE`]: a tensor's size does not
/// depend on which model it sits in.
pub fn cube_size_absolute(n: u64) -> f32 {
    let (lo, hi) = (ABSOLUTE_RANGE.0.ln(), ABSOLUTE_RANGE.1.ln());
    (MIN_SIZE + SPAN * ((ln1(n) - lo) / (hi - lo)).clamp(0.0, 1.0)) as f32
}

/// Empty tensors are drawn as if they held one element.
fn ln1(n: u64) -> f64 {
    (n.max(1) as f64).ln()
}

/// Which scale to size cubes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CubeScale {
    /// Smallest tensor of this model 0.5, largest 2.0.
    #[default]
    Relative,
    /// Fixed range for comparing models.
    Absolute,
}

impl CubeScale {
    /// Sizes for a list of parameter counts.
    pub fn sizes(self, params: &[u64]) -> Vec<f32> {
        match self {
            CubeScale::Relative => {
                let lo = params.iter().copied().min().unwrap_or(1);
                let hi = params.iter().copied().max().unwrap_or(1);
                params.iter().map(|&n| cube_size_relative(n, lo, hi)).collect()
            }
            CubeScale::Absolute => params.iter().map(|&n| cube_size_absolute(n)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_scale_spans_half_to_two() {
        assert_eq!(cube_size_relative(10, 10, 1000), 0.5);
        assert_eq!(cube_size_relative(1000, 10, 1000), 2.0);
        assert!((cube_size_relative(100, 10, 1000) - 1.25).abs() < 1e-6);
        assert_eq!(cube_size_relative(7, 7, 7), 1.25);
        assert_eq!(cube_size_relative(0, 0, 0), 1.25);
    }

    #[test]
    fn absolute_scale_is_model_independent() {
        assert_eq!(cube_size_absolute(1), 0.5);
        assert_eq!(cube_size_absolute(10_000_000_000), 2.0);
        assert!((cube_size_absolute(100_000) - 1.25).abs() < 1e-6);
        assert_eq!(
            CubeScale::Absolute.sizes(&[100_000, 1]),
            vec![cube_size_absolute(100_000), 0.5]
        );
        assert_eq!(CubeScale::Relative.sizes(&[5, 5]), vec![1.25, 1.25]);
    }
}
