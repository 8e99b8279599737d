//! Bring-your-own-engine: the Python engine package (real transformers,
//! TransformerLens and nnsight in the cached virtual environment .ci/setup
//! makes) streaming to `tensorcity capture --engine`, compared with
//! transformers' own outputs and the built-in engine; and hostile engines
//! written here, each answered with its message and no panic.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use tensorcity::engine::protocol::{self, Dims, Hello, HelloModel, HelloTensor};
use tensorcity::inference::Tap;
use tensorcity::inference::stream::{ActivationFrame, Decoding, FrameData, RunRequest};

use crate::support::{fixtures, max_abs_diff, minilm};

/// The Python of the engine's virtual environment (TENSORCITY_PYTHON, or the cache .ci/setup fills).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TENSORCITY_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let p = Path::new(&home).join(".cache/tensorcity/venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run .ci/setup (it builds the engine's virtual environment)",
        p.display()
    );
    p
}

/// A running Python engine; killed on drop.
pub(crate) struct PyEngine {
    child: Child,
    pub(crate) url: String,
}

impl PyEngine {
    fn start(args: &[&str]) -> PyEngine {
        let mut child = Command::new(python())
            .args(args)
            .env("PYTHONPATH", Path::new(env!("CARGO_MANIFEST_DIR")).join("src/python"))
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Python engine");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on ") {
                    let _ = tx.send(Ok(line[at + 13..].trim().to_string()));
                } else {
                    let _ = tx.send(Err(line));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut log = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok(url)) => return PyEngine { child, url },
                Ok(Err(line)) => log.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("the engine did not start: {}", log.join("\n"));
                }
            }
        }
    }

    pub(crate) fn serve(model: &Path, extra: &[&str]) -> PyEngine {
        let model = model.to_str().unwrap();
        let mut args = vec!["-m", "tensorcity_stream", "serve", model, "--port", "0"];
        args.extend_from_slice(extra);
        PyEngine::start(&args)
    }
}

impl Drop for PyEngine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// Every tensor of `expected` is in `got` within `tol` (tokens exactly).
fn assert_same(what: &str, got: &HashMap<String, Tensor>, expected: &HashMap<String, Tensor>, tol: f32) {
    for (name, want) in expected {
        let have = got.get(name).unwrap_or_else(|| panic!("{what}: `{name}` missing"));
        let d = max_abs_diff(have, want);
        assert!(d <= tol, "{what}: `{name}` differs by {d}");
    }
}

fn capture_cli(args: &[&str], out: &Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .arg("capture")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

const TOKENS: &str = "5,17,3,42,9,28,61,7,33,12,50,2";

#[test]
#[ignore = "needs the engine's Python environment (.ci/setup)"]
fn python_engine_equals_transformers_and_the_builtin_engine() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["gpt2-tiny", "llama-tiny"] {
        let folder = fixtures().join("inference").join(name);
        let engine = PyEngine::serve(&folder, &[]);
        let remote = dir.path().join(format!("{name}-remote.safetensors"));
        let local = dir.path().join(format!("{name}-local.safetensors"));
        let (ok, err) = capture_cli(&["--engine", &engine.url, "--token-ids", TOKENS], &remote);
        assert!(ok, "{err}");
        assert!(err.contains(&format!("from {name}")), "{err}");
        let (ok, err) = capture_cli(&[folder.to_str().unwrap(), "--token-ids", TOKENS], &local);
        assert!(ok, "{err}");
        let got = load(&remote);
        assert_same(name, &got, &load(&folder.join("reference.safetensors")), 1e-4);
        assert_same(name, &got, &load(&local), 1e-4);
        // 24 generated tokens over the engine (its KV cache, one row per step) equal the local run.
        let (remote, local) = (
            dir.path().join("g-remote.safetensors"),
            dir.path().join("g-local.safetensors"),
        );
        let prompt = "5,17,3,42,9,28";
        let (ok, err) = capture_cli(
            &["--engine", &engine.url, "--token-ids", prompt, "--generate", "24"],
            &remote,
        );
        assert!(ok, "{err}");
        let (ok, err) = capture_cli(
            &[folder.to_str().unwrap(), "--token-ids", prompt, "--generate", "24"],
            &local,
        );
        assert!(ok, "{err}");
        let (got, want) = (load(&remote), load(&local));
        assert_eq!(got["tokens"].dims(), &[30]);
        assert_same(&format!("{name} generation"), &got, &want, 1e-4);
        let generated = load(&folder.join("generate.safetensors"));
        assert_eq!(
            got["tokens"].to_vec1::<i64>().unwrap(),
            generated["tokens"].to_vec1::<i64>().unwrap(),
            "{name}: transformers' own generate picks these"
        );
        // A request the engine cannot read is answered for its run, and the engine keeps serving.
        let failed = raw_request(&engine.url, br#"{"run": 7, "tokens": [1, 2], "decoding": "beam"}"#);
        assert!(failed.contains("decoding 'beam'"), "{failed}");
        let failed = raw_request(&engine.url, br#"{"run": 8, "tokens": [1, 999]}"#);
        assert!(failed.contains("token id 999 is outside the vocabulary"), "{failed}");
    }
}

/// Sends one RUN body to an engine by hand; the message of the run's `failed` frame.
fn raw_request(url: &str, body: &[u8]) -> String {
    let (mut ws, _) = tungstenite::connect(url).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    let mut message = vec![protocol::RUN];
    message.extend_from_slice(body);
    ws.send(tungstenite::Message::Binary(message.into())).unwrap();
    loop {
        let tungstenite::Message::Binary(bytes) = ws.read().unwrap() else {
            continue;
        };
        if let Ok(protocol::EngineMessage::Frame(ActivationFrame {
            data: FrameData::Failed(m),
            ..
        })) = protocol::decode_engine_message(&bytes)
        {
            return m;
        }
    }
}

#[test]
#[ignore = "needs the engine's Python environment (.ci/setup) and MiniLM"]
fn python_engine_tokenizes_prompts_for_the_real_minilm() {
    let folder = minilm();
    let engine = PyEngine::serve(&folder, &[]);
    let dir = tempfile::tempdir().unwrap();
    let sentences: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("inference/minilm/sentences.json")).unwrap())
            .unwrap();
    for (i, text) in sentences.iter().enumerate() {
        let out = dir.path().join(format!("{i}.safetensors"));
        let (ok, err) = capture_cli(&["--engine", &engine.url, "--prompt", text], &out);
        assert!(ok, "{err}");
        let reference = load(&fixtures().join(format!("inference/minilm/sentence-{i}.safetensors")));
        assert_same("minilm", &load(&out), &reference, 1e-4);
    }
    // The architecture comes from the handshake: `info` draws it without any file.
    let o = Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .args(["info", "--engine", &engine.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("22,713,216") && text.contains("BERT"),
        "{text}"
    );
}

#[test]
#[ignore = "needs the engine's Python environment (.ci/setup)"]
fn transformer_lens_and_nnsight_adapters_equal_their_own_outputs() {
    let folder = fixtures().join("inference/gpt2-tiny");
    let dir = tempfile::tempdir().unwrap();
    let lens = PyEngine::serve(&folder, &["--adapter", "lens"]);
    let out = dir.path().join("lens.safetensors");
    let (ok, err) = capture_cli(&["--engine", &lens.url, "--token-ids", TOKENS], &out);
    assert!(ok, "{err}");
    assert_same(
        "lens",
        &load(&out),
        &load(&folder.join("lens-reference.safetensors")),
        1e-5,
    );
    drop(lens);
    let script = fixtures().join("engine/serve_nnsight.py");
    let nnsight = PyEngine::start(&[script.to_str().unwrap(), folder.to_str().unwrap(), "0"]);
    let out = dir.path().join("nnsight.safetensors");
    let (ok, err) = capture_cli(&["--engine", &nnsight.url, "--token-ids", TOKENS], &out);
    assert!(ok, "{err}");
    assert_same(
        "nnsight",
        &load(&out),
        &load(&folder.join("reference.safetensors")),
        1e-4,
    );
    // Its tokenizer runs --prompt (word-level: `t5` is token 5).
    let (ok, err) = capture_cli(&["--engine", &nnsight.url, "--prompt", "t5 t17 t3"], &out);
    assert!(ok, "{err}");
    assert_eq!(load(&out)["tokens"].to_vec1::<i64>().unwrap(), [5, 17, 3]);
}

// ---- hostile engines ---------------------------------------------------------

const DIMS: Dims = Dims {
    blocks: 2,
    heads: 2,
    hidden: 4,
    vocab: 16,
    context: 8,
    causal: true,
};

fn hello(version: u32) -> Vec<u8> {
    let hello = Hello {
        protocol: version,
        engine: "hostile test engine".into(),
        model: HelloModel {
            name: "tiny".into(),
            revision: None,
            config: serde_json::json!({"model_type": "gpt2", "n_layer": 2, "n_embd": 4, "n_head": 2, "vocab_size": 16}),
            tensors: vec![HelloTensor {
                name: "wte.weight".into(),
                shape: vec![16, 4],
                dtype: "F32".into(),
            }],
        },
        dims: DIMS,
        can: protocol::Can {
            text: true,
            generate: true,
            ..Default::default()
        },
    };
    protocol::encode_hello(&hello)
}

fn frame(run: u64, data: FrameData) -> Vec<u8> {
    protocol::encode_frame(&ActivationFrame { run, data }, false).unwrap()
}

fn hidden(index: usize, shape: &[usize]) -> FrameData {
    FrameData::Activation {
        tap: Tap::Hidden(index),
        from: 0,
        tensor: Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap(),
    }
}

type Socket = tungstenite::WebSocket<std::net::TcpStream>;

/// An engine on a free port that answers the first run request with `act`.
fn hostile(act: impl FnOnce(&mut Socket, u64) + Send + 'static, version: u32) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut act = Some(act);
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Ok(mut ws) = tungstenite::accept(stream) else {
                continue;
            };
            if ws.send(tungstenite::Message::Binary(hello(version).into())).is_err() {
                continue;
            }
            let run = loop {
                match ws.read() {
                    Ok(tungstenite::Message::Binary(b)) => {
                        if let Ok(protocol::ViewerMessage::Run(r)) = protocol::decode_viewer_message(&b) {
                            break Some(r.run);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break None,
                }
            };
            if let (Some(run), Some(act)) = (run, act.take()) {
                act(&mut ws, run);
            }
        }
    });
    url
}

fn request() -> RunRequest {
    RunRequest {
        tokens: vec![1, 2, 3],
        new_tokens: 0,
        decoding: Decoding::Greedy,
        text: None,
    }
}

fn run_against(url: &str, stall: Duration) -> Result<usize, String> {
    tensorcity::engine::capture(url, request(), stall)
        .map(|(c, _, _)| c.hidden.len())
        .map_err(|e| e.to_string())
}

fn send(ws: &mut Socket, bytes: Vec<u8>) {
    let _ = ws.send(tungstenite::Message::Binary(bytes.into()));
}

#[test]
fn a_well_behaved_test_engine_is_captured() {
    let url = hostile(
        |ws, run| {
            send(ws, frame(run, FrameData::Tokens(vec![1, 2, 3])));
            send(ws, frame(run, hidden(0, &[3, 4])));
            send(ws, frame(run, FrameData::Done));
        },
        1,
    );
    assert_eq!(run_against(&url, Duration::from_secs(10)), Ok(1));
}

#[test]
fn every_misbehaving_engine_gets_its_message() {
    type Act = Box<dyn FnOnce(&mut Socket, u64) + Send>;
    let tokens = |ws: &mut Socket, run| send(ws, frame(run, FrameData::Tokens(vec![1, 2, 3])));
    let cases: Vec<(&str, Act, &str)> = vec![
        (
            "wrong shape",
            Box::new(move |ws, run| {
                tokens(ws, run);
                send(ws, frame(run, hidden(0, &[3, 5])));
            }),
            "Hidden(0) tensor of shape [3, 5]",
        ),
        (
            "size beyond the data",
            Box::new(move |ws, run| {
                tokens(ws, run);
                let mut bytes = frame(run, hidden(0, &[3, 4]));
                bytes.truncate(bytes.len() - 4);
                send(ws, bytes);
            }),
            "with 44 data bytes",
        ),
        (
            "unknown kind",
            Box::new(move |ws, run| {
                let mut bytes = frame(run, FrameData::Done);
                bytes[9] = 99;
                send(ws, bytes);
            }),
            "an unknown frame kind 99",
        ),
        (
            "a run never requested",
            Box::new(move |ws, run| send(ws, frame(run + 5, FrameData::Done))),
            "which the viewer never requested",
        ),
        (
            "before the tokens",
            Box::new(move |ws, run| send(ws, frame(run, hidden(0, &[3, 4])))),
            "before the run's tokens",
        ),
        (
            "a text message",
            Box::new(move |ws, _| {
                let _ = ws.send(tungstenite::Message::Text("hello".into()));
            }),
            "sent a text message",
        ),
        (
            "drops mid-run",
            Box::new(move |ws, run| {
                tokens(ws, run);
                send(ws, frame(run, hidden(0, &[3, 4])));
                let _ = ws.get_mut().shutdown(std::net::Shutdown::Both);
            }),
            "reconnect from the model panel",
        ),
        (
            "stalls",
            Box::new(move |ws, run| {
                tokens(ws, run);
                std::thread::sleep(Duration::from_secs(4));
            }),
            "sent nothing for 1 s",
        ),
        (
            "a second handshake",
            Box::new(move |ws, _| send(ws, hello(1))),
            "a second handshake",
        ),
        (
            "a message claiming a terabyte",
            Box::new(move |ws, _| {
                // A raw binary WebSocket frame header with a 2^40-byte length, and no data.
                use std::io::Write;
                let _ = ws.get_mut().write_all(&[0x82, 127, 0, 0, 1, 0, 0, 0, 0, 0]);
                std::thread::sleep(Duration::from_secs(2));
            }),
            "over the limit",
        ),
    ];
    for (what, act, expected) in cases {
        let url = hostile(act, 1);
        let started = Instant::now();
        let message = run_against(&url, Duration::from_secs(1)).unwrap_err();
        if std::env::var_os("TENSORCITY_PRINT_BAD_INPUTS").is_some() {
            println!("ROW {what} || {message}");
        }
        assert!(message.contains(expected), "{what}: {message}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} took {:?}",
            started.elapsed()
        );
    }
    let old = hostile(|_, _| {}, 2);
    let message = run_against(&old, Duration::from_secs(1)).unwrap_err();
    assert!(
        message.contains("speaks protocol version 2, this viewer version 1"),
        "{message}"
    );
    let nobody = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let message = run_against(&format!("ws://{nobody}"), Duration::from_secs(1)).unwrap_err();
    assert!(message.contains("is the engine running"), "{message}");
}

#[test]
fn a_flooding_engine_waits_for_the_viewer() {
    // 1 MB frames as fast as the socket takes them, to a viewer that reads none:
    // the bounded channel and the socket buffers stop the engine.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = sent.clone();
    let url = hostile(
        move |ws, run| {
            send(ws, frame(run, FrameData::Tokens(vec![1, 2, 3])));
            let big = FrameData::Activation {
                tap: Tap::Mlp(0),
                from: 0,
                tensor: Tensor::zeros((3, 87_381), candle_core::DType::F32, &Device::Cpu).unwrap(),
            };
            let bytes = frame(run, big);
            for _ in 0..10_000 {
                if ws.send(tungstenite::Message::Binary(bytes.clone().into())).is_err() {
                    return;
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        },
        1,
    );
    let connection = tensorcity::engine::client::connect(&url).unwrap();
    let want = tensorcity::engine::client::viewer_wants(&connection.hello);
    let (mut worker, _) = tensorcity::engine::client::spawn(connection, want, Duration::from_secs(30));
    worker.request(request());
    std::thread::sleep(Duration::from_secs(3));
    let before = sent.load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    let after = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(after < 200, "the engine sent {after} MB to a viewer that read nothing");
    assert_eq!(before, after, "the engine kept sending");
    // Reading lets it go on.
    let frames = worker.drain(usize::MAX).len();
    std::thread::sleep(Duration::from_millis(500));
    assert!(frames > 0 && sent.load(std::sync::atomic::Ordering::SeqCst) > after);
}

#[test]
#[ignore = "needs the engine's Python environment (.ci/setup), MiniLM, Xvfb and ffmpeg"]
fn the_viewer_and_the_recorder_draw_a_remote_run() {
    let engine = PyEngine::serve(&minilm(), &[]);
    let tmp = tempfile::tempdir().unwrap();
    let shot = tmp.path().join("remote.png");
    // A prompt typed (by the frame script) into the viewer runs on the engine.
    crate::rendering::xvfb_view(
        tmp.path(),
        &["--engine".as_ref(), engine.url.as_ref()],
        (1200, 800),
        &format!(
            "wait-ready\nlayout city\nprompt The quick brown fox jumps over the lazy dog.\nwait-run\nframes 30\nscreenshot {}\nexit\n",
            shot.display()
        ),
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    let cells = img
        .pixels()
        .filter(|p| {
            let (h, s) = crate::rendering::hue_sat(&p.0);
            s > 0.4 && (140.0..200.0).contains(&h)
        })
        .count();
    assert!(
        cells > 3000,
        "only {cells} city-cell pixels: the remote run did not fill the city"
    );
    std::fs::copy(&shot, std::env::temp_dir().join("tensorcity-engine-view.png")).ok();
    // `record --engine --prompt`: a short clip of the remote run.
    let clip = tmp.path().join("remote.gif");
    let o = Command::new(env!("CARGO_BIN_EXE_tensorcity"))
        .args([
            "record",
            "--engine",
            &engine.url,
            "--prompt",
            "Attention heads copy tokens.",
        ])
        .args([
            "--layout",
            "city",
            "--duration",
            "1",
            "--fps",
            "4",
            "--size",
            "320x240",
            "--quiet",
            "--out",
        ])
        .arg(&clip)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::metadata(&clip).unwrap().len() > 1000);
}

/// Frames of one run on `worker` until its end, in order.
fn frames_of(worker: &mut tensorcity::inference::stream::Worker, request: RunRequest) -> Vec<FrameData> {
    worker.request(request);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        for f in worker.drain(usize::MAX) {
            let end = matches!(f.data, FrameData::Done | FrameData::Failed(_));
            out.push(f.data);
            if end {
                return out;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("the run did not end");
}

/// (layer, position) -> top-k, and the generated tokens, of a run's frames.
type Predictions = (
    std::collections::BTreeMap<(Option<usize>, usize), Vec<(u32, f32)>>,
    Vec<u32>,
);

fn predictions(frames: &[FrameData]) -> Predictions {
    let mut top = std::collections::BTreeMap::new();
    let mut generated = Vec::new();
    for f in frames {
        match f {
            FrameData::TopK { layer, from, top: rows } => {
                for (i, row) in rows.iter().enumerate() {
                    top.insert((*layer, from + i), row.clone());
                }
            }
            FrameData::Generated { id, .. } => generated.push(*id),
            FrameData::Failed(m) => panic!("{m}"),
            _ => {}
        }
    }
    (top, generated)
}

#[test]
#[ignore = "needs the engine's Python environment (.ci/setup)"]
fn the_engines_predictions_and_logit_lens_equal_the_builtin_engines() {
    use tensorcity::engine::client;
    for name in ["gpt2-tiny", "llama-tiny"] {
        let folder = fixtures().join("inference").join(name);
        let engine = PyEngine::serve(&folder, &[]);
        let request = || RunRequest {
            tokens: vec![5, 17, 3, 42, 9, 28],
            new_tokens: 3,
            decoding: Decoding::Greedy,
            text: None,
        };
        let connection = client::connect(&engine.url).unwrap();
        let want = client::viewer_wants(&connection.hello);
        let (mut remote, _) = client::spawn(connection, want, Duration::from_secs(60));
        let (remote_top, remote_generated) = predictions(&frames_of(&mut remote, request()));
        let files = tensorcity::inference::ModelFiles::from_dir(&folder).unwrap();
        let model = std::sync::Arc::new(files.load().unwrap());
        let mut local =
            tensorcity::inference::stream::Worker::spawn(Box::new(tensorcity::inference::stream::LocalRunner {
                model,
                files: None,
            }));
        let (local_top, local_generated) = predictions(&frames_of(&mut local, request()));
        assert_eq!(remote_generated, local_generated, "{name}");
        // The built-in engine sends the last position of each pass; the engine (as the viewer asks) every position.
        assert!(remote_top.len() > local_top.len(), "{name}");
        for (key, want) in &local_top {
            let got = remote_top
                .get(key)
                .unwrap_or_else(|| panic!("{name}: no top-k for {key:?}"));
            assert_eq!(
                got.iter().map(|e| e.0).collect::<Vec<_>>(),
                want.iter().map(|e| e.0).collect::<Vec<_>>(),
                "{name} {key:?}"
            );
            for (g, w) in got.iter().zip(want) {
                assert!((g.1 - w.1).abs() < 1e-4, "{name} {key:?}: {got:?} vs {want:?}");
            }
        }
        assert!(
            local_top.keys().any(|(layer, _)| layer.is_some()),
            "{name}: the lens was compared"
        );
    }
}
