//! Hugging Face Hub source (native only): `config.json` through hf-hub's cache,
//! and each safetensors shard's header through two HTTP Range requests (the
//! 8-byte length, then the header) — never the weights.
//!
//! Headers are kept in `$HF_HOME/tensorcity/headers/` so `--offline` (or
//! `HF_HUB_OFFLINE=1`, which hf-hub itself ignores) works for any model seen
//! before; a shard that is fully cached (say by Python) is read from disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hf_hub::{HFClient, HFError, split_id};

use super::header::{parse_header, parse_header_prefix};
use super::local::{read_config, read_header_file, read_index, shard_names};
use super::{ArchError, Architecture, HeaderTensor};

const INDEX_FILE: &str = "model.safetensors.index.json";
const SINGLE_FILE: &str = "model.safetensors";
const TORCH_INDEX_FILE: &str = "pytorch_model.bin.index.json";
const TORCH_SINGLE_FILE: &str = "pytorch_model.bin";

/// Where and how to reach the Hub. [`HubOptions::from_env`] gives the standard
/// behaviour; tests point `endpoint` and the caches at loopback and a temp dir.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Base URL; `None` means `HF_ENDPOINT` or `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// hf-hub's cache; `None` means `HF_HUB_CACHE` or `$HF_HOME/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Our header cache; `None` means `$HF_HOME/tensorcity/headers`.
    pub header_cache_dir: Option<PathBuf>,
    /// `None` means `HF_TOKEN` / the token file.
    pub token: Option<String>,
    pub revision: Option<String>,
    /// Never touch the network.
    pub offline: bool,
}

impl HubOptions {
    /// Standard options; `offline` is also switched on by `HF_HUB_OFFLINE=1`.
    pub fn from_env(revision: Option<String>, offline: bool) -> Self {
        HubOptions {
            revision,
            offline: offline || env_offline(),
            ..Default::default()
        }
    }

    fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

/// `HF_HUB_OFFLINE` as huggingface_hub reads it.
pub fn env_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"))
        .unwrap_or(false)
}

/// Why a hub id could not be loaded; the resolver decides on a fallback.
#[derive(Debug)]
pub enum HubFailure {
    /// No network (or the Hub is down), or offline mode: try the catalogue.
    Unreachable(String),
    /// The Hub answered: no such repo or revision.
    NotFound(String),
    /// Gated or private: needs `HF_TOKEN`.
    Denied(String),
    /// Reached, but what it served is broken.
    Invalid(ArchError),
}

/// Loads a hub model's architecture from its config and shard headers, or
/// from a GGUF file's header (`owner/name:file.gguf`, else `model.gguf` or the
/// repo's GGUF files when it publishes no safetensors).
pub fn load(id: &str, opts: &HubOptions) -> Result<Architecture, HubFailure> {
    let mut arch = load_architecture(id, opts)?;
    // The model card is optional: any failure to read it just leaves it out.
    if let Some(notice) = model_card(id, opts).and_then(|card| super::card::base_model_notice(&card)) {
        arch.notices.push(notice);
    }
    Ok(arch)
}

/// The repo's README.md (through hf-hub's cache; offline from it), if it has one.
fn model_card(id: &str, opts: &HubOptions) -> Option<String> {
    let repo_id = id.split_once(':').map_or(id, |(repo, _)| repo);
    let (owner, name) = split_id(repo_id);
    let client = build_client(opts).ok()?;
    let repo = hf_hub::HFClientSync::from_inner(client).ok()?.model(owner, name);
    let path = repo
        .download_file()
        .filename("README.md")
        .revision(opts.revision().to_string())
        .local_files_only(opts.offline)
        .send()
        .ok()?;
    let bytes = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(bytes.get(..64 << 10).unwrap_or(&bytes)).into_owned())
}

fn load_architecture(id: &str, opts: &HubOptions) -> Result<Architecture, HubFailure> {
    let (id, gguf_file) = match id.split_once(':') {
        Some((repo, file)) if file.ends_with(".gguf") => (repo, Some(file)),
        _ => (id, None),
    };
    let (owner, name) = split_id(id);
    let client = build_client(opts).map_err(|e| HubFailure::Unreachable(e.to_string()))?;
    let header_cache = opts.header_cache_dir.clone().unwrap_or_else(default_header_cache);
    let header_dir = header_cache.join(repo_folder(id)).join(sanitize(opts.revision()));
    let repo = hf_hub::HFClientSync::from_inner(client)
        .map_err(|e| HubFailure::Unreachable(e.to_string()))?
        .model(owner, name);
    let hub = Remote {
        id,
        repo: &repo,
        opts,
        header_dir: &header_dir,
    };

    if let Some(file) = gguf_file {
        return match hub.gguf(file)? {
            Some(arch) => Ok(arch),
            None => Err(HubFailure::NotFound(format!("no `{file}` in the repository"))),
        };
    }
    let config_path = hub.file("config.json")?;
    let config = match config_path {
        Some(p) => Some(read_config(&p).map_err(HubFailure::Invalid)?),
        None => None,
    };
    let shards = match hub.file(INDEX_FILE)? {
        Some(index) => shard_names(&read_index(&index).map_err(HubFailure::Invalid)?),
        None => vec![SINGLE_FILE.to_string()],
    };
    // Offline, a GGUF repo read before is known by its cached GGUF header.
    if opts.offline
        && shards.len() == 1
        && !hub.header_cached(&shards[0])
        && let Some(file) = hub.cached_gguf()
        && let Some(arch) = hub.gguf(&file)?
    {
        return Ok(arch);
    }
    // Offline, a PyTorch-checkpoint repo read before is known by its cached tensor table.
    if opts.offline
        && shards.len() == 1
        && !hub.header_cached(&shards[0])
        && hub.torch_cached()
        && let Some(rows) = hub.torch_checkpoint()?
    {
        return Ok(Architecture::from_rows(id, "hub (PyTorch checkpoint)", config, rows));
    }
    let mut rows = Vec::new();
    for shard in &shards {
        match hub.header(shard)? {
            Some(found) => rows.extend(found.into_iter().map(|mut r| {
                r.shard = (shards.len() > 1).then(|| shard.clone());
                r
            })),
            None if shards.len() == 1 => {
                // No safetensors: a GGUF repo, a PyTorch-checkpoint one, or laid out from its config.
                for file in hub.gguf_files() {
                    if let Some(arch) = hub.gguf(&file)? {
                        return Ok(arch);
                    }
                }
                if let Some(rows) = hub.torch_checkpoint()? {
                    return Ok(Architecture::from_rows(id, "hub (PyTorch checkpoint)", config, rows));
                }
                let Some(cfg) = config else {
                    return Err(HubFailure::NotFound(format!(
                        "no config.json or {SINGLE_FILE} at revision {}",
                        opts.revision()
                    )));
                };
                let rows = super::synthesize(&cfg, id).map_err(HubFailure::Invalid)?;
                let mut arch = Architecture::from_rows(id, "hub (config.json only)", Some(cfg), rows);
                arch.notices.push(format!(
                    "`{id}` publishes no safetensors file; tensors laid out from its config.json"
                ));
                return Ok(arch);
            }
            None => {
                return Err(HubFailure::Invalid(ArchError::Hub {
                    id: id.to_string(),
                    reason: format!("shard `{shard}` named in {INDEX_FILE} is missing from the repo"),
                }));
            }
        }
    }
    Ok(Architecture::from_rows(id, "hub", config, rows))
}

/// Downloads what running a model needs (config, tokenizer, every safetensors
/// shard) into hf-hub's cache and returns the snapshot folder holding them.
/// Unlike [`load`], this fetches the weights: only `capture` asks for it.
pub fn download_model(id: &str, opts: &HubOptions) -> Result<PathBuf, ArchError> {
    let (owner, name) = split_id(id);
    let fail = |reason: String| ArchError::Hub {
        id: id.to_string(),
        reason,
    };
    // Weights are large: no overall timeout, only the connect timeout.
    let client = build_client_with(opts, None).map_err(|e| fail(e.to_string()))?;
    let repo = hf_hub::HFClientSync::from_inner(client)
        .map_err(|e| fail(e.to_string()))?
        .model(owner, name);
    let header_dir = PathBuf::new();
    let hub = Remote {
        id,
        repo: &repo,
        opts,
        header_dir: &header_dir,
    };
    let explain = |f: HubFailure| match f {
        HubFailure::Invalid(e) => e,
        HubFailure::Unreachable(r) | HubFailure::NotFound(r) | HubFailure::Denied(r) => fail(r),
    };
    let config = hub
        .file("config.json")
        .map_err(explain)?
        .ok_or_else(|| fail("the repository has no config.json".into()))?;
    hub.file("tokenizer.json").map_err(explain)?;
    let shards = match hub.file(INDEX_FILE).map_err(explain)? {
        Some(index) => shard_names(&read_index(&index)?),
        None => vec![SINGLE_FILE.to_string()],
    };
    for shard in &shards {
        eprintln!("downloading {id}/{shard} ...");
        hub.file(shard).map_err(explain)?.ok_or_else(|| {
            fail(format!(
                "no `{shard}` in the repository (only safetensors checkpoints run)"
            ))
        })?;
    }
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| fail("hf-hub returned a file outside a snapshot folder".into()))
}

/// A Hub repository's safetensors shards, for reading their values by Range
/// requests (the weights lens samples a Hub model without downloading it).
pub struct RemoteWeights {
    id: String,
    repo: hf_hub::HFRepositorySync<hf_hub::RepoTypeModel>,
    opts: HubOptions,
    header_dir: PathBuf,
}

/// One shard: its name, where its data starts, and its tensors with their
/// byte ranges inside the data.
pub type LocatedShard = (String, u64, Vec<(HeaderTensor, (u64, u64))>);

impl RemoteWeights {
    pub fn open(id: &str, opts: &HubOptions) -> Result<RemoteWeights, ArchError> {
        let fail = |reason: String| ArchError::Hub {
            id: id.to_string(),
            reason,
        };
        if opts.offline {
            return Err(fail("reading weights needs the network (it is offline)".into()));
        }
        let (owner, name) = split_id(id);
        let client = build_client(opts).map_err(|e| fail(e.to_string()))?;
        let repo = hf_hub::HFClientSync::from_inner(client)
            .map_err(|e| fail(e.to_string()))?
            .model(owner, name);
        let header_cache = opts.header_cache_dir.clone().unwrap_or_else(default_header_cache);
        let header_dir = header_cache.join(repo_folder(id)).join(sanitize(opts.revision()));
        Ok(RemoteWeights {
            id: id.to_string(),
            repo,
            opts: opts.clone(),
            header_dir,
        })
    }

    fn remote(&self) -> Remote<'_> {
        Remote {
            id: &self.id,
            repo: &self.repo,
            opts: &self.opts,
            header_dir: &self.header_dir,
        }
    }

    fn explain(&self, failure: HubFailure) -> ArchError {
        match failure {
            HubFailure::Invalid(e) => e,
            HubFailure::Unreachable(reason) | HubFailure::NotFound(reason) | HubFailure::Denied(reason) => {
                ArchError::Hub {
                    id: self.id.clone(),
                    reason,
                }
            }
        }
    }

    fn shard_names(&self) -> Result<Vec<String>, ArchError> {
        Ok(match self.remote().file(INDEX_FILE).map_err(|f| self.explain(f))? {
            Some(index) => shard_names(&read_index(&index)?),
            None => vec![SINGLE_FILE.to_string()],
        })
    }

    /// Downloads every safetensors shard into hf-hub's cache (`progress`
    /// hears each file's bytes) and returns the folder holding them.
    pub fn download(&self, progress: hf_hub::progress::Progress) -> Result<PathBuf, ArchError> {
        let mut folder = None;
        for shard in self.shard_names()? {
            let path = self
                .repo
                .download_file()
                .filename(shard.clone())
                .revision(self.opts.revision().to_string())
                .progress(progress.clone())
                .send()
                .map_err(|e| self.explain(self.remote().failure(e)))?;
            folder = path.parent().map(Path::to_path_buf);
        }
        folder.ok_or_else(|| ArchError::Hub {
            id: self.id.clone(),
            reason: "hf-hub returned a file outside a snapshot folder".into(),
        })
    }

    /// Every safetensors shard with its tensors' byte ranges (headers from
    /// our cache or two Range requests each).
    pub fn shards(&self) -> Result<Vec<LocatedShard>, ArchError> {
        let hub = self.remote();
        let names = self.shard_names()?;
        let mut shards = Vec::new();
        for shard in names {
            let Some((blob, what)) = hub.header_blob(&shard).map_err(|f| self.explain(f))? else {
                return Err(ArchError::Hub {
                    id: self.id.clone(),
                    reason: format!(
                        "no `{shard}` in the repository: weight statistics of a Hub model read safetensors files"
                    ),
                });
            };
            let located = super::header::parse_located(blob.get(8..).unwrap_or_default(), &what)?;
            shards.push((shard, blob.len() as u64, located));
        }
        Ok(shards)
    }

    /// Bytes `range` of `file`, exactly (a short or long answer is an error).
    pub fn read(&self, file: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>, String> {
        let hub = self.remote();
        let expected = range.end.saturating_sub(range.start);
        let bytes = hub
            .range(file, range.clone())
            .map_err(|e| self.explain(hub.failure(e)).to_string())?;
        if bytes.len() as u64 != expected {
            return Err(format!(
                "{}/{file}: asked for bytes {}..{}, got {}; the server ignored the Range request",
                self.id,
                range.start,
                range.end,
                bytes.len()
            ));
        }
        Ok(bytes.to_vec())
    }
}

struct Remote<'a> {
    id: &'a str,
    repo: &'a hf_hub::HFRepositorySync<hf_hub::RepoTypeModel>,
    opts: &'a HubOptions,
    header_dir: &'a Path,
}

impl Remote<'_> {
    /// A small file through hf-hub's cache; `None` when the repo has no such file.
    fn file(&self, filename: &str) -> Result<Option<PathBuf>, HubFailure> {
        let result = self
            .repo
            .download_file()
            .filename(filename)
            .revision(self.opts.revision().to_string())
            .local_files_only(self.opts.offline)
            .send();
        match result {
            Ok(path) => Ok(Some(path)),
            Err(HFError::EntryNotFound { .. }) => Ok(None),
            Err(HFError::LocalEntryNotFound { .. }) if filename != "config.json" => Ok(None),
            Err(e) => Err(self.failure(e)),
        }
    }

    /// A shard's header: from a fully cached file, from our header cache when
    /// offline, else two Range requests (and then cached).
    fn header(&self, shard: &str) -> Result<Option<Vec<HeaderTensor>>, HubFailure> {
        if let Some(path) = self.cached_file(shard) {
            return read_header_file(&path).map(Some).map_err(HubFailure::Invalid);
        }
        let Some((blob, what)) = self.header_blob(shard)? else {
            return Ok(None);
        };
        parse_header(blob.get(8..).unwrap_or_default(), None, &what)
            .map(Some)
            .map_err(HubFailure::Invalid)
    }

    /// A shard's length prefix and JSON header (`None`: no such file), from our
    /// header cache, else two Range requests (then cached), with the name to
    /// report problems under.
    fn header_blob(&self, shard: &str) -> Result<Option<(Vec<u8>, String)>, HubFailure> {
        let cache_path = self.header_dir.join(format!("{}.header", sanitize(shard)));
        let what = format!("{}/{shard}", self.id);
        if self.opts.offline {
            let Ok(bytes) = std::fs::read(&cache_path) else {
                return Err(HubFailure::Unreachable(format!(
                    "offline and the header of `{shard}` is not cached (run once online to cache it)"
                )));
            };
            // Checked as any download is: a cache file is only bytes on a disk.
            parse_cached(&bytes, &cache_path).map_err(HubFailure::Invalid)?;
            return Ok(Some((bytes, what)));
        }
        let prefix = match self.range(shard, 0..8) {
            Ok(b) => b,
            Err(HFError::EntryNotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failure(e)),
        };
        let n = parse_header_prefix(&prefix, None, &what).map_err(HubFailure::Invalid)?;
        if n > MAX_REMOTE_HEADER {
            return Err(HubFailure::Invalid(ArchError::Hub {
                id: self.id.to_string(),
                reason: format!(
                    "`{shard}` claims a {} MB header; real headers are far under {} MB, so it is not downloaded (the file is corrupt)",
                    n / 1_000_000,
                    MAX_REMOTE_HEADER / 1_000_000
                ),
            }));
        }
        let json = self.range(shard, 8..8 + n).map_err(|e| self.failure(e))?;
        if json.len() as u64 != n {
            return Err(HubFailure::Invalid(ArchError::Hub {
                id: self.id.to_string(),
                reason: format!(
                    "asked for {n} header bytes of `{shard}`, got {}; the server ignored the Range request",
                    json.len()
                ),
            }));
        }
        parse_header(&json, None, &what).map_err(HubFailure::Invalid)?;
        let mut blob = prefix.to_vec();
        blob.extend_from_slice(&json);
        // Cache failures only cost a later offline run; never fail the load for them.
        if std::fs::create_dir_all(self.header_dir).is_ok() {
            let _ = std::fs::write(&cache_path, &blob);
        }
        Ok(Some((blob, what)))
    }

    /// The whole file when it is in the Hugging Face cache (downloaded before).
    fn cached_file(&self, file: &str) -> Option<PathBuf> {
        self.repo
            .download_file()
            .filename(file)
            .revision(self.opts.revision().to_string())
            .local_files_only(true)
            .send()
            .ok()
    }

    /// Whether a safetensors shard's header is in our header cache.
    fn header_cached(&self, shard: &str) -> bool {
        self.header_dir.join(format!("{}.header", sanitize(shard))).is_file()
    }

    /// Whether a PyTorch checkpoint's tensor table is in our header cache.
    fn torch_cached(&self) -> bool {
        std::fs::read_dir(self.header_dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".tensors.json"))
        })
    }

    /// A GGUF file whose header is in our header cache (the first by name).
    fn cached_gguf(&self) -> Option<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.header_dir)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| {
                n.strip_suffix(".header")
                    .filter(|f| f.ends_with(".gguf"))
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        names.into_iter().next()
    }

    /// The repo's GGUF files to try, best first: `model.gguf`, then a Q4_K_M,
    /// then the others (from the repo's file list when the Hub gives one).
    fn gguf_files(&self) -> Vec<String> {
        let mut files = vec!["model.gguf".to_string()];
        if self.opts.offline {
            return files;
        }
        if let Ok(info) = self.repo.info().revision(self.opts.revision().to_string()).send() {
            let mut listed: Vec<String> = info
                .siblings
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.rfilename)
                .filter(|f| f.ends_with(".gguf") && f != "model.gguf")
                .collect();
            listed.sort_by_key(|f| (!f.to_ascii_lowercase().contains("q4_k_m"), f.clone()));
            files.extend(listed);
        }
        files
    }

    /// A GGUF file's architecture from its header: a fully cached file, our
    /// header cache, else Range requests for a growing prefix (never the
    /// tensor data); `None` when the repo has no such file.
    fn gguf(&self, file: &str) -> Result<Option<Architecture>, HubFailure> {
        let what = format!("{}/{file}", self.id);
        let cache_path = self.header_dir.join(format!("{}.header", sanitize(file)));
        if let Some(path) = self.cached_file(file) {
            return super::load_gguf_file(&path).map(Some).map_err(HubFailure::Invalid);
        }
        let bytes = if self.opts.offline {
            std::fs::read(&cache_path).map_err(|_| {
                HubFailure::Unreachable(format!(
                    "offline and the header of `{file}` is not cached (run once online to cache it)"
                ))
            })?
        } else {
            Vec::new()
        };
        let mut missing = false;
        let read = super::gguf::read(u64::MAX, 256 << 10, &what, |offset, n| {
            if let Some(part) = bytes.get(offset as usize..)
                && !part.is_empty()
            {
                return Ok(part.get(..n as usize).unwrap_or(part).to_vec());
            }
            match self.range(file, offset..offset + n) {
                Ok(b) => Ok(b.to_vec()),
                Err(HFError::EntryNotFound { .. }) => {
                    missing = true;
                    Err(ArchError::Hub {
                        id: self.id.to_string(),
                        reason: format!("no `{file}`"),
                    })
                }
                Err(e) => Err(ArchError::Hub {
                    id: self.id.to_string(),
                    reason: format!("reading `{file}`'s header: {e}"),
                }),
            }
        });
        let (header, prefix) = match read {
            Ok(found) => found,
            Err(_) if missing => return Ok(None),
            Err(e) => return Err(HubFailure::Invalid(e)),
        };
        if std::fs::create_dir_all(self.header_dir).is_ok() {
            let _ = std::fs::write(&cache_path, &prefix);
        }
        let name = format!("{}:{file}", self.id);
        super::gguf::architecture(&header, name, "hub (GGUF header)")
            .map(Some)
            .map_err(HubFailure::Invalid)
    }

    /// A PyTorch checkpoint's tensors (`pytorch_model.bin`, or the shards of
    /// `pytorch_model.bin.index.json`); `None` when the repo has neither.
    fn torch_checkpoint(&self) -> Result<Option<Vec<HeaderTensor>>, HubFailure> {
        let shards = match self.file(TORCH_INDEX_FILE)? {
            Some(index) => shard_names(&read_index(&index).map_err(HubFailure::Invalid)?),
            None => vec![TORCH_SINGLE_FILE.to_string()],
        };
        let mut rows = Vec::new();
        for shard in &shards {
            match self.torch(shard)? {
                Some(found) => rows.extend(found.into_iter().map(|mut r| {
                    r.shard = (shards.len() > 1).then(|| shard.clone());
                    r
                })),
                None if shards.len() == 1 => return Ok(None),
                None => {
                    return Err(HubFailure::Invalid(ArchError::Hub {
                        id: self.id.to_string(),
                        reason: format!("shard `{shard}` named in {TORCH_INDEX_FILE} is missing from the repo"),
                    }));
                }
            }
        }
        Ok(Some(rows))
    }

    /// One PyTorch zip checkpoint's tensors: a fully cached file, our header
    /// cache, else its size (HEAD) and Range reads of the zip's central
    /// directory and `data.pkl` only (never the tensor data).
    fn torch(&self, file: &str) -> Result<Option<Vec<HeaderTensor>>, HubFailure> {
        if let Some(path) = self.cached_file(file) {
            return read_header_file(&path).map(Some).map_err(HubFailure::Invalid);
        }
        let cache_path = self.header_dir.join(format!("{}.tensors.json", sanitize(file)));
        if self.opts.offline {
            let bytes = std::fs::read(&cache_path).map_err(|_| {
                HubFailure::Unreachable(format!(
                    "offline and the tensor table of `{file}` is not cached (run once online to cache it)"
                ))
            })?;
            return serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                HubFailure::Invalid(ArchError::BadHeader {
                    what: cache_path.display().to_string(),
                    detail: format!("{e}; delete the cached file"),
                })
            });
        }
        let size = match self
            .repo
            .get_file_metadata()
            .filepath(file)
            .revision(self.opts.revision())
            .send()
        {
            Ok(meta) if meta.file_size > 0 => meta.file_size,
            Ok(_) => {
                return Err(HubFailure::Invalid(ArchError::Hub {
                    id: self.id.to_string(),
                    reason: format!("the server did not say how big `{file}` is (no Content-Length or X-Linked-Size)"),
                }));
            }
            Err(HFError::EntryNotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failure(e)),
        };
        let what = format!("{}/{file}", self.id);
        let mut reader = super::ranged::Ranged::new(size, |offset, n| {
            self.range(file, offset..offset + n)
                .map(|b| b.to_vec())
                .map_err(|e| ArchError::Hub {
                    id: self.id.to_string(),
                    reason: format!("reading `{file}`: {e}"),
                })
        });
        let read = super::torch::read_tensors(&mut reader, &what);
        let rows = match (read, reader.error.take()) {
            (Ok(rows), _) => rows,
            (Err(_), Some(transport)) => return Err(HubFailure::Invalid(transport)),
            (Err(e), None) => return Err(HubFailure::Invalid(e)),
        };
        if std::fs::create_dir_all(self.header_dir).is_ok()
            && let Ok(json) = serde_json::to_vec(&rows)
        {
            let _ = std::fs::write(&cache_path, json);
        }
        Ok(Some(rows))
    }

    fn range(&self, shard: &str, range: std::ops::Range<u64>) -> Result<bytes::Bytes, HFError> {
        let expected = range.end - range.start;
        let bytes = self
            .repo
            .download_file_to_bytes()
            .filename(shard)
            .revision(self.opts.revision().to_string())
            .range(range)
            .send()?;
        // Some servers ignore Range and send the whole file; keep only what we asked for.
        Ok(if bytes.len() as u64 > expected {
            bytes.slice(..expected as usize)
        } else {
            bytes
        })
    }

    fn failure(&self, e: HFError) -> HubFailure {
        let rev = self.opts.revision();
        match e {
            HFError::RepoNotFound { .. } => HubFailure::NotFound("no such repository on the Hub".into()),
            HFError::RevisionNotFound { .. } => HubFailure::NotFound(format!("revision `{rev}` does not exist")),
            HFError::AuthRequired { .. } | HFError::Forbidden { .. } => HubFailure::Denied(
                "the Hub refused access: the repository does not exist, or is gated or private (accept its licence on huggingface.co and set HF_TOKEN)".into(),
            ),
            HFError::LocalEntryNotFound { .. } => {
                HubFailure::Unreachable("offline and not in the Hugging Face cache".into())
            }
            HFError::Request { source, .. } if source.is_timeout() => HubFailure::Unreachable(format!(
                "the Hub did not answer within {} s (a slow link: set TENSORCITY_HUB_TIMEOUT=SECS)",
                hub_timeout().as_secs()
            )),
            HFError::Request { source, .. } if source.is_redirect() => {
                HubFailure::Unreachable("the Hub's answer redirected too many times (a redirect loop)".into())
            }
            HFError::Request { .. } | HFError::RateLimited { .. } => {
                HubFailure::Unreachable("the Hugging Face Hub is unreachable".into())
            }
            HFError::Http { .. } => HubFailure::Unreachable(format!("the Hub answered with an error ({e})")),
            other => HubFailure::Unreachable(other.to_string()),
        }
    }
}

/// How long one request for metadata or headers may take, and how long a
/// download may go without receiving a byte: `TENSORCITY_HUB_TIMEOUT` seconds,
/// else 60.
pub fn hub_timeout() -> Duration {
    let secs = std::env::var("TENSORCITY_HUB_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Headers bigger than this are not fetched over the network: the largest real
/// ones (hundreds of tensors per shard) are well under 1 MB, so a claim of tens
/// of megabytes is a corrupt or hostile file, not worth the download.
pub const MAX_REMOTE_HEADER: u64 = 16_000_000;

fn build_client(opts: &HubOptions) -> Result<HFClient, HFError> {
    build_client_with(opts, Some(hub_timeout()))
}

fn build_client_with(opts: &HubOptions, timeout: Option<Duration>) -> Result<HFClient, HFError> {
    // Fail fast when there is no network instead of hanging on a black-holed route.
    let mut http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        // A download that stalls (a hung connection) fails instead of waiting forever.
        .read_timeout(hub_timeout())
        .user_agent(concat!("tensorcity/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = timeout {
        http = http.timeout(t);
    }
    let http = http.build()?;
    let mut builder = HFClient::builder().client(http).retry_max_attempts(2);
    if let Some(endpoint) = &opts.endpoint {
        builder = builder.endpoint(endpoint.clone());
    }
    if let Some(dir) = &opts.cache_dir {
        builder = builder.cache_dir(dir.clone());
    }
    if let Some(token) = &opts.token {
        builder = builder.token(token.clone());
    }
    builder.build()
}

fn parse_cached(bytes: &[u8], path: &Path) -> Result<Vec<HeaderTensor>, ArchError> {
    let what = path.display().to_string();
    let n = parse_header_prefix(bytes, None, &what)?;
    let json = bytes.get(8..8 + n as usize).ok_or_else(|| ArchError::HeaderTruncated {
        what: what.clone(),
        claimed: n,
        available: bytes.len().saturating_sub(8) as u64,
    })?;
    parse_header(json, None, &what)
}

fn default_header_cache() -> PathBuf {
    hf_hub::hf_home().join("tensorcity").join("headers")
}

/// hf-hub's folder naming: `models--owner--name`.
fn repo_folder(id: &str) -> String {
    format!("models--{}", id.replace('/', "--"))
}

fn sanitize(s: &str) -> String {
    s.replace(['/', '\\'], "--")
}
