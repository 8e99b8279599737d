//! What a runnable model is made of — `config.json`, safetensors weights and
//! (optionally) `tokenizer.json` — from a folder (weights read tensor by tensor,
//! see `weights`) or from bytes in memory (the embedded default, and the
//! browser build).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use super::{InferenceError, Model};
use crate::arch::{EMBEDDED_CONFIG, EMBEDDED_HEADER, EMBEDDED_NAME, ModelConfig, ModelRef, read_index_file};
#[cfg(not(target_arch = "wasm32"))]
use crate::arch::{EMBEDDED_TOKENIZER, EMBEDDED_WEIGHTS};

enum Weights {
    /// Safetensors files, read when the model is loaded.
    Files(Vec<PathBuf>),
    /// One GGUF file: matrices stay quantized (see `gguf`).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Gguf(PathBuf),
    /// One safetensors file held in memory, with the `config.json` it came with.
    Bytes {
        config: Vec<u8>,
        weights: std::borrow::Cow<'static, [u8]>,
    },
}

/// A model that can be loaded for inference, and its tokenizer.
pub struct ModelFiles {
    /// Names the model in messages.
    pub what: String,
    pub config: ModelConfig,
    weights: Weights,
    tokenizer: Option<Tokenizer>,
}

fn bad(what: &str, detail: impl ToString) -> InferenceError {
    InferenceError::Model {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

impl ModelFiles {
    /// The model a `MODEL` argument names, when it can run here: the embedded
    /// default or a local folder (hub ids: see [`crate::arch::hub::download_model`]).
    pub fn open(model: &ModelRef) -> Result<ModelFiles, InferenceError> {
        match model {
            #[cfg(not(target_arch = "wasm32"))]
            ModelRef::Embedded => ModelFiles::embedded(),
            #[cfg(target_arch = "wasm32")]
            ModelRef::Embedded => Err(bad(EMBEDDED_NAME, "the page fetches its weights (see web::embedded)")),
            // The page only ever reads a header: nothing else of the file is in memory.
            #[cfg(target_arch = "wasm32")]
            ModelRef::Path(p) => Err(bad(
                &p.display().to_string(),
                "in the browser only the embedded model runs (a file shows its architecture from its header); \
                 to run this model, open its folder in the desktop app",
            )),
            #[cfg(not(target_arch = "wasm32"))]
            ModelRef::Path(p) if p.is_dir() => ModelFiles::from_dir(p),
            #[cfg(not(target_arch = "wasm32"))]
            ModelRef::Path(p) if p.file_name().is_some_and(|n| n == "config.json") => {
                ModelFiles::from_dir(p.parent().unwrap_or(Path::new(".")))
            }
            #[cfg(not(target_arch = "wasm32"))]
            ModelRef::Path(p) if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf")) => {
                ModelFiles::from_gguf(p)
            }
            #[cfg(not(target_arch = "wasm32"))]
            ModelRef::Path(p) => Err(bad(
                &p.display().to_string(),
                "running a model needs its folder (config.json + safetensors weights), not a single file",
            )),
            ModelRef::Id(id) => Err(bad(
                id,
                "only the architecture was fetched (headers, no weights); to run it, download the model \
                 (`tensorcity capture` does, or `hf download ID --local-dir DIR`) and open the folder",
            )),
            ModelRef::Engine(url) => Err(bad(url, "an engine runs its own model; it has no local files")),
        }
    }

    /// The embedded default model (compiled into the binary).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embedded() -> Result<ModelFiles, InferenceError> {
        ModelFiles::from_bytes(
            EMBEDDED_NAME,
            EMBEDDED_CONFIG.as_bytes(),
            std::borrow::Cow::Borrowed(EMBEDDED_WEIGHTS),
            Some(EMBEDDED_TOKENIZER),
        )
    }

    /// The embedded default model from weights and tokenizer fetched at run
    /// time (the web build): refused unless the weights are the ones this
    /// build's architecture view was made from.
    pub fn embedded_fetched(weights: Vec<u8>, tokenizer: &[u8]) -> Result<ModelFiles, InferenceError> {
        if !weights.starts_with(EMBEDDED_HEADER) {
            return Err(bad(
                EMBEDDED_NAME,
                "the fetched weights are not the ones this build was made with; rebuild the web bundle (web/build.sh)",
            ));
        }
        ModelFiles::from_bytes(
            EMBEDDED_NAME,
            EMBEDDED_CONFIG.as_bytes(),
            std::borrow::Cow::Owned(weights),
            Some(tokenizer),
        )
    }

    /// The `config.json` and safetensors bytes of a model held in memory (to
    /// hand to the browser's inference worker); `None` for files on disk.
    pub fn in_memory(&self) -> Option<(&[u8], &[u8])> {
        match &self.weights {
            Weights::Bytes { config, weights } => Some((config, weights)),
            Weights::Files(_) | Weights::Gguf(_) => None,
        }
    }

    /// A model held in memory: config, one safetensors file, optional tokenizer.
    pub fn from_bytes(
        what: &str,
        config: &[u8],
        weights: std::borrow::Cow<'static, [u8]>,
        tokenizer: Option<&[u8]>,
    ) -> Result<ModelFiles, InferenceError> {
        let config_bytes = config;
        let config = ModelConfig::from_json(config, what)?;
        crate::arch::parse_file_bytes(&weights, what)?;
        let tokenizer = tokenizer
            .map(|t| Tokenizer::from_bytes(t).map_err(|e| bad(&format!("{what} tokenizer.json"), e)))
            .transpose()?;
        Ok(ModelFiles {
            what: what.to_string(),
            config,
            weights: Weights::Bytes {
                config: config_bytes.to_vec(),
                weights,
            },
            tokenizer,
        })
    }

    /// A folder as Hugging Face lays it out. A missing `tokenizer.json` is fine
    /// (token ids still run); a broken one is an error.
    pub fn from_dir(dir: &Path) -> Result<ModelFiles, InferenceError> {
        let what = dir.display().to_string();
        let config_path = dir.join("config.json");
        let bytes = std::fs::read(&config_path).map_err(|error| InferenceError::Io {
            path: config_path.clone(),
            error,
        })?;
        let config = ModelConfig::from_json(&bytes, &what)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = tokenizer_path
            .is_file()
            .then(|| Tokenizer::from_file(&tokenizer_path).map_err(|e| bad(&tokenizer_path.display().to_string(), e)))
            .transpose()?;
        Ok(ModelFiles {
            config,
            weights: Weights::Files(weight_files(dir)?),
            tokenizer,
            what,
        })
    }

    /// A `.gguf` file: the config from its metadata, the weights read when
    /// loaded (matrices stay quantized). The tokenizer is `tokenizer.json`
    /// beside the file (`NAME.tokenizer.json` or `tokenizer.json`); without
    /// one, token ids still run.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_gguf(path: &Path) -> Result<ModelFiles, InferenceError> {
        let what = path.display().to_string();
        let header = super::gguf::read_header(path)?;
        let config = ModelConfig::from_value(super::gguf::config_json(&header), &what)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let beside = [dir.join(format!("{stem}.tokenizer.json")), dir.join("tokenizer.json")]
            .into_iter()
            .find(|p| p.is_file())
            .map(|p| Tokenizer::from_file(&p).map_err(|e| bad(&p.display().to_string(), e)))
            .transpose()?;
        // Else the GGUF's own vocabulary; a kind not built here leaves token ids.
        let tokenizer = match beside {
            Some(t) => Some(t),
            None => super::gguf_tokenizer::tokenizer(&header).ok().flatten(),
        };
        Ok(ModelFiles {
            what,
            config,
            weights: Weights::Gguf(path.to_path_buf()),
            tokenizer,
        })
    }

    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// Loads the weights. Files keep their dtype in memory (a bf16 or f16
    /// checkpoint stays half: one matrix at a time is widened to f32 when it
    /// is used); the in-memory (embedded, browser) model is widened once.
    pub fn load(&self) -> Result<Model, InferenceError> {
        let vb = match &self.weights {
            // Read, not memory-mapped: a file changed underneath is an error, not a crash.
            #[cfg(not(target_arch = "wasm32"))]
            Weights::Files(files) => {
                let weights = super::weights::FileWeights::open(files)?;
                let dtype = weights.storage_dtype();
                VarBuilder::from_backend(Box::new(weights), dtype, Device::Cpu)
            }
            #[cfg(not(target_arch = "wasm32"))]
            Weights::Gguf(path) => {
                let header = super::gguf::read_header(path)?;
                let weights = std::sync::Arc::new(super::gguf::GgufWeights::open(path, &header)?);
                let dense =
                    VarBuilder::from_backend(Box::new(super::gguf::Dense(weights.clone())), DType::F32, Device::Cpu);
                return Model::from_config(
                    &self.config,
                    super::vb::VarBuilder::with_quantized(dense, weights),
                    &self.what,
                );
            }
            #[cfg(target_arch = "wasm32")]
            Weights::Files(_) | Weights::Gguf(_) => return Err(bad(&self.what, "the browser reads no weight files")),
            Weights::Bytes { weights, .. } => {
                VarBuilder::from_buffered_safetensors(weights.to_vec(), DType::F32, &Device::Cpu)?
            }
        };
        Model::from_config(&self.config, vb.into(), &self.what)
    }

    /// Token ids of `text` with the special tokens the tokenizer's post-processor
    /// adds (as transformers' `tokenizer(text)` does: no padding, no truncation).
    ///
    /// Without a tokenizer, a prompt of token ids (`5, 17, 42` or `#5 #17 #42`)
    /// runs as those ids, so a model without `tokenizer.json` still runs in the
    /// viewer; any other text is an error saying so.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        let Some(tokenizer) = &self.tokenizer else {
            return token_ids(text).ok_or_else(|| {
                bad(
                    &self.what,
                    "no tokenizer.json, so text cannot be tokenized; type token ids (`5, 17, 42`), pass --token-ids, or put the model's tokenizer.json beside it",
                )
            });
        };
        let mut tokenizer = tokenizer.clone();
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| bad(&self.what, e))?;
        let encoding = tokenizer.encode(text, true).map_err(|e| bad(&self.what, e))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Display text of each token (`#id` without a tokenizer).
    pub fn token_texts(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| {
                self.tokenizer
                    .as_ref()
                    .and_then(|t| t.decode(&[id], false).ok())
                    .unwrap_or_else(|| format!("#{id}"))
            })
            .collect()
    }

    /// A failed run's message for the user; non-finite activations are traced
    /// back to the weight tensors that hold NaN/Inf.
    pub fn diagnose(&self, error: InferenceError) -> String {
        let InferenceError::NonFinite { layer } = error else {
            return error.to_string();
        };
        match self.non_finite_tensors() {
            Ok(names) if !names.is_empty() => format!(
                "{}: the weights contain NaN or infinite values ({}{}), so hidden state {layer} is not finite; \
                 the checkpoint is corrupt: download or export it again",
                self.what,
                names.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                if names.len() > 3 {
                    format!(" and {} more tensors", names.len() - 3)
                } else {
                    String::new()
                }
            ),
            _ => format!(
                "{}: hidden state {layer} overflowed to NaN or infinity (the weights themselves are finite); \
                 the model may need a wider dtype than this checkpoint's",
                self.what
            ),
        }
    }

    /// Names of weight tensors holding NaN or infinite values (for reporting a
    /// corrupt checkpoint once activations turn non-finite).
    pub fn non_finite_tensors(&self) -> Result<Vec<String>, InferenceError> {
        let mut found = Vec::new();
        let mut scan = |bytes: &[u8]| -> Result<(), InferenceError> {
            let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(&self.what, e))?;
            let mut names: Vec<String> = tensors.names().into_iter().map(str::to_string).collect();
            names.sort();
            for name in names {
                let view = tensors.tensor(&name).map_err(|e| bad(&self.what, e))?;
                if !all_finite(view.dtype(), view.data()) {
                    found.push(name);
                }
            }
            Ok(())
        };
        match &self.weights {
            Weights::Bytes { weights, .. } => scan(weights)?,
            Weights::Files(files) => {
                for file in files {
                    let bytes = std::fs::read(file).map_err(|e| bad(&file.display().to_string(), e))?;
                    scan(&bytes)?;
                }
            }
            // Quantized blocks are checked when dequantized, not here.
            Weights::Gguf(_) => {}
        }
        Ok(found)
    }
}

/// A prompt that is a list of token ids: numbers separated by commas or
/// spaces, each optionally written `#N` (as tokens without a text are shown).
fn token_ids(text: &str) -> Option<Vec<u32>> {
    let ids: Option<Vec<u32>> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.strip_prefix('#').unwrap_or(s).parse().ok())
        .collect();
    ids.filter(|ids| !ids.is_empty())
}

/// Whether a raw little-endian float buffer holds only finite values (integer dtypes always do).
fn all_finite(dtype: safetensors::Dtype, data: &[u8]) -> bool {
    use safetensors::Dtype;
    match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
        Dtype::F64 => data
            .chunks_exact(8)
            .all(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]).is_finite()),
        // f16: exponent bits all ones = Inf/NaN; bf16: the same test as f32's upper half.
        Dtype::F16 => data
            .chunks_exact(2)
            .all(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 != 0x7c00),
        Dtype::BF16 => data
            .chunks_exact(2)
            .all(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7f80 != 0x7f80),
        _ => true,
    }
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, InferenceError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let parsed = read_index_file(&index)?;
        return Ok(parsed.into_iter().map(|s| dir.join(s)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(bad(
        &dir.display().to_string(),
        "no model.safetensors or model.safetensors.index.json: running a model needs its weights",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_of_token_ids_parse_without_a_tokenizer() {
        assert_eq!(token_ids("5, 17,42"), Some(vec![5, 17, 42]));
        assert_eq!(token_ids("#5 #17"), Some(vec![5, 17]));
        assert_eq!(token_ids("ROMEO: 5"), None);
        assert_eq!(token_ids(" "), None);
        assert_eq!(token_ids("99999999999"), None);
    }

    #[test]
    fn finite_checks_each_float_dtype() {
        let f32s: Vec<u8> = [1.0f32, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(!all_finite(safetensors::Dtype::F32, &f32s));
        assert!(all_finite(safetensors::Dtype::F32, &f32s[..4]));
        // f16 1.0 = 0x3c00, +inf = 0x7c00; bf16 1.0 = 0x3f80, NaN = 0x7fc0
        assert!(all_finite(safetensors::Dtype::F16, &0x3c00u16.to_le_bytes()));
        assert!(!all_finite(safetensors::Dtype::F16, &0x7c00u16.to_le_bytes()));
        assert!(all_finite(safetensors::Dtype::BF16, &0x3f80u16.to_le_bytes()));
        assert!(!all_finite(safetensors::Dtype::BF16, &0x7fc0u16.to_le_bytes()));
    }

    #[test]
    fn embedded_header_is_the_weights_header() {
        assert!(EMBEDDED_WEIGHTS.starts_with(EMBEDDED_HEADER));
        assert_eq!(crate::arch::EMBEDDED_WEIGHTS_LEN, EMBEDDED_WEIGHTS.len() as u64);
        let fetched = ModelFiles::embedded_fetched(EMBEDDED_WEIGHTS.to_vec(), EMBEDDED_TOKENIZER).unwrap();
        assert_eq!(fetched.in_memory().unwrap().1, EMBEDDED_WEIGHTS);
        // Weights from another build (here: one header byte changed) are refused by name.
        let mut other = EMBEDDED_WEIGHTS.to_vec();
        other[20] ^= 1;
        let e = ModelFiles::embedded_fetched(other, EMBEDDED_TOKENIZER)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("rebuild the web bundle"), "{e}");
    }

    #[test]
    fn embedded_model_runs_and_tokenizes() {
        let files = ModelFiles::embedded().unwrap();
        let ids = files.tokenize("ROMEO:\nBut soft").unwrap();
        assert!(ids.len() >= 3);
        assert_eq!(files.token_texts(&ids).concat(), "ROMEO:\nBut soft");
        let capture = files.load().unwrap().capture(&ids).unwrap();
        assert_eq!(capture.hidden.len(), 7);
        assert_eq!(capture.attn.len(), 6);
        assert_eq!(capture.mlp.len(), 6);
        assert_eq!(capture.logits.unwrap().dims(), &[ids.len(), 2048]);
        assert!(files.non_finite_tensors().unwrap().is_empty());
    }
}
