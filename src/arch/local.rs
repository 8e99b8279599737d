//! Local model sources: a `.safetensors` file or a model folder (one file, or
//! `model.safetensors.index.json` with shards, plus `config.json`). Only headers
//! are read: 8 bytes, then the JSON table.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::header::{parse_header, parse_header_prefix};
use super::{ArchError, Architecture, HeaderTensor, ModelConfig};

const INDEX_FILE: &str = "model.safetensors.index.json";
const SINGLE_FILE: &str = "model.safetensors";
const TORCH_INDEX_FILE: &str = "pytorch_model.bin.index.json";
const TORCH_SINGLE_FILE: &str = "pytorch_model.bin";
const PICKLE_EXTENSIONS: &[&str] = &["bin", "pt", "pth", "ckpt", "pkl", "pickle"];

/// A single `.safetensors` file; a `config.json` beside it is used when present.
pub fn load_safetensors_file(path: &Path) -> Result<Architecture, ArchError> {
    let rows = read_header_file(path)?;
    let config = path
        .parent()
        .map(|dir| dir.join("config.json"))
        .filter(|c| c.is_file())
        .map(|c| read_config(&c))
        .transpose()?;
    let name = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Architecture::from_rows(name, "file", config, rows))
}

/// A PyTorch checkpoint file (`.bin`, `.pt`, `.pth`, `.ckpt`): its pickle is
/// read, never executed; a `config.json` beside it is used when present.
pub fn load_torch_file(path: &Path) -> Result<Architecture, ArchError> {
    load_safetensors_file(path).map(|mut arch| {
        arch.source = "file (PyTorch)".into();
        arch
    })
}

/// A `.gguf` file: its architecture from the header alone (metadata and
/// tensor infos; the tensor data is never read).
pub fn load_gguf_file(path: &Path) -> Result<Architecture, ArchError> {
    use std::io::{Seek, SeekFrom};
    let io = |source| ArchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let name = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let what = path.display().to_string();
    if len == 0 {
        return Err(ArchError::Empty { what });
    }
    let (header, _) = super::gguf::read(len, 1 << 20, &what, |offset, n| {
        let mut buf = vec![0u8; n.min(len.saturating_sub(offset)) as usize];
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        file.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    })?;
    super::gguf::architecture(&header, name, "file")
}

/// A model folder as Hugging Face lays it out.
pub fn load_folder(dir: &Path) -> Result<Architecture, ArchError> {
    let config_path = dir.join("config.json");
    let config = config_path.is_file().then(|| read_config(&config_path)).transpose()?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());

    let index = [INDEX_FILE, TORCH_INDEX_FILE]
        .map(|f| dir.join(f))
        .into_iter()
        .find(|p| p.is_file());
    let single = [SINGLE_FILE, TORCH_SINGLE_FILE]
        .map(|f| dir.join(f))
        .into_iter()
        .find(|p| p.is_file());
    let mut notices = Vec::new();
    let rows = if let Some(index) = index {
        read_sharded(dir, &index, &mut notices)?
    } else if let Some(single) = single {
        read_header_file(&single)?
    } else {
        let mut files = safetensors_files(dir)?;
        if files.is_empty() {
            let Some(cfg) = config else {
                return Err(ArchError::EmptyFolder {
                    path: dir.to_path_buf(),
                });
            };
            let rows = super::synthesize(&cfg, &config_path.display().to_string())?;
            let mut arch = Architecture::from_rows(name, "folder (config.json only)", Some(cfg), rows);
            arch.notices
                .push("no .safetensors files in the folder: tensors laid out from config.json".into());
            return Ok(arch);
        }
        files.sort();
        let mut rows = Vec::new();
        for file in files {
            let shard = file.file_name().map(|n| n.to_string_lossy().into_owned());
            rows.extend(read_header_file(&file)?.into_iter().map(|mut r| {
                r.shard.clone_from(&shard);
                r
            }));
        }
        rows
    };
    let mut arch = Architecture::from_rows(name, "folder", config, rows);
    arch.notices.extend(notices);
    Ok(arch)
}

/// A `model.safetensors.index.json`: which shard holds each tensor.
#[derive(Debug, Deserialize)]
pub struct ShardIndex {
    pub weight_map: std::collections::BTreeMap<String, String>,
}

/// Reads `model.safetensors.index.json`.
pub(crate) fn read_index(index: &Path) -> Result<ShardIndex, ArchError> {
    let text = std::fs::read(index).map_err(|e| ArchError::io(index, e))?;
    parse_index(&text, &index.display().to_string())
}

/// Parses a shard index and checks every shard is a plain file name inside the
/// model's folder (or repository): no `..`, no absolute path, no backslash, no
/// empty name. The index comes from the model, local or on the Hub, and its
/// names become paths on this machine.
pub fn parse_index(bytes: &[u8], what: &str) -> Result<ShardIndex, ArchError> {
    let index: ShardIndex = serde_json::from_slice(bytes).map_err(|e| ArchError::BadIndex {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    if let Some(shard) = index.weight_map.values().find(|s| !plain_shard_name(s)) {
        return Err(ArchError::BadIndex {
            what: what.to_string(),
            detail: format!("shard path `{}` leaves the model folder", shard.escape_debug()),
        });
    }
    Ok(index)
}

/// A relative path of ordinary components (`model-00001-of-00002.safetensors`, `sub/x.safetensors`).
fn plain_shard_name(shard: &str) -> bool {
    !shard.is_empty()
        && !shard.contains('\\')
        && !shard.contains('\0')
        && Path::new(shard)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Shard file names of a `model.safetensors.index.json`, sorted and unique.
pub fn read_index_file(index: &Path) -> Result<Vec<String>, ArchError> {
    Ok(shard_names(&read_index(index)?))
}

/// Shard file names of an index, sorted (the `-00001-of-000NN` numbering), unique.
pub fn shard_names(index: &ShardIndex) -> Vec<String> {
    let mut shards: Vec<String> = index.weight_map.values().cloned().collect();
    shards.sort();
    shards.dedup();
    shards
}

/// Reads every shard an index names, in shard-name order (the `-00001-of-000NN`
/// numbering), and checks the index and the headers agree.
fn read_sharded(dir: &Path, index: &Path, notices: &mut Vec<String>) -> Result<Vec<HeaderTensor>, ArchError> {
    let parsed = read_index(index)?;
    let shards = shard_names(&parsed);
    let mut rows = Vec::new();
    for shard in &shards {
        let path = dir.join(shard);
        if !path.is_file() {
            return Err(ArchError::MissingShard {
                index: index.to_path_buf(),
                shard: shard.clone(),
            });
        }
        rows.extend(read_header_file(&path)?.into_iter().map(|mut r| {
            r.shard = Some(shard.clone());
            r
        }));
    }
    let missing = parsed
        .weight_map
        .keys()
        .filter(|k| !rows.iter().any(|r| &r.name == *k))
        .count();
    if missing > 0 {
        notices.push(format!(
            "{missing} tensors named in {} are not in any shard header",
            index.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ));
    }
    Ok(rows)
}

fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>, ArchError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ArchError::io(dir, e))?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "safetensors"))
        .collect())
}

pub(crate) fn read_config(path: &Path) -> Result<ModelConfig, ArchError> {
    let bytes = std::fs::read(path).map_err(|e| ArchError::io(path, e))?;
    ModelConfig::from_json(&bytes, &path.display().to_string())
}

/// Reads the tensor table of one weights file: a safetensors header (8 bytes,
/// then exactly the header), or a PyTorch zip checkpoint's pickle.
pub(crate) fn read_header_file(path: &Path) -> Result<Vec<HeaderTensor>, ArchError> {
    let what = path.display().to_string();
    let (mut file, len, prefix) = open_with_prefix(path)?;
    let pickle_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PICKLE_EXTENSIONS.contains(&e));
    if super::torch::is_zip(&prefix) {
        use std::io::Seek;
        file.rewind().map_err(|e| ArchError::io(path, e))?;
        return super::torch::read_tensors(std::io::BufReader::new(file), &what);
    }
    if super::torch::is_legacy(&prefix) && (pickle_name || looks_like_pickle(&prefix)) {
        return Err(ArchError::Pickle {
            path: path.to_path_buf(),
        });
    }
    if pickle_name && len > 0 {
        return Err(ArchError::BadPickle {
            what,
            detail: "neither a zip archive (torch.save) nor a pickle; the file is corrupt or not a PyTorch checkpoint"
                .into(),
        });
    }
    let json = read_header_json(&mut file, &prefix, len, path)?;
    parse_header(&json, Some(len), &what)
}

/// A weights file opened, its length and its first (up to) 8 bytes — enough
/// to tell safetensors, a PyTorch zip and a bare pickle apart.
pub(crate) fn open_with_prefix(path: &Path) -> Result<(File, u64, Vec<u8>), ArchError> {
    let mut file = File::open(path).map_err(|e| ArchError::io(path, e))?;
    let len = file.metadata().map_err(|e| ArchError::io(path, e))?.len();
    let mut prefix = Vec::with_capacity(8);
    file.by_ref()
        .take(8)
        .read_to_end(&mut prefix)
        .map_err(|e| ArchError::io(path, e))?;
    Ok((file, len, prefix))
}

/// The JSON of a safetensors header after its 8-byte `prefix` (length checked
/// against the limit and the file's `len` before anything is allocated).
pub(crate) fn read_header_json(file: &mut File, prefix: &[u8], len: u64, path: &Path) -> Result<Vec<u8>, ArchError> {
    let n = parse_header_prefix(prefix, Some(len), &path.display().to_string())?;
    let mut json = vec![0u8; n as usize];
    file.read_exact(&mut json).map_err(|e| ArchError::io(path, e))?;
    Ok(json)
}

fn looks_like_pickle(prefix: &[u8]) -> bool {
    let Ok(first8) = <[u8; 8]>::try_from(prefix) else {
        return false;
    };
    let absurd = u64::from_le_bytes(first8) > super::MAX_HEADER_BYTES;
    let magic = prefix.starts_with(b"PK\x03\x04") || (prefix[0] == 0x80 && (2..=5).contains(&prefix[1]));
    absurd && magic
}
