//! The embedded model's weights and tokenizer in the browser: not compiled
//! into the wasm (they would be ~40% of it) but fetched from beside the page
//! when the model is opened; `web/build.sh` copies them into the bundle.

use std::sync::Arc;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::arch::ModelRef;
use crate::inference::{InferenceError, Model, ModelFiles};

/// Where the bundle keeps them, relative to `index.html`.
pub const WEIGHTS_URL: &str = "models/shakespeare/model.safetensors";
pub const TOKENIZER_URL: &str = "models/shakespeare/tokenizer.json";

/// A thrown JS value as text.
pub fn js_text(value: &wasm_bindgen::JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// GETs `url` (relative to the page) as bytes; errors name the URL.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window to fetch from")?;
    let fail = |detail: String| format!("could not fetch {url} ({detail}); is it beside index.html?");
    let response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| fail(js_text(&e)))?
        .dyn_into::<web_sys::Response>()
        .map_err(|_| fail("not a response".into()))?;
    if !response.ok() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(|e| fail(js_text(&e)))?)
        .await
        .map_err(|e| fail(js_text(&e)))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// [`crate::activations::open_runner`] for the browser: the embedded model's
/// files are fetched first; other models fail as they do natively (their
/// weights were never read: only headers).
pub async fn open_runner(request: ModelRef) -> Result<(Arc<ModelFiles>, Model), InferenceError> {
    if request != ModelRef::Embedded {
        return crate::activations::open_runner(&request);
    }
    let fetched = |e: String| InferenceError::Model {
        what: crate::arch::EMBEDDED_NAME.to_string(),
        detail: e,
    };
    let weights = fetch_bytes(WEIGHTS_URL).await.map_err(fetched)?;
    let tokenizer = fetch_bytes(TOKENIZER_URL).await.map_err(fetched)?;
    let files = ModelFiles::embedded_fetched(weights, &tokenizer)?;
    let model = files.load()?;
    Ok((Arc::new(files), model))
}
