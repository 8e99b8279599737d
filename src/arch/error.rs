//! Typed errors for model loading. Each message is one line that names the file
//! or id it is about, what is wrong, and what the user can do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ArchError {
    /// An engine's handshake or connection (the message names the engine).
    #[error("{0}")]
    Engine(String),

    #[error("{path}: {source}", path = path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error(
        "{path}: no such file or folder; give a .safetensors file, a model folder, a Hugging Face id or a catalogue name (see `tensorcity info --list`)",
        path = path.display()
    )]
    NotFound { path: PathBuf },

    #[error("{what}: the file is empty; expected a safetensors file (8-byte header length, JSON header, tensor data)")]
    Empty { what: String },

    #[error(
        "{what}: only {len} bytes, too short for a safetensors header (needs 8 or more); the file is truncated or not safetensors"
    )]
    TooShort { what: String, len: u64 },

    #[error("{what}: header claims {claimed} bytes, over the 100 MB limit; the file is corrupt or not safetensors")]
    HeaderTooLarge { what: String, claimed: u64 },

    #[error(
        "{what}: header claims {claimed} bytes but only {available} follow the length prefix; the file is truncated (download it again)"
    )]
    HeaderTruncated { what: String, claimed: u64, available: u64 },

    #[error("{what}: the header is not valid safetensors JSON ({detail}); the file is corrupt or not safetensors")]
    BadHeader { what: String, detail: String },

    #[error("{what}: not a readable GGUF header: {detail}")]
    BadGguf { what: String, detail: String },

    #[error(
        "{what}: tensor `{tensor}` has unknown dtype `{dtype}`; supported: BOOL, U8, I8, F8_*, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64, F4, F6_*"
    )]
    UnknownDtype {
        what: String,
        tensor: String,
        dtype: String,
    },

    #[error("{what}: tensor `{tensor}` has bad data offsets: {detail}; the file is corrupt")]
    BadOffsets {
        what: String,
        tensor: String,
        detail: String,
    },

    #[error(
        "{what}: tensor data ends at byte {end} but the file has {len} bytes; the file is truncated (download it again)"
    )]
    DataOutOfRange { what: String, end: u64, len: u64 },

    #[error(
        "{path}: a PyTorch checkpoint in the pre-1.6 format (bare pickles, no zip); re-save it with a current torch: `python -c \"import torch; torch.save(torch.load('{name}', weights_only=True), '{name}')\"`, or convert it to safetensors",
        path = path.display(),
        name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    )]
    Pickle { path: PathBuf },

    #[error("{what}: not a readable PyTorch checkpoint: {detail}")]
    BadPickle { what: String, detail: String },

    #[error(
        "{what}: refused: its pickle names the global `{global}`, which is not a tensor; a checkpoint that asks for it wants to run code when loaded — nothing was run; do not torch.load it either"
    )]
    PickleGlobal { what: String, global: String },

    #[error("{index}: shard `{shard}` is named in the index but missing; download it next to the index or fix the index", index = index.display())]
    MissingShard { index: PathBuf, shard: String },

    #[error("{what}: invalid shard index ({detail}); expected model.safetensors.index.json with a `weight_map` object")]
    BadIndex { what: String, detail: String },

    #[error(
        "{path}: no model.safetensors, model.safetensors.index.json or config.json in this folder; point at a Hugging Face model folder or a .safetensors file",
        path = path.display()
    )]
    EmptyFolder { path: PathBuf },

    #[error("{what}: invalid config.json ({detail}); it must be a JSON object as written by transformers")]
    BadConfig { what: String, detail: String },

    #[error("{what}: {detail}")]
    UnsupportedConfig { what: String, detail: String },

    #[error("`{id}`: {reason}; not in the local cache and not in the built-in catalogue{close}")]
    Unresolved { id: String, reason: String, close: String },

    #[error("`{id}`: {reason}")]
    Hub { id: String, reason: String },
}

impl ArchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ArchError::Io {
            path: path.into(),
            source,
        }
    }
}
