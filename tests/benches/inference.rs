//! Inference benchmark (`cargo bench --bench inference`): tokens/s of one
//! forward pass over a 128-token prompt on a random GPT-2-small-sized model
//! (12 layers, 768 wide, 50,257 vocabulary, 124M parameters, f32 on the CPU):
//!
//! - without taps: the forward alone, every tapped tensor dropped at once;
//! - with all taps: the streaming runner on its worker thread — every hidden
//!   state, attention map, MLP activation and the logits sent over the bounded
//!   channel and kept by the consumer, plus final top-k at every position and
//!   the logit lens at the last one — timed from request to `Done`;
//! - PyTorch + transformers (eager, `output_hidden_states` +
//!   `output_attentions`, same thread count) through `tests/benches/torch_gpt2.py`
//!   when a Python with torch is available (`TENSORCITY_PYTHON`, else `python3`).
//!
//! Usage: `cargo bench --bench inference [-- --tokens 128 --runs 5]`; `-- --embedded
//! [--generate 32]` measures only the embedded model generating (inline).

use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::DType;
use tensorcity::arch::ModelConfig;
use tensorcity::inference::stream::{Decoding, FrameData, LocalRunner, RunRequest, Worker};

const GPT2_SMALL: &str = r#"{"model_type":"gpt2","n_layer":12,"n_embd":768,"n_head":12,
    "n_positions":1024,"vocab_size":50257,"layer_norm_epsilon":1e-5}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if args.iter().any(|a| a == "--embedded") {
        embedded_generation(arg("--generate", 32));
        return;
    }
    let (n_tokens, runs) = (arg("--tokens", 128), arg("--runs", 5));
    let threads = candle_core::utils::get_num_threads();
    let config = ModelConfig::from_json(GPT2_SMALL.as_bytes(), "gpt2-small").expect("config");
    let model = Arc::new(tensorcity::inference::random::random_model(&config, DType::F32).expect("model"));
    let tokens: Vec<u32> = (0..n_tokens as u32).map(|i| (i * 7919 + 13) % 50257).collect();

    println!("random GPT-2-small-sized model, {n_tokens}-token prompt, {threads} threads, median of {runs} runs");
    let bare = median(runs, || {
        model.run(&tokens, &mut |_, _| true).expect("forward");
    });
    report("tensorcity, no taps", n_tokens, bare, None);

    let mut worker = Worker::spawn(Box::new(LocalRunner {
        model: model.clone(),
        files: None,
    }));
    let tapped = median(runs, || {
        worker.request(RunRequest {
            tokens: tokens.clone(),
            new_tokens: 0,
            decoding: Decoding::Greedy,
        });
        let mut kept = Vec::new();
        loop {
            let frames = worker.drain(64);
            let done = frames
                .iter()
                .any(|f| matches!(f.data, FrameData::Done | FrameData::Failed(_)));
            kept.extend(frames);
            if done {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(kept.iter().any(|f| matches!(f.data, FrameData::Done)), "run failed");
    });
    report("tensorcity, all taps streamed", n_tokens, tapped, Some(bare));

    embedded_generation(arg("--generate", 32));

    let python = std::env::var("TENSORCITY_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/benches/torch_gpt2.py");
    match std::process::Command::new(&python)
        .args([script, &threads.to_string(), &n_tokens.to_string(), &runs.to_string()])
        .output()
    {
        Ok(o) if o.status.success() => {
            let out = String::from_utf8_lossy(&o.stdout);
            let seconds = out
                .lines()
                .find_map(|l| l.strip_prefix("seconds "))
                .and_then(|s| s.trim().parse::<f64>().ok());
            if let Some(line) = out.lines().next() {
                println!("  ({line})");
            }
            match seconds {
                Some(s) => report(
                    "PyTorch transformers, hidden states + attentions",
                    n_tokens,
                    Duration::from_secs_f64(s),
                    Some(tapped),
                ),
                None => println!("PyTorch: unexpected output {out}"),
            }
        }
        Ok(o) => println!(
            "PyTorch: not measured ({python} with torch + transformers is needed; set TENSORCITY_PYTHON): {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => println!("PyTorch: not measured ({python}: {e})"),
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

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn report(what: &str, tokens: usize, t: Duration, baseline: Option<Duration>) {
    let rel = baseline.map_or(String::new(), |b| {
        format!(
            "  ({:+.1}% time vs the line above)",
            (t.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0
        )
    });
    println!(
        "{what:<52} {:>8.1} ms  {:>8.1} tokens/s{rel}",
        t.as_secs_f64() * 1e3,
        tokens as f64 / t.as_secs_f64()
    );
}
