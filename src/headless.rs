//! `tensorcity render`: one frame of a model drawn offscreen (no window, no
//! display server) into a PNG, through Bevy's render-to-image path (see
//! `offscreen`: it waits until the scene has really rendered before it saves).
//! Works on Mesa's software Vulkan. Also the scene app `record` shares.

use std::path::PathBuf;

use bevy::prelude::*;

use crate::arch::{CubeScale, LoadOptions, ModelRef};
use crate::camera::math::{OrbitView, frame_bounds_at, orbit_transform};
use crate::city::{HeadFilter, Playback};
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

/// What a still or a clip draws besides the model and the camera: what
/// `render` and `record` share.
#[derive(Debug, Clone)]
pub struct Picture {
    pub layout: LayoutKind,
    pub scale: CubeScale,
    /// Run this prompt and draw its neural city (`city` layout).
    pub prompt: Option<String>,
    /// Which heads the attention beams show.
    pub heads: HeadFilter,
    /// The selected token: its column lit, and the camera centred on it.
    pub select: Option<usize>,
    /// HDR, bloom and fog (false: flat colours).
    pub glow: bool,
    /// A title painted across the lower third (`--title`).
    pub title: Option<String>,
    /// No caption or legend painted over the scene (`--clean`).
    pub clean: bool,
}

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderJob {
    pub model: ModelRef,
    pub options: LoadOptions,
    pub out: PathBuf,
    pub size: (u32, u32),
    pub camera: CameraSpec,
    pub picture: Picture,
    /// The city's playhead in hidden states (`None`: the finished pass).
    pub at: Option<f32>,
}

/// Renders one still. Loads the model (and runs the prompt) first, so bad
/// input fails before any rendering.
pub fn render(job: RenderJob) -> anyhow::Result<()> {
    offscreen::check_output(&job.out, &["png"])?;
    let scene = load_scene(&job.model, &job.options, &job.picture)?;
    let floors = scene.current.arch.num_layers() as f32;
    let playhead = match job.at {
        Some(at) if !(at.is_finite() && (0.0..=floors).contains(&at)) => anyhow::bail!(
            "--at {at}: the playhead is in hidden states, from 0 to {floors} for this model; choose one in that range"
        ),
        // A still shows the finished pass unless asked: no climbing animation.
        at => Playback {
            position: at.unwrap_or(floors),
            playing: at.is_none(),
            speed: f32::MAX,
            tokens: None,
            held: at.is_some(),
        },
    };
    offscreen::check_gpu()?;
    let aspect = job.size.0 as f32 / job.size.1 as f32;
    let mut view = job.camera.view(&scene.bounds(), aspect);
    if let Some(column) = scene.selected_column(job.picture.select) {
        view.focus.x = column[0];
        view.focus.z = column[2];
    }
    let overlay = overlay_for(&scene, &job.picture);
    let clean = job.picture.clean;
    let mut app = scene_app(scene, &job.picture, playhead);
    let target = offscreen::spawn_main_camera(&mut app, job.size, orbit_transform(view));
    app.finish();
    app.cleanup();
    let mut frame = offscreen::warm_up(&mut app, &target)?;
    let overlay = crate::record::overlay::Overlay {
        labels: if clean {
            Default::default()
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
pub fn frame_labels(app: &mut App, size: (u32, u32)) -> crate::layout::labels::SceneLabels {
    use crate::layout::labels::{LabelScene, scene_labels};
    let world = app.world_mut();
    let mut cameras = world.query_filtered::<(&Camera, &GlobalTransform), With<crate::camera::MainCamera>>();
    let Some((camera, at)) = cameras.iter(world).next() else {
        return Default::default();
    };
    let Some(current) = world.get_resource::<CurrentModel>() else {
        return Default::default();
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
        up: Vec3::from(at.up()).to_array(),
    };
    let Some(project) = crate::camera::projector(camera, at) else {
        return Default::default();
    };
    scene_labels(&scene, &project, size.1 as f32 / 720.0)
}

/// What a still or a clip paints over its scene, as the viewer's presentation
/// mode shows it: the model and the prompt, the legend (none when `clean`),
/// and the `title` card.
pub fn overlay_for(scene: &Scene, picture: &Picture) -> crate::record::overlay::Overlay {
    use crate::render::legend;
    let title = picture.title.clone();
    if picture.clean {
        return crate::record::overlay::Overlay {
            title,
            ..Default::default()
        };
    }
    let city = scene.city_run();
    crate::record::overlay::Overlay {
        caption: Some(scene.current.arch.name.clone()),
        subtitle: city.map(|r| legend::prompt_line(&r.texts)),
        legend: legend::entries(&scene.current.summary, &scene.settings, city.is_some()),
        title,
        labels: Default::default(),
    }
}

/// A still's or a clip's model, laid out, and its run (when there is a prompt).
pub struct Scene {
    pub current: CurrentModel,
    pub settings: ViewSettings,
    pub run: Option<crate::activations::RunState>,
    /// Where the city stands beside the trunk (computed once).
    grid: crate::layout::city::CityGrid,
}

impl Scene {
    /// The run, when it is drawn as a city.
    fn city_run(&self) -> Option<&crate::activations::RunState> {
        self.run
            .as_ref()
            .filter(|r| self.settings.layout == LayoutKind::City && !r.tokens.is_empty())
    }

    /// What the camera frames: the trunk, and the city beside it when a run
    /// is drawn in the city layout.
    pub fn bounds(&self) -> crate::layout::Bounds {
        let layout = &self.current.layout;
        match self.city_run() {
            Some(run) => self.grid.bounds_with(&layout.bounds, run.tokens.len()),
            None => layout.bounds,
        }
    }

    /// The middle of the selected token's column (city layout).
    pub fn selected_column(&self, token: Option<usize>) -> Option<[f32; 3]> {
        let token = token?;
        let run = self.city_run()?;
        let middle = self.current.arch.num_layers() as usize / 2;
        (token < run.tokens.len()).then(|| self.grid.cell_center(token, middle))
    }
}

/// Loads and lays out what a still or a clip draws, printing the model's
/// notices, and runs the prompt (one pass) when there is one: every check on
/// the input (the selected token and head against the run) happens here,
/// before any rendering.
pub fn load_scene(model: &ModelRef, options: &LoadOptions, picture: &Picture) -> anyhow::Result<Scene> {
    let settings = ViewSettings {
        layout: picture.layout,
        scale: picture.scale,
        glow: picture.glow,
        lod: false,
        ..default()
    };
    let current = CurrentModel::load(model, options, &settings)?;
    for notice in &current.arch.notices {
        eprintln!("note: {notice}");
    }
    let run = picture
        .prompt
        .as_deref()
        .map(|prompt| crate::activations::run::run_prompt(model, prompt))
        .transpose()?;
    if let Some(run) = &run {
        check_city_choice(run, picture)?;
    }
    let grid = crate::city::grid_of(&current);
    Ok(Scene {
        current,
        settings,
        run,
        grid,
    })
}

/// `--select` and `--heads N` name a token and a head the run has.
fn check_city_choice(run: &crate::activations::RunState, picture: &Picture) -> anyhow::Result<()> {
    let tokens = run.tokens.len();
    if let Some(n) = picture.select.filter(|&n| n >= tokens) {
        anyhow::bail!(
            "--select {n}: the prompt ran as {tokens} tokens; choose 0 to {}",
            tokens.saturating_sub(1)
        );
    }
    let heads = run.attn.values().next().and_then(|a| a.dim(0).ok());
    match (picture.heads, heads) {
        (HeadFilter::Head(h), Some(heads)) if h >= heads => anyhow::bail!(
            "--heads {h}: the model has {heads} attention heads; choose 0 to {}, mean or max",
            heads - 1
        ),
        (HeadFilter::Head(_), None) => {
            anyhow::bail!("--heads: this run has no attention weights to choose a head from; leave --heads out")
        }
        _ => Ok(()),
    }
}

/// A windowless app drawing `scene` (and, with a run, its neural city at
/// `playback`, with the picture's heads and selection): what `render` and
/// `record` share.
pub fn scene_app(scene: Scene, picture: &Picture, playback: Playback) -> App {
    let Scene {
        current, settings, run, ..
    } = scene;
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
            .insert_resource(crate::city::CityPlayback(playback))
            .insert_resource(crate::city::CityView(crate::city::CityFilter {
                heads: picture.heads,
                // A selected token's view: only the attention into and out of it.
                only_selected: picture.select.is_some(),
                ..default()
            }))
            .insert_resource(crate::activations::SelectedToken(picture.select))
            .insert_resource(crate::activations::CurrentRun(run));
    }
    app
}
