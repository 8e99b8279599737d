//! Camera: bevy_panorbit_camera for orbit/pan/zoom; a fly mode (F toggles;
//! WASD + QE to move, drag to look, wheel for speed); glides to a tensor on
//! double-click or tree pick; Home frames the whole model. Keyboard input is
//! ignored while egui has focus (panorbit ignores egui's pointer itself).

pub mod math;
mod project;

pub use project::projector;

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::prelude::*;
use bevy::render::view::NoIndirectDrawing;
use bevy_panorbit_camera::{PanOrbitCamera, PanOrbitCameraPlugin};

use crate::AppSystems;
use crate::model::{CurrentModel, ModelLoaded};

pub(crate) fn plugin(app: &mut App) {
    app.add_plugins(PanOrbitCameraPlugin)
        .add_message::<FocusOn>()
        .add_message::<GlideTo>()
        .add_message::<FrameScene>()
        .init_resource::<FlyMode>()
        .init_resource::<UiFocus>()
        .init_resource::<Framed>()
        .add_systems(Startup, spawn_camera)
        .add_systems(
            Update,
            (
                frame_new_model,
                frame_scene,
                reframe_on_resize,
                home_key,
                apply_focus,
                toggle_fly,
                fly,
            )
                .chain()
                .in_set(AppSystems::Camera),
        );
}

/// Glide the orbit camera to look at `center` from a distance fitting `size`.
#[derive(Message, Debug, Clone, Copy)]
pub struct FocusOn {
    pub center: Vec3,
    pub size: f32,
}

/// Glide the orbit camera to this pose (angles too), e.g. straight at a plane.
#[derive(Message, Debug, Clone, Copy)]
pub struct GlideTo(pub math::OrbitView);

/// Glide to the default view of this box (the whole scene: the trunk and
/// the city beside it), framed for the 3D view's shape now and again
/// whenever that shape changes while the camera stays put.
#[derive(Message, Debug, Clone, Copy)]
pub struct FrameScene(pub crate::layout::Bounds);

/// Whether egui is using the pointer or keyboard this frame (set by the UI plugin).
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct UiFocus {
    pub pointer: bool,
    pub keyboard: bool,
}

/// Fly mode state. `speed` is in world units per second.
#[derive(Resource, Debug, Clone, Copy)]
pub struct FlyMode {
    pub active: bool,
    pub speed: f32,
}

impl Default for FlyMode {
    fn default() -> Self {
        FlyMode {
            active: false,
            speed: 10.0,
        }
    }
}

/// The pose the camera was last framed at and the view's width : height then,
/// so a view that changes shape (panels hidden with Tab, a resized window)
/// is framed again — unless the user has moved the camera since.
#[derive(Resource, Debug, Default, Clone, Copy)]
struct Framed {
    view: Option<math::OrbitView>,
    aspect: f32,
    /// What was framed (the layout's bounds, or the whole scene's).
    bounds: Option<crate::layout::Bounds>,
}

/// Width : height of the 3D view (the window minus the panels), 16:9 until known.
fn view_aspect(camera: Option<&Camera>) -> f32 {
    camera
        .and_then(Camera::logical_viewport_size)
        .filter(|s| s.x > 0.0 && s.y > 0.0)
        .map_or(16.0 / 9.0, |s| s.x / s.y)
}

/// Marks the main camera.
#[derive(Component)]
pub struct MainCamera;

fn spawn_camera(mut commands: Commands) {
    commands.spawn((
        MainCamera,
        Name::new("camera"),
        Transform::from_xyz(0.0, 5.0, 20.0),
        PanOrbitCamera {
            button_orbit: MouseButton::Left,
            button_pan: MouseButton::Right,
            ..default()
        },
        // The cube pipeline issues direct (not indirect) draws.
        NoIndirectDrawing,
        viewer_tonemapping(),
    ));
}

/// TonyMcMapface on the desktop; the web build leaves its lookup tables (and
/// the KTX2/zstd decoders they need) out, so colours go straight to the screen
/// there, as in `tensorcity render`.
fn viewer_tonemapping() -> bevy::core_pipeline::tonemapping::Tonemapping {
    if cfg!(target_arch = "wasm32") {
        bevy::core_pipeline::tonemapping::Tonemapping::None
    } else {
        bevy::core_pipeline::tonemapping::Tonemapping::TonyMcMapface
    }
}

/// Frames a freshly loaded model (or a new layout of it) without a glide.
fn frame_new_model(
    mut loaded: MessageReader<ModelLoaded>,
    current: Option<Res<CurrentModel>>,
    mut cameras: Query<(&mut PanOrbitCamera, &mut Transform, Option<&Camera>), With<MainCamera>>,
    mut fly: ResMut<FlyMode>,
    mut framed: ResMut<Framed>,
) {
    let Some(current) = current else { return };
    let new_model = loaded.read().count() > 0;
    if !new_model && !current.is_changed() {
        return;
    }
    for (mut cam, mut transform, camera) in &mut cameras {
        let aspect = view_aspect(camera);
        let view = math::frame_whole(&current.layout.bounds, aspect);
        fly.speed = (view.radius / 4.0).max(1.0);
        set_orbit(&mut cam, view, true);
        *transform = math::orbit_transform(view);
        *framed = Framed {
            view: Some(view),
            aspect,
            bounds: Some(current.layout.bounds),
        };
    }
}

fn frame_scene(
    mut requests: MessageReader<FrameScene>,
    mut cameras: Query<(&mut PanOrbitCamera, Option<&Camera>), With<MainCamera>>,
    mut fly: ResMut<FlyMode>,
    mut framed: ResMut<Framed>,
) {
    let Some(FrameScene(bounds)) = requests.read().last().copied() else {
        return;
    };
    fly.active = false;
    for (mut cam, camera) in &mut cameras {
        let aspect = view_aspect(camera);
        let view = math::frame_whole(&bounds, aspect);
        cam.enabled = true;
        set_orbit(&mut cam, view, false);
        *framed = Framed {
            view: Some(view),
            aspect,
            bounds: Some(bounds),
        };
    }
}

/// Frames the model again when the 3D view changes shape and the camera is
/// still where the last framing put it.
fn reframe_on_resize(mut cameras: Query<(&mut PanOrbitCamera, &Camera), With<MainCamera>>, mut framed: ResMut<Framed>) {
    let (Some(last), Some(bounds)) = (framed.view, framed.bounds) else {
        return;
    };
    for (mut cam, camera) in &mut cameras {
        let aspect = view_aspect(Some(camera));
        let untouched = cam.target_focus.distance(last.focus) < last.radius * 1e-3
            && (cam.target_radius - last.radius).abs() < last.radius * 1e-3
            && (cam.target_yaw - last.yaw).abs() < 1e-3
            && (cam.target_pitch - last.pitch).abs() < 1e-3;
        if !untouched || (aspect / framed.aspect - 1.0).abs() < 0.02 {
            continue;
        }
        let view = math::frame_whole(&bounds, aspect);
        set_orbit(&mut cam, view, false);
        *framed = Framed {
            view: Some(view),
            aspect,
            bounds: Some(bounds),
        };
    }
}

fn home_key(
    keys: Res<ButtonInput<KeyCode>>,
    ui: Res<UiFocus>,
    current: Option<Res<CurrentModel>>,
    mut cameras: Query<(&mut PanOrbitCamera, Option<&Camera>), With<MainCamera>>,
    mut fly: ResMut<FlyMode>,
    mut framed: ResMut<Framed>,
) {
    if ui.keyboard || !keys.just_pressed(KeyCode::Home) {
        return;
    }
    let Some(current) = current else { return };
    fly.active = false;
    for (mut cam, camera) in &mut cameras {
        let aspect = view_aspect(camera);
        let view = math::frame_whole(&current.layout.bounds, aspect);
        cam.enabled = true;
        set_orbit(&mut cam, view, false);
        *framed = Framed {
            view: Some(view),
            aspect,
            bounds: Some(current.layout.bounds),
        };
    }
}

fn apply_focus(
    mut requests: MessageReader<FocusOn>,
    mut glides: MessageReader<GlideTo>,
    mut cameras: Query<&mut PanOrbitCamera, With<MainCamera>>,
    mut fly: ResMut<FlyMode>,
) {
    if let Some(GlideTo(view)) = glides.read().last().copied() {
        fly.active = false;
        for mut cam in &mut cameras {
            cam.enabled = true;
            set_orbit(&mut cam, view, false);
        }
    }
    let Some(focus) = requests.read().last().copied() else {
        return;
    };
    fly.active = false;
    for mut cam in &mut cameras {
        cam.enabled = true;
        cam.target_focus = focus.center;
        cam.target_radius = math::focus_radius(focus.size);
    }
}

fn set_orbit(cam: &mut PanOrbitCamera, view: math::OrbitView, immediate: bool) {
    cam.target_focus = view.focus;
    cam.target_radius = view.radius;
    cam.target_yaw = view.yaw;
    cam.target_pitch = view.pitch;
    if immediate {
        cam.focus = view.focus;
        cam.radius = Some(view.radius);
        cam.yaw = Some(view.yaw);
        cam.pitch = Some(view.pitch);
        cam.force_update = true;
    }
}

fn toggle_fly(
    keys: Res<ButtonInput<KeyCode>>,
    ui: Res<UiFocus>,
    mut fly: ResMut<FlyMode>,
    mut cameras: Query<(&mut PanOrbitCamera, &Transform), With<MainCamera>>,
) {
    if ui.keyboard || !keys.just_pressed(KeyCode::KeyF) {
        return;
    }
    fly.active = !fly.active;
    for (mut cam, transform) in &mut cameras {
        cam.enabled = !fly.active;
        if !fly.active {
            // Back to orbiting around the point ahead of the camera, without a jump.
            let radius = cam.radius.unwrap_or(10.0);
            let view = math::orbit_from_transform(transform, radius);
            set_orbit(&mut cam, view, true);
        }
    }
}

fn fly(
    time: Res<Time>,
    keys: Res<ButtonInput<KeyCode>>,
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    ui: Res<UiFocus>,
    mut fly: ResMut<FlyMode>,
    mut cameras: Query<&mut Transform, With<MainCamera>>,
) {
    if !fly.active {
        return;
    }
    if !ui.pointer && scroll.delta.y != 0.0 {
        fly.speed = math::fly_speed_after_scroll(fly.speed, scroll.delta.y);
    }
    let input = |k: KeyCode| if !ui.keyboard && keys.pressed(k) { 1.0 } else { 0.0 };
    let mv = Vec3::new(
        input(KeyCode::KeyD) - input(KeyCode::KeyA),
        input(KeyCode::KeyE) - input(KeyCode::KeyQ),
        input(KeyCode::KeyS) - input(KeyCode::KeyW),
    );
    let look = if !ui.pointer && buttons.pressed(MouseButton::Left) {
        motion.delta
    } else {
        Vec2::ZERO
    };
    for mut transform in &mut cameras {
        *transform = math::fly_step(*transform, mv, look, fly.speed, time.delta_secs());
    }
}
