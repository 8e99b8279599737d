//! The entry points of tensorcity's fuzz targets: one function per parser of
//! outside bytes, taking the bytes as they arrive (a file, a frame, a URL) and
//! going on as the app does with what parses (an architecture, its layout).
//! A target passes when no input panics, hangs or allocates past the limits
//! (`-rss_limit_mb`, `-malloc_limit_mb`); an `Err` is a correct answer.
//!
//! The libFuzzer binaries (`fuzz_targets/`) call these; so does the stable
//! regression test (`tests/integration/fuzz_corpus.rs`), over every committed
//! corpus and crash input, through [`TARGETS`].

#[path = "near_valid.rs"]
mod near_valid;

use std::io::Cursor;

use tensorcity::arch::{self, Architecture, CubeScale, HeaderTensor, ModelConfig};
use tensorcity::engine::{self, protocol, session};
use tensorcity::inference::{stream::RunRequest, wire};
use tensorcity::layout::{Layout, LayoutKind};

/// Every target, by the name of its binary and corpus folder.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("safetensors_header", safetensors_header),
    ("safetensors_near_valid", safetensors_near_valid),
    ("config_json", config_json),
    ("shard_index", shard_index),
    ("gguf_header", gguf_header),
    ("gguf_near_valid", gguf_near_valid),
    ("torch_checkpoint", torch_checkpoint),
    ("pickle", pickle),
    ("worker_wire", worker_wire),
    ("engine_stream", engine_stream),
    ("camera_path", camera_path),
    ("frame_script", frame_script),
    ("url_state", url_state),
];

/// What the app does with an architecture it has read: its summary and every layout.
fn show(arch: &Architecture) {
    let _ = arch.summary();
    for kind in [LayoutKind::Trunk, LayoutKind::Floors, LayoutKind::City] {
        for scale in [CubeScale::Relative, CubeScale::Absolute] {
            let _ = Layout::compute(arch, kind, scale);
        }
    }
}

fn show_rows(rows: Vec<HeaderTensor>, config: Option<ModelConfig>) {
    show(&Architecture::from_rows("fuzz", "fuzz", config, rows));
}

/// A whole `.safetensors` file (or its first bytes): the 8-byte length, the
/// JSON header, the data; as the app reads a local file or a Hub prefix.
pub fn safetensors_header(data: &[u8]) {
    let len = data.len() as u64;
    let _ = arch::parse_header_prefix(data, Some(len), "fuzz");
    if let Ok(rows) = arch::parse_file_bytes(data, "fuzz") {
        show_rows(rows, None);
    }
    if let Ok(rows) = arch::parse_header(data, Some(len), "fuzz") {
        show_rows(rows, None);
    }
}

/// [`safetensors_header`] on a file generated from the input: a near-valid
/// header (plausible names, dtypes, shapes and offsets, some of them wrong).
pub fn safetensors_near_valid(data: &[u8]) {
    if let Some(file) = near_valid::safetensors(data) {
        safetensors_header(&file);
    }
}

/// A `config.json`: the configuration, the architecture synthesised from it
/// (what `info` / the viewer draw for a config-only model) and its layout.
pub fn config_json(data: &[u8]) {
    let Ok(config) = ModelConfig::from_json(data, "fuzz") else {
        return;
    };
    let _ = (config.head_dim(), config.tied_embeddings());
    if let Ok(rows) = arch::synthesize(&config, "fuzz") {
        show_rows(rows, Some(config));
    }
}

/// A `model.safetensors.index.json`.
pub fn shard_index(data: &[u8]) {
    if let Ok(index) = arch::parse_index(data, "fuzz") {
        let _ = arch::shard_names(&index);
    }
}

/// A GGUF file's first bytes: the header, the architecture and config read
/// from its metadata, its layout, and the tokenizer built from its vocabulary.
pub fn gguf_header(data: &[u8]) {
    let Ok(header) = arch::gguf::parse(data, data.len() as u64) else {
        return;
    };
    if let Ok(arch) = arch::gguf::architecture(&header, "fuzz".into(), "fuzz") {
        show(&arch);
    }
    let _ = tensorcity::inference::gguf_tokenizer::tokenizer(&header);
}

/// [`gguf_header`] on a near-valid GGUF header generated from the input.
pub fn gguf_near_valid(data: &[u8]) {
    if let Some(file) = near_valid::gguf(data) {
        gguf_header(&file);
    }
}

/// A `torch.save` zip archive (`pytorch_model.bin`).
pub fn torch_checkpoint(data: &[u8]) {
    if let Ok(rows) = arch::torch::read_tensors(Cursor::new(data), "fuzz") {
        show_rows(rows, None);
    }
    let _ = arch::torch::locate_tensors(Cursor::new(data), "fuzz");
    let _ = (arch::torch::is_zip(data), arch::torch::is_legacy(data));
}

/// A pickle stream (a checkpoint's `data.pkl`).
pub fn pickle(data: &[u8]) {
    if let Ok(value) = arch::pickle::load(data) {
        let _ = arch::pickle::tensors(&value);
    }
}

/// A message between the browser's page and its inference Web Worker: a run
/// request (page to worker) or an activation frame (worker to page).
pub fn worker_wire(data: &[u8]) {
    let _ = wire::decode_request(data);
    if let Ok(frame) = wire::decode_frame(data) {
        let _ = wire::encode_frame(&frame);
    }
}

/// A connection from a remote engine: a handshake, then messages for a run,
/// each prefixed by its length (u16, little-endian). What the viewer does: read
/// the handshake, draw its architecture, send a run, check every message.
pub fn engine_stream(data: &[u8]) {
    let mut messages = Messages(data);
    let Some(first) = messages.next() else {
        return;
    };
    let url = "ws://fuzz";
    let Ok(hello) = session::read_hello(url, first) else {
        return;
    };
    if let Ok(arch) = engine::architecture(&hello, url) {
        show(&arch);
    }
    let want = session::viewer_wants(&hello);
    let _ = session::capture_wants(&hello);
    let mut session = session::Session::new(url.into(), hello, want);
    let request = RunRequest {
        tokens: vec![1, 2, 3],
        new_tokens: 2,
        decoding: tensorcity::inference::stream::Decoding::Greedy,
        text: None,
    };
    let _ = session.request(1, request);
    for message in messages {
        if let session::Received::Frame(frame) = session.receive(message) {
            let _ = protocol::encode_frame(&frame, true);
        }
    }
    let _ = protocol::decode_viewer_message(data);
}

/// Length-prefixed messages (u16 little-endian lengths); a short tail ends them.
struct Messages<'a>(&'a [u8]);

impl<'a> Iterator for Messages<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        let (message, rest) = rest.split_at(len);
        self.0 = rest;
        Some(message)
    }
}

/// A RON camera path (`record --path FILE`).
pub fn camera_path(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tensorcity::record::keyframes::KeyframeFile::parse(text);
    }
}

/// A frame script (`view --script FILE`).
pub fn frame_script(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tensorcity::script::parse(text);
    }
}

/// The web page's URL query string, and the model reference it names.
pub fn url_state(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let state = tensorcity::page_url::UrlState::parse(&text);
    if let Some(model) = state.model {
        let _ = arch::ModelRef::parse(&model);
    }
}
