//! Inference benchmark (`cargo bench --profile dev --bench inference`), on a
//! random GPT-2-small-sized model (12 layers, 768 wide, 50,257 vocabulary,
//! 124M parameters, f32 on the CPU), each line compared with the line it is
//! measured against, in the same run:
//!
//! - **forward**: one pass over a 128-token prompt — without taps (every
//!   tapped tensor dropped at once); with all taps (the streaming runner on its
//!   worker thread: every hidden state, attention map, MLP activation and the
//!   logits sent over the bounded channel and kept by the consumer, plus the
//!   top-k and logit lens at the last position, timed from request to `Done`);
//!   and PyTorch + transformers (eager, `output_hidden_states` +
//!   `output_attentions`, same thread count) through `tests/benches/torch_gpt2.py`
//!   when a Python with torch is available (`TENSORCITY_PYTHON`, else `python3`),
//!   compared with the all-taps line round by round (each round one pass of
//!   each, so both sides see the same machine);
//! - **generation**: 128 new tokens (greedy) after a 16-token prompt, all taps
//!   of every step streamed — tensorcity with its KV cache vs transformers'
//!   `generate` (KV cache, hidden states, attentions and logits of every step);
//! - the embedded model generating inline (the browser build's way);
//! - a **bf16 Llama-3.2-1B-shaped** random model (weights kept bf16): tokens/s
//!   of a 16-token prompt + 16 generated and the process's peak RSS (run in a
//!   child process so the peak is its own). `-- --bf16 meta-llama/Llama-3.1-8B`
//!   measures another catalogue shape the same way (8B: 16 GB of weights).
//!
//! Usage: `cargo bench --profile dev --bench inference [-- --tokens 128 --runs 5 --forward-only]`.

#[path = "common/mod.rs"]
mod common;
use common::peak_rss_mib;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::DType;
use tensorcity::arch::ModelConfig;
use tensorcity::inference::stream::{Decoding, FrameData, LocalRunner, RunRequest, Worker};

const GPT2_SMALL: &str = r#"{"model_type":"gpt2","n_layer":12,"n_embd":768,"n_head":12,
    "n_positions":1024,"vocab_size":50257,"layer_norm_epsilon":1e-5}"#;

fn main() {
    // As the `tensorcity` binary does first.
    // SAFETY: first thing in `main`, before any thread is started.
    unsafe { tensorcity::inference::count_threads_once() };
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if let Some(id) = args
        .iter()
        .position(|a| a == "--bf16-child")
        .and_then(|i| args.get(i + 1))
    {
        let dtype = args.iter().position(|a| a == "--dtype").and_then(|i| args.get(i + 1));
        bf16_child(id, dtype.map_or("bf16", String::as_str));
        return;
    }
    let (n_tokens, runs) = (arg("--tokens", 128), arg("--runs", 5));
    let threads = candle_core::utils::get_num_threads();
    let config = ModelConfig::from_json(GPT2_SMALL.as_bytes(), "gpt2-small").expect("config");
    let model = Arc::new(tensorcity::inference::random::random_model(&config, DType::F32).expect("model"));
    let tokens: Vec<u32> = (0..n_tokens as u32).map(|i| (i * 7919 + 13) % 50257).collect();
    let mut worker = Worker::spawn(Box::new(LocalRunner {
        model: model.clone(),
        files: None,
    }));

    println!("random GPT-2-small-sized model, {threads} threads, median of {runs} runs");
    println!("forward over a {n_tokens}-token prompt ({runs} rounds, each one pass of every line in turn):");
    let mut torch = TorchForward::start(threads, n_tokens);
    // Warm-ups.
    model.run(&tokens, &mut |_, _| true).expect("forward");
    stream(&mut worker, tokens.clone(), 0);
    let (mut bare, mut tapped, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        bare.push(timed(|| {
            model.run(&tokens, &mut |_, _| true).expect("forward");
        }));
        let ours = timed(|| stream(&mut worker, tokens.clone(), 0));
        tapped.push(ours);
        if let Some(t) = torch.as_mut().and_then(TorchForward::forward) {
            theirs.push(t);
            ratios.push(ours.as_secs_f64() / t.as_secs_f64());
        }
    }
    let (bare, tapped) = (median_of(bare), median_of(tapped));
    report("tensorcity, no taps", n_tokens, bare, None);
    report(
        "tensorcity, all taps streamed",
        n_tokens,
        tapped,
        Some(("no taps", bare)),
    );
    if !theirs.is_empty() {
        let theirs = median_of(theirs);
        report(
            "PyTorch transformers, hidden states + attentions",
            n_tokens,
            theirs,
            None,
        );
        ratios.sort_by(f64::total_cmp);
        println!(
            "  tensorcity all taps takes {:.2}x PyTorch's time (median over the rounds of each round's ratio; \
             {:.2}x to {:.2}x; ratio of the medians {:.2}x)",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
            tapped.as_secs_f64() / theirs.as_secs_f64()
        );
    }
    drop(torch);
    if args.iter().any(|a| a == "--forward-only") {
        return;
    }

    let new = 128;
    println!("generating {new} tokens after a 16-token prompt, every step's taps:");
    let prompt = tokens[..16.min(tokens.len())].to_vec();
    let generation_runs = runs.min(3);
    let cached = median(generation_runs, || stream(&mut worker, prompt.clone(), new));
    report("tensorcity, KV cache, all taps streamed", new, cached, None);
    if let Some(torch) = pytorch(threads, new, generation_runs, "generate") {
        report(
            "PyTorch transformers generate, hidden states + attentions + logits",
            new,
            torch,
            Some(("tensorcity KV cache", cached)),
        );
    }

    embedded_generation(32);
    let shape = args
        .iter()
        .position(|a| a == "--bf16")
        .and_then(|i| args.get(i + 1))
        .map_or("meta-llama/Llama-3.2-1B", String::as_str);
    for dtype in ["q4k", "bf16", "f32"] {
        bf16_in_child(shape, dtype);
    }
}

/// One request through the worker, every frame kept, until `Done`.
fn stream(worker: &mut Worker, tokens: Vec<u32>, new_tokens: usize) {
    worker.request(RunRequest {
        tokens,
        new_tokens,
        decoding: Decoding::Greedy,
        text: None,
    });
    let mut kept = Vec::new();
    loop {
        // As the viewer does: at most its per-update share each frame.
        let frames = worker.drain(tensorcity::activations::MAX_FRAMES_PER_UPDATE);
        let done = frames
            .iter()
            .any(|f| matches!(f.data, FrameData::Done | FrameData::Failed(_)));
        kept.extend(frames);
        if done {
            break;
        }
        // One frame at 60 fps (polling every 0.2 ms woke a third thread 5,000
        // times a second beside the two computing).
        std::thread::sleep(Duration::from_millis(16));
    }
    assert!(kept.iter().any(|f| matches!(f.data, FrameData::Done)), "run failed");
}

/// The Python to run the PyTorch side with, and its script.
fn torch_script() -> (String, &'static str) {
    (
        std::env::var("TENSORCITY_PYTHON").unwrap_or_else(|_| "python3".into()),
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/benches/torch_gpt2.py"),
    )
}

/// The PyTorch script's median time, or why it was not measured.
fn pytorch(threads: usize, tokens: usize, runs: usize, mode: &str) -> Option<Duration> {
    let (python, script) = torch_script();
    let args = [
        script,
        &threads.to_string(),
        &tokens.to_string(),
        &runs.to_string(),
        mode,
    ];
    match std::process::Command::new(&python).args(args).output() {
        Ok(o) if o.status.success() => {
            let out = String::from_utf8_lossy(&o.stdout);
            if let Some(line) = out.lines().next() {
                println!("  ({line})");
            }
            let seconds = out
                .lines()
                .find_map(|l| l.strip_prefix("seconds "))
                .and_then(|s| s.trim().parse::<f64>().ok());
            if seconds.is_none() {
                println!("PyTorch: unexpected output {out}");
            }
            seconds.map(Duration::from_secs_f64)
        }
        Ok(o) => {
            println!(
                "PyTorch: not measured ({python} with torch + transformers is needed; set TENSORCITY_PYTHON): {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
            None
        }
        Err(e) => {
            println!("PyTorch: not measured ({python}: {e})");
            None
        }
    }
}

/// The embedded model generating `n` tokens greedily after the README's
/// prompt, run inline (as the browser build runs it): the native side of the
/// browser-vs-native tokens/s comparison (the page reports its own run on
/// `<body data-last-run>`, `?prompt=...&generate=N`).
fn embedded_generation(n: usize) {
    use tensorcity::inference::ModelFiles;
    use tensorcity::inference::stream::ActivationSource;
    let files = ModelFiles::embedded().expect("embedded files");
    let prompt = files.tokenize("ROMEO: But soft, what light").expect("tokenize");
    let model = Arc::new(files.load().expect("embedded model"));
    let mut runner = LocalRunner {
        model,
        files: Some(Arc::new(files)),
    };
    let request = RunRequest {
        tokens: prompt.clone(),
        new_tokens: n,
        decoding: Decoding::Greedy,
        text: None,
    };
    let t = median(3, || {
        runner.run(1, &request, &mut |_| true);
    });
    println!(
        "embedded model, {} prompt + {n} generated tokens (inline, all taps) {:>8.1} ms  {:>8.1} generated tokens/s",
        prompt.len(),
        t.as_secs_f64() * 1e3,
        n as f64 / t.as_secs_f64()
    );
}

/// Runs [`bf16_child`] in a child process and prints its report.
fn bf16_in_child(id: &str, dtype: &str) {
    let Ok(exe) = std::env::current_exe() else { return };
    match std::process::Command::new(exe)
        .args(["--bf16-child", id, "--dtype", dtype])
        .output()
    {
        Ok(o) if o.status.success() => print!("{}", String::from_utf8_lossy(&o.stdout)),
        Ok(o) => println!(
            "bf16 {id}: failed: {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => println!("bf16 {id}: not measured ({e})"),
    }
}

/// A random model of a catalogue entry's shape, its weights in `dtype` (bf16,
/// f32, or q4k: matrices quantized to Q4_K as a GGUF's are, the rest f32): a
/// 16-token prompt and 16 generated tokens with every tap kept; tokens/s and
/// peak RSS.
fn bf16_child(id: &str, dtype: &str) {
    let entry = tensorcity::arch::catalogue_entry(id).expect("a catalogue id");
    let config = ModelConfig::from_json(entry.config_json.as_bytes(), id).expect("config");
    let start = Instant::now();
    let model = match dtype {
        "q4k" => tensorcity::inference::random::random_quantized_model(&config, candle_core::quantized::GgmlDType::Q4K),
        "f32" => tensorcity::inference::random::random_model(&config, DType::F32),
        _ => tensorcity::inference::random::random_model(&config, DType::BF16),
    }
    .expect("model");
    let built = start.elapsed();
    let rss_model = peak_rss_mib();
    let prompt: Vec<u32> = (0..16u32).map(|i| (i * 7919 + 13) % 32000).collect();
    let start = Instant::now();
    let capture = model.generate(&prompt, 16, Decoding::Greedy).expect("generate");
    let t = start.elapsed();
    println!(
        "{dtype:4} {id}-shaped random model ({} blocks): 16 prompt + 16 generated tokens in {:.1} s \
         ({:.2} tokens/s), peak RSS {:.0} MiB (weights built in {:.0} s, RSS then {:.0} MiB)",
        model.num_layers(),
        t.as_secs_f64(),
        (capture.tokens.len() - prompt.len()) as f64 / t.as_secs_f64(),
        peak_rss_mib(),
        built.as_secs_f64(),
        rss_model,
    );
}

/// The PyTorch script serving one forward per request (`serve` mode), so its
/// passes interleave with tensorcity's.
struct TorchForward {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl TorchForward {
    fn start(threads: usize, tokens: usize) -> Option<TorchForward> {
        use std::io::BufRead;
        let (python, script) = torch_script();
        let spawned = std::process::Command::new(&python)
            .args([script, &threads.to_string(), &tokens.to_string(), "1", "serve"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                println!("PyTorch: not measured ({python}: {e})");
                return None;
            }
        };
        let mut lines = std::io::BufReader::new(child.stdout.take()?).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if line == "ready" {
                return Some(TorchForward { child, lines });
            }
            println!("  ({line})");
        }
        println!("PyTorch: not measured ({python} with torch + transformers is needed; set TENSORCITY_PYTHON)");
        let _ = child.kill();
        None
    }

    /// One forward, after a pause for the other side's threads to go idle.
    fn forward(&mut self) -> Option<Duration> {
        use std::io::Write;
        std::thread::sleep(Duration::from_millis(200));
        let stdin = self.child.stdin.as_mut()?;
        writeln!(stdin, "forward").ok()?;
        stdin.flush().ok()?;
        let line = self.lines.next()?.ok()?;
        let seconds = line.strip_prefix("seconds ")?.trim().parse::<f64>().ok()?;
        // And for torch's to go idle before tensorcity's next pass.
        std::thread::sleep(Duration::from_millis(200));
        Some(Duration::from_secs_f64(seconds))
    }
}

impl Drop for TorchForward {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median_of(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    median_of((0..runs.max(1)).map(|_| timed(&mut f)).collect())
}

/// One line: time and tokens/s, and the ratio to the line it is compared with.
fn report(what: &str, tokens: usize, t: Duration, against: Option<(&str, Duration)>) {
    let rel = against.map_or(String::new(), |(name, b)| {
        format!("  ({:.2}x the time of {name})", t.as_secs_f64() / b.as_secs_f64())
    });
    println!(
        "  {what:<66} {:>8.1} ms  {:>8.1} tokens/s{rel}",
        t.as_secs_f64() * 1e3,
        tokens as f64 / t.as_secs_f64()
    );
}
