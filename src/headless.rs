//! `tensorcity render`: one frame of a model drawn offscreen (no window, no
//! display server) into a PNG, through Bevy's render-to-image path (see
//! `offscreen`: it waits until the scene has really rendered before it saves).
//! Works on Mesa's software Vulkan. Also the scene app `record` shares.

use std::path::PathBuf;

use bevy::prelude::*;

use crate::arch::{CubeScale, LoadOptions, ModelRef};
use crate::camera::math::{OrbitView, frame_bounds_at, orbit_transform};
use crate::layout::LayoutKind;
use crate::model::CurrentModel;
use crate::offscreen;
use crate::view::ViewSettings;

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
    /// HDR, bloom and fog (false: flat colours).
    pub glow: bool,
    /// A title painted across the lower third (`--title`).
    pub title: Option<String>,
    /// No caption or legend painted over the scene (`--clean`).
    pub clean: bool,
}

/// Renders one still. Loads the model (and runs the prompt) first, so bad
/// input fails before any rendering.
pub fn render(job: RenderJob) -> anyhow::Result<()> {
    offscreen::check_output(&job.out, &["png"])?;
    let (current, settings, run) = load_scene(
        &job.model,
        &job.options,
        (job.layout, job.scale, job.glow),
        job.prompt.as_deref(),
    )?;
    offscreen::check_gpu()?;
    let bounds = scene_bounds(&current, run.as_ref());
    let view = job.camera.view(&bounds, job.size.0 as f32 / job.size.1 as f32);
    let overlay = overlay_for(&current, &settings, run.as_ref(), job.clean, job.title.clone());

    // A still shows the finished pass: no climbing animation.
    let mut app = scene_app(current, settings, run, f32::MAX);
    let target = offscreen::spawn_main_camera(&mut app, job.size, orbit_transform(view));
    app.finish();
    app.cleanup();
    let mut frame = offscreen::warm_up(&mut app, &target)?;
    let overlay = crate::record::overlay::Overlay {
        labels: if job.clean {
            Vec::new()
        } else {
            frame_labels(&mut app, job.size)
        },
        ..overlay
    };
    crate::record::overlay::Painter::new()?.paint(&overlay, &mut frame, job.size, 0.0);
    offscreen::save_png(&frame, job.size, &job.out)
}

/// The layer names and token texts of the frame the main camera sees now
/// (as the viewer labels its scene), sized for `size`.
pub fn frame_labels(app: &mut App, size: (u32, u32)) -> Vec<crate::layout::labels::SceneLabel> {
    use crate::layout::labels::{LabelScene, scene_labels};
    let world = app.world_mut();
    let mut cameras = world.query_filtered::<(&Camera, &GlobalTransform), With<crate::camera::MainCamera>>();
    let Some((camera, at)) = cameras.iter(world).next() else {
        return Vec::new();
    };
    let Some(current) = world.get_resource::<CurrentModel>() else {
        return Vec::new();
    };
    let city = world.get_resource::<crate::city::CityScene>();
    let selected = world
        .get_resource::<crate::activations::SelectedToken>()
        .and_then(|s| s.0);
    let scene = LabelScene {
        layout: &current.layout,
        grid: city.and_then(|c| c.grid.as_ref()),
        texts: city.map_or(&[][..], |c| &c.scene.texts),
        selected,
    };
    let project = |p: [f32; 3]| camera.world_to_viewport(at, Vec3::from(p)).ok().map(|v| v.to_array());
    scene_labels(&scene, &project, size.1 as f32 / 720.0)
}

/// What a still or a clip paints over its scene, as the viewer's presentation
/// mode shows it: the model and the prompt, the legend (none when `clean`),
/// and the `title` card.
pub fn overlay_for(
    current: &CurrentModel,
    settings: &ViewSettings,
    run: Option<&crate::activations::RunState>,
    clean: bool,
    title: Option<String>,
) -> crate::record::overlay::Overlay {
    use crate::render::legend;
    if clean {
        return crate::record::overlay::Overlay {
            title,
            ..Default::default()
        };
    }
    let city = run.filter(|r| settings.layout == LayoutKind::City && !r.hidden.is_empty());
    crate::record::overlay::Overlay {
        caption: Some(current.arch.name.clone()),
        subtitle: city.map(|r| legend::prompt_line(&r.texts)),
        legend: legend::entries(&current.summary, settings, city.is_some()),
        title,
        labels: Vec::new(),
    }
}

/// Loads and lays out what a still or a clip draws, printing the model's
/// notices, and runs the prompt (one pass) when there is one: every check on
/// the input happens here, before any rendering.
pub fn load_scene(
    model: &ModelRef,
    options: &LoadOptions,
    (layout, scale, glow): (LayoutKind, CubeScale, bool),
    prompt: Option<&str>,
) -> anyhow::Result<(CurrentModel, ViewSettings, Option<crate::activations::RunState>)> {
    let settings = ViewSettings {
        layout,
        scale,
        glow,
        lod: false,
        ..default()
    };
    let current = CurrentModel::load(model, options, &settings)?;
    for notice in &current.arch.notices {
        eprintln!("note: {notice}");
    }
    let run = prompt
        .map(|prompt| crate::activations::run::run_prompt(model, prompt))
        .transpose()?;
    Ok((current, settings, run))
}

/// What a still or a clip frames: the trunk, and the city beside it when a
/// run is drawn in the city layout.
pub fn scene_bounds(current: &CurrentModel, run: Option<&crate::activations::RunState>) -> crate::layout::Bounds {
    let layout = &current.layout;
    match run.filter(|r| layout.kind == LayoutKind::City && !r.tokens.is_empty()) {
        Some(run) => crate::layout::city::CityGrid::new(layout, current.arch.num_layers() as usize + 1)
            .bounds_with(&layout.bounds, run.tokens.len()),
        None => layout.bounds,
    }
}

/// A windowless app drawing `current` (and, with a run, its neural city,
/// animated at `floors_per_second`): what `render` and `record` share.
pub fn scene_app(
    current: CurrentModel,
    settings: ViewSettings,
    run: Option<crate::activations::RunState>,
    floors_per_second: f32,
) -> App {
    let mut app = offscreen::windowless_app();
    // A mixture of experts' cubes glow with the run's routing.
    if let Some(run) = &run {
        let k = crate::activations::experts_per_token(Some(&current));
        app.insert_resource(crate::activations::ExpertRouting::of(run, k));
    }
    app.add_plugins(crate::ScenePlugin)
        .insert_resource(settings)
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
