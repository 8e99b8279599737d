//! The browser entry point (wasm32 only): the viewer in the page's
//! `#tensorcity` canvas, its state read from the URL
//! (`?model=gpt2&layout=city&prompt=...`).

pub mod embedded;
pub mod engine;
pub mod worker;

use std::cell::RefCell;

use bevy::prelude::*;
use wasm_bindgen::JsValue;

use crate::activations::{Prompt, Runner};
use crate::arch::{LoadOptions, ModelRef};

pub use crate::page_url::UrlState;

/// A prompt from the URL or the page's `tensorcityRun`, sent once the model's
/// weights are ready.
#[derive(Resource)]
struct PendingPrompt(String, usize);

thread_local! {
    /// Prompts the page asked for, waiting for the app.
    static PAGE_PROMPTS: RefCell<Vec<(String, usize)>> = const { RefCell::new(Vec::new()) };
}

/// For the page (`window.tensorcityRun(text, generate)`): run `text` on the
/// current model and generate `generate` tokens; a run still going is cancelled.
pub fn run_prompt(text: &str, generate: u32) {
    PAGE_PROMPTS.with(|p| {
        p.borrow_mut()
            .push((text.to_string(), (generate as usize).min(crate::page_url::MAX_GENERATE)))
    });
}

fn take_page_prompts(mut commands: Commands) {
    if let Some((text, generate)) = PAGE_PROMPTS.with(|p| std::mem::take(&mut *p.borrow_mut()).pop()) {
        commands.insert_resource(PendingPrompt(text, generate));
    }
}

fn send_pending_prompt(
    mut commands: Commands,
    pending: Option<Res<PendingPrompt>>,
    runner: Res<Runner>,
    mut prompts: MessageWriter<Prompt>,
) {
    let Some(pending) = pending else { return };
    match *runner {
        Runner::Preparing(_) | Runner::Connecting(_) | Runner::None => {}
        _ => {
            prompts.write(Prompt {
                text: pending.0.clone(),
                new_tokens: pending.1,
                decoding: crate::inference::stream::Decoding::Greedy,
            });
            commands.remove_resource::<PendingPrompt>();
        }
    }
}

/// Tells the page (`window.tensorcityReady()`) once the app has drawn a few
/// frames, so it removes its loading screen.
fn announce_first_frame(mut frames: Local<u32>) {
    *frames += 1;
    if *frames != 3 {
        return;
    }
    let Some(window) = web_sys::window() else { return };
    if let Ok(ready) = js_sys::Reflect::get(&window, &"tensorcityReady".into())
        && let Ok(ready) = wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(ready)
    {
        let _ = ready.call0(&window);
    }
}

/// The page's title names the model on screen (and tells tests which one loaded).
fn title_follows_model(current: Option<Res<crate::model::CurrentModel>>) {
    let Some(current) = current.filter(|c| c.is_changed()) else {
        return;
    };
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        document.set_title(&format!("tensorcity — {}", current.arch.name));
    }
}

thread_local! {
    /// Files the page opened (picker, drag-and-drop, Hub fetch), waiting for the app.
    static OPENED: RefCell<Vec<(String, Result<crate::arch::Architecture, String>)>> = const { RefCell::new(Vec::new()) };
}

/// For the page: the length of a `.safetensors` header from the file's first
/// 8 bytes, checked against the file's size (the same check as natively).
pub fn safetensors_header_length(prefix: &[u8], file_size: f64, name: &str) -> Result<f64, JsValue> {
    crate::arch::header::parse_header_prefix(prefix, Some(file_size as u64), name)
        .map(|n| n as f64)
        .map_err(|e| JsValue::from_str(&e.to_string()))
}

/// For the page: the header's JSON bytes of `name` (`file_size` bytes long);
/// the app shows its architecture, or the error.
pub fn open_safetensors_header(name: &str, header: &[u8], file_size: f64) {
    // Size 0: unknown (shards of a Hub model, merged by the page).
    let size = (file_size > 0.0).then_some(file_size as u64);
    let result = crate::arch::header::parse_header(header, size, name)
        .map(|rows| crate::arch::Architecture::from_rows(name.to_string(), "file", None, rows))
        .map_err(|e| e.to_string());
    OPENED.with(|q| q.borrow_mut().push((name.to_string(), result)));
}

/// For the page: whether `id` is in the built-in catalogue (otherwise the page
/// reads its header from the Hub).
pub fn is_catalogue_model(id: &str) -> bool {
    crate::arch::catalogue_entry(id).is_some()
}

/// For the page: something it could not open (not a safetensors file, the
/// network or CORS refused, ...): shown in the app's error panel.
pub fn report_open_error(message: &str) {
    OPENED.with(|q| q.borrow_mut().push((String::new(), Err(message.to_string()))));
}

fn take_opened(
    mut show: MessageWriter<crate::model::ShowArchitecture>,
    mut errors: MessageWriter<crate::model::ShowLoadError>,
) {
    for (name, result) in OPENED.with(|q| std::mem::take(&mut *q.borrow_mut())) {
        match result {
            Ok(arch) => {
                show.write(crate::model::ShowArchitecture {
                    arch,
                    request: ModelRef::Path(name.into()),
                });
            }
            Err(e) => {
                errors.write(crate::model::ShowLoadError(e));
            }
        }
    }
}

/// The current load error, also on `<body data-error>` (for scripts and tests;
/// the app's error panel shows it to people).
fn error_on_body(error: Option<Res<crate::model::LoadError>>, mut shown: Local<Option<String>>) {
    let now = error.map(|e| e.0.to_string());
    if *shown == now {
        return;
    }
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        let _ = match &now {
            Some(e) => body.set_attribute("data-error", e),
            None => body.remove_attribute("data-error"),
        };
    }
    *shown = now;
}

/// Times each run on `<body data-last-run="P prompt + G generated tokens in MS ms">`
/// (for the README's browser-vs-native tokens/s), with its start and end on the
/// page's clock (`data-run-started-ms`, `data-run-ended-ms`).
fn time_runs(run: Res<crate::activations::CurrentRun>, mut started: Local<Option<(u64, f64)>>) {
    use crate::activations::RunStatus;
    if !run.is_changed() {
        return;
    }
    match run.status {
        RunStatus::Running if started.is_none_or(|(id, _)| id != run.run) => {
            let now = now_ms();
            *started = Some((run.run, now));
            set_body_data("data-run-started-ms", &format!("{now:.0}"));
        }
        RunStatus::Done => {
            let Some((id, at)) = started.take() else { return };
            if id != run.run {
                return;
            }
            let now = now_ms();
            let text = format!(
                "{} prompt + {} generated tokens in {:.0} ms",
                run.prompt_len,
                run.generated.len(),
                now - at
            );
            set_body_data("data-run-ended-ms", &format!("{now:.0}"));
            set_body_data("data-last-run", &text);
        }
        _ => {}
    }
}

/// `performance.now()`: the page's clock (the browser test lines frames up with runs).
fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// Sets an attribute of `<body>` (state for scripts and tests).
pub fn set_body_data(name: &str, value: &str) {
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        let _ = body.set_attribute(name, value);
    }
}

thread_local! {
    static SCREENSHOT_WANTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// For the page's screenshot button (F12 works too).
pub fn request_screenshot() {
    SCREENSHOT_WANTED.with(|w| w.set(true));
}

/// F12 or the page's button: the window as a PNG download.
fn screenshot_download(mut commands: Commands, keys: Option<Res<ButtonInput<KeyCode>>>) {
    let key = keys.is_some_and(|k| k.just_pressed(KeyCode::F12));
    if !(SCREENSHOT_WANTED.with(|w| w.replace(false)) || key) {
        return;
    }
    commands
        .spawn(bevy::render::view::screenshot::Screenshot::primary_window())
        .observe(|captured: On<bevy::render::view::screenshot::ScreenshotCaptured>| {
            let Ok(image) = captured.image.clone().try_into_dynamic() else {
                return;
            };
            let mut png = std::io::Cursor::new(Vec::new());
            if image.to_rgba8().write_to(&mut png, image::ImageFormat::Png).is_err() {
                return;
            }
            download("tensorcity.png", png.get_ref());
        });
}

/// Hands `bytes` to the browser as a file download.
fn download(name: &str, bytes: &[u8]) {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("image/png");
    let Ok(blob) = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    let anchor = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("a").ok())
        .and_then(|a| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlAnchorElement>(a).ok());
    if let Some(a) = anchor {
        a.set_href(&url);
        a.set_download(name);
        a.click();
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

/// Starts the app in the page. (In the inference Web Worker, which loads the
/// same wasm, there is no window and nothing to start.)
pub fn run() {
    if web_sys::window().is_none() {
        return;
    }
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let url = UrlState::parse(&search);
    // A Hub id outside the catalogue: the page fetches its header (Range
    // requests) and swaps it in; the embedded model shows meanwhile.
    let model = match (url.engine, url.model.as_deref()) {
        (Some(engine), _) => ModelRef::Engine(engine),
        (None, Some(id)) if is_catalogue_model(id) => ModelRef::Id(id.to_string()),
        _ => ModelRef::Embedded,
    };
    let window = Window {
        title: "tensorcity".into(),
        canvas: Some("#tensorcity".into()),
        fit_canvas_to_parent: true,
        prevent_default_event_handling: true,
        ..default()
    };
    let mut app = crate::viewer::app(
        window,
        model,
        LoadOptions::default(),
        url.layout.unwrap_or_default(),
        crate::viewer::Compile::Background,
    );
    if let Some(prompt) = url.prompt {
        app.insert_resource(PendingPrompt(prompt, url.generate));
    }
    // Inference in the browser: fetched weights, a Web Worker (or the page's
    // own thread when the browser refuses one).
    app.insert_resource(crate::activations::InferenceBackend {
        open: |request| Box::pin(embedded::open_runner(request)),
        start: |files, model| worker::spawn(files).unwrap_or_else(|| crate::activations::local_worker(files, model)),
        stop: worker::stop,
        connect: engine::connect,
    });
    // A remote engine's architecture comes from its handshake on the page's WebSocket.
    app.insert_resource(crate::model::EngineLoader(engine::architecture));
    app.add_systems(
        Update,
        (
            (take_page_prompts, send_pending_prompt)
                .chain()
                .in_set(crate::AppSystems::Input),
            take_opened.in_set(crate::AppSystems::Input),
            // Reports to the page, after the frame's model and run updates (so a
            // run is timed from the frame it starts in); the PNG download.
            (
                announce_first_frame,
                title_follows_model,
                error_on_body,
                time_runs,
                screenshot_download,
            )
                .chain()
                .in_set(crate::AppSystems::Render),
        ),
    );
    app.run();
}
