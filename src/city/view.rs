//! The city's numbers and drawing rules, pure (no Bevy): per-cell residual
//! norms, attention edges from a `[heads, q, k]` map, head/threshold/token
//! filters, and the instance list (cells, then arc beads).

use candle_core::Tensor;

use crate::layout::city::CityGrid;
use crate::render::CubeInstance;

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

/// Cells (edge and colour from the norm relative to the floor's largest) and
/// arc beads (size and brightness from the weight). `selected` cells glow.
/// `pulse` = (floor, fraction): a bright bead in every column on its way from
/// that floor to the next. Cells for which `opened` is true are left out
/// (their hidden-vector strip is drawn instead).
pub fn city_instances(
    grid: &CityGrid,
    cells: &[Cell],
    arcs: &[Edge],
    selected: Option<usize>,
    pulse: Option<(usize, f32)>,
    opened: &dyn Fn(&Cell) -> bool,
) -> Vec<CubeInstance> {
    // Per floor min..max: norms grow through the stack, so each floor gets its own range.
    let mut range = vec![(f32::MAX, f32::MIN); grid.floors.len()];
    for c in cells {
        if let Some((lo, hi)) = range.get_mut(c.floor) {
            (*lo, *hi) = (lo.min(c.norm), hi.max(c.norm));
        }
    }
    let mut out = Vec::with_capacity(cells.len() + arcs.len() * 12);
    for c in cells.iter().filter(|c| !opened(c)) {
        let (lo, hi) = range.get(c.floor).copied().unwrap_or((0.0, 1.0));
        let rel = if hi > lo { (c.norm - lo) / (hi - lo) } else { 1.0 };
        let [x, y, z] = grid.cell_center(c.token, c.floor);
        let [r, g, b] = heat(rel);
        let glow = if selected == Some(c.token) { 0.6 } else { 0.0 };
        out.push(CubeInstance {
            pos_size: [x, y, z, grid.cell * (0.45 + 0.55 * rel)],
            color: [r, g, b, glow],
        });
    }
    if let Some((floor, frac)) = pulse
        && let (Some(&y0), Some(&y1)) = (grid.floors.get(floor), grid.floors.get(floor + 1))
    {
        let tokens = cells.iter().map(|c| c.token + 1).max().unwrap_or(0);
        let y = y0 + (y1 - y0) * frac;
        for t in 0..tokens {
            let [x, _, z] = grid.cell_center(t, floor);
            out.push(CubeInstance {
                pos_size: [x, y, z, grid.cell * 0.45],
                color: [1.0, 0.95, 0.8, 1.0],
            });
        }
    }
    for e in arcs {
        let span = e.from.abs_diff(e.to);
        let n = (5 + span * 2).min(40);
        let bead = grid.cell * (0.06 + 0.14 * e.weight.sqrt());
        let bright = 0.45 + 0.55 * e.weight.sqrt();
        for p in grid.arc_points(e.layer, e.from, e.to, n) {
            out.push(CubeInstance {
                pos_size: [p[0], p[1], p[2], bead],
                color: [1.0 * bright, 0.5 * bright, 0.12 * bright, 0.0],
            });
        }
    }
    out
}

/// Cells drawn at least this many pixels wide open into their hidden-vector
/// strip (level of detail).
pub const STRIP_PIXELS: f32 = 60.0;

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

/// The full hidden vector of cell (`token`, `floor`) as a square grid of
/// micro-cubes in the cell's place (`values` in model order, row
/// by row), coloured around zero relative to the vector's largest magnitude.
pub fn strip_instances(grid: &CityGrid, token: usize, floor: usize, values: &[f32]) -> Vec<CubeInstance> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let side = (n as f32).sqrt().ceil() as usize;
    let max = values.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    let [cx, cy, cz] = grid.cell_center(token, floor);
    let span = grid.cell * 0.95;
    let step = span / side as f32;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (r, c) = (i / side, i % side);
            let x = cx - span / 2.0 + (c as f32 + 0.5) * step;
            let y = cy + span / 2.0 - (r as f32 + 0.5) * step;
            let [red, green, blue] = diverging(v / max);
            CubeInstance {
                pos_size: [x, y, cz, step * 0.8],
                color: [red, green, blue, 0.0],
            }
        })
        .collect()
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
    fn strips_hold_every_value_on_a_square_grid_behind_the_cell() {
        let grid = CityGrid {
            x0: 0.0,
            pitch: 1.0,
            floors: vec![0.0, 1.0],
            arc_floors: vec![0.5],
            cell: 0.8,
        };
        let values: Vec<f32> = (0..768).map(|i| (i as f32 - 384.0) / 384.0).collect();
        let strip = strip_instances(&grid, 2, 1, &values);
        assert_eq!(strip.len(), 768);
        assert!(
            strip
                .iter()
                .all(|c| (c.pos_size[0] - 2.0).abs() <= 0.4 && c.pos_size[2] == 0.0)
        );
        // Most negative value blue, most positive red.
        assert!(strip[0].color[2] > 0.9 && strip[0].color[0] < 0.1);
        assert!(strip[767].color[0] > 0.9);
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
