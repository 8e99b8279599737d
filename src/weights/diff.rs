//! The difference of two checkpoints, tensor by tensor (matched by name,
//! across formats: a GGUF's tensors carry their Hugging Face names). Tensors
//! in only one of them and tensors whose shapes differ are listed, never an
//! error.

use serde::Serialize;

#[cfg(not(target_arch = "wasm32"))]
pub use compute::diff;

/// One matched tensor.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorDiff {
    pub name: String,
    pub shape: Vec<u64>,
    /// `‖B − A‖ / ‖A‖` (Frobenius norms; 0 when both are zero, `null` when only A is).
    pub rel_delta: f64,
    pub max_abs_delta: f64,
    /// Fraction of elements whose values differ at all.
    pub changed_fraction: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShapeMismatch {
    pub name: String,
    pub a: Vec<u64>,
    pub b: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct DiffReport {
    pub tensors: Vec<TensorDiff>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub shape_mismatch: Vec<ShapeMismatch>,
}

#[cfg(not(target_arch = "wasm32"))]
mod compute {
    use rayon::prelude::*;

    use super::super::source::Tensor;
    use super::{DiffReport, ShapeMismatch, TensorDiff};

    #[derive(Default, Clone, Copy)]
    struct Acc {
        d2: f64,
        a2: f64,
        max: f64,
        changed: u64,
        n: u64,
    }

    impl Acc {
        fn add(&mut self, a: &[f32], b: &[f32]) {
            for (&x, &y) in a.iter().zip(b) {
                let d = f64::from(y) - f64::from(x);
                self.n += 1;
                if x != y && !(x.is_nan() && y.is_nan()) {
                    self.changed += 1;
                }
                if d.is_finite() {
                    self.d2 += d * d;
                    self.max = self.max.max(d.abs());
                }
                if x.is_finite() {
                    self.a2 += f64::from(x) * f64::from(x);
                }
            }
        }

        fn merge(mut self, o: Acc) -> Acc {
            self.d2 += o.d2;
            self.a2 += o.a2;
            self.max = self.max.max(o.max);
            self.changed += o.changed;
            self.n += o.n;
            self
        }
    }

    /// Compares `a` with `b`.
    pub fn diff(a: &[Tensor], b: &[Tensor]) -> DiffReport {
        let in_b: std::collections::HashMap<&str, &Tensor> = b.iter().map(|t| (t.name.as_str(), t)).collect();
        let in_a: std::collections::HashSet<&str> = a.iter().map(|t| t.name.as_str()).collect();
        let mut report = DiffReport {
            only_in_b: b
                .iter()
                .filter(|t| !in_a.contains(t.name.as_str()))
                .map(|t| t.name.clone())
                .collect(),
            ..DiffReport::default()
        };
        let mut pairs = Vec::new();
        for ta in a {
            match in_b.get(ta.name.as_str()) {
                None => report.only_in_a.push(ta.name.clone()),
                Some(tb) if tb.shape != ta.shape => report.shape_mismatch.push(ShapeMismatch {
                    name: ta.name.clone(),
                    a: ta.shape.clone(),
                    b: tb.shape.clone(),
                }),
                Some(tb) => pairs.push((ta, *tb)),
            }
        }
        report.tensors = pairs.par_iter().map(|(ta, tb)| compare(ta, tb)).collect();
        report
    }

    fn compare(a: &Tensor, b: &Tensor) -> TensorDiff {
        let result = a
            .chunks()
            .par_iter()
            .map(|r| {
                let mut acc = Acc::default();
                acc.add(&a.read(r.clone())?, &b.read(r.clone())?);
                Ok(acc)
            })
            .try_reduce(Acc::default, |x, y| Ok(x.merge(y)));
        let (acc, missing) = match result {
            Ok(acc) => (acc, None),
            Err(why) => (Acc::default(), Some(why)),
        };
        let rel_delta = if acc.d2 == 0.0 {
            0.0
        } else if acc.a2 == 0.0 {
            f64::INFINITY
        } else {
            (acc.d2 / acc.a2).sqrt()
        };
        TensorDiff {
            name: a.name.clone(),
            shape: a.shape.clone(),
            rel_delta,
            max_abs_delta: acc.max,
            changed_fraction: acc.changed as f64 / acc.n.max(1) as f64,
            missing,
        }
    }
}
