//! The frame-script runner: one step per frame or wait, against the viewer's
//! resources (the steps are parsed in `steps`).

use super::steps::{Step, parse};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy_panorbit_camera::PanOrbitCamera;

use crate::activations::{CurrentRun, Prompt, RunStatus, Runner, SelectedToken};
use crate::camera::{FocusOn, MainCamera};
use crate::render::{CubeDraws, Highlight};
use crate::spawn::{Cube, Tensor};
use crate::view::ViewSettings;
use crate::{AppState, AppSystems};

/// What the script touches of the inference side.
#[derive(bevy::ecs::system::SystemParam)]
pub(crate) struct RunParams<'w> {
    prompts: MessageWriter<'w, Prompt>,
    run: Res<'w, CurrentRun>,
    runner: Res<'w, Runner>,
    selected: ResMut<'w, SelectedToken>,
    playback: ResMut<'w, crate::city::CityPlayback>,
    city: ResMut<'w, crate::city::CityView>,
    pca: ResMut<'w, crate::city::pca3d::PcaScene>,
    toggles: MessageWriter<'w, crate::record::live::ToggleRecording>,
    shots: MessageWriter<'w, crate::record::live::TakeScreenshot>,
    weight_stats: Res<'w, crate::weight_stats::WeightStats>,
    weight_diff: Res<'w, crate::weight_stats::WeightDiff>,
    zoom: Res<'w, crate::zoom::Zoom>,
    zoom_requests: MessageWriter<'w, crate::zoom::ZoomRequest>,
    chrome: ResMut<'w, crate::ui::Chrome>,
    folds: ResMut<'w, crate::ui::Folds>,
}

#[derive(Resource, Debug)]
pub struct Script {
    steps: Vec<Step>,
    next: usize,
    frames_left: u32,
    draws_at_ready: Option<u64>,
    /// When `wait-weights` first found the zoom settled.
    weights_settled: Option<std::time::Instant>,
    saved: Option<Arc<AtomicBool>>,
}

impl Script {
    pub fn load(path: &Path) -> anyhow::Result<Script> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let steps = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Script {
            steps,
            next: 0,
            frames_left: 0,
            draws_at_ready: None,
            weights_settled: None,
            saved: None,
        })
    }
}

pub(crate) fn plugin(app: &mut App) {
    app.add_systems(Update, run_script.in_set(AppSystems::Input));
}

/// Whether an orbit camera has reached the pose it glides to.
fn at_rest(cam: &PanOrbitCamera) -> bool {
    let radius = cam.radius.unwrap_or(1.0).max(1e-3);
    let near = |a: Option<f32>, b: f32, tolerance: f32| a.is_some_and(|a| (a - b).abs() <= tolerance);
    cam.focus.distance(cam.target_focus) <= 1e-3 * radius
        && near(cam.radius, cam.target_radius, 1e-3 * radius)
        && near(cam.yaw, cam.target_yaw, 1e-3)
        && near(cam.pitch, cam.target_pitch, 1e-3)
}

fn run_script(
    mut commands: Commands,
    mut script: ResMut<Script>,
    state: Res<State<AppState>>,
    mut settings: ResMut<ViewSettings>,
    mut highlight: ResMut<Highlight>,
    tensors: Query<(Entity, &Tensor, &Cube)>,
    mut cameras: Query<&mut PanOrbitCamera, With<MainCamera>>,
    mut focus: MessageWriter<FocusOn>,
    mut exit: MessageWriter<AppExit>,
    mut inference: RunParams,
    draws: Res<CubeDraws>,
    mut windows: Query<&mut Window, With<bevy::window::PrimaryWindow>>,
) {
    if script.frames_left > 0 {
        script.frames_left -= 1;
        return;
    }
    if let Some(saved) = &script.saved {
        if !saved.load(Ordering::SeqCst) {
            return;
        }
        script.saved = None;
    }
    let Some(step) = script.steps.get(script.next).cloned() else {
        exit.write(AppExit::Success);
        return;
    };
    match step {
        Step::WaitReady => {
            match state.get() {
                AppState::Loading => return,
                // A failed load shows the error panel; let the script go on (and screenshot it).
                AppState::Error => {
                    script.frames_left = 10;
                    script.next += 1;
                    return;
                }
                AppState::Ready => {}
            }
            // Ready means loaded; wait until the cubes have really been drawn a few times.
            let base = *script.draws_at_ready.get_or_insert(draws.count());
            if draws.count() < base + 3 {
                return;
            }
            script.frames_left = 10;
        }
        Step::Frames(n) => script.frames_left = n,
        Step::ExpectHovered(want) => {
            let hovered = highlight
                .hovered
                .and_then(|e| tensors.get(e).ok())
                .map(|(_, t, _)| t.name.clone());
            if hovered != want {
                let say = |n: &Option<String>| n.clone().unwrap_or_else(|| "nothing".into());
                error!("script: the pointer is over {}, not {}", say(&hovered), say(&want));
                exit.write(AppExit::error());
                return;
            }
        }
        Step::Panels(mode) => {
            use super::steps::PanelsMode;
            *inference.chrome = match mode {
                PanelsMode::Show | PanelsMode::Bars => crate::ui::Chrome::Panels,
                PanelsMode::Hide => crate::ui::Chrome::Hidden,
                PanelsMode::Presentation => crate::ui::Chrome::Presentation,
            };
            let folds = &mut *inference.folds;
            match mode {
                PanelsMode::Show => (folds.model, folds.prompt, folds.city) = (true, true, Some(true)),
                PanelsMode::Bars => *folds = crate::ui::Folds::BARS,
                PanelsMode::Hide | PanelsMode::Presentation => {}
            }
        }
        Step::Pointer(x, y) => {
            for mut window in &mut windows {
                window.set_cursor_position(Some(Vec2::new(x, y)));
            }
        }
        Step::Orbit { yaw, pitch } => {
            for mut cam in &mut cameras {
                cam.target_yaw = yaw.to_radians();
                cam.target_pitch = pitch.to_radians();
            }
        }
        Step::Zoom(f) => {
            for mut cam in &mut cameras {
                cam.target_radius *= f.max(0.01);
            }
        }
        Step::Focus(name) => match tensors.iter().find(|(_, t, _)| t.name == name) {
            Some((e, _, cube)) => {
                highlight.selected = Some(e);
                focus.write(FocusOn {
                    center: cube.center,
                    size: cube.size,
                });
            }
            None => {
                error!("script: no tensor named `{name}`");
                exit.write(AppExit::error());
                return;
            }
        },
        Step::Layout(kind) => settings.layout = kind,
        Step::Color(color) => settings.color = color,
        Step::Weights(name) => {
            if !tensors.iter().any(|(_, t, _)| t.name == name) {
                error!("script: no tensor named `{name}`");
                exit.write(AppExit::error());
                return;
            }
            inference.zoom_requests.write(crate::zoom::ZoomRequest::Open(name));
        }
        Step::CloseWeights => {
            inference.zoom_requests.write(crate::zoom::ZoomRequest::Close);
        }
        Step::WaitWeights => {
            if let Some(zoom) = &inference.zoom.0 {
                if let Some(e) = &zoom.error {
                    error!("script: the weights cannot be drawn: {e}");
                    exit.write(AppExit::error());
                    return;
                }
                // The glide to the plane must end first: the tiles depend on where it ends.
                if !zoom.settled() || !cameras.iter().all(at_rest) {
                    script.weights_settled = None;
                    return;
                }
                // New textures and the planes' material pipeline reach the screen a
                // few frames later (the pipeline compiles in the background: seconds
                // under a software renderer on a busy machine).
                let since = *script.weights_settled.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() < std::time::Duration::from_secs(3) {
                    return;
                }
                script.weights_settled = None;
                script.frames_left = 10;
            }
        }
        Step::WaitStats => {
            use crate::weight_stats::{WeightDiff, WeightStats};
            let waiting = match settings.color {
                crate::weights::color::ColorBy::Delta => {
                    matches!(*inference.weight_diff, WeightDiff::Idle | WeightDiff::Computing { .. })
                }
                _ => matches!(
                    *inference.weight_stats,
                    WeightStats::Idle | WeightStats::Computing { .. }
                ),
            };
            if waiting {
                return;
            }
        }
        Step::Hide(kind) => {
            settings.hidden_kinds.insert(kind);
        }
        Step::Screenshot(path) => {
            let done = Arc::new(AtomicBool::new(false));
            let flag = done.clone();
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(path))
                .observe(move |_: On<bevy::render::view::screenshot::ScreenshotCaptured>| {
                    flag.store(true, Ordering::SeqCst)
                });
            script.saved = Some(done);
        }
        Step::Prompt { text, new_tokens } => {
            // The model's weights load after its architecture: wait for them.
            if matches!(
                *inference.runner,
                Runner::Preparing(_) | Runner::Connecting(_) | Runner::None
            ) {
                return;
            }
            inference.prompts.write(Prompt {
                text,
                new_tokens,
                decoding: crate::inference::stream::Decoding::Greedy,
            });
            script.frames_left = 2;
        }
        Step::WaitRun => {
            if inference.run.status == RunStatus::Running {
                return;
            }
        }
        Step::Select(position) => inference.selected.0 = Some(position),
        Step::Speed(speed) => inference.playback.speed = speed,
        Step::Playhead(position) => {
            inference.playback.playing = false;
            inference.playback.position = position;
        }
        Step::Tokens(tokens) => {
            inference.playback.playing = false;
            inference.playback.tokens = tokens.map(|n| n.max(1));
        }
        Step::ArcsLayer(layer) => inference.city.layer = layer,
        Step::Threshold(t) => inference.city.threshold = t,
        Step::Heads(heads) => inference.city.heads = heads.into(),
        Step::Record => {
            inference.toggles.write(crate::record::live::ToggleRecording);
        }
        Step::Shot(scale) => {
            inference.shots.write(crate::record::live::TakeScreenshot { scale });
            script.frames_left = 8;
        }
        Step::Pca3d(floor) => {
            inference.pca.show_3d = floor.is_some();
            inference.pca.floor = floor;
        }
        Step::Exit => {
            exit.write(AppExit::Success);
            return;
        }
    }
    script.next += 1;
}

/// The script's (and the command line's) heads as the city's filter.
impl From<super::Heads> for crate::city::HeadFilter {
    fn from(heads: super::Heads) -> Self {
        match heads {
            super::Heads::Mean => crate::city::HeadFilter::Mean,
            super::Heads::Max => crate::city::HeadFilter::Max,
            super::Heads::One(h) => crate::city::HeadFilter::Head(h),
        }
    }
}
