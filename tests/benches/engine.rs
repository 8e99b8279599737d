//! The activation stream over loopback: frames/s and MB/s from the Python
//! engine (tensorcity_stream) to the viewer's client for GPT-2-small-sized
//! activations (128 tokens, every tap), in f32 and f16; and a streamed pass's
//! time against the same model's plain forward (no hooks, no outputs), which
//! the engine runs just before each streamed pass (the VM's speed drifts
//! within a run). Also the transport alone (an engine sending the same shapes
//! from memory).
//!
//!   TENSORCITY_PYTHON=~/.cache/tensorcity/venv/bin/python cargo bench --profile dev --bench engine [-- --runs 5]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tensorcity::engine::client;
use tensorcity::inference::stream::{Decoding, FrameData, RunRequest};

struct Server {
    child: std::process::Child,
    url: String,
    plain_ms: Option<f64>,
    /// The engine's own forward times as it prints them: (plain, ms) — a
    /// plain forward just before a streamed pass — or (streamed, ms), hooks
    /// and streaming included.
    forwards: std::sync::mpsc::Receiver<(bool, f64)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(mode: &str, threads: usize) -> Server {
    let home = std::env::var("HOME").unwrap_or_default();
    let python = std::env::var("TENSORCITY_PYTHON").unwrap_or(format!("{home}/.cache/tensorcity/venv/bin/python"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(root.join("tests/benches/serve_bench.py"))
        .args([mode, "0", &threads.to_string()])
        .env("PYTHONPATH", root.join("src/python"))
        .env("TENSORCITY_STREAM_TIMING", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("python");
    let mut plain_ms = None;
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(ms) = line.strip_prefix("plain forward: ").and_then(|s| s.strip_suffix(" ms")) {
            plain_ms = ms.parse().ok();
        }
        if let Some(at) = line.find("listening on ") {
            let url = line[at + 13..].trim().to_string();
            let (tx, forwards) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    let ms = line.split("forward ").nth(1).and_then(|s| s.strip_suffix(" ms"));
                    if let Some(ms) = ms.and_then(|m| m.parse().ok()) {
                        let _ = tx.send((line.starts_with("paired plain"), ms));
                    }
                }
            });
            return Server {
                child,
                url,
                plain_ms,
                forwards,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the {mode} engine did not start");
}

/// (seconds, frames, tensor bytes) of one 128-token run: every tap
/// (`viewer` false: what `capture` asks for) or the viewer's request (no full
/// logits; top-k of every position).
fn run(url: &str, dtype: &str, viewer: bool) -> (f64, usize, usize) {
    let connection = client::connect(url).expect("connect");
    let mut want = if viewer {
        client::viewer_wants(&connection.hello)
    } else {
        client::capture_wants(&connection.hello)
    };
    want.dtype = dtype.into();
    let width = if dtype == "f16" { 2 } else { 4 };
    let (mut worker, _) = client::spawn(connection, want, Duration::from_secs(120));
    let tokens: Vec<u32> = (0..128u32).map(|i| (i * 7919) % 50257).collect();
    let start = Instant::now();
    worker.request(RunRequest {
        tokens,
        new_tokens: 0,
        decoding: Decoding::Greedy,
        text: None,
    });
    let (mut frames, mut bytes) = (0, 0);
    loop {
        for f in worker.drain(usize::MAX) {
            frames += 1;
            match f.data {
                FrameData::Activation { tensor, .. } => bytes += tensor.elem_count() * width,
                FrameData::Done => return (start.elapsed().as_secs_f64(), frames, bytes),
                FrameData::Failed(m) => panic!("{m}"),
                _ => {}
            }
        }
        // The viewer drains once per rendered frame.
        std::thread::sleep(Duration::from_millis(DRAIN_MS));
    }
}

/// How often the consumer drains the worker (the app does once per frame, at 60 fps).
const DRAIN_MS: u64 = 16;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(5usize);
    // torch on both cores, then on one (the other left to the stream, as when
    // the forward runs on a GPU and the CPU only streams).
    let only = std::env::var("TENSORCITY_BENCH_ONLY").unwrap_or_default();
    for (mode, threads) in [("gpt2", 2), ("gpt2", 1), ("transport", 2)] {
        if !only.is_empty() && only != format!("{mode}-{threads}") {
            continue;
        }
        let server = start(mode, threads);
        run(&server.url, "f32", false);
        // (The warm-up's times.)
        std::thread::sleep(Duration::from_millis(200));
        let _ = server.forwards.try_iter().count();
        for (dtype, viewer) in [("f32", false), ("f16", false), ("f32", true)] {
            let mut times = Vec::new();
            let mut pairs = Vec::new();
            let mut shape = (0, 0);
            for _ in 0..runs {
                let (t, frames, bytes) = run(&server.url, dtype, viewer);
                shape = (frames, bytes);
                // This run's pass and the plain forward the engine ran just
                // before it (both printed before its Done).
                let (mut plain, mut streamed) = (None, None);
                while streamed.is_none() {
                    match server.forwards.recv_timeout(Duration::from_secs(5)) {
                        Ok((true, ms)) => plain = Some(ms),
                        Ok((false, ms)) => streamed = Some(ms),
                        Err(_) => break,
                    }
                }
                let (Some(plain), Some(streamed)) = (plain, streamed) else {
                    // The transport engine runs no model.
                    times.push(t);
                    continue;
                };
                // The run as the viewer sees it and the engine's time for the
                // pass, both without the plain forward (which the engine's
                // timing of the pass includes).
                times.push(t - plain / 1e3);
                pairs.push((plain, streamed - plain));
            }
            let t = median(times);
            let (plain, engine_forward, cost) = if pairs.is_empty() {
                (f64::NAN, f64::NAN, f64::NAN)
            } else {
                (
                    median(pairs.iter().map(|p| p.0).collect()),
                    median(pairs.iter().map(|p| p.1).collect()),
                    median(pairs.iter().map(|p| p.1 / p.0 - 1.0).collect()),
                )
            };
            let (frames, bytes) = shape;
            let what = if viewer { "viewer's request" } else { "every tap" };
            let mut line = format!(
                "{mode:9} torch {threads}t {what:16} {dtype}: {:7.1} ms per 128-token run, {frames} frames ({:.1} MB): {:6.0} frames/s, {:6.0} MB/s",
                t * 1e3,
                bytes as f64 / 1e6,
                frames as f64 / t,
                bytes as f64 / 1e6 / t
            );
            if let Some(first) = server.plain_ms {
                line += &format!(
                    "; plain forward {plain:.1} ms (at the start {first:.1}); the engine's forward while streaming {engine_forward:.1} ms (median of each pass over the plain one before it {:+.0} %), the run as the viewer sees it {:+.0} %",
                    cost * 100.0,
                    (t * 1e3 / plain - 1.0) * 100.0
                );
            }
            println!("{line}");
        }
    }
}
