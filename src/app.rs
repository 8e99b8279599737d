//! The app's frame and plugins: the ordered stages every per-frame system is in
//! ([`AppSystems`]), the app states, the scene and viewer plugins, and the log
//! settings of every app this crate builds.

use bevy::prelude::*;

#[cfg(not(target_arch = "wasm32"))]
use crate::record;
use crate::{activations, camera, city, lod, model, pick, render, spawn, ui, view, weight_stats};

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `-v`: Bevy's and wgpu's INFO lines on stderr (off by default: the command
/// line prints only what tensorcity has to say, and warnings that matter).
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `-v` was given (extra lines on stderr).
pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The log settings every app of this crate uses: warnings and errors only,
/// without the lines that only say this machine renders in software (the
/// adapter notice, Xvfb's display size), unless `-v`. `RUST_LOG` still
/// overrides both.
pub fn log_plugin() -> bevy::log::LogPlugin {
    let verbose = VERBOSE.load(std::sync::atomic::Ordering::Relaxed);
    bevy::log::LogPlugin {
        level: if verbose {
            bevy::log::Level::INFO
        } else {
            bevy::log::Level::WARN
        },
        filter: if verbose {
            bevy::log::DEFAULT_FILTER.to_string()
        } else {
            format!(
                "{},bevy_render::renderer=error,bevy_egui::render=error,winit=error,bevy_winit=error",
                bevy::log::DEFAULT_FILTER
            )
        },
        ..Default::default()
    }
}

/// The frame, in order: the stages data passes through each `Update`, from
/// input to pixels. Every per-frame system of the app's own plugins is in one
/// of these sets, and the systems inside a set are chained, so the frame has
/// one order (`tests/integration/ecs.rs` builds the viewer's schedule with
/// Bevy's ambiguity detection set to error). Commands issued in one stage are
/// applied before the next (Bevy inserts the sync point between ordered
/// systems), so a stage always sees what earlier stages inserted this frame.
///
/// Outside `Update`: the egui panels draw in `EguiPrimaryContextPass` (after
/// `Update`; they read what this frame computed and send messages the next
/// frame's stages read), and rendering runs in Bevy's render app.
/// When adding a variant, order it in `configure_sets` in [`ScenePlugin`].
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppSystems {
    /// Turns outside requests into messages: frame scripts, the page's URL,
    /// file picker and scripts (web), capture hotkeys. Writes `LoadModel`,
    /// `Prompt`, `FocusOn`, capture messages.
    Input,
    /// Starts a background load on `LoadModel`; when one finishes (or a parsed
    /// architecture arrives from the page) installs it: writes `CurrentModel`,
    /// `LoadError`, `RecentModels`, `AppState` and the `ModelLoaded` message.
    Load,
    /// Recomputes `CurrentModel::layout` when `ViewSettings` asks for another
    /// arrangement or size scale.
    Layout,
    /// Mirrors `CurrentModel` into entities: despawns the old `ModelRoot` and
    /// spawns `Layer` / `Tensor` entities under a new one.
    Spawn,
    /// On `ModelLoaded` opens the weights on a task and starts the worker;
    /// tokenizes `Prompt`s, starts runs, folds the worker's frames into
    /// `CurrentRun`; starts and collects analysis tasks (logit lens of other
    /// positions, saliency, PCA) into `Analyses`; computes the weight
    /// statistics (`WeightStats`) on a task when the trunk is coloured by one.
    Inference,
    /// Derives the one `CityScene` (grid, cells, filtered arcs, heatmaps) from
    /// `CurrentRun`, the layout, `CityView` and the playhead, and mirrors it
    /// into `Token` / `CityCell` / `AttentionEdge` entities.
    City,
    /// Moves the camera: new-model framing, glides from `FocusOn`, and the
    /// camera's own keys (Home, F for fly mode, WASD), read here directly.
    Camera,
    /// Level of detail per layer from the camera, then the pointer against the
    /// scene: tensor hover/click (`Highlight`), city hover/click (`CityHover`,
    /// `SelectedToken`).
    Interact,
    /// Builds the instance buffers of the trunk and the city, the PCA gizmos;
    /// hands frames to in-app recordings and screenshots; in the browser,
    /// reports the frame to the page.
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
                    AppSystems::Load,
                    AppSystems::Layout,
                    AppSystems::Spawn,
                    AppSystems::Inference,
                    AppSystems::City,
                    AppSystems::Camera,
                    AppSystems::Interact,
                    AppSystems::Render,
                )
                    .chain(),
            )
            .add_plugins((
                view::plugin,
                model::plugin,
                spawn::plugin,
                lod::plugin,
                weight_stats::plugin,
                render::plugin,
            ));
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
            pick::plugin,
            ui::plugin,
        ))
        // Live, a pulse climbs any model in a second or two (stills and clips pace their own).
        .init_resource::<city::LivePace>();
        #[cfg(not(target_arch = "wasm32"))]
        app.add_plugins((record::live::LiveCapturePlugin, crate::zoom::plugin));
    }
}
