//! The city's numbers, pure (no Bevy, no render types): per-cell residual
//! norms, attention edges from a `[heads, q, k]` map, head/threshold/token
//! filters, heatmap grids and the colour maps. `draw` turns them into instances.

use candle_core::Tensor;

/// Edges weaker than this are not kept as entities at all (the threshold
/// slider starts above it).
pub const MIN_EDGE: f32 = 0.02;

/// How heads are combined for drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadFilter {
    /// The mean over heads (missing = below [`MIN_EDGE`] = 0).
    #[default]
    Mean,
    /// The strongest head.
    Max,
    /// One head.
    Head(usize),
}

/// What the city draws.
#[derive(Debug, Clone, PartialEq)]
pub struct CityFilter {
    /// Only this block's arcs (`None`: every block).
    pub layer: Option<usize>,
    pub heads: HeadFilter,
    /// Arcs weaker than this are hidden.
    pub threshold: f32,
    /// Only arcs into or out of the selected token.
    pub only_selected: bool,
}

impl Default for CityFilter {
    fn default() -> Self {
        CityFilter {
            layer: None,
            heads: HeadFilter::Mean,
            threshold: 0.15,
            only_selected: false,
        }
    }
}

/// One attention weight: query position `to` reads key position `from`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    pub layer: usize,
    pub head: usize,
    pub from: usize,
    pub to: usize,
    pub weight: f32,
}

/// L2 norm of each position's vector in a `[T, d]` tensor.
pub fn row_norms(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(candle_core::DType::F32)?
        .sqr()?
        .sum(1)?
        .sqrt()?
        .to_vec1::<f32>()
}

/// Edges of block `layer`'s `[heads, q, k]` probabilities at or above `min`.
pub fn edges_of(layer: usize, attn: &Tensor, min: f32) -> candle_core::Result<Vec<Edge>> {
    let probs = attn.to_dtype(candle_core::DType::F32)?.to_vec3::<f32>()?;
    let mut out = Vec::new();
    for (head, rows) in probs.iter().enumerate() {
        for (to, row) in rows.iter().enumerate() {
            for (from, &weight) in row.iter().enumerate() {
                if weight >= min {
                    out.push(Edge {
                        layer,
                        head,
                        from,
                        to,
                        weight,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The arcs to draw: heads combined per `filter.heads`, then the layer,
/// threshold and selected-token filters. Self-attention (from == to) has no arc.
pub fn visible_arcs(edges: &[Edge], heads: usize, filter: &CityFilter, selected: Option<usize>) -> Vec<Edge> {
    let mut combined: std::collections::BTreeMap<(usize, usize, usize), f32> = Default::default();
    for e in edges {
        if filter.layer.is_some_and(|l| l != e.layer) || e.from == e.to {
            continue;
        }
        if filter.only_selected && selected.is_some_and(|s| e.from != s && e.to != s) {
            continue;
        }
        if matches!(filter.heads, HeadFilter::Head(h) if h != e.head) {
            continue;
        }
        let slot = combined.entry((e.layer, e.from, e.to)).or_insert(0.0);
        match filter.heads {
            HeadFilter::Mean => *slot += e.weight / heads.max(1) as f32,
            HeadFilter::Max | HeadFilter::Head(_) => *slot = slot.max(e.weight),
        }
    }
    let head = match filter.heads {
        HeadFilter::Head(h) => h,
        _ => usize::MAX,
    };
    combined
        .into_iter()
        .filter(|(_, w)| *w >= filter.threshold)
        .map(|((layer, from, to), weight)| Edge {
            layer,
            head,
            from,
            to,
            weight,
        })
        .collect()
}

/// The heatmap of one block: `[query][key]` probabilities of a `[heads, q, k]`
/// map with heads combined as `heads` says (one head: exactly `attn[head]`).
pub fn attention_grid(attn: &Tensor, heads: HeadFilter) -> candle_core::Result<Vec<Vec<f32>>> {
    let probs = attn.to_dtype(candle_core::DType::F32)?.to_vec3::<f32>()?;
    let n = probs.len().max(1) as f32;
    let t = probs.first().map_or(0, Vec::len);
    let mut grid = vec![vec![0.0f32; t]; t];
    for (h, rows) in probs.iter().enumerate() {
        if matches!(heads, HeadFilter::Head(x) if x != h) {
            continue;
        }
        for (q, row) in rows.iter().enumerate() {
            for (k, &w) in row.iter().enumerate() {
                let cell = &mut grid[q][k];
                match heads {
                    HeadFilter::Mean => *cell += w / n,
                    HeadFilter::Max | HeadFilter::Head(_) => *cell = cell.max(w),
                }
            }
        }
    }
    Ok(grid)
}

/// A diverging-free sequential colour map (dark blue -> teal -> yellow) in linear RGB, `v` in 0..=1.
pub fn heat(v: f32) -> [f32; 3] {
    let stops = [[0.02, 0.03, 0.25], [0.0, 0.35, 0.45], [0.2, 0.7, 0.3], [1.0, 0.85, 0.1]];
    let v = v.clamp(0.0, 1.0) * (stops.len() - 1) as f32;
    let i = (v.floor() as usize).min(stops.len() - 2);
    let f = v - i as f32;
    [0, 1, 2].map(|c| stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f)
}

/// One cell: token `token` on floor `floor` with its residual norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub token: usize,
    pub floor: usize,
    pub norm: f32,
}

/// A diverging colour map around zero in linear RGB: blue (negative), near
/// black (zero), red (positive); `v` in -1..=1.
pub fn diverging(v: f32) -> [f32; 3] {
    let v = v.clamp(-1.0, 1.0);
    if v >= 0.0 {
        [0.05 + 0.95 * v, 0.05 + 0.25 * v, 0.05]
    } else {
        [0.05, 0.05 + 0.35 * -v, 0.05 + 0.95 * -v]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn edge(layer: usize, head: usize, from: usize, to: usize, weight: f32) -> Edge {
        Edge {
            layer,
            head,
            from,
            to,
            weight,
        }
    }

    #[test]
    fn filters_combine_heads_then_threshold() {
        let edges = [
            edge(0, 0, 0, 1, 0.9),
            edge(0, 1, 0, 1, 0.1),
            edge(0, 0, 1, 2, 0.3),
            edge(1, 0, 0, 2, 0.5),
            edge(1, 1, 2, 2, 1.0),
        ];
        let f = |heads, threshold| CityFilter {
            heads,
            threshold,
            ..Default::default()
        };
        // Mean over 2 heads: (0->1) 0.5, (1->2) 0.15, layer 1 (0->2) 0.25; self-loops never drawn.
        assert_eq!(visible_arcs(&edges, 2, &f(HeadFilter::Mean, 0.0), None).len(), 3);
        assert_eq!(visible_arcs(&edges, 2, &f(HeadFilter::Mean, 0.2), None).len(), 2);
        assert_eq!(visible_arcs(&edges, 2, &f(HeadFilter::Max, 0.4), None).len(), 2);
        assert_eq!(visible_arcs(&edges, 2, &f(HeadFilter::Head(1), 0.05), None).len(), 1);
        let only = CityFilter {
            layer: Some(0),
            only_selected: true,
            threshold: 0.0,
            ..Default::default()
        };
        assert_eq!(
            visible_arcs(&edges, 2, &only, Some(2)),
            vec![edge(0, usize::MAX, 1, 2, 0.15)]
        );
    }

    #[test]
    fn edges_keep_orientation_and_drop_weak_weights() {
        // One head, 2 tokens: row = query, column = key.
        let attn = Tensor::new(&[[[1.0f32, 0.0], [0.3, 0.7]]], &Device::Cpu).unwrap();
        let e = edges_of(3, &attn, MIN_EDGE).unwrap();
        assert_eq!(
            e,
            vec![edge(3, 0, 0, 0, 1.0), edge(3, 0, 0, 1, 0.3), edge(3, 0, 1, 1, 0.7)]
        );
        let norms = row_norms(&Tensor::new(&[[3.0f32, 4.0], [0.0, 1.0]], &Device::Cpu).unwrap()).unwrap();
        assert_eq!(norms, vec![5.0, 1.0]);
    }
}
