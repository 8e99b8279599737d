//! Camera maths as pure functions (framing, orbit <-> transform, fly steps),
//! shared by the viewer, headless rendering and recording.

use bevy::math::{EulerRot, Quat, Vec2, Vec3};
use bevy::transform::components::Transform;

use crate::layout::Bounds;

/// An orbit camera pose: looking at `focus` from `radius` away, rotated by
/// `yaw` about +Y and raised by `pitch` (radians), as bevy_panorbit_camera does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrbitView {
    pub focus: Vec3,
    pub radius: f32,
    pub yaw: f32,
    pub pitch: f32,
}

/// Vertical field of view of Bevy's default perspective projection.
pub const FOV_Y: f32 = std::f32::consts::FRAC_PI_4;

/// A pose that shows the whole box: a three-quarter view from the front,
/// far enough that the bounding sphere fits the vertical field of view.
pub fn frame_bounds(bounds: &Bounds) -> OrbitView {
    let extent = bounds.extent().max(1.0);
    let radius = (extent / 2.0) / (FOV_Y / 2.0).sin() * 1.05;
    OrbitView {
        focus: Vec3::from(bounds.center()),
        radius,
        yaw: 0.6,
        pitch: 0.3,
    }
}

/// The default view of a whole model: the three-quarter angles of
/// [`frame_bounds`], as close as a view of width : height `aspect` allows.
pub fn frame_whole(bounds: &Bounds, aspect: f32) -> OrbitView {
    let sphere = frame_bounds(bounds);
    frame_bounds_at(bounds, aspect, sphere.yaw, sphere.pitch)
}

/// The closest pose at the given angles from which every corner of the box is
/// inside the view (vertical field of view [`FOV_Y`], width/height `aspect`),
/// with a small margin. Tighter than fitting the bounding sphere: a tall trunk
/// fills a portrait frame.
pub fn frame_bounds_at(bounds: &Bounds, aspect: f32, yaw: f32, pitch: f32) -> OrbitView {
    let focus = Vec3::from(bounds.center());
    let rotation = Quat::from_rotation_y(yaw) * Quat::from_rotation_x(-pitch);
    let (right, up, back) = (rotation * Vec3::X, rotation * Vec3::Y, rotation * Vec3::Z);
    let tan_y = (FOV_Y / 2.0).tan() * 0.95;
    let tan_x = tan_y * aspect.max(0.05);
    let mut radius = 1.0f32;
    for i in 0..8 {
        let corner = Vec3::new(
            if i & 1 == 0 { bounds.min[0] } else { bounds.max[0] },
            if i & 2 == 0 { bounds.min[1] } else { bounds.max[1] },
            if i & 4 == 0 { bounds.min[2] } else { bounds.max[2] },
        ) - focus;
        // The corner at depth (radius - z) must satisfy |x| <= tan_x * depth and |y| <= tan_y * depth.
        let (x, y, z) = (corner.dot(right), corner.dot(up), corner.dot(back));
        radius = radius.max(z + x.abs() / tan_x).max(z + y.abs() / tan_y);
    }
    OrbitView {
        focus,
        radius,
        yaw,
        pitch,
    }
}

/// Distance to look at a single object of edge `size`.
pub fn focus_radius(size: f32) -> f32 {
    size.max(0.5) * 5.0
}

/// The camera transform of an orbit pose (panorbit's convention).
pub fn orbit_transform(view: OrbitView) -> Transform {
    let rotation = Quat::from_rotation_y(view.yaw) * Quat::from_rotation_x(-view.pitch);
    Transform {
        translation: view.focus + rotation * Vec3::new(0.0, 0.0, view.radius),
        rotation,
        ..Transform::IDENTITY
    }
}

/// The orbit pose around the point `radius` ahead of a camera.
pub fn orbit_from_transform(transform: &Transform, radius: f32) -> OrbitView {
    let focus = transform.translation + transform.forward() * radius;
    let offset = transform.translation - focus;
    let yaw = offset.x.atan2(offset.z);
    let pitch = (offset.y / radius.max(1e-3)).clamp(-1.0, 1.0).asin();
    OrbitView {
        focus,
        radius,
        yaw,
        pitch,
    }
}

/// One fly-mode step: `mv` is (right, up, back) input in -1..1, `look` the
/// mouse delta in pixels.
pub fn fly_step(mut t: Transform, mv: Vec3, look: Vec2, speed: f32, dt: f32) -> Transform {
    const LOOK_SENSITIVITY: f32 = 0.004;
    let (mut yaw, mut pitch, _) = t.rotation.to_euler(EulerRot::YXZ);
    yaw -= look.x * LOOK_SENSITIVITY;
    pitch = (pitch - look.y * LOOK_SENSITIVITY).clamp(-1.54, 1.54);
    t.rotation = Quat::from_euler(EulerRot::YXZ, yaw, pitch, 0.0);
    let world = t.rotation * Vec3::new(mv.x, 0.0, mv.z) + Vec3::Y * mv.y;
    t.translation += world.normalize_or_zero() * speed * dt;
    t
}

/// Wheel up speeds the fly camera up by 20% a notch, down slows it.
pub fn fly_speed_after_scroll(speed: f32, notches: f32) -> f32 {
    (speed * 1.2f32.powf(notches)).clamp(0.05, 100_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orbit_round_trips_through_a_transform() {
        let view = OrbitView {
            focus: Vec3::new(1.0, 2.0, 3.0),
            radius: 10.0,
            yaw: 0.7,
            pitch: 0.4,
        };
        let t = orbit_transform(view);
        assert!((t.translation.distance(view.focus) - 10.0).abs() < 1e-4);
        // The camera looks at the focus.
        assert!((t.forward().dot((view.focus - t.translation).normalize()) - 1.0).abs() < 1e-5);
        let back = orbit_from_transform(&t, 10.0);
        assert!(back.focus.distance(view.focus) < 1e-3);
        assert!((back.yaw - view.yaw).abs() < 1e-4 && (back.pitch - view.pitch).abs() < 1e-4);
    }

    #[test]
    fn framing_fits_the_bounds() {
        let b = Bounds {
            min: [-1.0, 0.0, -1.0],
            max: [1.0, 100.0, 1.0],
        };
        let v = frame_bounds(&b);
        assert_eq!(v.focus, Vec3::new(0.0, 50.0, 0.0));
        assert!(v.radius * (FOV_Y / 2.0).sin() >= b.extent() / 2.0);
    }

    #[test]
    fn tight_framing_keeps_every_corner_in_view() {
        let b = Bounds {
            min: [-1.0, 0.0, -1.0],
            max: [1.0, 100.0, 1.0],
        };
        for aspect in [0.5, 1.0, 16.0 / 9.0] {
            let v = frame_bounds_at(&b, aspect, 0.6, 0.3);
            let t = orbit_transform(v);
            let inv = t.compute_affine().inverse();
            for i in 0..8 {
                let c = Vec3::new(
                    b.min[0] + 2.0 * (i & 1) as f32,
                    100.0 * ((i >> 1) & 1) as f32,
                    b.min[2] + 2.0 * ((i >> 2) & 1) as f32,
                );
                let p = inv.transform_point3(c);
                assert!(p.z < 0.0);
                assert!(p.y.abs() <= -p.z * (FOV_Y / 2.0).tan() + 1e-3);
                assert!(p.x.abs() <= -p.z * (FOV_Y / 2.0).tan() * aspect + 1e-3);
            }
            // Tighter than the bounding sphere.
            assert!(v.radius < frame_bounds(&b).radius);
        }
    }

    #[test]
    fn fly_moves_forward_and_speed_scrolls() {
        let t = Transform::IDENTITY;
        let moved = fly_step(t, Vec3::new(0.0, 0.0, -1.0), Vec2::ZERO, 2.0, 0.5);
        assert!((moved.translation - Vec3::new(0.0, 0.0, -1.0)).length() < 1e-5);
        assert!(fly_speed_after_scroll(10.0, 1.0) > 10.0);
        assert!(fly_speed_after_scroll(10.0, -1.0) < 10.0);
    }
}
