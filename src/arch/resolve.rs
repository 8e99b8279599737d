//! From what the user typed to an [`Architecture`]: a path, the embedded default,
//! a Hugging Face id (with offline and catalogue fallbacks), or a catalogue name.

use std::path::{Path, PathBuf};

use super::{ArchError, Architecture, ModelConfig, catalogue_entry, closest_catalogue_names};

/// What a `MODEL` argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// The small model shipped inside the binary (no argument given).
    Embedded,
    /// A local file or folder.
    Path(PathBuf),
    /// A Hugging Face id or catalogue name.
    Id(String),
    /// An engine streaming over the activation-stream protocol (`ws://HOST:PORT`).
    Engine(String),
}

impl ModelRef {
    /// Existing paths win; things that look like paths stay paths (so a typo
    /// gets "no such file", not a hub lookup); anything else is an id.
    pub fn parse(arg: &str) -> ModelRef {
        if arg.starts_with("ws://") || arg.starts_with("wss://") {
            return ModelRef::Engine(arg.to_string());
        }
        let path = Path::new(arg);
        // `owner/name:file.gguf`: one GGUF file of a Hub repo.
        if let Some((repo, file)) = arg.split_once(':')
            && repo.matches('/').count() == 1
            && !file.contains('/')
            && file.ends_with(".gguf")
            && !path.exists()
        {
            return ModelRef::Id(arg.to_string());
        }
        let looks_like_path = arg.starts_with(['.', '/', '~'])
            || arg.contains('\\')
            || arg.matches('/').count() > 1
            || [".safetensors", ".gguf", ".json", ".bin", ".pt", ".pth", ".ckpt"]
                .iter()
                .any(|x| arg.ends_with(x));
        if path.exists() || looks_like_path {
            ModelRef::Path(path.to_path_buf())
        } else {
            ModelRef::Id(arg.to_string())
        }
    }
}

/// How to resolve ids.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub revision: Option<String>,
    /// Do not touch the network (also `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Only the built-in catalogue, no hub lookup.
    pub catalogue_only: bool,
    #[cfg(not(target_arch = "wasm32"))]
    pub hub: super::hub::HubOptions,
}

/// The embedded default model: config, f16 weights (trained by
/// `src/bin/train_default.rs`) and tokenizer, compiled into the binary. The web
/// build compiles in only the config and the weights' header (enough for the
/// architecture) and fetches the weights and tokenizer beside its page.
pub const EMBEDDED_CONFIG: &str = include_str!("../../assets/models/shakespeare/config.json");
#[cfg(not(target_arch = "wasm32"))]
pub const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../assets/models/shakespeare/model.safetensors");
#[cfg(not(target_arch = "wasm32"))]
pub const EMBEDDED_TOKENIZER: &[u8] = include_bytes!("../../assets/models/shakespeare/tokenizer.json");
/// The weights file's length prefix and JSON header (cut out by `src/build.rs`).
pub const EMBEDDED_HEADER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/embedded_header.safetensors"));
/// The weights file's size in bytes.
pub const EMBEDDED_WEIGHTS_LEN: u64 = include!(concat!(env!("OUT_DIR"), "/embedded_weights_len.rs"));
pub const EMBEDDED_NAME: &str = "tensorcity/shakespeare";

/// Loads a model's architecture.
pub fn load_model(model: &ModelRef, opts: &LoadOptions) -> Result<Architecture, ArchError> {
    match model {
        ModelRef::Embedded => embedded(),
        ModelRef::Path(p) => load_path(p),
        ModelRef::Id(id) => load_id(id, opts),
        // The handshake is read by the engine client (`model::load_architecture`), above this module.
        ModelRef::Engine(url) => Err(ArchError::Engine(format!(
            "{url}: an engine's architecture comes from its handshake; open it with `tensorcity view --engine {url}`"
        ))),
    }
}

fn embedded() -> Result<Architecture, ArchError> {
    let config = ModelConfig::from_json(EMBEDDED_CONFIG.as_bytes(), EMBEDDED_NAME)?;
    let len = super::header::parse_header_prefix(EMBEDDED_HEADER, Some(EMBEDDED_WEIGHTS_LEN), EMBEDDED_NAME)?;
    let json = EMBEDDED_HEADER.get(8..8 + len as usize).unwrap_or_default();
    let rows = super::header::parse_header(json, Some(EMBEDDED_WEIGHTS_LEN), EMBEDDED_NAME)?;
    Ok(Architecture::from_rows(EMBEDDED_NAME, "embedded", Some(config), rows))
}

fn load_path(path: &Path) -> Result<Architecture, ArchError> {
    if path.is_dir() {
        super::load_folder(path)
    } else if path.is_file() {
        if path.file_name().is_some_and(|n| n == "config.json") {
            return path.parent().map_or(
                Err(ArchError::NotFound {
                    path: path.to_path_buf(),
                }),
                super::load_folder,
            );
        }
        if path.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.ends_with(".safetensors.index.json") || n.ends_with(".bin.index.json")
        }) {
            return path.parent().map_or(
                Err(ArchError::NotFound {
                    path: path.to_path_buf(),
                }),
                super::load_folder,
            );
        }
        if path.extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf")) {
            return super::load_gguf_file(path);
        }
        if path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| ["bin", "pt", "pth", "ckpt"].contains(&x.to_ascii_lowercase().as_str()))
        {
            return super::load_torch_file(path);
        }
        super::load_safetensors_file(path)
    } else {
        Err(ArchError::NotFound {
            path: path.to_path_buf(),
        })
    }
}

fn load_id(id: &str, opts: &LoadOptions) -> Result<Architecture, ArchError> {
    if opts.catalogue_only {
        return from_catalogue(id, None, "not in the built-in catalogue".into());
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use super::hub::{HubFailure, HubOptions, load};
        let hub_opts = HubOptions {
            revision: opts.revision.clone().or_else(|| opts.hub.revision.clone()),
            offline: opts.offline || opts.hub.offline || super::hub::env_offline(),
            ..opts.hub.clone()
        };
        match load(id, &hub_opts) {
            Ok(arch) => Ok(arch),
            Err(HubFailure::Invalid(e)) => Err(e),
            Err(HubFailure::NotFound(reason)) => Err(ArchError::Hub {
                id: id.to_string(),
                reason: not_found_hint(id, &reason),
            }),
            Err(HubFailure::Unreachable(reason) | HubFailure::Denied(reason)) => {
                let notice =
                    format!("`{id}`: {reason}; showing the built-in catalogue entry (laid out from its config.json)");
                from_catalogue(id, Some(notice), reason)
            }
        }
    }
    #[cfg(target_arch = "wasm32")]
    {
        from_catalogue(id, None, "the native Hub client is not available in the browser".into())
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn not_found_hint(id: &str, reason: &str) -> String {
    let close = closest_catalogue_names(id);
    if close.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}; close catalogue names: {}", close.join(", "))
    }
}

fn from_catalogue(id: &str, notice: Option<String>, reason: String) -> Result<Architecture, ArchError> {
    match catalogue_entry(id) {
        Some(entry) => {
            let mut arch = entry.architecture()?;
            arch.notices.extend(notice);
            Ok(arch)
        }
        None => {
            let close = closest_catalogue_names(id);
            let close = if close.is_empty() {
                "; see `tensorcity info --list`".to_string()
            } else {
                format!("; close catalogue names: {}", close.join(", "))
            };
            Err(ArchError::Unresolved {
                id: id.to_string(),
                reason,
                close,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_arguments() {
        assert_eq!(ModelRef::parse("gpt2"), ModelRef::Id("gpt2".into()));
        assert_eq!(
            ModelRef::parse("meta-llama/Llama-3.2-1B"),
            ModelRef::Id("meta-llama/Llama-3.2-1B".into())
        );
        assert_eq!(ModelRef::parse("./x"), ModelRef::Path("./x".into()));
        assert_eq!(
            ModelRef::parse("model.safetensors"),
            ModelRef::Path("model.safetensors".into())
        );
        assert_eq!(ModelRef::parse("a/b/c"), ModelRef::Path("a/b/c".into()));
    }

    #[test]
    fn embedded_model_loads() {
        let arch = load_model(&ModelRef::Embedded, &LoadOptions::default()).unwrap();
        assert_eq!(arch.source, "embedded");
        assert!(arch.total_params() > 0);
    }
}
