//! The city's instances: cells (edge and colour from the residual norm; the
//! busiest glow), pulses of light climbing the columns, attention beams
//! between columns, the residual stream as a line of light up each column,
//! the ground's grid (`ground`) and the hidden-vector strips of close cells,
//! from the scene's numbers and the grid's geometry.

use super::view::{Cell, Edge, diverging, heat};
use crate::layout::city::CityGrid;
use crate::render::{BeamInstance, CubeInstance};

/// Cells drawn at least this many pixels wide open into their hidden-vector
/// strip (level of detail).
pub const STRIP_PIXELS: f32 = 60.0;

/// How much brighter than its surface colour the busiest cell of a floor
/// glows (radiance above 1 blooms); cells glow with the square of their
/// value relative to the floor, so only the busy ones really light up.
const CELL_GLOW: f32 = 2.2;
/// Radiance of a pulse of light climbing a column.
const PULSE: [f32; 3] = [3.2, 2.9, 2.2];
/// Colour of the heads-combined attention beams.
const BEAM: [f32; 3] = [1.0, 0.5, 0.12];
/// Radiance of the residual stream's line up each column.
pub(super) const RESIDUAL: [f32; 3] = [0.16, 0.3, 0.6];

/// Everything the city draws.
#[derive(Debug, Default)]
pub struct CityDraw {
    pub cubes: Vec<CubeInstance>,
    pub beams: Vec<BeamInstance>,
}

/// What the city draws beside its numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lighting {
    /// The selected token's column (its cells are highlighted).
    pub selected: Option<usize>,
    /// (floor, fraction): a pulse of light in every column on its way from
    /// that floor to the next; the beams of the block just below it are drawn
    /// that far along.
    pub pulse: Option<(usize, f32)>,
    /// Busy cells glow (off: flat colours).
    pub glow: bool,
}

/// A colour per attention head, when one head is chosen (distinct hues).
pub fn head_color(head: usize) -> [f32; 3] {
    let hue = (head as f32 * 0.618_034).fract() * 6.0;
    let x = 1.0 - (hue % 2.0 - 1.0).abs();
    match hue as usize {
        0 => [1.0, x, 0.1],
        1 => [x, 1.0, 0.1],
        2 => [0.1, 1.0, x],
        3 => [0.1, x, 1.0],
        4 => [x, 0.1, 1.0],
        _ => [1.0, 0.1, x],
    }
}

/// Cells (edge and colour from the norm relative to the floor's largest),
/// pulses, the residual lines and the beams (width and brightness from the
/// weight). Cells for which `opened` is true are left out (their
/// hidden-vector strip is drawn instead).
pub fn city_instances(
    grid: &CityGrid,
    cells: &[Cell],
    arcs: &[Edge],
    light: Lighting,
    opened: &dyn Fn(&Cell) -> bool,
) -> CityDraw {
    // Per floor min..max: norms grow through the stack, so each floor gets its own range.
    let mut range = vec![(f32::MAX, f32::MIN); grid.floors.len()];
    // Per column: the highest floor shown (the residual line reaches it).
    let mut top = std::collections::BTreeMap::<usize, usize>::new();
    for c in cells {
        if let Some((lo, hi)) = range.get_mut(c.floor) {
            (*lo, *hi) = (lo.min(c.norm), hi.max(c.norm));
        }
        let t = top.entry(c.token).or_insert(c.floor);
        *t = (*t).max(c.floor);
    }
    let mut out = CityDraw {
        cubes: Vec::with_capacity(cells.len() + top.len()),
        beams: Vec::with_capacity(arcs.len() + top.len()),
    };
    for c in cells.iter().filter(|c| !opened(c)) {
        let (lo, hi) = range.get(c.floor).copied().unwrap_or((0.0, 1.0));
        let rel = if hi > lo { (c.norm - lo) / (hi - lo) } else { 1.0 };
        let [x, y, z] = grid.cell_center(c.token, c.floor);
        let gain = if light.glow { 1.0 + CELL_GLOW * rel * rel } else { 1.0 };
        let [r, g, b] = heat(rel).map(|v| v * gain);
        let highlight = if light.selected == Some(c.token) { 0.6 } else { 0.0 };
        out.cubes.push(CubeInstance {
            pos_size: [x, y, z, grid.cell * (0.45 + 0.55 * rel)],
            color: [r, g, b, highlight],
        });
    }
    let first_floor = grid.floors.first().copied().unwrap_or(0.0);
    out.beams
        .extend(super::ground::lines(grid, super::ground::columns(cells)));
    for (&token, &floor) in &top {
        let [x, y, _] = grid.cell_center(token, floor);
        out.beams.push(BeamInstance {
            start: [x, first_floor, 0.0, grid.cell * 0.07],
            end: [x, y, 0.0, 0.0],
            color: [RESIDUAL[0], RESIDUAL[1], RESIDUAL[2], 1.0],
        });
    }
    if let Some((floor, frac)) = light.pulse
        && let (Some(&y0), Some(&y1)) = (grid.floors.get(floor), grid.floors.get(floor + 1))
    {
        let y = y0 + (y1 - y0) * frac;
        let radiance = if light.glow { PULSE } else { [1.0, 0.95, 0.8] };
        for &token in top.keys() {
            let [x, _, z] = grid.cell_center(token, floor);
            out.cubes.push(CubeInstance {
                pos_size: [x, y, z, grid.cell * 0.3],
                color: [radiance[0], radiance[1], radiance[2], 0.0],
            });
        }
    }
    // The beams of the block the pulse just left are still being drawn.
    let drawing = light
        .pulse
        .and_then(|(floor, frac)| floor.checked_sub(1).map(|b| (b, frac)));
    for e in arcs {
        let (x1, y) = (
            grid.cell_center(e.from, 0)[0],
            grid.arc_floors.get(e.layer).copied().unwrap_or(0.0),
        );
        let x2 = grid.cell_center(e.to, 0)[0];
        let strength = e.weight.clamp(0.0, 1.0).sqrt();
        let base = if e.head == usize::MAX { BEAM } else { head_color(e.head) };
        let bright = (0.25 + 1.1 * strength) * if light.glow { 1.6 } else { 1.0 };
        let flow = match drawing {
            Some((b, frac)) if b == e.layer => frac,
            _ => 1.0,
        };
        out.beams.push(BeamInstance {
            start: [x1, y, 0.0, grid.cell * (0.05 + 0.2 * strength)],
            end: [x2, y, 0.0, grid.arc_bulge(e.from, e.to)],
            color: [base[0] * bright, base[1] * bright, base[2] * bright, flow],
        });
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
