//! Where the zoom planes stand and how much detail the camera needs (pure, no
//! Bevy). Opening a tensor's weights shows a stack: the tensor's plane and the
//! same sub-tensor of every other layer (`h.3.attn.c_attn.weight` for
//! `h.0.attn.c_attn.weight`), one above the other in layer order like the
//! trunk, at one size, so a column of one matrix lines up with the same column
//! of the next layer's. The stack stands right of the model, as tall as it.
//! The selected plane is drawn from its overview and, where the camera comes
//! close, from tiles of finer levels (`plane`); the others from a small
//! overview only.

use super::plane::{PlaneShape, TILE};
use crate::layout::Bounds;

/// The stacked (not selected) planes' overviews have at most this many
/// texels: 1 MiB of RGBA8 each (a 4096 x 4096 matrix at level 3, 512 x 512;
/// GPT-2's 768 x 2304 at level 1).
pub const NEIGHBOUR_TEXELS: u64 = 1 << 18;

/// A plane's drawn width over its height, from its shape: one element is a
/// square, except that a plane wider than 48:1 (a 1-D tensor, a very wide
/// matrix) is drawn 48:1 and one taller than 1:128 is drawn 1:128.
pub fn aspect(plane: PlaneShape) -> f32 {
    (plane.cols as f64 / plane.rows as f64).clamp(1.0 / 128.0, 48.0) as f32
}

/// The tensors stacked with `name`: those whose names differ from it only in
/// its first numeric segment (the layer), ordered by that number; `name` alone
/// when it has no number or no such siblings. Indices into `names`.
pub fn stack_of(names: &[&str], name: &str) -> Vec<usize> {
    let own = |n: &str| names.iter().position(|m| *m == n).into_iter().collect();
    let segments: Vec<&str> = name.split('.').collect();
    let Some(at) = segments.iter().position(|s| is_index(s)) else {
        return own(name);
    };
    let mut found: Vec<(u64, usize)> = names
        .iter()
        .enumerate()
        .filter_map(|(i, other)| {
            let theirs: Vec<&str> = other.split('.').collect();
            let same = theirs.len() == segments.len()
                && theirs
                    .iter()
                    .zip(&segments)
                    .enumerate()
                    .all(|(k, (a, b))| k == at || a == b);
            let layer = theirs.get(at).filter(|s| is_index(s))?.parse().ok()?;
            same.then_some((layer, i))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return own(name);
    }
    found.into_iter().map(|(_, i)| i).collect()
}

fn is_index(seg: &str) -> bool {
    !seg.is_empty() && seg.len() <= 9 && seg.bytes().all(|b| b.is_ascii_digit())
}

/// A stack's geometry: each plane's centre (bottom to top, in stack order)
/// and the one size `[width, height]` they share. Planes face +Z.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub centers: Vec<[f32; 3]>,
    pub size: [f32; 2],
}

/// Gap between stacked planes, as a fraction of a plane's height.
const GAP: f32 = 0.08;

/// Places `count` planes of `plane`'s shape in a column right of `model`,
/// standing on its floor: together as tall as the model (at least 1 unit),
/// each at most twice as wide as the model is tall.
pub fn place(plane: PlaneShape, count: usize, model: &Bounds) -> Placement {
    let count = count.max(1);
    let (min, max) = if model.min[0] <= model.max[0] {
        (model.min, model.max)
    } else {
        ([0.0; 3], [0.0; 3])
    };
    let tall = (max[1] - min[1]).max(1.0);
    let n = count as f32;
    let mut h = tall / (n + GAP * (n - 1.0));
    let mut w = h * aspect(plane);
    if w > 2.0 * tall {
        (w, h) = (2.0 * tall, 2.0 * tall / aspect(plane));
    }
    let left = max[0] + 0.15 * tall;
    let z = (min[2] + max[2]) / 2.0;
    let centers = (0..count)
        .map(|i| [left + w / 2.0, min[1] + h / 2.0 + i as f32 * h * (1.0 + GAP), z])
        .collect();
    Placement { centers, size: [w, h] }
}

/// The part of a level's texels `(x0, y0)` + `(width, height)` as a fraction
/// of the plane `[left, top, right, bottom]` (0..1, top-left origin, rows
/// down): texels are `2^level` elements a side, so the last may reach past 1.
pub fn texel_rect(plane: PlaneShape, level: u32, x0: u64, y0: u64, width: u64, height: u64) -> [f64; 4] {
    let side = (1u64 << level.min(62)) as f64;
    let (cols, rows) = (plane.cols as f64, plane.rows as f64);
    [
        x0 as f64 * side / cols,
        y0 as f64 * side / rows,
        (x0 + width) as f64 * side / cols,
        (y0 + height) as f64 * side / rows,
    ]
}

/// The world centre and size of a fraction of a plane (see [`texel_rect`]).
pub fn world_rect(center: [f32; 3], size: [f32; 2], part: [f64; 4]) -> ([f32; 3], [f32; 2]) {
    let left = center[0] - size[0] / 2.0;
    let top = center[1] + size[1] / 2.0;
    let (u0, v0, u1, v1) = (part[0] as f32, part[1] as f32, part[2] as f32, part[3] as f32);
    (
        [
            left + (u0 + u1) / 2.0 * size[0],
            top - (v0 + v1) / 2.0 * size[1],
            center[2],
        ],
        [(u1 - u0) * size[0], (v1 - v0) * size[1]],
    )
}

/// The fraction of the plane (see [`texel_rect`]) that rays through the
/// view's corners cover: where they meet the plane's surface, clipped to it.
/// The whole plane when a ray misses it (the camera looks past or from
/// behind), `None` when the covered part lies off the plane.
pub fn visible_part(center: [f32; 3], size: [f32; 2], corners: &[([f32; 3], [f32; 3])]) -> Option<[f64; 4]> {
    let (left, top) = (center[0] - size[0] / 2.0, center[1] + size[1] / 2.0);
    let mut part = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for (origin, dir) in corners {
        let t = (center[2] - origin[2]) / dir[2];
        if !(t.is_finite() && t > 0.0) {
            return Some([0.0, 0.0, 1.0, 1.0]);
        }
        let u = ((origin[0] + t * dir[0] - left) / size[0]) as f64;
        let v = ((top - origin[1] - t * dir[1]) / size[1]) as f64;
        part = [part[0].min(u), part[1].min(v), part[2].max(u), part[3].max(v)];
    }
    let clipped = [part[0].max(0.0), part[1].max(0.0), part[2].min(1.0), part[3].min(1.0)];
    (clipped[0] < clipped[2] && clipped[1] < clipped[3]).then_some(clipped)
}

/// The level whose texels are about a screen pixel or larger, when one pixel
/// spans `world_per_pixel` units on the plane, at most `coarsest` (the
/// overview's): `ceil(log2(elements per pixel))`.
pub fn wanted_level(plane: PlaneShape, size: [f32; 2], world_per_pixel: f32, coarsest: u32) -> u32 {
    let per_unit = (plane.cols as f64 / size[0] as f64).max(plane.rows as f64 / size[1] as f64);
    let per_pixel = per_unit * world_per_pixel as f64;
    if per_pixel.is_nan() {
        return coarsest;
    }
    if per_pixel <= 1.0 {
        return 0;
    }
    (per_pixel.log2().ceil().min(63.0) as u32).min(coarsest)
}

/// The view as texels of `level`, for `plane::visible_tiles`.
pub fn part_in_texels(plane: PlaneShape, level: u32, part: [f64; 4]) -> (f64, f64, f64, f64) {
    let side = (1u64 << level.min(62)) as f64;
    let (x, y) = (plane.cols as f64 / side, plane.rows as f64 / side);
    (part[0] * x, part[1] * y, part[2] * x, part[3] * y)
}

/// The texels a tile of `level` holds: `(x0, y0, width, height)`.
pub fn tile_texels(plane: PlaneShape, level: u32, tx: u64, ty: u64) -> (u64, u64, u64, u64) {
    let (rows, cols) = plane.texels(level);
    let (x0, y0) = (tx * TILE, ty * TILE);
    (
        x0,
        y0,
        TILE.min(cols.saturating_sub(x0)),
        TILE.min(rows.saturating_sub(y0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_the_same_sub_tensor_of_every_layer() {
        let names = [
            "wte.weight",
            "h.1.attn.c_attn.weight",
            "h.0.attn.c_attn.weight",
            "h.0.attn.c_proj.weight",
            "h.10.attn.c_attn.weight",
            "h.1.attn.c_attn.bias",
        ];
        assert_eq!(stack_of(&names, "h.1.attn.c_attn.weight"), [2, 1, 4]);
        assert_eq!(stack_of(&names, "wte.weight"), [0]);
        assert_eq!(stack_of(&names, "h.0.attn.c_proj.weight"), [3]);
        assert!(stack_of(&names, "absent").is_empty());
        // Experts: the layer (first number) varies, the expert stays.
        let moe = ["l.0.experts.1.w", "l.0.experts.2.w", "l.1.experts.1.w"];
        assert_eq!(stack_of(&moe, "l.0.experts.1.w"), [0, 2]);
    }

    #[test]
    fn planes_stand_right_of_the_model_as_tall_as_it() {
        let model = Bounds {
            min: [-1.0, 0.0, -1.0],
            max: [1.0, 10.0, 1.0],
        };
        let p = place(PlaneShape { rows: 768, cols: 2304 }, 2, &model);
        let h = 10.0 / 2.08;
        assert!((p.size[1] - h).abs() < 1e-5 && (p.size[0] - 3.0 * h).abs() < 1e-4);
        assert!(p.centers[0][0] - p.size[0] / 2.0 > 1.0, "right of the model");
        assert!((p.centers[0][1] - h / 2.0).abs() < 1e-5);
        let top = p.centers[1][1] + h / 2.0;
        assert!((top - 10.0).abs() < 1e-4, "the stack is as tall as the model: {top}");
        // A strip is drawn 48:1, and no wider than twice the model's height.
        let strip = place(PlaneShape { rows: 1, cols: 768 }, 1, &model);
        assert!((strip.size[0] - 20.0).abs() < 1e-4 && (strip.size[1] - 20.0 / 48.0).abs() < 1e-5);
    }

    #[test]
    fn the_view_picks_a_level_and_the_part_of_the_plane_it_covers() {
        let plane = PlaneShape { rows: 4096, cols: 4096 };
        // 4096 elements on 4 units; one pixel spans 1/256 unit: 4 elements, level 2.
        assert_eq!(wanted_level(plane, [4.0, 4.0], 1.0 / 256.0, 6), 2);
        assert_eq!(wanted_level(plane, [4.0, 4.0], 1.0 / 2000.0, 6), 0);
        assert_eq!(wanted_level(plane, [4.0, 4.0], 10.0, 6), 6, "never past the overview");
        assert_eq!(wanted_level(plane, [4.0, 4.0], f32::NAN, 6), 6);
        // Looking straight at the plane's upper-left quarter from in front.
        let c = [0.0, 0.0, 0.0];
        let corners: Vec<_> = [(-1.0, 1.0), (0.0, 1.0), (-1.0, 0.0), (0.0, 0.0)]
            .map(|(x, y)| ([x, y, 5.0], [0.0, 0.0, -1.0]))
            .to_vec();
        let part = visible_part(c, [2.0, 2.0], &corners).unwrap();
        assert_eq!(part, [0.0, 0.0, 0.5, 0.5]);
        let far: Vec<_> = corners.iter().map(|&(o, d)| ([o[0] + 9.0, o[1], o[2]], d)).collect();
        assert_eq!(visible_part(c, [2.0, 2.0], &far), None, "off the plane");
        let behind: Vec<_> = corners.iter().map(|&(o, _)| (o, [0.0, 0.0, 1.0])).collect();
        assert_eq!(visible_part(c, [2.0, 2.0], &behind), Some([0.0, 0.0, 1.0, 1.0]));
        let texels = part_in_texels(plane, 2, part);
        assert_eq!(texels, (0.0, 0.0, 512.0, 512.0));
    }

    #[test]
    fn tiles_map_onto_their_elements() {
        let plane = PlaneShape { rows: 600, cols: 1000 };
        // Level 1: 300 x 500 texels; tile (1, 1) holds texels 256..500 x 256..300.
        assert_eq!(tile_texels(plane, 1, 1, 1), (256, 256, 244, 44));
        let part = texel_rect(plane, 1, 256, 256, 244, 44);
        assert_eq!(part, [0.512, 512.0 / 600.0, 1.0, 1.0]);
        let (center, size) = world_rect([0.0, 0.0, 2.0], [10.0, 6.0], [0.0, 0.0, 0.5, 0.5]);
        assert_eq!((center, size), ([-2.5, 1.5, 2.0], [5.0, 3.0]));
    }
}
