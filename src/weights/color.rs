//! Colouring tensors by a statistic: which statistic, its scale over the
//! model's tensors (logarithmic for magnitudes, linear for fractions) and a
//! perceptual colour map (viridis: dark violet for the lowest, yellow for the
//! highest, evenly bright steps in between, readable by colour-blind viewers).

use super::stats::TensorStats;

/// What the trunk is coloured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ColorBy {
    /// The component kind's palette colour (the default).
    #[default]
    Kind,
    Stat(Stat),
    /// ‖B − A‖ / ‖A‖ against the checkpoint given with `view A --diff B`.
    Delta,
}

impl ColorBy {
    pub fn label(self) -> &'static str {
        match self {
            ColorBy::Kind => "component kind",
            ColorBy::Stat(s) => s.label(),
            ColorBy::Delta => "difference |B-A| / |A|",
        }
    }

    /// Whether the colour scale is logarithmic.
    pub fn logarithmic(self) -> bool {
        match self {
            ColorBy::Stat(s) => s.logarithmic(),
            _ => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    Rms,
    MeanAbs,
    MaxAbs,
    Std,
    Sparsity,
    Outliers,
}

impl Stat {
    pub const ALL: [Stat; 6] = [
        Stat::Rms,
        Stat::MeanAbs,
        Stat::MaxAbs,
        Stat::Std,
        Stat::Sparsity,
        Stat::Outliers,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stat::Rms => "RMS",
            Stat::MeanAbs => "mean |x|",
            Stat::MaxAbs => "max |x|",
            Stat::Std => "std",
            Stat::Sparsity => "sparsity",
            Stat::Outliers => "outliers (> 6 std)",
        }
    }

    /// The name on the command line and in frame scripts.
    pub fn key(self) -> &'static str {
        match self {
            Stat::Rms => "rms",
            Stat::MeanAbs => "mean-abs",
            Stat::MaxAbs => "max-abs",
            Stat::Std => "std",
            Stat::Sparsity => "sparsity",
            Stat::Outliers => "outliers",
        }
    }

    pub fn parse(s: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|k| k.key() == s)
    }

    pub fn value(self, s: &TensorStats) -> Option<f64> {
        if s.missing.is_some() {
            return None;
        }
        let v = match self {
            Stat::Rms => s.rms,
            Stat::MeanAbs => s.mean_abs,
            Stat::MaxAbs => s.max_abs,
            Stat::Std => s.std,
            Stat::Sparsity => s.sparsity,
            Stat::Outliers => s.outliers,
        };
        v.is_finite().then_some(v)
    }

    /// Magnitudes span orders of magnitude across a model: log scale.
    pub fn logarithmic(self) -> bool {
        matches!(self, Stat::Rms | Stat::MeanAbs | Stat::MaxAbs | Stat::Std)
    }
}

/// A statistic's range over the tensors shown, and where a value falls in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl Scale {
    /// Over `values` (positive ones only on a log scale); `None` when there is nothing to scale.
    pub fn over(values: impl IntoIterator<Item = f64>, log: bool) -> Option<Scale> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.into_iter().filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        (lo <= hi).then_some(Scale { lo, hi, log })
    }

    /// The range a model's tensors are coloured over: `(value, is a matrix)`
    /// pairs. Over the matrices when there are any — norm gains (RMS ≈ 1) and
    /// biases would otherwise squeeze every matrix into one colour; vectors
    /// outside that range take its end colours.
    pub fn for_tensors(values: impl IntoIterator<Item = (f64, bool)>, log: bool) -> Option<Scale> {
        let values: Vec<(f64, bool)> = values.into_iter().collect();
        Scale::over(values.iter().filter(|v| v.1).map(|v| v.0), log)
            .or_else(|| Scale::over(values.iter().map(|v| v.0), log))
    }

    /// 0 at the low end, 1 at the high end (clamped).
    pub fn position(&self, v: f64) -> f32 {
        let (a, b, x) = if self.log {
            (self.lo.log10(), self.hi.log10(), v.max(self.lo).log10())
        } else {
            (self.lo, self.hi, v)
        };
        if b <= a {
            return 0.5;
        }
        ((x - a) / (b - a)).clamp(0.0, 1.0) as f32
    }
}

/// Viridis (sRGB), 9 stops.
const VIRIDIS: [[f32; 3]; 9] = [
    [0.267, 0.005, 0.329],
    [0.283, 0.141, 0.458],
    [0.254, 0.265, 0.530],
    [0.207, 0.372, 0.553],
    [0.164, 0.471, 0.558],
    [0.128, 0.567, 0.551],
    [0.135, 0.659, 0.518],
    [0.478, 0.821, 0.319],
    [0.993, 0.906, 0.144],
];

/// The sRGB colour at `t` in 0..1.
pub fn viridis(t: f32) -> [f32; 3] {
    let x = t.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f32;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f32;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    [
        a[0] + (b[0] - a[0]) * f,
        a[1] + (b[1] - a[1]) * f,
        a[2] + (b[2] - a[2]) * f,
    ]
}

/// Neutral grey for a tensor without the statistic (not read, not float).
pub const NO_VALUE: [f32; 3] = [0.35, 0.35, 0.37];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_colours() {
        let s = Scale::over([0.01, 0.1, 1.0, f64::NAN], true).unwrap();
        assert_eq!((s.position(0.01), s.position(0.1), s.position(1.0)), (0.0, 0.5, 1.0));
        let lin = Scale::over([0.0, 0.5], false).unwrap();
        assert_eq!(lin.position(0.25), 0.5);
        assert!(Scale::over([0.0], true).is_none());
        assert_eq!(viridis(0.0), VIRIDIS[0]);
        assert_eq!(viridis(1.0), VIRIDIS[8]);
        assert_eq!(Stat::parse("max-abs"), Some(Stat::MaxAbs));
        let m = Scale::for_tensors([(1.0, false), (0.02, true), (0.08, true)], true).unwrap();
        assert_eq!((m.lo, m.hi), (0.02, 0.08));
        assert_eq!(m.position(1.0), 1.0);
        assert_eq!(
            Scale::for_tensors([(1.0, false), (2.0, false)], false).map(|s| s.hi),
            Some(2.0)
        );
    }
}
