//! The fuzz targets' committed corpora and crash inputs (`tests/fuzz/corpus/T`,
//! `tests/fuzz/regressions/T`), replayed on stable through the same entry
//! points the libFuzzer binaries call (`tests/fuzz/src/lib.rs`), so a
//! reintroduced crash fails CI in seconds without a nightly toolchain.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod entry;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Each input runs in the time a fuzzer allows one (its `-timeout`) many times over.
const PER_INPUT: Duration = Duration::from_secs(10);

#[test]
fn every_committed_fuzz_input_replays_without_a_panic() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, target) in entry::TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "no committed corpus for the fuzz target `{name}` (tests/fuzz/corpus/{name})"
        );
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        for file in corpus.iter().chain(&regressions) {
            let Ok(bytes) = std::fs::read(file) else {
                failures.push(format!("{}: unreadable", file.display()));
                continue;
            };
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(|| target(&bytes));
            if outcome.is_err() {
                failures.push(format!("{name}: {} panicked", file.display()));
            } else if started.elapsed() > PER_INPUT {
                failures.push(format!("{name}: {} took {:?}", file.display(), started.elapsed()));
            }
            replayed += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Writes the seed inputs of every target from the fixtures and the built-in
/// engine: `cargo test --test integration write_fuzz_seeds -- --ignored`.
/// The fuzzers grow the corpora from these (`cargo fuzz cmin` keeps them small).
#[test]
#[ignore = "writes tests/fuzz/corpus/*/seed-*; run by hand before fuzzing"]
fn write_fuzz_seeds() {
    use tensorcity::engine::protocol;
    use tensorcity::inference::stream::{
        ActivationFrame, ActivationSource, Decoding, FrameData, LocalRunner, RunRequest,
    };
    use tensorcity::inference::{Model, wire};

    let fixtures = crate::support::fixtures();
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let read = |rel: &str| std::fs::read(fixtures.join(rel)).unwrap();
    let header_of = |bytes: &[u8]| {
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        bytes[..8 + len].to_vec()
    };

    // Files: safetensors headers and a whole small file, configs, GGUF
    // headers (their first 64 KiB), PyTorch checkpoints and their pickles.
    for family in [
        "gpt2-tiny",
        "llama-tiny",
        "bert-tiny",
        "mixtral-tiny",
        "gemma2-tiny",
        "phi3-tiny",
    ] {
        let model = read(&format!("inference/{family}/model.safetensors"));
        write("safetensors_header", family, &header_of(&model));
        write("config_json", family, &read(&format!("inference/{family}/config.json")));
    }
    write(
        "safetensors_header",
        "whole",
        &read("inference/gpt2-tiny/generate.safetensors"),
    );
    for gguf in [
        "tokenizer-gpt2.gguf",
        "tokenizer-llama-bpe.gguf",
        "llama64-Q4_0.gguf",
        "families/mixtral.gguf",
        "families/gemma2.gguf",
    ] {
        let bytes = read(&format!("gguf/{gguf}"));
        write("gguf_header", &gguf.replace('/', "-"), &bytes[..bytes.len().min(65536)]);
    }
    let index = serde_json::json!({"metadata": {"total_size": 10}, "weight_map": {
        "a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}});
    write("shard_index", "two-shards", index.to_string().as_bytes());
    write(
        "shard_index",
        "traversal",
        br#"{"weight_map": {"a": "../../etc/passwd"}}"#,
    );
    for entry in std::fs::read_dir(fixtures.join("torch"))
        .unwrap()
        .filter_map(Result::ok)
    {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        let bytes = if path.is_file() {
            std::fs::read(&path).unwrap()
        } else {
            Vec::new()
        };
        if bytes.len() < 65536 && bytes.starts_with(b"PK") {
            write("torch_checkpoint", &name, &bytes);
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
            for i in 0..zip.len() {
                let mut member = zip.by_index(i).unwrap();
                if member.name().is_ok_and(|n| n.ends_with("data.pkl")) {
                    let mut pkl = Vec::new();
                    std::io::Read::read_to_end(&mut member, &mut pkl).unwrap();
                    write("pickle", &name, &pkl);
                }
            }
        }
    }

    // Streams: the built-in engine's real frames of a run with generation, as
    // the worker wire and the engine protocol carry them.
    let model = Model::load(&fixtures.join("inference/gpt2-tiny")).unwrap();
    let mut runner = LocalRunner {
        model: std::sync::Arc::new(model),
        files: None,
    };
    let mut frames: Vec<ActivationFrame> = Vec::new();
    let request = RunRequest {
        tokens: vec![1, 2, 3],
        new_tokens: 2,
        decoding: Decoding::Greedy,
        text: None,
    };
    runner.run(1, &request, &mut |f| {
        frames.push(f);
        true
    });
    frames.push(ActivationFrame {
        run: 1,
        data: FrameData::Failed("the engine ran out of memory".into()),
    });
    write("worker_wire", "request", &wire::encode_request(1, &request));
    let mut stream = Vec::new();
    let push = |stream: &mut Vec<u8>, message: &[u8]| {
        stream.extend((message.len() as u16).to_le_bytes());
        stream.extend(message);
    };
    let config: serde_json::Value = serde_json::from_slice(&read("inference/gpt2-tiny/config.json")).unwrap();
    let hello = protocol::Hello {
        protocol: protocol::PROTOCOL_VERSION,
        engine: "fuzz seed".into(),
        model: protocol::HelloModel {
            name: "gpt2-tiny".into(),
            revision: None,
            config,
            tensors: vec![protocol::HelloTensor {
                name: "wte.weight".into(),
                shape: vec![101, 32],
                dtype: "F32".into(),
            }],
        },
        dims: protocol::Dims {
            blocks: 2,
            heads: 4,
            hidden: 32,
            vocab: 101,
            context: 64,
            causal: true,
        },
        can: protocol::Can {
            text: true,
            generate: true,
            taps: ["hidden", "attention", "mlp", "logits", "lens"]
                .map(String::from)
                .to_vec(),
            dtypes: vec!["f32".into(), "f16".into()],
        },
    };
    push(&mut stream, &protocol::encode_hello(&hello));
    push(
        &mut stream,
        &protocol::encode_texts(1, &[(1, "a".into()), (2, " b".into())]),
    );
    for (i, frame) in frames.iter().enumerate() {
        let bytes = wire::encode_frame(frame).unwrap();
        if i < 12 || matches!(frame.data, FrameData::Generated { .. } | FrameData::Failed(_)) {
            write("worker_wire", &format!("frame-{i}"), &bytes);
        }
        push(&mut stream, &protocol::encode_frame(frame, i % 2 == 0).unwrap());
    }
    write("engine_stream", "gpt2-tiny-run", &stream);

    // Structure-aware targets: any bytes steer the generators.
    for target in ["safetensors_near_valid", "gguf_near_valid"] {
        write(target, "zeros", &[0; 64]);
        write(target, "ramp", &(0..=255).collect::<Vec<u8>>());
        write(target, "ones", &[0xff; 256]);
    }

    // Text inputs.
    write(
        "camera_path",
        "two-keyframes",
        b"(keyframes: [(time: 0.0, position: (0.0, 2.0, 10.0), look_at: (0.0, 1.0, 0.0)), (time: 2.0, position: (10.0, 5.0, 0.0), look_at: (0.0, 3.0, 0.0), layout: Some(City), select: Some(2))])",
    );
    write(
        "frame_script",
        "every-command",
        b"wait-ready\nframes 3 # c\norbit 10 -5\nzoom 0.5\nfocus h.0.attn.c_attn.weight\nlayout floors\nhide norm\ncolor rms\nwait-stats\nprompt ROMEO:\\nBut\ngenerate 5 ROMEO:\nwait-run\nselect 2\nspeed 0.5\nplayhead 2.5\ntokens all\narcs-layer 3\nthreshold 0.3\npca3d 4\npca3d off\nrecord\nshot 2\nscreenshot a.png\nexit\n",
    );
    write(
        "url_state",
        "everything",
        b"?model=openai-community%2Fgpt2&layout=city&prompt=ROMEO%3A+But+soft&generate=20&engine=ws%3A%2F%2F127.0.0.1%3A7878",
    );
    write(
        "url_state",
        "hub-revision",
        b"?model=meta-llama/Llama-3.2-1B@main&layout=floors",
    );
}
