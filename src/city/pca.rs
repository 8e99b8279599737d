//! Principal components of a set of vectors (pure): the 2D PCA projection of
//! token embeddings or of any layer's residual stream. With few tokens and
//! wide vectors, the top components come from the `T x T` Gram matrix of the
//! centred rows (power iteration with deflation), never the `d x d` covariance.

/// Coordinates of each row on the top `k` principal components (`k` <= rows),
/// and the share of the variance each component explains.
pub fn project(rows: &[Vec<f32>], k: usize) -> (Vec<Vec<f32>>, Vec<f32>) {
    let t = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    if t == 0 || d == 0 {
        return (vec![Vec::new(); t], Vec::new());
    }
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j] as f64).sum::<f64>() / t as f64)
        .collect();
    let centred: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect();
    // Gram matrix G = X X^T: its eigenvectors u give the projections u * sqrt(lambda).
    let mut gram = vec![vec![0.0f64; t]; t];
    for i in 0..t {
        for j in i..t {
            let dot: f64 = centred[i].iter().zip(&centred[j]).map(|(a, b)| a * b).sum();
            gram[i][j] = dot;
            gram[j][i] = dot;
        }
    }
    let total: f64 = (0..t).map(|i| gram[i][i]).sum();
    let mut columns: Vec<Vec<f32>> = Vec::new();
    let mut shares = Vec::new();
    for c in 0..k.min(t) {
        // A deterministic, irregular start (a regular one can be exactly orthogonal to a component).
        let mut v: Vec<f64> = (0..t)
            .map(|i| ((i as f64 + 1.0) * (c as f64 + 1.3) * 12.9898).sin() + 1.5)
            .collect();
        let mut lambda = 0.0;
        for _ in 0..300 {
            let w: Vec<f64> = (0..t).map(|i| (0..t).map(|j| gram[i][j] * v[j]).sum()).collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-12 {
                lambda = 0.0;
                break;
            }
            let next: Vec<f64> = w.iter().map(|x| x / norm).collect();
            let delta: f64 = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = next;
            lambda = norm;
            if delta < 1e-10 {
                break;
            }
        }
        columns.push(v.iter().map(|x| (x * lambda.max(0.0).sqrt()) as f32).collect());
        shares.push(if total > 0.0 { (lambda / total) as f32 } else { 0.0 });
        // Deflate: G -= lambda v v^T.
        for i in 0..t {
            for j in 0..t {
                gram[i][j] -= lambda * v[i] * v[j];
            }
        }
    }
    let coords = (0..t).map(|i| columns.iter().map(|col| col[i]).collect()).collect();
    (coords, shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_on_a_line_need_one_component() {
        // Points along (1, 2, 2) (length 3 per step), centred: coordinates -3, 0, 3 up to sign.
        let rows: Vec<Vec<f32>> = (0..3).map(|i| vec![i as f32, 2.0 * i as f32, 2.0 * i as f32]).collect();
        let (coords, shares) = project(&rows, 2);
        let first: Vec<f32> = coords.iter().map(|c| c[0].abs()).collect();
        assert!(
            (first[0] - 3.0).abs() < 1e-4 && first[1] < 1e-4 && (first[2] - 3.0).abs() < 1e-4,
            "{coords:?}"
        );
        assert!((shares[0] - 1.0).abs() < 1e-5 && shares[1] < 1e-5, "{shares:?}");
    }

    #[test]
    fn components_follow_the_spread() {
        // Wide along x, narrow along y: the first component is x.
        let rows = vec![vec![-4.0, 0.5], vec![4.0, -0.5], vec![-4.0, -0.5], vec![4.0, 0.5]];
        let (coords, shares) = project(&rows, 2);
        assert!(shares[0] > 0.9 && shares[1] > 0.0, "{shares:?} {coords:?}");
        assert!((coords[0][0].abs() - 4.0).abs() < 1e-3 && (coords[0][1].abs() - 0.5).abs() < 1e-3);
    }
}
