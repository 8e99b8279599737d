//! Picking cubes under the mouse: a ray against axis-aligned cubes (slab test).
//! The cubes are GPU instances, not meshes, so Bevy's mesh picking cannot see them.

/// Distance along the ray to the nearest hit of an axis-aligned cube, if any.
pub fn ray_cube(origin: [f32; 3], dir: [f32; 3], center: [f32; 3], size: f32) -> Option<f32> {
    let h = size / 2.0;
    let (mut t_min, mut t_max) = (f32::NEG_INFINITY, f32::INFINITY);
    for i in 0..3 {
        let (lo, hi) = (center[i] - h, center[i] + h);
        if dir[i].abs() < 1e-12 {
            if origin[i] < lo || origin[i] > hi {
                return None;
            }
            continue;
        }
        let (a, b) = ((lo - origin[i]) / dir[i], (hi - origin[i]) / dir[i]);
        t_min = t_min.max(a.min(b));
        t_max = t_max.min(a.max(b));
    }
    (t_max >= t_min.max(0.0)).then_some(t_min.max(0.0))
}

/// Index of the nearest cube hit by the ray among `(center, size)` pairs.
pub fn nearest_hit(
    origin: [f32; 3],
    dir: [f32; 3],
    cubes: impl IntoIterator<Item = (usize, [f32; 3], f32)>,
) -> Option<(usize, f32)> {
    cubes
        .into_iter()
        .filter(|&(_, _, size)| size > 0.0)
        .filter_map(|(i, c, s)| ray_cube(origin, dir, c, s).map(|t| (i, t)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_the_nearest_cube() {
        let cubes = [
            (0, [0.0, 0.0, 0.0], 1.0),
            (1, [0.0, 0.0, -5.0], 1.0),
            (2, [3.0, 0.0, 0.0], 1.0),
        ];
        let hit = nearest_hit([0.0, 0.0, 10.0], [0.0, 0.0, -1.0], cubes);
        assert_eq!(hit.map(|h| h.0), Some(0));
        assert!((hit.unwrap().1 - 9.5).abs() < 1e-5);
        assert_eq!(nearest_hit([0.0, 5.0, 10.0], [0.0, 0.0, -1.0], cubes), None);
        assert_eq!(
            ray_cube([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], 2.0),
            Some(0.0)
        );
    }
}
