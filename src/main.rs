//! `tensorcity`: parse the command line and run it; errors become one line on
//! stderr and a non-zero exit code. In the browser: the viewer in the page.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = match tensorcity::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print as clap writes them.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return std::process::ExitCode::from(2);
        }
    };
    runtime_dir();
    // SAFETY: first thing in `main`, before any thread is started.
    unsafe { tensorcity::inference::count_threads_once() };
    match tensorcity::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A usage error as one line: clap's message and tips, without the usage
/// block it appends, and where to read more.
#[cfg(not(target_arch = "wasm32"))]
fn one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            line.push_str(if part.starts_with("tip:") { "; " } else { " " });
        }
        line.push_str(part);
    }
    format!("{line} (see --help)")
}

/// Without `XDG_RUNTIME_DIR` (containers, CI, ssh without a session) the
/// Wayland client library the Vulkan driver loads prints "XDG_RUNTIME_DIR is
/// invalid or not set" several times per command; like Qt, fall back to a
/// private `/tmp/runtime-UID` (mode 0700) so nothing is printed.
#[cfg(not(target_arch = "wasm32"))]
fn runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("runtime-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let private =
        std::fs::metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
    if private {
        // SAFETY: first thing in `main`, before any thread is started.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {
    tensorcity::web::run();
}

/// What the page (web/index.html) calls: thin exports of `tensorcity::web`
/// (exports are declared in the binary so the linker keeps them).
#[cfg(target_arch = "wasm32")]
mod exports {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    pub fn safetensors_header_length(prefix: &[u8], file_size: f64, name: &str) -> Result<f64, JsValue> {
        tensorcity::web::safetensors_header_length(prefix, file_size, name)
    }

    #[wasm_bindgen]
    pub fn open_safetensors_header(name: &str, header: &[u8], file_size: f64) {
        tensorcity::web::open_safetensors_header(name, header, file_size)
    }

    #[wasm_bindgen]
    pub fn is_catalogue_model(id: &str) -> bool {
        tensorcity::web::is_catalogue_model(id)
    }

    #[wasm_bindgen]
    pub fn request_screenshot() {
        tensorcity::web::request_screenshot()
    }

    #[wasm_bindgen]
    pub fn report_open_error(message: &str) {
        tensorcity::web::report_open_error(message)
    }

    #[wasm_bindgen]
    pub fn run_prompt(text: &str, generate: u32) {
        tensorcity::web::run_prompt(text, generate)
    }

    /// The inference Web Worker's entry (web/worker.js), with the messages
    /// that arrived while the wasm was loading.
    #[wasm_bindgen]
    pub fn tensorcity_worker(early: js_sys::Array) {
        tensorcity::web::worker::serve(early)
    }
}
