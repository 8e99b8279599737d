//! Bounded memory under a stream: a fast producer streams generation runs,
//! back to back, for minutes into a consumer made artificially slow (it folds
//! at most 4 frames into the viewer's run state, then sleeps 20 ms: a renderer
//! at 50 fps that does 8x less per frame than the app's 32). Producers: the
//! built-in engine on the tiny GPT-2 fixture (in this process, through the
//! worker's bounded channel), then the Python engine (tensorcity_stream on
//! the same checkpoint, over loopback, through the viewer's client).
//! Every 10 s it prints the curve: resident memory of this process (and of
//! the Python engine), frames produced and consumed, frames in flight. Flat
//! memory and in-flight frames never above the channel's capacity (64) mean
//! the producer is the one that waits.
//!
//!   cargo bench --profile dev --bench stream_memory [-- --seconds 180]
//!   (TENSORCITY_PYTHON: the Python with torch and transformers; default the CI venv)

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tensorcity::activations::run::RunState;
use tensorcity::inference::Model;
use tensorcity::inference::stream::{
    ActivationFrame, ActivationSource, CHANNEL_CAPACITY, Decoding, FrameData, LocalRunner, RunRequest, Worker,
};

/// Counts the frames a source sends (what the producer has managed to hand over).
struct Counted {
    inner: LocalRunner,
    sent: Arc<AtomicU64>,
}

impl ActivationSource for Counted {
    fn run(&mut self, run: u64, request: &RunRequest, send: &mut dyn FnMut(ActivationFrame) -> bool) {
        let sent = self.sent.clone();
        self.inner.run(run, request, &mut |f| {
            sent.fetch_add(1, Ordering::SeqCst);
            send(f)
        });
    }
}

fn request() -> RunRequest {
    RunRequest {
        tokens: vec![1, 2, 3],
        // The tiny model's context is 64: the rest of it, generated.
        new_tokens: 60,
        decoding: Decoding::Greedy,
        text: None,
    }
}

/// How fast the producer goes when nothing holds it back: a consumer that
/// drains everything without sleeping, for 5 s (frames/s).
fn unthrottled(worker: &mut Worker) -> f64 {
    let start = Instant::now();
    worker.request(request());
    let mut frames = 0u64;
    while start.elapsed() < Duration::from_secs(5) {
        for frame in worker.drain(usize::MAX) {
            frames += 1;
            if matches!(frame.data, FrameData::Done) {
                worker.request(request());
            }
        }
        std::thread::yield_now();
    }
    frames as f64 / start.elapsed().as_secs_f64()
}

/// Streams into the slow consumer for `seconds`; prints a row every 10 s.
fn consume(name: &str, mut worker: Worker, seconds: u64, produced: Option<&AtomicU64>, engine_pid: Option<u32>) {
    let free = unthrottled(&mut worker);
    let base = produced.map_or(0, |p| p.load(Ordering::SeqCst));
    let produced_since = |p: &AtomicU64| p.load(Ordering::SeqCst).saturating_sub(base);
    println!("\n{name}: unthrottled it streams {free:.0} frames/s");
    println!("   t s | RSS MiB | engine RSS MiB | produced | consumed | in flight | runs");
    let start = Instant::now();
    let mut state = RunState::default();
    let run = worker.request(request());
    state.start(run, 3);
    // Frames of the unthrottled phase's last run, still queued, are stale: skip them.
    let mut stale = 0u64;
    let (mut consumed, mut runs, mut max_in_flight) = (0u64, 0u64, 0u64);
    let mut next_row = Duration::ZERO;
    let mut rss = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        for frame in worker.drain(4) {
            if frame.run != state.run {
                stale += 1;
                continue;
            }
            consumed += 1;
            state.apply(&frame);
            match &frame.data {
                FrameData::Done => {
                    runs += 1;
                    let run = worker.request(request());
                    state = RunState::default();
                    state.start(run, 3);
                }
                FrameData::Failed(m) => panic!("{name}: {m}"),
                _ => {}
            }
        }
        let in_flight = produced.map_or(0, |p| produced_since(p).saturating_sub(consumed + stale));
        max_in_flight = max_in_flight.max(in_flight);
        if start.elapsed() >= next_row {
            let me = common::rss_mib("self");
            let engine = engine_pid.map_or(f64::NAN, |p| common::rss_mib(&p.to_string()));
            rss.push(me);
            println!(
                "{:>6} | {me:>7.1} | {:>14} | {:>8} | {consumed:>8} | {:>9} | {runs}",
                start.elapsed().as_secs(),
                if engine.is_nan() {
                    "-".to_string()
                } else {
                    format!("{engine:.1}")
                },
                produced.map_or("-".to_string(), |p| produced_since(p).to_string()),
                if produced.is_some() {
                    in_flight.to_string()
                } else {
                    "-".into()
                },
            );
            next_row += Duration::from_secs(10);
        }
        // The slow renderer.
        std::thread::sleep(Duration::from_millis(20));
    }
    let settled = if rss.len() > 2 { &rss[2..] } else { &rss[..] };
    let (lo, hi) = settled
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    println!(
        "{name}: {consumed} frames in {seconds} s ({:.0}/s), {runs} runs; RSS after 20 s between {lo:.1} and {hi:.1} MiB; most frames in flight {}",
        consumed as f64 / seconds as f64,
        if produced.is_some() {
            max_in_flight.to_string()
        } else {
            "-".into()
        },
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/inference/gpt2-tiny");
    println!("channel capacity {CHANNEL_CAPACITY} frames; consumer: 4 frames per 20 ms");

    let sent = Arc::new(AtomicU64::new(0));
    let model = Arc::new(Model::load(&fixture).expect("the gpt2-tiny fixture"));
    let worker = Worker::spawn(Box::new(Counted {
        inner: LocalRunner { model, files: None },
        sent: sent.clone(),
    }));
    consume(
        "built-in engine (gpt2-tiny, in process)",
        worker,
        seconds,
        Some(&sent),
        None,
    );

    let home = std::env::var("HOME").unwrap_or_default();
    let python = std::env::var("TENSORCITY_PYTHON").unwrap_or(format!("{home}/.cache/tensorcity/venv/bin/python"));
    let mut child = Command::new(python)
        .args(["-m", "tensorcity_stream", "serve", "--port", "0"])
        .arg(&fixture)
        .env("PYTHONPATH", root.join("src/python"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("python");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.find("listening on ").map(|at| l[at + 13..].trim().to_string()))
        .expect("the Python engine did not start");
    std::thread::spawn(move || lines.for_each(drop));
    let connection = tensorcity::engine::client::connect(&url).expect("connect");
    let want = tensorcity::engine::client::viewer_wants(&connection.hello);
    let (worker, _) = tensorcity::engine::client::spawn(connection, want, Duration::from_secs(60));
    consume(
        "Python engine (transformers, gpt2-tiny, loopback)",
        worker,
        seconds,
        None,
        Some(child.id()),
    );
    let _ = child.kill();
    let _ = child.wait();
}
