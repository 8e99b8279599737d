//! Inference off the page's thread: a module Web Worker (`web/worker.js`)
//! instantiates the same wasm without the app and runs the model there, so
//! the page keeps drawing while a prompt runs. The page side
//! ([`spawn`]) posts the model's bytes once, then each request; the worker
//! ([`serve`]) posts back every frame as bytes ([`crate::inference::wire`]),
//! and yields to its event loop between forward passes so a newer request
//! cancels an older run.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::inference::ModelFiles;
use crate::inference::stream::{ActivationFrame, FrameData, LocalRunner, RunRequest, Worker};
use crate::inference::wire;

/// The worker script, relative to `index.html`. Each run's time in the worker
/// (request posted to `Done` received, so the model's own speed apart from the
/// app's drawing) goes on `<body data-last-compute>`.
pub const WORKER_URL: &str = "worker.js";

/// The page's handle on the worker (JS objects stay on the page's thread).
struct Remote {
    worker: web_sys::Worker,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::ErrorEvent)>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

// A request message: `{ request: bytes, postedAt: ms since the epoch }` (the
// page's and the worker's `Date.now()` share the clock). On each request the
// worker answers `{ staleTokens: n }`: how many tokens the previous run
// generated after the page posted this one.
const REQUEST: &str = "request";
const POSTED_AT: &str = "postedAt";
const STALE_TOKENS: &str = "staleTokens";

thread_local! {
    static REMOTE: RefCell<Option<Remote>> = const { RefCell::new(None) };
}

/// Starts a worker running `files`' model (held in memory); `None` when the
/// model is not in memory or the browser refuses the worker (the caller then
/// runs the model on the page's thread).
pub fn spawn(files: &ModelFiles) -> Option<Worker> {
    let (config, weights) = files.in_memory()?;
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    let worker = match web_sys::Worker::new_with_options(WORKER_URL, &options) {
        Ok(w) => w,
        Err(e) => {
            web_sys::console::warn_1(
                &format!(
                    "no inference worker ({}); running on the page",
                    super::embedded::js_text(&e)
                )
                .into(),
            );
            return None;
        }
    };
    let (tx, frames) = std::sync::mpsc::channel::<ActivationFrame>();
    let latest = Arc::new(AtomicU64::new(0));
    // When the newest request was posted (ms since the epoch), to time the worker.
    let posted_at = Arc::new(AtomicU64::new(0));

    let to_app = tx.clone();
    let (current, started) = (latest.clone(), posted_at.clone());
    // Tokens older runs generated after a newer request was posted (the worker
    // should stop them within one pass), counted by the worker itself: the
    // page may receive them much later behind a slow frame. On
    // `<body data-stale-tokens>` for the browser test.
    let mut stale_tokens = 0u64;
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let data = event.data();
        if let Some(n) = js_sys::Reflect::get(&data, &STALE_TOKENS.into())
            .ok()
            .and_then(|v| v.as_f64())
        {
            stale_tokens = stale_tokens.saturating_add(n as u64);
            super::set_body_data("data-stale-tokens", &stale_tokens.to_string());
            return;
        }
        let bytes = js_sys::Uint8Array::new(&data).to_vec();
        let frame = wire::decode_frame(&bytes).unwrap_or_else(|e| ActivationFrame {
            run: u64::from_le_bytes(bytes.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default()),
            data: FrameData::Failed(e.to_string()),
        });
        if matches!(frame.data, FrameData::Done) && frame.run == current.load(Ordering::SeqCst) {
            let ms = (js_sys::Date::now() as u64).saturating_sub(started.load(Ordering::SeqCst));
            super::set_body_data("data-last-compute", &format!("{ms} ms"));
        }
        let _ = to_app.send(frame);
    });
    // The script failed to load, or the model trapped: the current run fails
    // with the reason instead of waiting forever.
    let current = latest.clone();
    let on_error = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |event: web_sys::ErrorEvent| {
        event.prevent_default();
        let _ = tx.send(ActivationFrame {
            run: current.load(Ordering::SeqCst),
            data: FrameData::Failed(format!(
                "the inference worker stopped ({}); reload the page",
                event.message()
            )),
        });
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));

    // The module the page compiled (worker.js fetches it if there is none).
    let module = web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w, &"tensorcityWasm".into()).ok())
        .unwrap_or(JsValue::UNDEFINED);
    let first = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&first, &"wasmModule".into(), &module);
    let load = js_sys::Object::new();
    let set = |key: &str, value: &JsValue| js_sys::Reflect::set(&load, &key.into(), value).is_ok();
    let posted = set("what", &files.what.as_str().into())
        && set("config", &js_sys::Uint8Array::from(config).into())
        && set("weights", &js_sys::Uint8Array::from(weights).into())
        && worker.post_message(&first).is_ok()
        && worker.post_message(&load).is_ok();
    if !posted {
        worker.terminate();
        return None;
    }
    // A new model's worker replaces (and terminates) the previous one.
    REMOTE.with(|r| {
        *r.borrow_mut() = Some(Remote {
            worker,
            _on_message: on_message,
            _on_error: on_error,
        })
    });
    let post = Box::new(move |run: u64, request: RunRequest| {
        let now = js_sys::Date::now();
        posted_at.store(now as u64, Ordering::SeqCst);
        let message = js_sys::Object::new();
        let bytes = js_sys::Uint8Array::from(wire::encode_request(run, &request).as_slice());
        let built = js_sys::Reflect::set(&message, &REQUEST.into(), &bytes).is_ok()
            && js_sys::Reflect::set(&message, &POSTED_AT.into(), &now.into()).is_ok();
        REMOTE.with(|r| {
            if let (true, Some(remote)) = (built, &*r.borrow()) {
                let _ = remote.worker.post_message(&message);
            }
        });
    });
    Some(Worker::remote(post, frames, latest))
}

/// Ends the current worker (another model is loading).
pub fn stop() {
    REMOTE.with(|r| r.borrow_mut().take());
}

/// What the worker holds: its model (or why it has none) and the newest run.
#[derive(Default)]
struct Served {
    runner: Option<Result<Rc<LocalRunner>, String>>,
    latest: u64,
    /// When the newest run posted each generated token (ms since the epoch).
    generated_at: Vec<f64>,
}

thread_local! {
    static SERVED: RefCell<Served> = RefCell::new(Served::default());
}

fn scope() -> web_sys::DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// The worker's entry (called by `web/worker.js` after instantiating the
/// wasm): handles the messages that arrived meanwhile, then listens.
pub fn serve(early: js_sys::Array) {
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(|event: web_sys::MessageEvent| handle(event.data()));
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as its handler.
    on_message.forget();
    early.iter().for_each(handle);
}

fn handle(message: JsValue) {
    let field = |key: &str| js_sys::Reflect::get(&message, &key.into()).ok();
    if let Some(bytes) = field(REQUEST).and_then(|v| v.dyn_into::<js_sys::Uint8Array>().ok()) {
        let posted_at = field(POSTED_AT)
            .and_then(|v| v.as_f64())
            .unwrap_or_else(js_sys::Date::now);
        match wire::decode_request(&bytes.to_vec()) {
            Ok((run, request)) => {
                // Tokens the previous run generated after this request was
                // posted: it should stop within a pass (and not go on until
                // it finished, as it would if it never yielded).
                let stale = SERVED.with(|s| {
                    let mut s = s.borrow_mut();
                    s.latest = run;
                    let stale = s.generated_at.iter().filter(|&&t| t > posted_at).count();
                    s.generated_at.clear();
                    stale
                });
                let report = js_sys::Object::new();
                if js_sys::Reflect::set(&report, &STALE_TOKENS.into(), &(stale as f64).into()).is_ok() {
                    let _ = scope().post_message(&report);
                }
                wasm_bindgen_futures::spawn_local(serve_run(run, request));
            }
            Err(e) => {
                post(&ActivationFrame {
                    run: 0,
                    data: FrameData::Failed(e.to_string()),
                });
            }
        }
        return;
    }
    let bytes = |key: &str| {
        field(key)
            .map(|v| js_sys::Uint8Array::new(&v).to_vec())
            .unwrap_or_default()
    };
    let what = field("what")
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| "model".into());
    let runner = ModelFiles::from_bytes(&what, &bytes("config"), std::borrow::Cow::Owned(bytes("weights")), None)
        .and_then(|files| {
            let model = files.load()?;
            Ok(Rc::new(LocalRunner {
                model: Arc::new(model),
                files: Some(Arc::new(files)),
            }))
        })
        .map_err(|e| e.to_string());
    SERVED.with(|s| s.borrow_mut().runner = Some(runner));
}

fn is_latest(run: u64) -> bool {
    SERVED.with(|s| s.borrow().latest == run)
}

/// One request, a forward pass at a time; a newer request ends it between passes.
async fn serve_run(run: u64, request: RunRequest) {
    let runner = SERVED.with(|s| s.borrow().runner.clone());
    let runner = match runner {
        Some(Ok(runner)) => runner,
        failed => {
            let why = match failed {
                Some(Err(why)) => why,
                _ => "the inference worker has no model; reload the page".into(),
            };
            post(&ActivationFrame {
                run,
                data: FrameData::Failed(why),
            });
            return;
        }
    };
    let mut generation = runner.start(run, &request);
    let mut send = |frame: ActivationFrame| {
        if matches!(frame.data, FrameData::Generated { .. }) {
            SERVED.with(|s| s.borrow_mut().generated_at.push(js_sys::Date::now()));
        }
        post(&frame)
    };
    while is_latest(run) && runner.step(&mut generation, &mut send) {
        yield_to_events().await;
    }
}

/// Sends a frame to the page (its buffer transferred, not copied). Returns
/// false when it could not be sent (the run then stops).
fn post(frame: &ActivationFrame) -> bool {
    let Ok(bytes) = wire::encode_frame(frame) else {
        return false;
    };
    let array = js_sys::Uint8Array::from(bytes.as_slice());
    scope()
        .post_message_with_transfer(&array, &js_sys::Array::of1(&array.buffer()))
        .is_ok()
}

// A promise for the next task. (Written in JS: `Promise::new` with a Rust
// closure on the stack stops wasm-bindgen after wasm-opt has run, see web/build.sh.)
#[wasm_bindgen(inline_js = "export function next_task() { return new Promise((resolve) => setTimeout(resolve, 0)); }")]
extern "C" {
    fn next_task() -> js_sys::Promise;
}

/// Lets queued messages (a newer request) in before the next forward pass.
async fn yield_to_events() {
    let _ = wasm_bindgen_futures::JsFuture::from(next_task()).await;
}
