//! The city's instances: cells (edge and colour from the residual norm),
//! pulses, arc beads and the hidden-vector strips of close cells, from the
//! scene's numbers and the grid's geometry.

use super::view::{Cell, Edge, diverging, heat};
use crate::layout::city::CityGrid;
use crate::render::CubeInstance;

/// Cells drawn at least this many pixels wide open into their hidden-vector
/// strip (level of detail).
pub const STRIP_PIXELS: f32 = 60.0;

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
}
