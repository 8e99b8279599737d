//! World points to the view's pixels, as `Camera::world_to_viewport` maps
//! them, with the matrices built once: the labels project every cube of the
//! model each frame.

use bevy::math::Vec3A;
use bevy::prelude::*;

/// Maps a world point to logical viewport pixels (None behind the camera or
/// past its far plane); None when the camera has no viewport yet.
pub fn projector(camera: &Camera, at: &GlobalTransform) -> Option<impl Fn([f32; 3]) -> Option<[f32; 2]> + use<>> {
    let rect = camera.logical_viewport_rect()?;
    let view_from_world = at.affine().inverse();
    let clip_from_view = camera.clip_from_view();
    Some(move |p: [f32; 3]| {
        let view = view_from_world.transform_point3a(Vec3A::from(p));
        let ndc = clip_from_view.project_point3a(view);
        if ndc.is_nan() || !(0.0..=1.0).contains(&ndc.z) {
            return None;
        }
        Some([
            (ndc.x + 1.0) / 2.0 * rect.width() + rect.min.x,
            (1.0 - ndc.y) / 2.0 * rect.height() + rect.min.y,
        ])
    })
}
