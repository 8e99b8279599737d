//! Any engine can stream into the city: PyTorch on a GPU, TransformerLens,
//! nnsight — over the activation-stream protocol (`src/python/PROTOCOL.md`,
//! reference engine in `src/python/tensorcity_stream`). The architecture
//! comes from the engine's handshake; its frames are checked ([`check`]) and
//! then are the same [`ActivationFrame`]s the built-in engine produces, so
//! the run state, panels, city and recorder work unchanged. No Bevy types.

pub mod check;
#[cfg(not(target_arch = "wasm32"))]
pub mod client;
pub mod protocol;
pub mod session;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::arch::{ArchError, Architecture, HeaderTensor, ModelConfig};
#[cfg(not(target_arch = "wasm32"))]
use crate::inference::Capture;
#[cfg(not(target_arch = "wasm32"))]
use crate::inference::stream::{ActivationFrame, FrameData, RunRequest};
use protocol::Hello;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("cannot connect to the engine at {url}: {detail}")]
    Connect { url: String, detail: String },
    /// A run failed or the connection broke (the message names the engine).
    #[error("{0}")]
    Run(String),
    #[error("the engine at {url} described its model badly: {error}")]
    Model { url: String, error: String },
}

impl From<EngineError> for ArchError {
    fn from(e: EngineError) -> Self {
        ArchError::Engine(e.to_string())
    }
}

/// Display strings of the token ids an engine has sent (it tokenizes; the
/// viewer has no tokenizer of its own for a remote model).
#[derive(Debug, Default)]
pub struct TokenTexts(Mutex<HashMap<u32, String>>);

impl TokenTexts {
    pub fn insert(&self, texts: Vec<(u32, String)>) {
        if let Ok(mut map) = self.0.lock() {
            map.extend(texts);
        }
    }

    /// One string per id (`#id` for one the engine never named).
    pub fn texts(&self, ids: &[u32]) -> Vec<String> {
        let map = self.0.lock().ok();
        ids.iter()
            .map(|id| {
                map.as_ref()
                    .and_then(|m| m.get(id).cloned())
                    .unwrap_or_else(|| format!("#{id}"))
            })
            .collect()
    }
}

/// The architecture an engine's handshake describes (drawn without any file).
pub fn architecture(hello: &Hello, url: &str) -> Result<Architecture, ArchError> {
    let what = format!("{} (engine at {url})", hello.model.name);
    let config = ModelConfig::from_value(hello.model.config.clone(), &what)?;
    let rows = hello
        .model
        .tensors
        .iter()
        .map(|t| HeaderTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype.clone(),
            shard: None,
        })
        .collect::<Vec<_>>();
    if rows.is_empty() {
        return Err(ArchError::Engine(format!("{what}: the handshake lists no tensors")));
    }
    let mut arch = Architecture::from_rows(hello.model.name.clone(), "engine", Some(config), rows);
    arch.notices
        .push(format!("served by {} at {url}", display_engine(hello)));
    Ok(arch)
}

fn display_engine(hello: &Hello) -> &str {
    if hello.engine.is_empty() {
        "an engine"
    } else {
        &hello.engine
    }
}

/// One run on an engine, to completion: what `capture --engine` writes and
/// what `render`/`record --engine --prompt` draw. Returns the capture (the
/// whole sequence, as one forward pass over it) and the tokens' strings.
#[cfg(not(target_arch = "wasm32"))]
pub fn capture(
    url: &str,
    request: RunRequest,
    stall: std::time::Duration,
) -> Result<(Capture, Vec<String>, Hello), EngineError> {
    let connection = client::connect(url)?;
    let hello = connection.hello.clone();
    let want = client::capture_wants(&hello);
    let (mut worker, texts) = client::spawn(connection, want, stall);
    let run = worker.request(request);
    let mut capture = Capture::default();
    loop {
        let frames = worker.drain(usize::MAX);
        if frames.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        for ActivationFrame { run: r, data } in frames {
            if r != run {
                continue;
            }
            match data {
                FrameData::Tokens(ids) => capture.tokens = ids,
                FrameData::Activation { tap, from, tensor } => capture
                    .push(tap, tensor, from)
                    .map_err(|e| EngineError::Run(format!("the engine at {url} sent {e}")))?,
                FrameData::Failed(message) => return Err(EngineError::Run(message)),
                FrameData::Done => {
                    let strings = texts.texts(&capture.tokens);
                    return Ok((capture, strings, hello));
                }
                FrameData::Truncated { kept, dropped } => {
                    eprintln!("note: the engine ran the last {kept} tokens ({dropped} did not fit its context)")
                }
                FrameData::TopK { .. } | FrameData::Generated { .. } => {}
            }
        }
    }
}
