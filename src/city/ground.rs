//! What the city stands on: a faint grid of light, a line under every token
//! column (every 2nd, 4th, … in a city of more than 16 columns, so that the
//! ground keeps about 16 squares across), running front to back as far as the
//! arcs bulge, and lines across at the same spacing (beams in the city's
//! instanced draw, fading with the fog).

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

/// Squares across the ground at most (more columns: a line every 2nd, 4th, …).
const SQUARES: usize = 16;

/// Columns between two grid lines: the smallest power of two that keeps
/// `columns` within [`SQUARES`] squares. Thin blended lines are what a
/// software rasteriser spends a light city frame on, and a line under every
/// one of 64 columns reads as a haze at the distance that shows them all.
fn stride(columns: usize) -> usize {
    let mut k: usize = 1;
    while columns > k.saturating_mul(SQUARES) {
        k = k.saturating_mul(2);
    }
    k
}

/// The grid's lines under `columns` token columns.
pub fn lines(grid: &CityGrid, columns: usize) -> Vec<BeamInstance> {
    let Some(f) = footprint(grid, columns) else {
        return Vec::new();
    };
    let k = stride(columns) as i64;
    let width = grid.cell * 0.02;
    let line = |a: [f32; 3], b: [f32; 3]| BeamInstance {
        start: [a[0], a[1], a[2], width],
        end: [b[0], b[1], b[2], 0.0],
        color: [GRID[0], GRID[1], GRID[2], 1.0],
    };
    // Every k-th pitch, counted from the columns' own row and column 0.
    let on_grid = move |j: &i64| j.rem_euclid(k) == 0;
    let across = (-2..=rows(columns)).filter(on_grid).map(|j| {
        let z = j as f32 * grid.pitch;
        line([f.x[0], f.y, z], [f.x[1], f.y, z])
    });
    let along = (-2..=columns as i64).filter(on_grid).map(|t| {
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
        // A wide city keeps about 16 squares across: 64 columns, a line under every 4th.
        assert_eq!((stride(16), stride(17), stride(64), stride(65)), (1, 2, 4, 8));
        let wide = super::lines(&grid, 64);
        let under = |t: usize| {
            let x = grid.cell_center(t, 0)[0];
            wide.iter().any(|l| l.start[0] == x && l.end[0] == x)
        };
        assert!((0..64).all(|t| under(t) == (t % 4 == 0)));
        let f = footprint(&grid, 64).unwrap();
        assert!(
            wide.iter().any(|l| l.start[0] == f.x[0] && l.end[0] == f.x[1]),
            "across the whole footprint"
        );
        assert!(wide.len() <= 30, "{} lines", wide.len());
        // Faint: darker than the residual lines, never a glowing element.
        assert!(
            lines
                .iter()
                .all(|l| l.color[..3].iter().all(|&c| c < super::super::draw::RESIDUAL[0]))
        );
    }
}
