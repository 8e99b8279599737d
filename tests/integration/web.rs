//! The web bundle in real headless Chromium (SwiftShader WebGL2), served from
//! a local static server: the page reaches its first frame, the canvas shows
//! the trunk's kind colours, the console has no errors, and `?model=` loads
//! that catalogue model. Needs a built bundle: `.ci/test` runs `web/build.sh`
//! and points `TENSORCITY_WEB_DIST` at it (without it the test says so and
//! passes, so a plain `cargo test` does not need the 30-minute wasm build).

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

fn chromium(args: &[&str], url: &str) -> (String, String) {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--use-angle=swiftshader",
            "--enable-unsafe-swiftshader",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=60000",
            "--window-size=1280,720",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium is installed by .ci/setup");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Console lines that are errors: uncaught exceptions, Rust panics, console.error.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains("panicked")
                || l.contains("ERROR:CONSOLE")
                || l.contains("could not start")
        })
        .collect()
}

fn dist() -> Option<PathBuf> {
    let dir = std::env::var_os("TENSORCITY_WEB_DIST").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("TENSORCITY_WEB_DIST is not set: build the bundle with web/build.sh (CI does) to run this test");
    }
    dir
}

#[test]
fn the_page_renders_the_trunk_in_headless_chromium() {
    let Some(dist) = dist() else { return };
    assert!(dist.join("index.html").is_file(), "{}: no bundle", dist.display());
    let server = serve(&dist);
    let tmp = tempfile::tempdir().unwrap();
    let shot = tmp.path().join("page.png");
    let url = format!("http://127.0.0.1:{}/index.html", server.1);
    let (_, stderr) = chromium(&[&format!("--screenshot={}", shot.display())], &url);
    let errors = console_errors(&stderr);
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    let img = image::open(&shot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}): {stderr}"))
        .to_rgb8();
    std::fs::copy(&shot, std::env::temp_dir().join("tensorcity-web-page.png")).ok();
    // The trunk's kinds: MLP yellows/oranges and attention blues, saturated.
    let coloured = img
        .pixels()
        .filter(|p| {
            let (h, s) = crate::rendering::hue_sat(&p.0);
            s > 0.5 && ((30.0..60.0).contains(&h) || (190.0..215.0).contains(&h))
        })
        .count();
    assert!(
        coloured > 500,
        "only {coloured} kind-coloured pixels: the page did not draw the trunk"
    );

    // `?model=gpt2` loads that catalogue model (the page title follows the model).
    let (dom, _) = chromium(&["--dump-dom"], &format!("{url}?model=gpt2&layout=floors"));
    assert!(
        dom.contains("<title>tensorcity — gpt2</title>"),
        "title: {}",
        dom.lines().find(|l| l.contains("<title>")).unwrap_or("")
    );
}

/// The page's Hub path against a local Hub (Range requests, CORS): a model
/// outside the catalogue opens from its header alone; a corrupt file and an
/// unknown id each show an error (mirrored into `<body data-error>`) while
/// the app keeps running.
#[test]
fn the_page_reads_hub_headers_with_range_requests() {
    let Some(dist) = dist() else { return };
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

    let (dom, stderr) = chromium(&["--dump-dom"], &page("test/tiny"));
    assert!(
        dom.contains("<title>tensorcity — test/tiny</title>"),
        "{}\n{stderr}",
        dom.lines().find(|l| l.contains("<title>")).unwrap_or("")
    );
    let weights: Vec<String> = hub
        .requests()
        .into_iter()
        .filter(|r| r.contains("model.safetensors"))
        .collect();
    assert!(
        !weights.is_empty() && weights.iter().all(|r| r.contains("bytes=")),
        "{weights:?}"
    );

    let (dom, _) = chromium(&["--dump-dom"], &page("test/corrupt"));
    assert!(dom.contains("data-error="), "corrupt file: no error shown");
    assert!(
        dom.contains("<title>tensorcity — tensorcity/shakespeare</title>"),
        "the app keeps its model"
    );
    let (dom, _) = chromium(&["--dump-dom"], &page("test/nothing-here"));
    let error = dom
        .split("data-error=\"")
        .nth(1)
        .and_then(|e| e.split('"').next())
        .unwrap_or("");
    assert!(error.contains("test/nothing-here"), "unknown id: {error}");
}
