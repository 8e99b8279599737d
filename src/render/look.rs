//! The scene's light. By default every 3D camera is HDR with bloom, so
//! colours above a surface's own (a busy city cell, a pulse, a beam, a
//! routed expert) glow; a tonemapper that keeps the trunk's kind colours
//! recognisable (TonyMcMapface natively; the web build has no lookup tables,
//! so a LUT-free one there); and a linear fog in the background colour that
//! fades what is far, so a deep city still reads in depth. `glow = false` in
//! [`ViewSettings`] (`--flat`, the model panel's *Glow* box) draws flat,
//! exact colours: no HDR, bloom, tonemapping or fog.
//!
//! The interactive viewer chooses by its adapter unless told (`--glow`,
//! `--flat`): on a software rasteriser (Mesa's llvmpipe, no GPU) the HDR
//! target, the bloom blur and the tonemapping are full-screen passes on the
//! CPU that about double a city frame (README Performance), so it starts flat
//! there and says so beside the *Glow* box; stills and clips, which are not
//! interactive, always glow unless `--flat`.

use bevy::camera::Hdr;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::pbr::{DistanceFog, FogFalloff};
use bevy::post_process::bloom::Bloom;
use bevy::prelude::*;
#[cfg(not(target_arch = "wasm32"))]
use bevy::render::renderer::RenderAdapterInfo;

use crate::AppSystems;
use crate::model::CurrentModel;
use crate::view::ViewSettings;

pub(crate) fn plugin(app: &mut App) {
    app.add_systems(
        Update,
        (apply_look, fog_follows_camera).chain().in_set(AppSystems::Render),
    );
}

/// Present when the glow was turned off because the adapter rasterises on
/// the CPU: names the adapter for the model panel.
#[derive(Resource, Debug, Clone)]
pub struct SoftwareRenderer(pub String);

/// Whether a scene should glow by default on an adapter of this type: not on
/// a software rasteriser.
#[cfg(not(target_arch = "wasm32"))]
pub fn glows_by_default(device: wgpu::DeviceType) -> bool {
    device != wgpu::DeviceType::Cpu
}

/// The viewer's default look (a `Startup` system, added when neither
/// `--glow` nor `--flat` was given): flat on a software rasteriser. The
/// adapter is known by then (the render plugin's `finish` inserts it). (The
/// web build glows: a browser has a GPU, and wgpu is not a direct dependency
/// there.)
#[cfg(not(target_arch = "wasm32"))]
pub fn glow_by_adapter(
    adapter: Option<Res<RenderAdapterInfo>>,
    mut settings: ResMut<ViewSettings>,
    mut commands: Commands,
) {
    let Some(adapter) = adapter else { return };
    if !glows_by_default(adapter.device_type) {
        settings.glow = false;
        commands.insert_resource(SoftwareRenderer(adapter.name.clone()));
    }
}

/// Marks a camera whose look a system other than this module owns for now
/// (the weights zoom shows exact colours).
#[derive(Component)]
pub struct OwnLook;

/// The tonemapper of a glowing scene.
pub fn glow_tonemapping() -> Tonemapping {
    if cfg!(target_arch = "wasm32") {
        Tonemapping::SomewhatBoringDisplayTransform
    } else {
        Tonemapping::TonyMcMapface
    }
}

/// Bloom for the scene: soft, so only what is bright really glows.
fn bloom() -> Bloom {
    Bloom {
        intensity: 0.18,
        // Half the default mip chain's top size: the glow is as wide, a
        // quarter of the pixels are blurred (on a software rasteriser the
        // blur was most of the frame).
        max_mip_dimension: 256,
        ..Bloom::NATURAL
    }
}

fn apply_look(
    settings: Option<Res<ViewSettings>>,
    mut commands: Commands,
    cameras: Query<(Entity, Ref<Camera3d>), Without<OwnLook>>,
    mut given_back: RemovedComponents<OwnLook>,
) {
    let given_back: Vec<Entity> = given_back.read().collect();
    let Some(settings) = settings else { return };
    for (entity, camera) in &cameras {
        if !settings.is_changed() && !camera.is_added() && !given_back.contains(&entity) {
            continue;
        }
        let mut e = commands.entity(entity);
        if settings.glow {
            e.insert((Hdr, bloom(), glow_tonemapping(), fog((1.0, 2.0))));
        } else {
            e.remove::<(Hdr, Bloom, DistanceFog)>().insert(Tonemapping::None);
        }
    }
}

/// Linear fog from `start` to `end` (distances from the eye) in the background colour.
fn fog((start, end): (f32, f32)) -> DistanceFog {
    DistanceFog {
        color: super::BACKGROUND,
        falloff: FogFalloff::Linear { start, end },
        ..default()
    }
}

/// Where the fog starts and ends for an eye `distance` from the centre of a
/// scene of bounding radius `radius`: the near side stays clear, the far side
/// is about a third of the way into the fog, nothing vanishes.
pub fn fog_range(distance: f32, radius: f32) -> (f32, f32) {
    let radius = radius.max(1e-3);
    let start = (distance - 0.2 * radius).max(0.0);
    (start, start + 3.5 * radius)
}

fn fog_follows_camera(
    current: Option<Res<CurrentModel>>,
    mut cameras: Query<(&GlobalTransform, &mut DistanceFog), Without<OwnLook>>,
) {
    let Some(current) = current else { return };
    let bounds = &current.layout.bounds;
    let (centre, radius) = (Vec3::from(bounds.center()), bounds.extent() / 2.0);
    for (transform, mut fog) in &mut cameras {
        let (start, end) = fog_range(transform.translation().distance(centre), radius);
        if let FogFalloff::Linear { start: s, end: e } = &mut fog.falloff
            && ((*s - start).abs() > 1e-3 * radius || (*e - end).abs() > 1e-3 * radius)
        {
            (*s, *e) = (start, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fog_leaves_the_near_side_clear_and_never_swallows_the_far_side() {
        for (distance, radius) in [(10.0, 3.0), (100.0, 80.0), (5.0, 20.0)] {
            let (start, end) = fog_range(distance, radius);
            // The nearest point is before the fog starts.
            assert!(distance - radius <= start);
            // The far side is less than half into the fog.
            let far = distance + radius;
            assert!((far - start) / (end - start) < 0.5, "{distance} {radius}");
        }
    }

    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn software_rasterisers_start_flat_and_gpus_glow() {
        assert!(!glows_by_default(wgpu::DeviceType::Cpu));
        for gpu in [
            wgpu::DeviceType::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu,
            wgpu::DeviceType::Other,
        ] {
            assert!(glows_by_default(gpu), "{gpu:?}");
        }
    }
}
