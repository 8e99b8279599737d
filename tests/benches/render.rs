//! Rendering benchmark (`cargo bench --bench render`), headless on whatever
//! adapter wgpu finds (Mesa's software Vulkan here):
//!
//! - frame time for 10k / 100k / 1M cubes drawn by the instanced pipeline, and
//!   the same cubes as one entity each (shared mesh, 16 shared materials: Bevy's
//!   automatic batching);
//! - time from launch to the first drawn frame for the Llama-3.1-405B catalogue
//!   model (load + layout + pipeline compilation);
//! - the neural city of a GPT-2-small-shaped model (12 layers x 12 heads,
//!   hidden size 768, random weights) on a 64-token prompt: ~300k attention
//!   weights, the ones >= 0.02 kept in the city scene and the drawn arcs as
//!   `AttentionEdge` entities; frame time
//!   with the whole city in view, close up with hidden-vector strips open
//!   (768 micro-cubes each), while the camera moves (strips re-chosen every
//!   frame), while the threshold changes every frame (every edge re-filtered),
//!   and densest (max over heads, threshold 0.03: tens of thousands of arcs);
//! - peak memory (VmHWM) of each scenario, each run in its own process.
//!
//! Usage: `cargo bench --bench render [-- --sizes 10000,100000 --frames 20 --only city]`
//! (`TENSORCITY_BENCH_FLAT=1` draws the city as `--flat` does: no HDR, bloom or fog).

use std::process::Command;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use tensorcity::arch::{LoadOptions, ModelRef, TensorKind};
use tensorcity::camera::math::{frame_bounds_at, orbit_transform};
use tensorcity::layout::{Bounds, LayoutKind};
use tensorcity::model::CurrentModel;
use tensorcity::render::{CubeBatch, CubeDraws, CubeInstance, CubeInstances, kind_linear};
use tensorcity::view::ViewSettings;

const SIZE: (u32, u32) = (960, 540);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        // Child process: run one scenario and print its result line.
        let scenario = args.get(i + 1).map(String::as_str).unwrap_or("");
        let n: usize = args.get(i + 2).and_then(|s| s.parse().ok()).unwrap_or(0);
        let frames: usize = args.get(i + 3).and_then(|s| s.parse().ok()).unwrap_or(20);
        run_scenario(scenario, n, frames);
        return;
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = flag("--sizes")
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let frames = flag("--frames").unwrap_or_else(|| "20".into());
    let only = flag("--only");
    let exe = std::env::current_exe().expect("own path");
    println!("scenario              cubes   frame ms (mean)  frame ms (min)  peak MiB");
    let run = |scenario: &str, n: usize| {
        let out = Command::new(&exe)
            .args(["--scenario", scenario, &n.to_string(), &frames])
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find(|l| l.starts_with("RESULT")) {
            Some(line) => println!("{}", &line[7..]),
            None => println!(
                "{scenario:<20} {n:>8}  failed: {}",
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            ),
        }
    };
    if only.as_deref().is_none_or(|o| o != "city") {
        for &n in &sizes {
            run("instanced", n);
            run("entities", n);
        }
        run("first-frame-405b", 0);
    }
    for view in [
        "city-whole",
        "city-strips",
        "city-orbiting",
        "city-refilter",
        "city-dense",
    ] {
        run(view, 64);
    }
}

fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A windowless app; `plugins` are added before the renderer is initialised.
fn headless_app(plugins: impl FnOnce(&mut App)) -> App {
    let mut app = tensorcity::offscreen::windowless_app();
    plugins(&mut app);
    app.finish();
    app.cleanup();
    app
}

fn spawn_camera(app: &mut App, bounds: &Bounds) {
    let world = app.world_mut();
    let view = frame_bounds_at(bounds, SIZE.0 as f32 / SIZE.1 as f32, 0.6, 0.35);
    let (camera, _) =
        tensorcity::offscreen::camera_bundle(&mut world.resource_mut::<Assets<Image>>(), SIZE, orbit_transform(view));
    world.spawn(camera);
}

/// The app's count of instanced cube draws (see `CubeDraws`).
fn draws(app: &App) -> CubeDraws {
    app.world().resource::<CubeDraws>().clone()
}

/// `n` cubes on a jittered grid, coloured by cycling kinds.
fn grid(n: usize) -> (Vec<([f32; 3], f32, TensorKind)>, Bounds) {
    let side = (n as f32).cbrt().ceil() as usize;
    let mut cubes = Vec::with_capacity(n);
    let mut bounds = Bounds::EMPTY;
    for i in 0..n {
        let (x, y, z) = (i % side, (i / side) % side, i / (side * side));
        let c = [x as f32 * 2.0, y as f32 * 2.0, z as f32 * 2.0];
        let size = 0.5 + (i % 7) as f32 * 0.2;
        bounds = bounds.union(Bounds::around(c, size));
        cubes.push((c, size, TensorKind::ALL[i % 16]));
    }
    (cubes, bounds)
}

/// Runs frames until cubes have been drawn (pipelines compiled), then times `frames` updates.
fn time_frames(app: &mut App, frames: usize, ready: impl Fn() -> bool) -> (f64, f64) {
    let start = Instant::now();
    while !ready() && start.elapsed() < Duration::from_secs(600) {
        app.update();
    }
    for _ in 0..3 {
        app.update();
    }
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = Instant::now();
        app.update();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // Bevy's render error handler asks the app to quit on a wgpu validation error:
    // frames after that draw nothing, so they are not a measurement.
    if app.should_exit().is_some() {
        return (f64::NAN, f64::NAN);
    }
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    (mean, min)
}

fn run_scenario(scenario: &str, n: usize, frames: usize) {
    match scenario {
        "instanced" => {
            let mut app = headless_app(|app| {
                app.add_plugins(tensorcity::render::CubeRenderPlugin);
            });
            let (cubes, bounds) = grid(n);
            let data: Vec<CubeInstance> = cubes
                .iter()
                .map(|(c, s, k)| {
                    let rgb = kind_linear(*k);
                    CubeInstance {
                        pos_size: [c[0], c[1], c[2], *s],
                        color: [rgb[0], rgb[1], rgb[2], 0.0],
                    }
                })
                .collect();
            app.update(); // spawns the batch entity
            let world = app.world_mut();
            let mut q = world.query_filtered::<&mut CubeInstances, With<CubeBatch>>();
            if let Ok(mut instances) = q.single_mut(world) {
                instances.set(data);
            }
            spawn_camera(&mut app, &bounds);
            let counter = draws(&app);
            let base = counter.count();
            let (mean, min) = time_frames(&mut app, frames, || counter.count() > base);
            println!(
                "RESULT {scenario:<20} {n:>8}  {mean:>15.1}  {min:>14.1}  {:>8.0}",
                peak_mib()
            );
        }
        "entities" => {
            let mut app = headless_app(|_| {});
            let (cubes, bounds) = grid(n);
            let world = app.world_mut();
            let mesh = world.resource_mut::<Assets<Mesh>>().add(Cuboid::new(1.0, 1.0, 1.0));
            let materials: Vec<Handle<StandardMaterial>> = TensorKind::ALL
                .iter()
                .map(|&k| {
                    let rgb = kind_linear(k);
                    world.resource_mut::<Assets<StandardMaterial>>().add(StandardMaterial {
                        base_color: Color::linear_rgb(rgb[0], rgb[1], rgb[2]),
                        unlit: true,
                        ..default()
                    })
                })
                .collect();
            world.spawn_batch(cubes.iter().enumerate().map(|(i, (c, s, _))| {
                (
                    Mesh3d(mesh.clone()),
                    MeshMaterial3d(materials[i % 16].clone()),
                    Transform::from_translation(Vec3::from(*c)).with_scale(Vec3::splat(*s)),
                )
            }));
            spawn_camera(&mut app, &bounds);
            // No draw counter for Bevy's own pipeline: warm up with a fixed number of frames.
            let warm = std::cell::Cell::new(0);
            let (mean, min) = time_frames(&mut app, frames, || {
                warm.set(warm.get() + 1);
                warm.get() > 40
            });
            if mean.is_nan() {
                println!(
                    "RESULT {scenario:<20} {n:>8}  renderer stopped: wgpu validation error (buffers over the adapter's limits)  {:>8.0}",
                    peak_mib()
                );
            } else {
                println!(
                    "RESULT {scenario:<20} {n:>8}  {mean:>15.1}  {min:>14.1}  {:>8.0}",
                    peak_mib()
                );
            }
        }
        "first-frame-405b" => {
            let launch = Instant::now();
            let model = ModelRef::Id("meta-llama/Llama-3.1-405B".into());
            let options = LoadOptions {
                catalogue_only: true,
                ..Default::default()
            };
            let settings = ViewSettings {
                layout: LayoutKind::Floors,
                lod: false,
                ..default()
            };
            let current = CurrentModel::load(&model, &options, &settings).expect("catalogue");
            let tensors = current.arch.tensors.len();
            let bounds = current.layout.bounds;
            let mut app = headless_app(|app| {
                app.add_plugins(tensorcity::ScenePlugin)
                    .insert_resource(settings)
                    .insert_resource(current);
            });
            spawn_camera(&mut app, &bounds);
            let counter = draws(&app);
            let base = counter.count();
            while counter.count() == base && launch.elapsed() < Duration::from_secs(600) {
                app.update();
            }
            let first = launch.elapsed().as_secs_f64() * 1e3;
            println!(
                "RESULT {:<20} {tensors:>8}  first frame {first:.0} ms (launch to first drawn frame)  {:>8.0}",
                scenario,
                peak_mib()
            );
        }
        city if city.starts_with("city-") => city_scenario(city, n, frames),
        other => eprintln!("unknown scenario {other}"),
    }
}

const GPT2_SMALL: &str = r#"{"model_type":"gpt2","n_layer":12,"n_embd":768,"n_head":12,
    "n_positions":1024,"vocab_size":2048,"layer_norm_epsilon":1e-5}"#;

/// The city of a random GPT-2-small-shaped model on `tokens` tokens, drawn
/// beside the catalogue's gpt2 trunk; `scenario` picks the view.
fn city_scenario(scenario: &str, tokens: usize, frames: usize) {
    use tensorcity::activations::{CurrentRun, RunState};
    use tensorcity::city::{AttentionEdge, CityPlayback, CityPlugin, CityStats, CityView, Playback};
    use tensorcity::layout::city::CityGrid;

    let config = tensorcity::arch::ModelConfig::from_json(GPT2_SMALL.as_bytes(), "gpt2-small").expect("config");
    let model = tensorcity::inference::random::random_model(&config, candle_core::DType::F32).expect("model");
    let ids: Vec<u32> = (0..tokens as u32).map(|i| (i * 7919 + 13) % 2048).collect();
    let capture = model.capture(&ids).expect("forward");
    let weights: usize = capture.attn.iter().map(|a| a.dims().iter().product::<usize>()).sum();
    let run = RunState::from_capture(&capture, ids.iter().map(|i| format!("t{i}")).collect());

    let model_ref = ModelRef::Id("gpt2".into());
    let options = LoadOptions {
        catalogue_only: true,
        ..Default::default()
    };
    let settings = ViewSettings {
        layout: LayoutKind::City,
        lod: false,
        // TENSORCITY_BENCH_FLAT=1: as `--flat` (no HDR, bloom or fog).
        glow: std::env::var_os("TENSORCITY_BENCH_FLAT").is_none(),
        ..default()
    };
    let current = CurrentModel::load(&model_ref, &options, &settings).expect("catalogue");
    let grid = CityGrid::new(&current.layout, current.arch.num_layers() as usize + 1);
    let whole = grid.bounds_with(&current.layout.bounds, tokens);
    let mut app = headless_app(|app| {
        app.add_plugins((tensorcity::ScenePlugin, CityPlugin))
            .insert_resource(settings)
            .insert_resource(current)
            .insert_resource(CityPlayback(Playback {
                speed: f32::MAX,
                ..Default::default()
            }))
            .insert_resource(CurrentRun(run));
    });
    let close = scenario != "city-whole";
    // Close up: cells ~90 px tall, so the dozens in view open into strips.
    let eye_distance = grid.cell * SIZE.1 as f32 / (2.0 * (tensorcity::camera::math::FOV_Y / 2.0).tan() * 90.0);
    let target = Vec3::from_array(grid.cell_center(tokens / 2, 6));
    let transform = |angle: f32| {
        let eye = target + Vec3::new(angle.sin(), 0.15, angle.cos()) * eye_distance;
        Transform::from_translation(eye).looking_at(target, Vec3::Y)
    };
    if scenario == "city-dense" {
        // Worst case: the strongest head of every (query, key) pair down to 0.03.
        let mut view = app.world_mut().resource_mut::<CityView>();
        view.threshold = 0.03;
        view.heads = tensorcity::city::HeadFilter::Max;
    }
    spawn_camera(&mut app, &whole);
    {
        let world = app.world_mut();
        let mut q = world.query_filtered::<(Entity, &mut Transform), With<Camera3d>>();
        if let Ok((camera, mut t)) = q.single_mut(world) {
            if close {
                *t = transform(0.0);
            }
            world.entity_mut(camera).insert(tensorcity::camera::MainCamera);
        }
    }
    let counter = draws(&app);
    let base = counter.count();
    let frame = std::cell::Cell::new(0usize);
    let (mean, min) = {
        // Warm up until both batches have drawn, then time frames with the scenario's per-frame change.
        let start = Instant::now();
        while counter.count() < base + 2 && start.elapsed() < Duration::from_secs(600) {
            app.update();
        }
        for _ in 0..3 {
            app.update();
        }
        let mut times = Vec::with_capacity(frames);
        for _ in 0..frames {
            let i = frame.get() + 1;
            frame.set(i);
            let world = app.world_mut();
            match scenario {
                "city-orbiting" => {
                    let mut q = world.query_filtered::<&mut Transform, With<tensorcity::camera::MainCamera>>();
                    if let Ok(mut t) = q.single_mut(world) {
                        *t = transform(i as f32 * 0.02);
                    }
                }
                "city-refilter" => {
                    world.resource_mut::<CityView>().threshold = if i.is_multiple_of(2) { 0.15 } else { 0.1 };
                }
                _ => {}
            }
            let t = Instant::now();
            app.update();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
        (mean, times.iter().copied().fold(f64::INFINITY, f64::min))
    };
    let world = app.world_mut();
    let edges = world.query::<&AttentionEdge>().iter(world).count();
    let stats = *world.resource::<CityStats>();
    let instances: usize = world
        .query_filtered::<&CubeInstances, With<tensorcity::city::CityBatch>>()
        .iter(world)
        .map(|i| i.len())
        .sum();
    println!(
        "RESULT {scenario:<20} {instances:>8}  {mean:>15.1}  {min:>14.1}  {:>8.0}   ({weights} weights, {edges} edge entities, {} arcs drawn, {} cells, {} strips)",
        peak_mib(),
        stats.arcs,
        stats.cells,
        stats.strips
    );
}
