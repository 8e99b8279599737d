//! Neural-city benchmark (`cargo bench --bench city`): memory over a long
//! generation. The embedded model generates N tokens (default 2,000; its
//! context is 256, so later passes run the latest window) through the real
//! worker, `ActivationsPlugin` and `CityPlugin` (no renderer); every 250
//! tokens it prints the process's resident memory, the city's entity counts
//! and the tokens per second so far. Bounded memory = flat RSS once the
//! window is full.
//!
//! Usage: `cargo bench --bench city [-- --tokens 2000]`.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use tensorcity::activations::{ActivationsPlugin, CurrentRun, InferenceWorker, RunPrompt, RunStatus};
use tensorcity::arch::{LoadOptions, ModelRef};
use tensorcity::city::{AttentionEdge, CityCell, CityPlayback, CityPlugin, CityScene};
use tensorcity::inference::stream::{Decoding, RunRequest};
use tensorcity::layout::LayoutKind;
use tensorcity::model::LoadModel;
use tensorcity::view::ViewSettings;

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tokens: usize = args
        .iter()
        .position(|a| a == "--tokens")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        bevy::state::app::StatesPlugin,
        tensorcity::ScenePlugin,
        ActivationsPlugin,
        CityPlugin,
    ));
    app.world_mut().resource_mut::<ViewSettings>().layout = LayoutKind::City;
    app.world_mut().resource_mut::<CityPlayback>().speed = f32::MAX;
    app.world_mut().write_message(LoadModel {
        model: ModelRef::Embedded,
        options: LoadOptions::default(),
    });
    while !app.world().contains_resource::<InferenceWorker>() {
        app.update();
        std::thread::sleep(Duration::from_millis(1));
    }
    app.world_mut().write_message(RunPrompt(RunRequest {
        tokens: vec![42, 7, 300],
        new_tokens: tokens,
        decoding: Decoding::TopK {
            k: 20,
            temperature: 0.8,
            seed: 1,
        },
        text: None,
    }));
    app.update();
    println!("embedded model, {tokens} generated tokens (context 256), city entities rebuilt every pass");
    println!(
        "{:>8} {:>10} {:>10} {:>12} {:>14} {:>10}",
        "tokens", "RSS MB", "cells", "edges kept", "edge entities", "tok/s"
    );
    let start = Instant::now();
    let mut next_report = 0;
    loop {
        app.update();
        let run = app.world().resource::<CurrentRun>();
        let (generated, status) = (run.generated.len(), run.status.clone());
        if generated >= next_report || status != RunStatus::Running {
            let world = app.world_mut();
            let cells = world.query::<&CityCell>().iter(world).count();
            // Weights >= MIN_EDGE the scene keeps as data; entities: the arcs drawn.
            let kept: usize = world.resource::<CityScene>().scene.edges.values().map(Vec::len).sum();
            let edges = world.query::<&AttentionEdge>().iter(world).count();
            println!(
                "{generated:>8} {:>10.1} {cells:>10} {kept:>12} {edges:>14} {:>10.1}",
                rss_mb(),
                generated as f64 / start.elapsed().as_secs_f64()
            );
            next_report += 250;
        }
        if status != RunStatus::Running {
            if let RunStatus::Failed(e) = status {
                println!("failed: {e}");
            }
            break;
        }
    }
}
