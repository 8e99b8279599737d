//! The `record` command: a model, a camera path and a prompt rendered frame by
//! frame offscreen and encoded.

use super::{encode, path};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;

use crate::activations::SelectedToken;
use crate::arch::{LoadOptions, ModelRef};
use crate::offscreen;
use crate::view::ViewSettings;
use encode::Output;
use path::{CameraPath, KeyframeFile};

/// Which camera path, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraChoice {
    Orbit,
    Flythrough,
    /// A RON keyframe file.
    File(PathBuf),
}

impl std::str::FromStr for CameraChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "orbit" => Ok(CameraChoice::Orbit),
            "flythrough" => Ok(CameraChoice::Flythrough),
            p if p.ends_with(".ron") => Ok(CameraChoice::File(p.into())),
            other => Err(format!(
                "camera `{other}`: use orbit, flythrough or a keyframe file ending in .ron"
            )),
        }
    }
}

/// Everything `record` needs.
#[derive(Debug, Clone)]
pub struct RecordJob {
    pub model: ModelRef,
    pub options: LoadOptions,
    pub out: PathBuf,
    pub duration: f32,
    pub fps: u32,
    pub size: (u32, u32),
    pub camera: CameraChoice,
    pub picture: crate::headless::Picture,
    /// Draw no progress bar (tests, logs).
    pub quiet: bool,
}

/// What a finished recording measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordStats {
    pub frames: u64,
    pub seconds: f64,
    /// Wall time in the renderer (stepping the app until the frame is read back).
    pub render: f64,
    /// Wall time in the encoder.
    pub encode: f64,
}

/// The number of frames of a clip (at least one).
pub fn frame_count(duration: f32, fps: u32) -> u64 {
    ((duration as f64 * fps as f64).round() as u64).max(1)
}

/// Checks the request's numbers (before anything is loaded).
pub fn check_numbers(duration: f32, fps: u32, size: (u32, u32)) -> anyhow::Result<()> {
    if !duration.is_finite() || duration <= 0.0 {
        bail!("--duration must be a positive number of seconds (got {duration})");
    }
    if fps == 0 || fps > 240 {
        bail!("--fps must be between 1 and 240 (got {fps})");
    }
    if frame_count(duration, fps) > 100_000 {
        bail!("{duration} s at {fps} fps is over 100,000 frames; shorten --duration or lower --fps");
    }
    if size.0 == 0 || size.1 == 0 {
        bail!("--size must be at least 1x1");
    }
    Ok(())
}

/// Records the clip. Every check (numbers, output, ffmpeg, camera file, model,
/// prompt, GPU and its texture limit) happens before the first frame.
pub fn record(job: RecordJob) -> anyhow::Result<RecordStats> {
    check_numbers(job.duration, job.fps, job.size)?;
    let output = Output::from_path(&job.out)?;
    output.prepare()?;
    let keyframes = match &job.camera {
        CameraChoice::File(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("{}: cannot read the camera path", p.display()))?;
            Some(KeyframeFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
        }
        _ => None,
    };
    let scene = crate::headless::load_scene(&job.model, &job.options, &job.picture)?;
    let gpu = offscreen::check_gpu()?;
    if job.size.0.max(job.size.1) > gpu.max_texture {
        bail!(
            "--size {}x{} is beyond this GPU's texture limit of {} pixels per side ({}); choose a smaller size",
            job.size.0,
            job.size.1,
            gpu.max_texture,
            gpu.name
        );
    }

    // The camera path sees the trunk, and the city beside it when there is one.
    let floors = scene.current.arch.num_layers() as usize + 1;
    let bounds = scene.bounds();
    let layout = scene.current.layout.clone();
    let aspect = job.size.0 as f32 / job.size.1 as f32;
    let path = match (&job.camera, keyframes) {
        (_, Some(file)) => CameraPath::Keyframes(file),
        (CameraChoice::Flythrough, _) => {
            let centers: Vec<[f32; 3]> = layout.groups.iter().map(|g| g.center).collect();
            // The median group (embeddings and heads can be far larger than a layer).
            let mut extents: Vec<f32> = layout.groups.iter().map(|g| g.bounds.extent()).collect();
            extents.sort_by(f32::total_cmp);
            let size = extents.get(extents.len() / 2).copied().unwrap_or(1.0);
            CameraPath::flythrough(&centers, size)
        }
        _ => CameraPath::orbit(bounds, aspect),
    };
    if crate::verbose() {
        eprintln!(
            "scene bounds: min ({:.1}, {:.1}, {:.1}) max ({:.1}, {:.1}, {:.1}) (world units, for camera path files)",
            bounds.min[0], bounds.min[1], bounds.min[2], bounds.max[0], bounds.max[1], bounds.max[2]
        );
    }
    let mut overlay = crate::headless::overlay_for(&scene, &job.picture);
    let painter = super::overlay::Painter::new()?;

    // With a prompt, the pulses climb through every floor in the first 60% of the clip.
    let playback = crate::city::Playback {
        speed: floors as f32 / (job.duration * 0.6),
        ..Default::default()
    };
    let mut app = crate::headless::scene_app(scene, &job.picture, playback);
    app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::ZERO));
    app.finish();
    app.cleanup();
    app.world_mut()
        .resource_mut::<Time<Virtual>>()
        .set_max_delta(Duration::from_secs(3600));
    let target = offscreen::spawn_main_camera(&mut app, job.size, Transform::default());
    place_camera(&mut app, &path, 0.0, job.duration);

    // Frozen frames until the scene really renders.
    offscreen::warm_up(&mut app, &target)?;

    let frames = frame_count(job.duration, job.fps);
    let mut sink = encode::open(&output, job.size, job.fps)?;
    let progress = progress_bar(frames, job.quiet);
    let dt = Duration::from_secs_f64(1.0 / job.fps as f64);
    let started = Instant::now();
    let (mut render, mut encode) = (Duration::ZERO, Duration::ZERO);
    for i in 0..frames {
        // The camera path is sampled from its start (first frame) to its end (last frame);
        // the scene's clock advances by exactly 1/fps per frame.
        let t = if frames > 1 {
            job.duration * i as f32 / (frames - 1) as f32
        } else {
            0.0
        };
        let rendering = Instant::now();
        // Frame 0 is the state at t = 0; every later frame advances the clock by exactly dt.
        let step = if i == 0 { Duration::ZERO } else { dt };
        app.insert_resource(TimeUpdateStrategy::ManualDuration(step));
        place_camera(&mut app, &path, t, job.duration);
        app.update();
        app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::ZERO));
        let mut rgba = offscreen::read_back(&mut app, &target)?;
        if !job.picture.clean {
            overlay.labels = crate::headless::frame_labels(&mut app, job.size);
        }
        painter.paint(&overlay, &mut rgba, job.size, t);
        render += rendering.elapsed();
        let encoding = Instant::now();
        sink.push(&offscreen::rgba_to_rgb(&rgba))?;
        encode += encoding.elapsed();
        progress.inc(1);
    }
    let encoding = Instant::now();
    sink.finish()?;
    encode += encoding.elapsed();
    progress.finish_and_clear();
    let stats = RecordStats {
        frames,
        seconds: started.elapsed().as_secs_f64(),
        render: render.as_secs_f64(),
        encode: encode.as_secs_f64(),
    };
    eprintln!(
        "wrote {} ({} frames, {:.1} s at {} fps, {}x{}) in {:.1} s: {:.2} frames/s, {:.0}% rendering, {:.0}% encoding",
        job.out.display(),
        frames,
        frames as f64 / job.fps as f64,
        job.fps,
        job.size.0,
        job.size.1,
        stats.seconds,
        frames as f64 / stats.seconds.max(1e-9),
        100.0 * stats.render / stats.seconds.max(1e-9),
        100.0 * stats.encode / stats.seconds.max(1e-9)
    );
    Ok(stats)
}

fn progress_bar(frames: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(frames);
    let style =
        indicatif::ProgressStyle::with_template("recording [{bar:40}] {pos}/{len} frames  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Puts the camera where the path says at `t`, and applies the path's layout
/// and selection changes.
fn place_camera(app: &mut App, path: &CameraPath, t: f32, duration: f32) {
    let pose = path.pose(t, duration);
    let world = app.world_mut();
    let mut cameras = world.query_filtered::<&mut Transform, With<crate::camera::MainCamera>>();
    for mut transform in cameras.iter_mut(world) {
        let up = if (pose.look_at - pose.eye).normalize_or_zero().dot(Vec3::Y).abs() > 0.999 {
            Vec3::Z
        } else {
            Vec3::Y
        };
        *transform = Transform::from_translation(pose.eye).looking_at(pose.look_at, up);
    }
    let (layout, select) = path.changes_at(t);
    if let Some(layout) = layout {
        let mut settings = world.resource_mut::<ViewSettings>();
        if settings.layout != layout {
            settings.layout = layout;
        }
    }
    if let Some(token) = select
        && let Some(mut selected) = world.get_resource_mut::<SelectedToken>()
        && selected.0 != Some(token)
    {
        selected.0 = Some(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_before_anything_runs() {
        assert!(check_numbers(2.0, 10, (320, 240)).is_ok());
        assert_eq!(frame_count(2.0, 10), 20);
        assert_eq!(frame_count(0.01, 10), 1);
        for (d, f, msg) in [
            (0.0, 10, "--duration"),
            (-1.0, 10, "--duration"),
            (f32::NAN, 10, "--duration"),
            (2.0, 0, "--fps"),
            (1e6, 60, "100,000 frames"),
        ] {
            let err = check_numbers(d, f, (320, 240)).unwrap_err().to_string();
            assert!(err.contains(msg), "{d} {f}: {err}");
        }
        assert!("flythrough".parse::<CameraChoice>().is_ok());
        assert_eq!(
            "a/b.ron".parse::<CameraChoice>(),
            Ok(CameraChoice::File("a/b.ron".into()))
        );
        assert!(
            "spiral"
                .parse::<CameraChoice>()
                .unwrap_err()
                .contains("orbit, flythrough")
        );
    }
}
