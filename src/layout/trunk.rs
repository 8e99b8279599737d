//! trunkplot's column: every tensor on the axis, model order bottom to top, each
//! followed by a gap of 0.2 x its size (one slot of 1.2 x size). Towers stand side
//! by side.

use super::{Group, Tower};

pub(super) fn place(groups: &[Group], sizes: &[f32]) -> Vec<[f32; 3]> {
    let spacing = sizes.iter().copied().fold(0.0, f32::max) * 4.0;
    let mut centers = Vec::new();
    let mut tower = None;
    let (mut x, mut y) = (0.0f32, 0.0f32);
    for g in groups {
        if tower.is_some_and(|t: Tower| t != g.tower) {
            x += spacing;
            y = 0.0;
        }
        tower = Some(g.tower);
        for &t in &g.tensors {
            let s = sizes[t];
            centers.push([x, y + s / 2.0, 0.0]);
            y += 1.2 * s;
        }
    }
    centers
}
