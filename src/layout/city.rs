//! The neural city's geometry (pure): token columns beside the architecture
//! trunk. Column `t` stands at `x = x0 + t * pitch`; floor `f` (hidden state
//! `f`: 0 = embeddings output, `f` = output of block `f - 1`) sits at the
//! height of the trunk part that produced it, so each floor lines up with its
//! layer's cubes. Attention of block `b` is drawn as arcs between columns at
//! the height of block `b`, bulging towards the viewer (+z) in proportion to
//! the distance they span.

use super::{Layout, Tower};

/// Where the city's cells and arcs go.
#[derive(Debug, Clone, PartialEq)]
pub struct CityGrid {
    /// x of column 0.
    pub x0: f32,
    /// Distance between neighbouring columns.
    pub pitch: f32,
    /// Height of each floor (one per hidden state).
    pub floors: Vec<f32>,
    /// Height of each block's attention arcs.
    pub arc_floors: Vec<f32>,
    /// Largest cell edge (cells shrink with their value).
    pub cell: f32,
}

impl CityGrid {
    /// A grid for `hidden_states` floors beside `layout`'s text trunk.
    pub fn new(layout: &Layout, hidden_states: usize) -> CityGrid {
        let blocks = hidden_states.saturating_sub(1);
        let text: Vec<_> = layout.groups.iter().filter(|g| g.tower == Tower::Text).collect();
        let block_y = |b: usize| {
            text.iter()
                .find(|g| g.layer == Some(b as u32))
                .map(|g| (g.center[1], g.bounds.min[1], g.bounds.max[1]))
        };
        let span = (layout.bounds.max[1] - layout.bounds.min[1]).max(1.0);
        let uniform = span / (hidden_states.max(1) as f32);
        // Floor f+1 sits at the top of block f; floor 0 at the bottom of block 0.
        let mut floors = Vec::with_capacity(hidden_states);
        let mut arc_floors = Vec::with_capacity(blocks);
        for f in 0..hidden_states {
            let y = match f {
                0 => block_y(0).map(|(_, lo, _)| lo),
                _ => block_y(f - 1).map(|(_, _, hi)| hi),
            };
            floors.push(y.unwrap_or(layout.bounds.min[1] + uniform * f as f32));
        }
        for b in 0..blocks {
            let y = block_y(b).map(|(c, _, _)| c);
            arc_floors.push(y.unwrap_or((floors[b] + floors[b + 1]) * 0.5));
        }
        // Floors can crowd on small trunks: cells never overlap their neighbours.
        let gap = floors.windows(2).map(|w| (w[1] - w[0]).abs()).fold(f32::MAX, f32::min);
        let width = (layout.bounds.max[0] - layout.bounds.min[0]).max(1.0);
        // Columns a little narrower than a floor is tall keep the city readable
        // from the front without dwarfing the trunk.
        let pitch = if gap.is_finite() && gap < f32::MAX {
            (gap * 0.45).max(0.1)
        } else {
            width
        };
        CityGrid {
            x0: layout.bounds.max[0] + width.max(pitch * 3.0),
            pitch,
            floors,
            arc_floors,
            cell: pitch * 0.75,
        }
    }

    /// Centre of the cell of token `t` on floor `f`.
    pub fn cell_center(&self, t: usize, f: usize) -> [f32; 3] {
        [
            self.x0 + t as f32 * self.pitch,
            self.floors.get(f).copied().unwrap_or(0.0),
            0.0,
        ]
    }

    /// How far towards +z the arc between columns `from` and `to` curves at
    /// its middle: in proportion to the distance it spans.
    pub fn arc_bulge(&self, from: usize, to: usize) -> f32 {
        from.abs_diff(to) as f32 * self.pitch * 0.5 + self.pitch * 0.3
    }

    /// `n` points (n >= 2) along the arc of block `b` from column `from` to column `to`.
    pub fn arc_points(&self, b: usize, from: usize, to: usize, n: usize) -> Vec<[f32; 3]> {
        let y = self.arc_floors.get(b).copied().unwrap_or(0.0);
        let (x1, x2) = (self.x0 + from as f32 * self.pitch, self.x0 + to as f32 * self.pitch);
        let bulge = self.arc_bulge(from, to);
        let n = n.max(2);
        (0..n)
            .map(|i| {
                let s = i as f32 / (n - 1) as f32;
                [x1 + (x2 - x1) * s, y, 4.0 * bulge * s * (1.0 - s)]
            })
            .collect()
    }

    /// `layout`'s bounds grown to hold a city of `tokens` columns (arcs included).
    pub fn bounds_with(&self, layout: &super::Bounds, tokens: usize) -> super::Bounds {
        let mut b = *layout;
        b.max[0] = b.max[0].max(self.x_end(tokens));
        b.max[2] = b.max[2].max(tokens as f32 * self.pitch * 0.5 + self.pitch);
        b.min[1] = b.min[1].min(self.floors.first().copied().unwrap_or(0.0) - self.cell);
        b.max[1] = b.max[1].max(self.floors.last().copied().unwrap_or(0.0) + self.cell);
        b
    }

    /// The (token, floor) cell a ray hits, for `tokens` columns: the cells stand
    /// in the z = 0 plane, each `cell` wide.
    pub fn pick(&self, origin: [f32; 3], dir: [f32; 3], tokens: usize) -> Option<(usize, usize)> {
        if dir[2].abs() < 1e-6 {
            return None;
        }
        let s = -origin[2] / dir[2];
        if s <= 0.0 {
            return None;
        }
        let (x, y) = (origin[0] + dir[0] * s, origin[1] + dir[1] * s);
        let t = ((x - self.x0) / self.pitch).round();
        if t < 0.0 || t as usize >= tokens || (x - (self.x0 + t * self.pitch)).abs() > self.cell * 0.5 {
            return None;
        }
        let (floor, dy) = self
            .floors
            .iter()
            .enumerate()
            .map(|(f, &fy)| (f, (y - fy).abs()))
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        (dy <= self.cell * 0.5).then_some((t as usize, floor))
    }

    /// The arc (block, from, to) of `arcs` a ray passes closest to, if within
    /// a third of a cell of it: its index in `arcs`.
    pub fn pick_arc(&self, origin: [f32; 3], dir: [f32; 3], arcs: &[(usize, usize, usize)]) -> Option<usize> {
        let len = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt();
        if len < 1e-9 {
            return None;
        }
        let d = dir.map(|c| c / len);
        // Distance from point p to the ray (behind the eye: infinitely far).
        let distance = |p: [f32; 3]| {
            let v = [p[0] - origin[0], p[1] - origin[1], p[2] - origin[2]];
            let along = v[0] * d[0] + v[1] * d[1] + v[2] * d[2];
            if along <= 0.0 {
                return f32::INFINITY;
            }
            let c = [
                v[1] * d[2] - v[2] * d[1],
                v[2] * d[0] - v[0] * d[2],
                v[0] * d[1] - v[1] * d[0],
            ];
            (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt()
        };
        arcs.iter()
            .enumerate()
            .map(|(i, &(b, from, to))| {
                let n = (8 + from.abs_diff(to) * 2).min(48);
                let near = self
                    .arc_points(b, from, to, n)
                    .into_iter()
                    .map(distance)
                    .fold(f32::INFINITY, f32::min);
                (i, near)
            })
            .filter(|&(_, near)| near <= self.cell / 3.0)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// x just past the last of `tokens` columns (for framing).
    pub fn x_end(&self, tokens: usize) -> f32 {
        self.x0 + tokens.saturating_sub(1) as f32 * self.pitch + self.cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{CubeScale, LoadOptions, ModelRef, load_model};
    use crate::layout::LayoutKind;

    #[test]
    fn floors_follow_the_trunk_and_columns_stand_beside_it() {
        let arch = load_model(&ModelRef::Embedded, &LoadOptions::default()).unwrap();
        let layout = Layout::compute(&arch, LayoutKind::City, CubeScale::Relative);
        let grid = CityGrid::new(&layout, 7);
        assert_eq!(grid.floors.len(), 7);
        assert_eq!(grid.arc_floors.len(), 6);
        assert!(grid.floors.windows(2).all(|w| w[1] > w[0]), "{:?}", grid.floors);
        for b in 0..6 {
            assert!(grid.floors[b] <= grid.arc_floors[b] && grid.arc_floors[b] <= grid.floors[b + 1]);
        }
        assert!(grid.x0 > layout.bounds.max[0]);
        let (a, b) = (grid.cell_center(0, 1), grid.cell_center(1, 1));
        assert!(b[0] - a[0] >= grid.cell, "cells do not overlap");
        let arc = grid.arc_points(2, 0, 3, 9);
        assert_eq!(arc.len(), 9);
        assert_eq!(arc[0][2], 0.0);
        assert!(arc[4][2] > 0.0, "arcs bulge");
        assert!((arc[8][0] - grid.cell_center(3, 0)[0]).abs() < 1e-5);
        // A ray straight at cell (2, 4) from the front picks it; between columns, nothing.
        let [x, y, _] = grid.cell_center(2, 4);
        assert_eq!(grid.pick([x, y, 10.0], [0.0, 0.0, -1.0], 5), Some((2, 4)));
        assert_eq!(grid.pick([x + grid.pitch * 0.5, y, 10.0], [0.0, 0.0, -1.0], 5), None);
        assert_eq!(
            grid.pick([x, y, 10.0], [0.0, 0.0, -1.0], 2),
            None,
            "column 2 of 2 tokens"
        );
    }

    #[test]
    fn a_ray_through_the_top_of_an_arc_picks_that_arc() {
        let arch = load_model(&ModelRef::Embedded, &LoadOptions::default()).unwrap();
        let layout = Layout::compute(&arch, LayoutKind::City, CubeScale::Relative);
        let grid = CityGrid::new(&layout, 7);
        let arcs = [(1, 0, 4), (3, 0, 4), (3, 5, 6)];
        // From the front through the top of block 3's long arc.
        let top = grid.arc_points(3, 0, 4, 9)[4];
        let down = [0.0, -1.0, 0.0];
        let front = [top[0], top[1], top[2] + 50.0];
        assert_eq!(grid.pick_arc(front, [0.0, 0.0, -1.0], &arcs), Some(1));
        let mid_short = grid.arc_points(3, 5, 6, 9)[4];
        assert_eq!(
            grid.pick_arc(
                [mid_short[0], mid_short[1], mid_short[2] + 50.0],
                [0.0, 0.0, -1.0],
                &arcs
            ),
            Some(2)
        );
        // Beside every arc, or pointing away: nothing.
        assert_eq!(
            grid.pick_arc(
                [top[0], top[1] + grid.pitch * 5.0, top[2] + 50.0],
                [0.0, 0.0, -1.0],
                &arcs
            ),
            None
        );
        assert_eq!(grid.pick_arc(front, [0.0, 0.0, 1.0], &arcs), None);
        // Straight down through both long arcs (blocks 1 and 3 share their shape): one of them.
        let above = [top[0], top[1] + 100.0, top[2]];
        assert!(matches!(grid.pick_arc(above, down, &arcs), Some(0 | 1)));
    }
}
