//! The web bundle in real headless Chromium (SwiftShader WebGL2, driven in
//! real time by `web/test/probe.mjs`), served from a local static server: the page reaches its first frame, the canvas shows
//! the trunk's kind colours, the console has no errors, and `?model=` loads
//! that catalogue model. Needs a built bundle: `.ci/test` runs `web/build.sh`
//! and points `TENSORCITY_WEB_DIST` at it (the tests are
//! `#[ignore]`d, so a plain `cargo test` lists them as ignored instead of
//! building the wasm; without the variable an explicitly run test fails).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// `python3 -m http.server` on a free loopback port (it serves .js and .wasm
/// with the MIME types browsers require for modules).
fn serve(dir: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Server(child, port)
}

/// What `web/test/probe.mjs` saw.
#[derive(Debug)]
struct Probe {
    first_frame_ms: Option<f64>,
    title: String,
    error: Option<String>,
    console_errors: Vec<String>,
    /// With `WAIT_RUN`: `<body data-last-run>`, `data-last-compute`, frames
    /// drawn during the run and the longest gap between them.
    last_run: Option<String>,
    last_compute: Option<String>,
    run_frames: u64,
    run_max_gap_ms: u64,
    /// With `CANCEL_WITH`: tokens the cancelled run still generated afterwards.
    stale_tokens: u64,
}

fn probe(url: &str, shot: &Path) -> Probe {
    probe_with(url, shot, &[])
}

/// `options`: the probe's environment (`DOWNLOAD_DIR`, `UPLOAD`, `DROP`, `WAIT_RUN`,
/// `CANCEL_WITH`; see probe.mjs).
fn probe_with(url: &str, shot: &Path, options: &[(&str, &Path)]) -> Probe {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("node");
    cmd.arg(root.join("web/test/probe.mjs")).arg(url).arg(shot);
    for (key, value) in options {
        cmd.env(key, value);
    }
    let out = cmd.output().expect("node is installed by .ci/setup");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("the probe printed nothing: {}", String::from_utf8_lossy(&out.stderr)));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    Probe {
        first_frame_ms: v["firstFrame"].as_str().and_then(|s| s.parse().ok()),
        title: v["title"].as_str().unwrap_or("").to_string(),
        error: v["error"].as_str().map(str::to_string),
        console_errors: v["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        last_run: v["lastRun"].as_str().map(str::to_string),
        last_compute: v["lastCompute"].as_str().map(str::to_string),
        run_frames: v["runFrames"].as_u64().unwrap_or(0),
        run_max_gap_ms: v["runMaxGapMs"].as_u64().unwrap_or(0),
        stale_tokens: v["staleTokens"].as_u64().unwrap_or(0),
    }
}

/// The bundle's folder. An ignored test run on purpose without one fails: it
/// never passes without having looked at the page.
fn dist() -> PathBuf {
    match std::env::var_os("TENSORCITY_WEB_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => panic!("TENSORCITY_WEB_DIST is not set: build the bundle with web/build.sh DIR and point it there"),
    }
}

#[test]
#[ignore = "needs the web bundle (web/build.sh) in TENSORCITY_WEB_DIST and Chromium; .ci/test runs it"]
fn the_page_renders_the_trunk_in_headless_chromium() {
    let dist = dist();
    assert!(dist.join("index.html").is_file(), "{}: no bundle", dist.display());
    let server = serve(&dist);
    let tmp = tempfile::tempdir().unwrap();
    let shot = tmp.path().join("page.png");
    let url = format!("http://127.0.0.1:{}/index.html", server.1);
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let page = probe_with(&url, &shot, &[("DOWNLOAD_DIR", &downloads)]);
    // The page's PNG button downloads the window as a PNG.
    let png = image::open(downloads.join("tensorcity.png")).expect("the screenshot download");
    assert_eq!((png.width(), png.height()), (1280, 720));
    assert!(
        page.console_errors.is_empty(),
        "console errors: {:#?}",
        page.console_errors
    );
    assert_eq!(page.error, None);
    let first = page
        .first_frame_ms
        .unwrap_or_else(|| panic!("no first frame: {page:?}"));
    eprintln!("first frame {first:.0} ms after navigation (headless Chromium, SwiftShader)");
    assert_eq!(
        page.title, "tensorcity — tensorcity/shakespeare",
        "the embedded model loads by default"
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    std::fs::copy(&shot, std::env::temp_dir().join("tensorcity-web-page.png")).ok();
    // The trunk's kinds: MLP yellows/oranges and attention blues, saturated, both.
    let count = |lo: f32, hi: f32| {
        img.pixels()
            .filter(|p| {
                let (h, s) = crate::rendering::hue_sat(&p.0);
                s > 0.5 && (lo..hi).contains(&h)
            })
            .count()
    };
    let (mlp, attention) = (count(30.0, 60.0), count(190.0, 215.0));
    assert!(
        mlp > 200 && attention > 200,
        "kind colours: {mlp} MLP, {attention} attention pixels: the page did not draw the trunk"
    );

    // `?model=gpt2` loads that catalogue model (the page title follows the model).
    let gpt2 = probe(&format!("{url}?model=gpt2&layout=floors"), &tmp.path().join("gpt2.png"));
    assert_eq!(gpt2.title, "tensorcity — gpt2", "{gpt2:?}");
    assert!(gpt2.console_errors.is_empty(), "{gpt2:?}");
}

/// The page's Hub path against a local Hub (Range requests, CORS): a model
/// outside the catalogue opens from its header alone; a corrupt file and an
/// unknown id each show an error (also on `<body data-error>`) while the app
/// keeps running with its model.
#[test]
#[ignore = "needs the web bundle (web/build.sh) in TENSORCITY_WEB_DIST and Chromium; .ci/test runs it"]
fn the_page_reads_hub_headers_with_range_requests() {
    let dist = dist();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    crate::support::write_tiny_gpt2(&model, 1);
    let mut repos = std::collections::HashMap::new();
    repos.insert("test/tiny".to_string(), crate::hub::repo_files(&model));
    let mut corrupt = std::collections::HashMap::new();
    corrupt.insert(
        "model.safetensors".to_string(),
        b"this is not a safetensors file at all".to_vec(),
    );
    repos.insert("test/corrupt".to_string(), corrupt);
    let hub = crate::hub::FakeHub::start(repos, Vec::new());
    let server = serve(&dist);
    let page = |id: &str| format!("http://127.0.0.1:{}/index.html?model={id}&hub={}", server.1, hub.url);
    let shot = tmp.path().join("hub.png");

    let tiny = probe(&page("test/tiny"), &shot);
    assert_eq!(tiny.title, "tensorcity — test/tiny", "{tiny:?}");
    assert_eq!(tiny.error, None);
    let weights: Vec<String> = hub
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET") && r.contains("model.safetensors"))
        .collect();
    assert!(
        !weights.is_empty() && weights.iter().all(|r| r.contains("bytes=")),
        "only ranged reads of the weights file: {weights:?}"
    );

    let bad = probe(&page("test/corrupt"), &shot);
    assert!(
        bad.error.as_deref().is_some_and(|e| e.contains("test/corrupt")),
        "corrupt file: {bad:?}"
    );
    assert_eq!(
        bad.title, "tensorcity — tensorcity/shakespeare",
        "the app keeps its model"
    );
    let missing = probe(&page("test/nothing-here"), &shot);
    assert!(
        missing
            .error
            .as_deref()
            .is_some_and(|e| e.contains("test/nothing-here")),
        "unknown id: {missing:?}"
    );
}

/// Local files in the page, reading only the header (`Blob.slice`): a model
/// chosen in the *Open .safetensors…* picker shows; a dropped file that is not
/// safetensors, and a truncated one, each show an error while the app keeps
/// the model it has.
#[test]
#[ignore = "needs the web bundle (web/build.sh) in TENSORCITY_WEB_DIST and Chromium; .ci/test runs it"]
fn the_page_opens_local_files_by_picker_and_drop() {
    let dist = dist();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    crate::support::write_tiny_gpt2(&model, 1);
    let picked = tmp.path().join("tiny-gpt2.safetensors");
    std::fs::copy(model.join("model.safetensors"), &picked).unwrap();
    let text = tmp.path().join("notes.safetensors");
    std::fs::write(&text, "these are notes, not tensors").unwrap();
    let whole = std::fs::read(&picked).unwrap();
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let server = serve(&dist);
    let url = format!("http://127.0.0.1:{}/index.html", server.1);
    let shot = tmp.path().join("file.png");

    // Picked, then a text file dropped on the page: the picked model stays, with an error.
    let page = probe_with(&url, &shot, &[("UPLOAD", &picked), ("DROP", &text)]);
    assert_eq!(page.title, "tensorcity — tiny-gpt2.safetensors", "{page:?}");
    assert!(
        page.error.as_deref().is_some_and(|e| e.contains("notes.safetensors")),
        "a text file: {page:?}"
    );
    assert!(page.console_errors.is_empty(), "{page:?}");

    let cut = probe_with(&url, &shot, &[("UPLOAD", &truncated)]);
    assert!(
        cut.error
            .as_deref()
            .is_some_and(|e| e.contains("truncated.safetensors")),
        "a truncated file: {cut:?}"
    );
    assert_eq!(
        cut.title, "tensorcity — tensorcity/shakespeare",
        "the app keeps its model"
    );

    // A 0-byte file: the one line, nothing else.
    let empty = tmp.path().join("x.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let page = probe_with(&url, &shot, &[("UPLOAD", &empty)]);
    assert_eq!(
        page.error.as_deref(),
        Some(
            "x.safetensors: the file is empty; expected a safetensors file (8-byte header length, JSON header, tensor data)"
        ),
        "{page:?}"
    );
    // A 20 GB file (sparse: the tiny model's header and data, then a hole):
    // only its header is read, and the model is shown.
    let huge = tmp.path().join("huge.safetensors");
    std::fs::copy(&picked, &huge).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(20 << 30)
        .unwrap();
    let page = probe_with(&url, &shot, &[("UPLOAD", &huge)]);
    assert_eq!(page.title, "tensorcity — huge.safetensors", "{page:?}");
    assert!(page.console_errors.is_empty(), "{page:?}");
    // A folder dragged onto the page.
    let page = probe_with(&url, &shot, &[("DROP_PATH", &model)]);
    assert_eq!(
        page.error.as_deref(),
        Some("tiny is a folder; drop its .safetensors file (for a sharded model, open its Hugging Face id)"),
        "{page:?}"
    );
}

/// The embedded model runs in the browser from the URL's prompt, in the
/// inference Web Worker (which alone sets `data-last-compute`), while the page
/// keeps drawing. Prints the timings the README reports.
#[test]
#[ignore = "needs the web bundle (web/build.sh) in TENSORCITY_WEB_DIST and Chromium; .ci/test runs it"]
fn the_page_runs_the_embedded_model_in_a_worker() {
    let dist = dist();
    let server = serve(&dist);
    let tmp = tempfile::tempdir().unwrap();
    let url = format!(
        "http://127.0.0.1:{}/index.html?prompt=ROMEO%3A%20But%20soft%2C%20what%20light&generate=32&layout=city",
        server.1
    );
    let shot = tmp.path().join("run.png");
    let page = probe_with(&url, &shot, &[("WAIT_RUN", Path::new("1"))]);
    assert!(page.console_errors.is_empty(), "{page:?}");
    assert_eq!(page.error, None);
    let run = page
        .last_run
        .clone()
        .unwrap_or_else(|| panic!("the run did not finish: {page:?}"));
    assert!(run.contains("+ 32 generated tokens"), "{run}");
    let compute = page
        .last_compute
        .clone()
        .unwrap_or_else(|| panic!("the run did not go through the Web Worker: {page:?}"));
    eprintln!(
        "browser run: {run}; worker {compute}; the page drew {} frames meanwhile, longest gap {} ms",
        page.run_frames, page.run_max_gap_ms
    );
    std::fs::copy(&shot, std::env::temp_dir().join("tensorcity-web-run.png")).ok();
}

/// A newer prompt (the page's `tensorcityRun`) cancels a long generation in
/// the Web Worker between forward passes: the new run finishes, and the old
/// one stops within a pass or so of the request instead of generating its
/// remaining ~900 tokens. The worker counts the tokens it generated after the
/// page posted the newer request (by the clock they share) and the page puts
/// the count on `data-stale-tokens`. (Counted on the page, as before, it
/// included tokens already queued behind a slow frame: 53 and 115 on loaded
/// machines.)
#[test]
#[ignore = "needs the web bundle (web/build.sh) in TENSORCITY_WEB_DIST and Chromium; .ci/test runs it"]
fn a_newer_prompt_cancels_the_running_generation() {
    let dist = dist();
    let server = serve(&dist);
    let tmp = tempfile::tempdir().unwrap();
    // Long enough that the newer prompt (1.5 s in, later when the machine is
    // busy) always arrives mid-run: 200 tokens once finished in 3.1 s, before
    // a loaded CI machine delivered it.
    let url = format!("http://127.0.0.1:{}/index.html?prompt=ROMEO%3A&generate=1000", server.1);
    let page = probe_with(
        &url,
        &tmp.path().join("cancel.png"),
        &[("WAIT_RUN", Path::new("1")), ("CANCEL_WITH", Path::new("JULIET:"))],
    );
    assert!(page.console_errors.is_empty(), "{page:?}");
    let run = page
        .last_run
        .clone()
        .unwrap_or_else(|| panic!("no run finished: {page:?}"));
    assert!(
        run.contains("+ 0 generated tokens"),
        "the newer prompt's run finishes: {run}"
    );
    assert!(
        page.stale_tokens < 10,
        "the cancelled run kept generating: {} tokens after the newer prompt",
        page.stale_tokens
    );
    eprintln!(
        "cancelled: the older run sent {} tokens after the newer prompt; the newer run: {run}, worker {:?}",
        page.stale_tokens, page.last_compute
    );
}

/// `?engine=ws://…`: the page reads the architecture from a Python engine's
/// handshake, the URL's prompt runs there (tokenized by the engine) and the
/// city shows the run.
#[test]
#[ignore = "needs the web bundle, Chromium and the engine's Python environment; .ci/test runs it"]
fn the_page_runs_prompts_on_a_python_engine() {
    let engine = crate::engine::PyEngine::serve(&crate::support::minilm(), &[]);
    let dist = dist();
    let server = serve(&dist);
    let tmp = tempfile::tempdir().unwrap();
    let url = format!(
        "http://127.0.0.1:{}/index.html?engine={}&layout=city&prompt=The%20quick%20brown%20fox%20jumps",
        server.1, engine.url
    );
    let shot = tmp.path().join("engine.png");
    let page = probe_with(&url, &shot, &[("WAIT_RUN", Path::new("1"))]);
    assert!(page.console_errors.is_empty(), "{page:?}");
    assert_eq!(page.error, None);
    assert!(page.title.contains("minilm"), "{page:?}");
    let run = page
        .last_run
        .clone()
        .unwrap_or_else(|| panic!("the remote run did not finish: {page:?}"));
    // [CLS] the quick brown fox jumps [SEP]
    assert!(run.starts_with("7 prompt + 0 generated tokens"), "{run}");
    std::fs::copy(&shot, std::env::temp_dir().join("tensorcity-web-engine.png")).ok();
}
