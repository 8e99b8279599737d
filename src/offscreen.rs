//! Offscreen rendering, shared by `render` (stills), `record` (clips), the
//! in-app larger-than-window screenshots and the benchmarks: a windowless app,
//! a colour target that can be read back, its camera, waiting until the scene
//! has really been drawn (pipelines compile asynchronously; readiness is the
//! [`CubeDraws`] resource, not a global), reading a frame back, and checking
//! outputs (size, folder, file type, GPU) before any work starts.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bevy::app::ScheduleRunnerPlugin;
use bevy::camera::RenderTarget;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::view::NoIndirectDrawing;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;

use crate::render::{BACKGROUND, CubeDraws};

/// Largest image edge a still accepts (the common GPU texture limit).
pub const MAX_EDGE: u32 = 8192;
/// Frames read back showing only background before an empty view is believed.
const EMPTY_TRIES: u32 = 40;
/// Wall time allowed for the first real draw (software Vulkan compiles slowly).
const WARM_UP_LIMIT: Duration = Duration::from_secs(900);
/// Updates allowed for one frame to come back from the GPU.
const READBACK_UPDATES: u32 = 600;

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

/// Checks that a file of one of `extensions` can be written at `out` before
/// any work starts.
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
    check_writable_folder(dir, out)
}

/// Fails unless `dir` exists and a file can be created in it (`what` names the output).
pub fn check_writable_folder(dir: &Path, what: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!(
            "{}: folder {} does not exist; create it first",
            what.display(),
            dir.display()
        );
    }
    let probe = dir.join(format!(".tensorcity-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("{}: cannot write to {}", what.display(), dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The GPU adapter an offscreen render will use.
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

/// Bevy's default plugins without a window or winit, stepped by the caller
/// with `app.update()` (or run back to back until something sends `AppExit`).
pub fn windowless_app() -> App {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(crate::log_plugin())
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                ..default()
            })
            // Every pipeline is compiled in the frame that asks for it: with
            // background compilation, the bloom and tonemapping passes could
            // join a few frames after the cubes, so the same still came out
            // with or without glow (and once with its cells blown to white)
            // depending on how fast the machine compiled shaders.
            .set(RenderPlugin {
                synchronous_pipeline_compilation: true,
                ..default()
            })
            .disable::<WinitPlugin>(),
    )
    .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::ZERO));
    app
}

/// An offscreen colour target of `size` that screenshots can copy from.
pub fn render_target(size: (u32, u32)) -> Image {
    let mut image = Image::new_target_texture(size.0, size.1, TextureFormat::Rgba8UnormSrgb, None);
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    image
}

/// A camera drawing into a new target of `size` (colours straight to the
/// target, no tonemapping, as every offscreen output is drawn).
pub fn camera_bundle(
    images: &mut Assets<Image>,
    size: (u32, u32),
    transform: Transform,
) -> (impl Bundle, Handle<Image>) {
    let handle = images.add(render_target(size));
    let bundle = (
        Camera3d::default(),
        RenderTarget::Image(handle.clone().into()),
        Tonemapping::None,
        // The cube pipeline issues direct (not indirect) draws.
        NoIndirectDrawing,
        transform,
    );
    (bundle, handle)
}

/// Spawns the app's main camera offscreen (the city opens close cells into
/// strips relative to it); returns its target.
pub fn spawn_main_camera(app: &mut App, size: (u32, u32), transform: Transform) -> Handle<Image> {
    let world = app.world_mut();
    let (bundle, handle) = camera_bundle(&mut world.resource_mut::<Assets<Image>>(), size, transform);
    world.spawn((bundle, crate::camera::MainCamera, Name::new("offscreen camera")));
    handle
}

/// Steps `app` (its clock as the caller set it) until the cubes have really
/// been drawn and a frame read back from `target` shows the scene (the first
/// drawn frames can still come back empty while the target settles; after
/// [`EMPTY_TRIES`] an empty view is what the camera really sees). Returns the
/// first frame that shows it.
/// Call after `app.finish()` and `app.cleanup()`.
pub fn warm_up(app: &mut App, target: &Handle<Image>) -> anyhow::Result<Vec<u8>> {
    let draws = app.world().resource::<CubeDraws>().clone();
    let base = draws.count();
    let start = Instant::now();
    // The cubes have drawn twice, and for a few updates in a row no pipeline
    // has been waiting to compile: the tonemapping and bloom passes compile
    // in the background after the cubes' (a still taken on a loaded machine
    // came out without them before).
    let mut settled = 0;
    while draws.count() < base + 2 || settled < SETTLED_UPDATES {
        app.update();
        settled = if pipelines_waiting(app) { 0 } else { settled + 1 };
        if let Some(exit) = app.should_exit() {
            bail!("the renderer stopped before drawing ({exit:?}; a GPU error, see the log above)");
        }
        if start.elapsed() > WARM_UP_LIMIT {
            bail!(
                "the scene did not render within {} minutes",
                WARM_UP_LIMIT.as_secs() / 60
            );
        }
    }
    for attempt in 0.. {
        // The cubes must have been drawn while the frame was taken (a busy
        // machine once gave a frame of beams alone, the cubes' draw skipped
        // that frame).
        let before = draws.count();
        let frame = read_back(app, target)?;
        let drew = draws.count() > before;
        if drew && rgba_is_rendered(&frame) && rgba_shows_scene(&frame) {
            return Ok(frame);
        }
        if attempt >= EMPTY_TRIES {
            warn!("the camera sees no cubes; going on with the empty view");
            return Ok(frame);
        }
    }
    unreachable!("the loop above returns")
}

/// Updates in a row without a pipeline waiting before a frame is taken.
const SETTLED_UPDATES: u32 = 5;

/// Whether the renderer still compiles a pipeline it was asked for.
fn pipelines_waiting(app: &App) -> bool {
    app.get_sub_app(bevy::render::RenderApp)
        .and_then(|render| {
            render
                .world()
                .get_resource::<bevy::render::render_resource::PipelineCache>()
        })
        .is_some_and(|cache| cache.waiting_pipelines().next().is_some())
}

/// Screenshots `target` as it is now and returns its tightly packed RGBA
/// bytes (each `app.update()` advances the app's clock as its
/// `TimeUpdateStrategy` says).
pub fn read_back(app: &mut App, target: &Handle<Image>) -> anyhow::Result<Vec<u8>> {
    let slot: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let into = slot.clone();
    app.world_mut()
        .spawn(Screenshot::image(target.clone()))
        .observe(move |captured: On<ScreenshotCaptured>| {
            let data = captured
                .image
                .clone()
                .try_into_dynamic()
                .map(|d| d.to_rgba8().into_raw());
            if let (Ok(data), Ok(mut slot)) = (data, into.lock()) {
                *slot = Some(data);
            }
        });
    for _ in 0..READBACK_UPDATES {
        app.update();
        if let Some(frame) = slot.lock().ok().and_then(|mut s| s.take()) {
            return Ok(frame);
        }
        if app.should_exit().is_some() {
            bail!("the renderer stopped (a GPU error; see the log above)");
        }
    }
    bail!("a frame was not read back from the GPU within {READBACK_UPDATES} updates")
}

/// False for a frame nothing was rendered into yet (transparent black).
pub fn rgba_is_rendered(data: &[u8]) -> bool {
    data.chunks_exact(4).any(|p| p[3] != 0)
}

/// True when at least 0.2% of the pixels (tightly packed RGBA8) differ from the background.
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

/// RGB bytes of RGBA ones (encoders and PNGs take RGB).
pub fn rgba_to_rgb(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()
}

/// Saves RGBA bytes of `size` as an RGB PNG.
pub fn save_png(rgba: &[u8], size: (u32, u32), out: &Path) -> anyhow::Result<()> {
    let image = image::RgbImage::from_raw(size.0, size.1, rgba_to_rgb(rgba))
        .with_context(|| format!("{}: the frame is not {}x{}", out.display(), size.0, size.1))?;
    crate::output::write_whole(out, |tmp| image.save_with_format(tmp, image::ImageFormat::Png))
        .with_context(|| format!("{}: cannot write the PNG", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("9000x100").is_err());
        assert_eq!(parse_any_size("9000x100"), Ok((9000, 100)));
        for bad in ["", "1280", "x720", "15x100", "axb", "-1x100"] {
            assert!(parse_any_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn background_alone_is_not_a_scene() {
        let bg = BACKGROUND.to_srgba();
        let px = [bg.red, bg.green, bg.blue].map(|c| (c * 255.0).round() as u8);
        let mut frame: Vec<u8> = (0..1000).flat_map(|_| [px[0], px[1], px[2], 255]).collect();
        assert!(rgba_is_rendered(&frame) && !rgba_shows_scene(&frame));
        frame[0..8].copy_from_slice(&[255; 8]);
        assert!(
            !rgba_shows_scene(&frame),
            "2 of 1000 pixels differ: 0.2% is the bar, not over it"
        );
        frame[8..12].copy_from_slice(&[255; 4]);
        assert!(rgba_shows_scene(&frame), "3 of 1000 pixels differ");
        assert!(!rgba_is_rendered(&[0; 16]));
    }
}
