//! What the city stands on: a faint grid of light, a line under every token
//! column, running front to back as far as the arcs bulge, and lines across
//! every column pitch (beams in the city's instanced draw, fading with the fog).

use crate::layout::city::CityGrid;
use crate::render::BeamInstance;

/// Radiance of the faint grid the city stands on.
const GRID: [f32; 3] = [0.035, 0.06, 0.1];

/// The ground under a city of some columns: x and z ranges and the grid's height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    pub x: [f32; 2],
    pub z: [f32; 2],
    /// Height of the grid lines, a cell below the first floor.
    pub y: f32,
}

/// The ground under `columns` token columns (none without columns).
pub fn footprint(grid: &CityGrid, columns: usize) -> Option<Footprint> {
    if columns == 0 {
        return None;
    }
    let y = grid.floors.first().copied().unwrap_or(0.0) - grid.cell;
    Some(Footprint {
        x: [grid.x0 - 2.0 * grid.pitch, grid.x_end(columns) + grid.pitch],
        z: [-2.0 * grid.pitch, rows(columns) as f32 * grid.pitch],
        y,
    })
}

/// Column pitches front to back: as deep as the longest arc bulges (the
/// city's bounds).
fn rows(columns: usize) -> i64 {
    (columns / 2 + 2) as i64
}

/// The grid's lines under `columns` token columns.
pub fn lines(grid: &CityGrid, columns: usize) -> Vec<BeamInstance> {
    let Some(f) = footprint(grid, columns) else {
        return Vec::new();
    };
    let width = grid.cell * 0.02;
    let line = |a: [f32; 3], b: [f32; 3]| BeamInstance {
        start: [a[0], a[1], a[2], width],
        end: [b[0], b[1], b[2], 0.0],
        color: [GRID[0], GRID[1], GRID[2], 1.0],
    };
    let across = (-2..=rows(columns)).map(|k| {
        let z = k as f32 * grid.pitch;
        line([f.x[0], f.y, z], [f.x[1], f.y, z])
    });
    let along = (-2..=columns as i64).map(|t| {
        let x = grid.x0 + t as f32 * grid.pitch;
        line([x, f.y, f.z[0]], [x, f.y, f.z[1]])
    });
    across.chain(along).collect()
}

/// Token columns the scene draws: up to the last token with a cell.
pub fn columns(cells: &[super::view::Cell]) -> usize {
    cells.iter().map(|c| c.token + 1).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> CityGrid {
        CityGrid {
            x0: 10.0,
            pitch: 1.0,
            floors: vec![2.0, 3.0],
            arc_floors: vec![2.5],
            cell: 0.75,
        }
    }

    #[test]
    fn the_ground_grid_lies_under_every_column_below_the_first_floor() {
        let grid = grid();
        assert!(lines(&grid, 0).is_empty());
        assert_eq!(footprint(&grid, 0), None);
        let f = footprint(&grid, 8).unwrap();
        let lines = lines(&grid, 8);
        for l in &lines {
            for p in [l.start, l.end] {
                assert!(f.x[0] <= p[0] && p[0] <= f.x[1] && f.z[0] <= p[2] && p[2] <= f.z[1]);
            }
        }
        assert!(lines.iter().all(|l| l.start[1] < 2.0 - 0.5 && l.start[1] == l.end[1]));
        for t in 0..8 {
            let x = grid.cell_center(t, 0)[0];
            assert!(
                lines.iter().any(|l| l.start[0] == x && l.end[0] == x),
                "a line under column {t}"
            );
        }
        let (lo, hi) = lines
            .iter()
            .flat_map(|l| [l.start[0], l.end[0]])
            .fold((f32::MAX, f32::MIN), |(a, b), x| (a.min(x), b.max(x)));
        assert!(
            lo < grid.x0 && hi > grid.cell_center(7, 0)[0],
            "past the first and last columns"
        );
        // Faint: darker than the residual lines, never a glowing element.
        assert!(
            lines
                .iter()
                .all(|l| l.color[..3].iter().all(|&c| c < super::super::draw::RESIDUAL[0]))
        );
    }
}
