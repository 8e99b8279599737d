//! Camera paths for recordings (pure): where the camera is and what it looks
//! at, at any time of the clip. `orbit` turns once around the whole scene,
//! `flythrough` rises from the embeddings through every layer to the head,
//! and a RON keyframe file says it exactly (with layout and selection changes).

pub use super::keyframes::{Keyframe, KeyframeFile};
use bevy::math::Vec3;

use crate::camera::math::{frame_bounds_at, orbit_transform};
use crate::layout::{Bounds, LayoutKind};

/// One camera pose: the eye and the point it looks at (+Y up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub eye: Vec3,
    pub look_at: Vec3,
}

/// How the camera moves.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraPath {
    /// One full turn around the scene at a fixed height.
    Orbit { bounds: Bounds, aspect: f32 },
    /// Along `waypoints` (group centres in model order), `distance` beside them.
    Flythrough { waypoints: Vec<Vec3>, distance: f32 },
    /// Interpolated keyframes (eased between each pair).
    Keyframes(KeyframeFile),
}

/// Smooth start and stop: 0 -> 0, 1 -> 1, zero slope at both ends.
pub fn ease(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// The point at arc-length fraction `u` (0..=1) along a polyline.
fn along(points: &[Vec3], u: f32) -> Vec3 {
    let (Some(&first), Some(&last)) = (points.first(), points.last()) else {
        return Vec3::ZERO;
    };
    let lengths: Vec<f32> = points.windows(2).map(|w| w[0].distance(w[1])).collect();
    let total: f32 = lengths.iter().sum();
    if total <= 0.0 {
        return first;
    }
    let mut left = u.clamp(0.0, 1.0) * total;
    for (w, len) in points.windows(2).zip(&lengths) {
        if left <= *len {
            return w[0].lerp(w[1], if *len > 0.0 { left / len } else { 0.0 });
        }
        left -= len;
    }
    last
}

impl CameraPath {
    /// An orbit around `bounds` for an image of `aspect` = width / height.
    pub fn orbit(bounds: Bounds, aspect: f32) -> CameraPath {
        CameraPath::Orbit { bounds, aspect }
    }

    /// A flythrough past `centers` (in model order), `size` = a typical group's extent.
    pub fn flythrough(centers: &[[f32; 3]], size: f32) -> CameraPath {
        // A centred moving average irons out the zig-zag of towers placed side by
        // side; it narrows towards the ends so the path starts at the embeddings
        // and ends at the head exactly.
        let raw: Vec<Vec3> = centers.iter().map(|&c| Vec3::from(c)).collect();
        let waypoints = (0..raw.len())
            .map(|i| {
                let k = 2.min(i).min(raw.len() - 1 - i);
                let window = &raw[i - k..=i + k];
                window.iter().copied().sum::<Vec3>() / window.len() as f32
            })
            .collect();
        // Close enough to read a layer's cubes, far enough to see the next few coming.
        CameraPath::Flythrough {
            waypoints,
            distance: size.max(0.5) * 2.5,
        }
    }

    /// The pose at `t` seconds of a `duration`-second clip.
    pub fn pose(&self, t: f32, duration: f32) -> Pose {
        let s = if duration > 0.0 {
            (t / duration).clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self {
            CameraPath::Orbit { bounds, aspect } => {
                // A constant-speed turn (it loops seamlessly), a little above the horizon.
                let yaw = 0.6 + s * std::f32::consts::TAU;
                let mut view = frame_bounds_at(bounds, *aspect, yaw, 0.35);
                // One distance all the way round: the largest that frames the
                // box at any angle of the turn, so the whole scene stays in
                // every frame (the mean of them cut the city a third of the way round).
                view.radius = (0..32)
                    .map(|i| frame_bounds_at(bounds, *aspect, i as f32 / 32.0 * std::f32::consts::TAU, 0.35).radius)
                    .fold(0.0f32, f32::max);
                let transform = orbit_transform(view);
                Pose {
                    eye: transform.translation,
                    look_at: view.focus,
                }
            }
            CameraPath::Flythrough { waypoints, distance } => {
                let u = ease(s);
                let here = along(waypoints, u);
                let length: f32 = waypoints.windows(2).map(|w| w[0].distance(w[1])).sum();
                // Look a little ahead along the path (in world units, not a share of it).
                let ahead_u = if length > 0.0 { u + *distance * 0.4 / length } else { u };
                let ahead = along(waypoints, ahead_u.min(1.0));
                let heading = (ahead - here).normalize_or(Vec3::Y);
                // Beside the stack, swinging from the front-right round to the front-left
                // while rising, a little below the point it looks at early on (looking up
                // the tower) and above it at the end (looking down at the head).
                let swing = 0.9 - 1.5 * u;
                let side = Vec3::new(swing.sin(), 0.0, swing.cos());
                let side = (side - heading * side.dot(heading)).normalize_or(Vec3::Z);
                let eye = here + side * *distance + Vec3::Y * *distance * (0.5 * u - 0.15);
                Pose { eye, look_at: ahead }
            }
            CameraPath::Keyframes(file) => {
                let keys = &file.keyframes;
                let pose = |k: &Keyframe| Pose {
                    eye: Vec3::from(k.position),
                    look_at: Vec3::from(k.look_at),
                };
                let Some(first) = keys.first() else {
                    return Pose {
                        eye: Vec3::Z,
                        look_at: Vec3::ZERO,
                    };
                };
                let Some(next) = keys.iter().position(|k| k.time > t) else {
                    return pose(keys.last().unwrap_or(first));
                };
                if next == 0 {
                    return pose(first);
                }
                let (a, b) = (&keys[next - 1], &keys[next]);
                let f = ease((t - a.time) / (b.time - a.time));
                let (pa, pb) = (pose(a), pose(b));
                Pose {
                    eye: pa.eye.lerp(pb.eye, f),
                    look_at: pa.look_at.lerp(pb.look_at, f),
                }
            }
        }
    }

    /// The layout and token selection in force at `t` (the latest keyframe
    /// at or before `t` that sets them; `None`: unchanged).
    pub fn changes_at(&self, t: f32) -> (Option<LayoutKind>, Option<usize>) {
        let CameraPath::Keyframes(file) = self else {
            return (None, None);
        };
        let reached = file.keyframes.iter().filter(|k| k.time <= t);
        let layout = reached.clone().filter_map(|k| k.layout).next_back();
        let select = reached.filter_map(|k| k.select).next_back();
        (layout, select)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "(keyframes: [
        (time: 0.0, position: (0.0, 2.0, 10.0), look_at: (0.0, 1.0, 0.0)),
        (time: 2.0, position: (10.0, 5.0, 0.0), look_at: (0.0, 3.0, 0.0), layout: Some(city), select: Some(2)),
    ])";

    #[test]
    fn keyframes_put_the_camera_where_the_file_says_and_ease_between() {
        let path = CameraPath::Keyframes(KeyframeFile::parse(TWO).unwrap());
        let start = path.pose(0.0, 2.0);
        assert_eq!(start.eye, Vec3::new(0.0, 2.0, 10.0));
        assert_eq!(start.look_at, Vec3::new(0.0, 1.0, 0.0));
        let end = path.pose(2.0, 2.0);
        assert_eq!(end.eye, Vec3::new(10.0, 5.0, 0.0));
        assert_eq!(end.look_at, Vec3::new(0.0, 3.0, 0.0));
        let mid = path.pose(1.0, 2.0);
        assert!((mid.eye - Vec3::new(5.0, 3.5, 5.0)).length() < 1e-5, "{mid:?}");
        let early = path.pose(0.2, 2.0);
        assert!(early.eye.x < 0.5, "eased: slow at the start ({early:?})");
        assert_eq!(path.changes_at(1.9), (None, None));
        assert_eq!(path.changes_at(2.0), (Some(LayoutKind::City), Some(2)));
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        assert!(
            KeyframeFile::parse("(keyframes: [])")
                .unwrap_err()
                .contains("no keyframes")
        );
        assert!(
            KeyframeFile::parse("nonsense")
                .unwrap_err()
                .starts_with("not a camera path")
        );
        let backwards = "(keyframes: [(time: 1.0, position: (0.0, 0.0, 1.0), look_at: (0.0, 0.0, 0.0)),
            (time: 0.5, position: (0.0, 0.0, 2.0), look_at: (0.0, 0.0, 0.0))])";
        assert!(KeyframeFile::parse(backwards).unwrap_err().contains("keyframe 1"));
        let same = "(keyframes: [(time: 0.0, position: (1.0, 1.0, 1.0), look_at: (1.0, 1.0, 1.0))])";
        assert!(KeyframeFile::parse(same).unwrap_err().contains("same point"));
    }

    #[test]
    fn the_orbit_turns_once_at_a_constant_distance_and_the_flythrough_rises() {
        let bounds = Bounds {
            min: [-1.0, 0.0, -1.0],
            max: [1.0, 10.0, 1.0],
        };
        let orbit = CameraPath::orbit(bounds, 16.0 / 9.0);
        let (a, b, c) = (orbit.pose(0.0, 4.0), orbit.pose(2.0, 4.0), orbit.pose(4.0, 4.0));
        assert!((a.eye - c.eye).length() < 1e-3, "a full turn ends where it started");
        assert!((a.eye - b.eye).length() > 1.0, "half way it is on the other side");
        let r = |p: Pose| (p.eye - p.look_at).length();
        assert!((r(a) - r(b)).abs() < 1e-3);
        let centers: Vec<[f32; 3]> = (0..10).map(|i| [0.0, i as f32, 0.0]).collect();
        let fly = CameraPath::flythrough(&centers, 1.0);
        let (lo, hi) = (fly.pose(0.0, 10.0), fly.pose(10.0, 10.0));
        assert!(
            lo.look_at.y < 1.5 && hi.look_at.y == 9.0,
            "starts at the first group, ends at the last: {lo:?} {hi:?}"
        );
        let mut last = f32::MIN;
        for i in 0..=20 {
            let y = fly.pose(i as f32 * 0.5, 10.0).look_at.y;
            assert!(y >= last - 1e-4, "rises monotonically");
            last = y;
        }
    }

    #[test]
    fn the_whole_scene_stays_in_every_frame_of_the_orbit() {
        // A tall thin trunk beside a wide low city (the embedded model's city scene).
        let bounds = Bounds {
            min: [-1.0, -0.3, -1.0],
            max: [66.6, 90.8, 30.5],
        };
        let aspect = 16.0 / 9.0;
        let tan_y = (crate::camera::math::FOV_Y / 2.0).tan();
        let tan_x = tan_y * aspect;
        let orbit = CameraPath::orbit(bounds, aspect);
        for i in 0..48 {
            let pose = orbit.pose(i as f32 / 48.0 * 6.0, 6.0);
            let forward = (pose.look_at - pose.eye).normalize();
            let right = forward.cross(Vec3::Y).normalize();
            let up = right.cross(forward);
            for c in 0..8 {
                let corner = Vec3::new(
                    if c & 1 == 0 { bounds.min[0] } else { bounds.max[0] },
                    if c & 2 == 0 { bounds.min[1] } else { bounds.max[1] },
                    if c & 4 == 0 { bounds.min[2] } else { bounds.max[2] },
                ) - pose.eye;
                let depth = corner.dot(forward);
                assert!(depth > 0.0, "frame {i}: corner {c} behind the camera");
                let (x, y) = (corner.dot(right) / depth, corner.dot(up) / depth);
                assert!(
                    x.abs() <= tan_x && y.abs() <= tan_y,
                    "frame {i}: corner {c} out of frame ({x}, {y})"
                );
            }
        }
    }
}
