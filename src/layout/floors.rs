//! One floor per layer: the layer's tensors on a ring around the axis in forward
//! order, mixture-of-experts tensors in a grid inside the ring (one cell per
//! expert). A 126-layer model becomes a readable tower.

use std::f32::consts::{SQRT_2, TAU};

use super::{Group, Tower, is_expert};
use crate::arch::Architecture;

/// Room between floors, relative to the floor's largest cube.
const FLOOR_GAP: f32 = 0.6;
/// Spacing of cubes along the ring and in the grid, relative to the largest cube.
const PITCH: f32 = 1.35;

pub(super) fn place(arch: &Architecture, groups: &[Group], sizes: &[f32]) -> Vec<[f32; 3]> {
    let mut centers = Vec::new();
    let mut tower = None;
    let mut x_offset = 0.0f32;
    let mut tower_width = 0.0f32;
    let mut y = 0.0f32;
    for g in groups {
        if tower.is_some_and(|t: Tower| t != g.tower) {
            x_offset += tower_width * 1.5;
            tower_width = 0.0;
            y = 0.0;
        }
        tower = Some(g.tower);
        let biggest = g.tensors.iter().map(|&t| sizes[t]).fold(0.0, f32::max);
        let (ring, experts): (Vec<usize>, Vec<usize>) = g.tensors.iter().partition(|&&t| !is_expert(arch, t));
        let (grid, grid_radius) = expert_grid(arch, &experts, sizes);
        let ring_biggest = ring.iter().map(|&t| sizes[t]).fold(0.0, f32::max);
        // Cubes are axis-aligned, so neighbours on the ring must be PITCH apart along
        // some axis, not just along the chord: hence the sqrt(2). Stay outside the grid.
        let radius = if ring.len() <= 1 && experts.is_empty() {
            0.0
        } else {
            let by_count = ring.len() as f32 * ring_biggest * PITCH * SQRT_2 / TAU;
            let by_grid = if experts.is_empty() {
                0.0
            } else {
                grid_radius + ring_biggest * PITCH * SQRT_2
            };
            by_count.max(by_grid).max(ring_biggest * PITCH / 2.0)
        };
        let floor_y = y + biggest / 2.0;
        let mut placed = std::collections::HashMap::new();
        for (k, &t) in ring.iter().enumerate() {
            // Start in front (towards +z, where the camera looks from) and go round.
            let angle = TAU * k as f32 / ring.len().max(1) as f32;
            placed.insert(t, [x_offset + radius * angle.sin(), floor_y, radius * angle.cos()]);
        }
        for (t, (gx, gz)) in grid {
            placed.insert(t, [x_offset + gx, floor_y, gz]);
        }
        centers.extend(g.tensors.iter().map(|t| placed[t]));
        tower_width = tower_width.max(2.0 * (radius + ring_biggest)).max(biggest);
        y += biggest * (1.0 + FLOOR_GAP);
    }
    centers
}

/// Experts in a square grid centred on the axis; each cell holds one expert's
/// tensors side by side along x. Returns positions and the grid's half-diagonal.
fn expert_grid(arch: &Architecture, experts: &[usize], sizes: &[f32]) -> (Vec<(usize, (f32, f32))>, f32) {
    if experts.is_empty() {
        return (Vec::new(), 0.0);
    }
    let mut ids: Vec<u32> = experts.iter().filter_map(|&t| arch.tensors[t].expert).collect();
    ids.sort_unstable();
    ids.dedup();
    let per_expert = experts.len().div_ceil(ids.len());
    let cell = experts.iter().map(|&t| sizes[t]).fold(0.0, f32::max) * PITCH;
    let cols = (ids.len() as f32).sqrt().ceil() as usize;
    let rows = ids.len().div_ceil(cols);
    let (width, depth) = (cols as f32 * per_expert as f32 * cell, rows as f32 * cell);
    let mut slot_in_expert = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(experts.len());
    for &t in experts {
        let e = arch.tensors[t].expert.unwrap_or(0);
        let idx = ids.binary_search(&e).unwrap_or(0);
        let k = slot_in_expert.entry(e).or_insert(0usize);
        let (col, row) = (idx % cols, idx / cols);
        let x = -width / 2.0 + (col * per_expert + *k) as f32 * cell + cell / 2.0;
        let z = -depth / 2.0 + row as f32 * cell + cell / 2.0;
        *k += 1;
        out.push((t, (x, z)));
    }
    let half_diagonal = (width * width + depth * depth).sqrt() / 2.0;
    (out, half_diagonal)
}
