//! tensorcity: see transformer models. The architecture as a 3D trunk of tensor
//! cubes that you can fly through.
//!
//! Data flow: model source -> [`arch::Architecture`] -> [`layout::Layout`]
//! (positions, sizes) -> entities (`Layer`, `Tensor`) -> instance buffer -> pixels.
//!
//! The app is one plugin per concern, ordered each frame by [`AppSystems`].

pub mod activations;
pub mod arch;
pub mod camera;
pub mod city;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
#[cfg(not(target_arch = "wasm32"))]
pub mod headless;
pub mod inference;
pub mod layout;
pub mod model;
#[cfg(not(target_arch = "wasm32"))]
pub mod record;
pub mod render;
#[cfg(not(target_arch = "wasm32"))]
pub mod script;
pub mod ui;
pub mod viewer;
#[cfg(target_arch = "wasm32")]
pub mod web;

use bevy::prelude::*;

/// The frame, in order. Every per-frame system of the app lives in one of these
/// sets (in `Update`); when adding a variant, order it in `configure_sets` below.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppSystems {
    /// Reads keyboard/mouse and UI requests into messages (load, focus, toggles).
    Input,
    /// Finishes background model loads; spawns and despawns per-model entities.
    Model,
    /// Moves the camera (fly mode, focus glides, Home).
    Camera,
    /// Picks the cube under the pointer; updates level of detail.
    Interact,
    /// Rebuilds the instance buffer when anything drawn changed.
    Render,
}

/// Whether a model is on screen.
#[derive(States, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AppState {
    /// A model is being read on a background task (headers, config, layout).
    #[default]
    Loading,
    /// A model is on screen.
    Ready,
    /// The last load failed; the error panel shows why. Any earlier model stays.
    Error,
}

/// Everything but windowing and UI: model loading, layout entities, cube
/// rendering. Used by the viewer and by headless rendering.
pub struct ScenePlugin;

impl Plugin for ScenePlugin {
    fn build(&self, app: &mut App) {
        app.init_state::<AppState>()
            .configure_sets(
                Update,
                (
                    AppSystems::Input,
                    AppSystems::Model,
                    AppSystems::Camera,
                    AppSystems::Interact,
                    AppSystems::Render,
                )
                    .chain(),
            )
            .add_plugins((model::plugin, layout::spawn::plugin, render::plugin));
    }
}

/// The interactive viewer: the scene plus camera controls and the egui panels.
pub struct ViewerPlugin;

impl Plugin for ViewerPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((
            ScenePlugin,
            activations::ActivationsPlugin,
            city::CityPlugin,
            camera::plugin,
            ui::plugin,
        ));
        #[cfg(not(target_arch = "wasm32"))]
        app.add_plugins(record::live::LiveCapturePlugin);
    }
}
