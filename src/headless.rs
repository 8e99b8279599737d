//! `tensorcity render`: one frame of a model drawn offscreen (no window, no
//! display server) into a PNG, through Bevy's render-to-image path. Works on
//! Mesa's software Vulkan. Waits until the scene has really rendered (shader
//! pipelines compile asynchronously) before it saves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::camera::RenderTarget;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::view::NoIndirectDrawing;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;

use crate::arch::{CubeScale, LoadOptions, ModelRef};
use crate::camera::math::{OrbitView, frame_bounds_at, orbit_transform};
use crate::layout::LayoutKind;
use crate::model::{CurrentModel, ViewSettings, load_and_layout};
use crate::render::{BACKGROUND, cube_draws};

/// Largest image edge we accept (the common GPU texture limit).
pub const MAX_EDGE: u32 = 8192;
/// Screenshots that may come back showing only background before we believe it.
const EMPTY_TRIES: u32 = 40;
/// Frames to wait for pipelines to compile before giving up.
const MAX_FRAMES: u32 = 3000;

/// Camera placement for a still: a preset or explicit angles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraSpec {
    /// Degrees about +Y (0 = looking from +Z).
    pub yaw: f32,
    /// Degrees above the horizon.
    pub pitch: f32,
    /// Distance as a multiple of the distance that frames the whole model.
    pub zoom: f32,
    /// Height of the point looked at, as a fraction of the model's height (0 = base).
    pub height: f32,
}

impl std::str::FromStr for CameraSpec {
    type Err = String;

    /// `iso` (default), `front`, `side`, `top`, `base` (low angle up a tall
    /// tower), or `YAW,PITCH[,ZOOM[,HEIGHT]]` (degrees; zoom > 0; height 0..1).
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "camera `{s}`: use iso, front, side, top, base or YAW,PITCH[,ZOOM[,HEIGHT]] (degrees, zoom > 0, height 0..1)"
            )
        };
        let preset = |yaw, pitch| {
            Ok(CameraSpec {
                yaw,
                pitch,
                zoom: 1.0,
                height: 0.5,
            })
        };
        match s {
            "iso" => preset(35.0, 18.0),
            "front" => preset(0.0, 5.0),
            "side" => preset(90.0, 5.0),
            "top" => preset(0.0, 85.0),
            "base" => Ok(CameraSpec {
                yaw: 35.0,
                pitch: 12.0,
                zoom: 0.22,
                height: 0.1,
            }),
            _ => {
                let parts: Vec<f32> = s
                    .split(',')
                    .map(|p| p.trim().parse::<f32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| usage())?;
                let (yaw, pitch, zoom, height) = match parts.as_slice() {
                    [y, p] => (*y, *p, 1.0, 0.5),
                    [y, p, z] => (*y, *p, *z, 0.5),
                    [y, p, z, h] => (*y, *p, *z, *h),
                    _ => return Err(usage()),
                };
                if !(zoom > 0.0 && (0.0..=1.0).contains(&height) && yaw.is_finite() && pitch.is_finite()) {
                    return Err(usage());
                }
                Ok(CameraSpec {
                    yaw,
                    pitch,
                    zoom,
                    height,
                })
            }
        }
    }
}

impl CameraSpec {
    /// The pose that frames `bounds` in an image of this aspect ratio.
    pub fn view(&self, bounds: &crate::layout::Bounds, aspect: f32) -> OrbitView {
        let framed = frame_bounds_at(bounds, aspect, self.yaw.to_radians(), self.pitch.to_radians());
        let mut focus = framed.focus;
        focus.y = bounds.min[1] + (bounds.max[1] - bounds.min[1]) * self.height;
        OrbitView {
            radius: framed.radius * self.zoom,
            focus,
            ..framed
        }
    }
}

/// Parses `WIDTHxHEIGHT`, each side 16..=[`MAX_EDGE`] (stills).
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    parse_size_up_to(s, MAX_EDGE)
}

/// `WIDTHxHEIGHT` of any size from 16 to 65535 a side; the caller checks it
/// against the GPU's real texture limit (recordings).
pub fn parse_any_size(s: &str) -> Result<(u32, u32), String> {
    parse_size_up_to(s, 65535)
}

fn parse_size_up_to(s: &str, max: u32) -> Result<(u32, u32), String> {
    let bad = || format!("size `{s}`: use WIDTHxHEIGHT, e.g. 1280x720, each 16..={max}");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    );
    if !(16..=max).contains(&w) || !(16..=max).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderJob {
    pub model: ModelRef,
    pub options: LoadOptions,
    pub out: PathBuf,
    pub size: (u32, u32),
    pub layout: LayoutKind,
    pub scale: CubeScale,
    pub camera: CameraSpec,
    /// Run this prompt first and draw the finished neural city (`city` layout).
    pub prompt: Option<String>,
}

/// Checks that a PNG can be written at `out` before any work starts.
pub fn check_output(out: &Path, extensions: &[&str]) -> anyhow::Result<()> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !extensions.contains(&ext.as_str()) {
        bail!(
            "{}: unsupported output type `.{ext}`; use {}",
            out.display(),
            extensions
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{}: folder {} does not exist; create it first",
            out.display(),
            dir.display()
        );
    }
    let probe = dir.join(format!(".tensorcity-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("{}: cannot write to {}", out.display(), dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The GPU adapter a headless render will use.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    pub name: String,
    /// Largest 2D texture edge it supports.
    pub max_texture: u32,
}

/// Fails with a clear message when no GPU adapter (not even a software one) exists.
pub fn check_gpu() -> anyhow::Result<Gpu> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    match bevy::tasks::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())) {
        Ok(adapter) => Ok(Gpu {
            name: adapter.get_info().name,
            max_texture: adapter.limits().max_texture_dimension_2d,
        }),
        Err(_) => bail!(
            "no GPU adapter found (not even a software one); install Mesa's software Vulkan (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`) or a GPU driver"
        ),
    }
}

/// Renders one still. Loads the model first, so bad input fails before any rendering.
pub fn render(job: RenderJob) -> anyhow::Result<()> {
    check_output(&job.out, &["png"])?;
    let (arch, layout) =
        load_and_layout(&job.model, &job.options, job.layout, job.scale).map_err(anyhow::Error::msg)?;
    for notice in &arch.notices {
        eprintln!("note: {notice}");
    }
    let run = match &job.prompt {
        Some(prompt) => Some(run_prompt(&job.model, prompt)?),
        None => None,
    };
    check_gpu()?;
    let mut bounds = layout.bounds;
    if let Some(run) = run.as_ref().filter(|_| job.layout == LayoutKind::City) {
        let grid = crate::layout::city::CityGrid::new(&layout, arch.num_layers() as usize + 1);
        bounds = grid.bounds_with(&layout.bounds, run.tokens.len());
    }
    let view = job.camera.view(&bounds, job.size.0 as f32 / job.size.1 as f32);
    let current = CurrentModel::new(arch, layout, job.model.clone());
    let result: Arc<Mutex<Option<Result<(), String>>>> = Arc::default();

    // A still shows the finished pass: no climbing animation.
    let mut app = scene_app(current, job.layout, job.scale, run, f32::MAX);
    app.insert_resource(Still {
        size: job.size,
        view,
        out: job.out.clone(),
        frames: 0,
        pending: false,
        draws_at_start: None,
        captures: 0,
        result: result.clone(),
    })
    .add_systems(Startup, spawn_still_camera)
    .add_systems(Update, capture_when_rendered);
    app.run();

    let outcome = result.lock().ok().and_then(|mut r| r.take());
    match outcome {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => bail!(e),
        None => bail!("rendering stopped before a frame was captured"),
    }
}

/// Runs `prompt` through the model (one forward pass with every tap).
pub(crate) fn run_prompt(model: &ModelRef, prompt: &str) -> anyhow::Result<crate::activations::RunState> {
    let files = crate::inference::ModelFiles::open(model)?;
    let tokens = files.tokenize(prompt)?;
    let capture = files
        .load()?
        .capture(&tokens)
        .map_err(|e| anyhow::anyhow!(files.diagnose(e)))?;
    Ok(crate::activations::RunState::from_capture(
        &capture,
        files.token_texts(&tokens),
    ))
}

/// A windowless app drawing `current` (and, with a run, its neural city,
/// animated at `floors_per_second`): what `render` and `record` share.
pub fn scene_app(
    current: CurrentModel,
    layout: LayoutKind,
    scale: CubeScale,
    run: Option<crate::activations::RunState>,
    floors_per_second: f32,
) -> App {
    let mut app = windowless_app();
    app.add_plugins(crate::ScenePlugin)
        .insert_resource(ViewSettings {
            layout,
            scale,
            lod: false,
            ..default()
        })
        .insert_resource(current);
    if let Some(run) = run {
        app.add_plugins(crate::city::CityPlugin)
            .insert_resource(crate::city::CityPlayback(crate::city::Playback {
                speed: floors_per_second,
                ..Default::default()
            }))
            .insert_resource(crate::activations::CurrentRun(run));
    }
    app
}

/// An offscreen colour target of `size` that screenshots can copy from.
pub fn render_target(size: (u32, u32)) -> Image {
    let mut image = Image::new_target_texture(size.0, size.1, TextureFormat::Rgba8UnormSrgb, None);
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    image
}

/// Bevy's default plugins without a window or winit: frames run back to back
/// until something sends `AppExit`. Shared with the benchmarks.
pub fn windowless_app() -> App {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                ..default()
            })
            .disable::<WinitPlugin>(),
    )
    .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::ZERO));
    app
}

#[derive(Resource)]
struct Still {
    size: (u32, u32),
    view: OrbitView,
    out: PathBuf,
    frames: u32,
    pending: bool,
    draws_at_start: Option<u64>,
    captures: u32,
    result: Arc<Mutex<Option<Result<(), String>>>>,
}

#[derive(Resource)]
struct StillTarget(Handle<Image>);

fn spawn_still_camera(mut commands: Commands, mut images: ResMut<Assets<Image>>, still: Res<Still>) {
    let handle = images.add(render_target(still.size));
    commands.spawn((
        Camera3d::default(),
        RenderTarget::Image(handle.clone().into()),
        Tonemapping::None,
        orbit_transform(still.view),
        NoIndirectDrawing,
    ));
    commands.insert_resource(StillTarget(handle));
}

/// Takes a screenshot every few frames until one shows the scene (pipelines
/// compile asynchronously: early frames are empty), then saves it and exits.
fn capture_when_rendered(
    mut commands: Commands,
    mut still: ResMut<Still>,
    target: Option<Res<StillTarget>>,
    mut exit: MessageWriter<AppExit>,
) {
    still.frames += 1;
    if still.frames > MAX_FRAMES {
        if let Ok(mut r) = still.result.lock() {
            r.get_or_insert(Err(format!("the scene did not render within {MAX_FRAMES} frames")));
        }
        exit.write(AppExit::error());
        return;
    }
    if let Ok(r) = still.result.lock()
        && r.is_some()
    {
        exit.write(AppExit::Success);
        return;
    }
    let Some(target) = target else { return };
    // Pipelines compile asynchronously: wait until the cubes have really been drawn.
    let base = *still.draws_at_start.get_or_insert(cube_draws());
    if still.pending || cube_draws() < base + 2 || !still.frames.is_multiple_of(2) {
        return;
    }
    still.pending = true;
    let out = still.out.clone();
    let result = still.result.clone();
    commands.spawn(Screenshot::image(target.0.clone())).observe(
        move |captured: On<ScreenshotCaptured>, mut still: ResMut<Still>| {
            still.pending = false;
            still.captures += 1;
            if !is_rendered(&captured.image) {
                return;
            }
            // The first drawn frames can still come back empty while the target settles;
            // only after many tries is an empty picture what the camera really sees.
            if !shows_scene(&captured.image) {
                if still.captures < EMPTY_TRIES {
                    return;
                }
                warn!("the camera sees no cubes; saving the empty frame anyway");
            }
            let saved = save_png(&captured.image, &out);
            if let Ok(mut r) = result.lock() {
                *r = Some(saved);
            }
        },
    );
}

/// False for a frame nothing was rendered into yet (transparent black).
pub fn is_rendered(image: &Image) -> bool {
    image
        .data
        .as_ref()
        .is_some_and(|d| d.chunks_exact(4).any(|p| p[3] != 0))
}

/// True when at least 0.2% of the pixels differ from the background.
pub fn shows_scene(image: &Image) -> bool {
    image.data.as_deref().is_some_and(rgba_shows_scene)
}

/// [`shows_scene`] on tightly packed RGBA8 bytes.
pub fn rgba_shows_scene(data: &[u8]) -> bool {
    let bg = BACKGROUND.to_srgba();
    let bg = [bg.red, bg.green, bg.blue].map(|c| (c * 255.0).round() as i32);
    let pixels = data.len() / 4;
    let differing = data
        .chunks_exact(4)
        .filter(|p| (0..3).any(|i| (p[i] as i32 - bg[i]).abs() > 6))
        .count();
    pixels > 0 && differing * 500 > pixels
}

fn save_png(image: &Image, out: &Path) -> Result<(), String> {
    let dynamic = image
        .clone()
        .try_into_dynamic()
        .map_err(|e| format!("converting the frame: {e}"))?;
    dynamic
        .to_rgb8()
        .save(out)
        .map_err(|e| format!("{}: {e}", out.display()))
}
