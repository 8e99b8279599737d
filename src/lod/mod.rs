//! Level of detail: each [`Layer`] carries a [`LayerLod`]; every frame (in
//! `AppSystems::Interact`) its block's apparent size from the main camera
//! decides whether it is open (every tensor drawn) or collapsed into one block,
//! with hysteresis and a short blend (the maths, pure, in [`math`]). Drawing
//! and picking scale tensors by [`LodState::tensor_scale`].

pub mod math;

use bevy::prelude::*;

pub use math::{LodState, apparent_pixels};

use crate::AppSystems;
use crate::camera::MainCamera;
use crate::camera::math::FOV_Y;
use crate::spawn::Layer;
use crate::view::ViewSettings;

pub(crate) fn plugin(app: &mut App) {
    app.add_observer(open_new_layer)
        .add_systems(Update, update_lod.in_set(AppSystems::Interact));
}

/// Every layer starts open.
fn open_new_layer(added: On<Add, Layer>, mut commands: Commands) {
    commands.entity(added.entity).insert(LayerLod::default());
}

/// Level of detail of a layer.
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct LayerLod(pub LodState);

/// Updates every layer's level of detail from the main camera.
pub fn update_lod(
    time: Res<Time>,
    settings: Res<ViewSettings>,
    cameras: Query<(&Camera, &GlobalTransform), With<MainCamera>>,
    mut layers: Query<(&Layer, &mut LayerLod)>,
) {
    let Ok((camera, transform)) = cameras.single() else {
        return;
    };
    let eye = transform.translation();
    let height = camera.logical_viewport_size().map_or(720.0, |s| s.y);
    for (layer, mut lod) in &mut layers {
        let mut state = lod.0;
        let pixels = apparent_pixels(layer.block_size, eye.distance(layer.center), height, FOV_Y);
        if state.update(pixels, time.delta_secs(), settings.lod) {
            lod.0 = state;
        }
    }
}
