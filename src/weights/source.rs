//! Where each tensor's values are, for the weights lens: safetensors files
//! (a file, a folder, sharded), read in bounded chunks at their offsets, and
//! GGUF files, dequantized a block of rows at a time. A tensor whose bytes lie
//! past the end of a truncated file is listed with the reason it cannot be
//! read; the rest still are.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::arch::{ArchError, parse_header_prefix};
use crate::inference::gguf::GgufWeights;

/// Elements decoded at a time per worker (16 MB as f32).
pub const CHUNK: usize = 1 << 22;

/// Sampled reads come in blocks of this many elements (the standard errors
/// treat each block as one observation).
pub const SAMPLE_BLOCK: u64 = 4096;

/// Tensors of at most this many elements (norms, biases: 256 KB as f32) are
/// read whole even in a sample: exact, for a negligible share of the bytes.
pub const SMALL_TENSOR: u64 = 16 * SAMPLE_BLOCK;

/// The largest sampled chunk (one Range request), in elements.
pub const SAMPLE_CHUNK: u64 = 1 << 18;

/// A tensor's element type, as far as the lens reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Element {
    F32,
    F16,
    BF16,
    F64,
    /// Integers and booleans, as their values (exact up to 2^24).
    Int {
        width: usize,
        signed: bool,
    },
}

impl Element {
    fn of(dtype: &str) -> Option<Element> {
        Some(match dtype {
            "F32" => Element::F32,
            "F16" => Element::F16,
            "BF16" => Element::BF16,
            "F64" => Element::F64,
            "I64" => Element::Int { width: 8, signed: true },
            "I32" => Element::Int { width: 4, signed: true },
            "I16" => Element::Int { width: 2, signed: true },
            "I8" => Element::Int { width: 1, signed: true },
            "U64" => Element::Int {
                width: 8,
                signed: false,
            },
            "U32" => Element::Int {
                width: 4,
                signed: false,
            },
            "U16" => Element::Int {
                width: 2,
                signed: false,
            },
            "U8" | "BOOL" => Element::Int {
                width: 1,
                signed: false,
            },
            _ => return None,
        })
    }

    fn width(self) -> usize {
        match self {
            Element::F32 => 4,
            Element::F16 | Element::BF16 => 2,
            Element::F64 => 8,
            Element::Int { width, .. } => width,
        }
    }
}

#[derive(Clone)]
enum Location {
    Raw {
        file: Arc<PathBuf>,
        offset: u64,
        element: Element,
    },
    /// Weights compiled into the binary (the embedded model).
    Memory {
        bytes: &'static [u8],
        offset: u64,
        element: Element,
    },
    Gguf(Arc<GgufWeights>),
    /// A Hub model's shard, read by Range requests.
    Remote {
        files: Arc<crate::arch::hub::RemoteWeights>,
        shard: Arc<str>,
        offset: u64,
        element: Element,
    },
    /// Why its values cannot be read (integer dtype, data past the end, …).
    Missing(String),
}

/// One tensor of a checkpoint and where to read it.
#[derive(Clone)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: String,
    location: Location,
}

impl Tensor {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Why the values cannot be read, if they cannot.
    pub fn missing(&self) -> Option<&str> {
        match &self.location {
            Location::Missing(why) => Some(why),
            _ => None,
        }
    }

    /// Whether its values are read by whole rows only (GGUF dequantizes rows).
    pub fn reads_whole_rows(&self) -> bool {
        matches!(self.location, Location::Gguf(_))
    }

    /// Whether its values come over the network.
    pub fn is_remote(&self) -> bool {
        matches!(self.location, Location::Remote { .. })
    }

    /// Bytes per element as stored (what reading `n` elements transfers).
    pub fn stored_width(&self) -> u64 {
        match &self.location {
            Location::Raw { element, .. } | Location::Memory { element, .. } | Location::Remote { element, .. } => {
                element.width() as u64
            }
            Location::Gguf(_) | Location::Missing(_) => 0,
        }
    }

    /// The element ranges a sample of `fraction` of the tensor reads: about
    /// `fraction` of its elements in evenly spread chunks of whole
    /// [`SAMPLE_BLOCK`]s (at least 8 chunks when it has room for them, at
    /// most [`SAMPLE_CHUNK`] elements each), or every chunk when the sample
    /// would be the whole tensor or the tensor is small ([`SMALL_TENSOR`]).
    /// GGUF tensors (dequantized by rows) are always read whole.
    pub fn sample(&self, fraction: f64) -> Vec<std::ops::Range<u64>> {
        let n = self.elements();
        let target = (fraction.clamp(0.0, 1.0) * n as f64).ceil() as u64;
        let target = target.max(SAMPLE_BLOCK).next_multiple_of(SAMPLE_BLOCK);
        if target >= n || n <= SMALL_TENSOR || matches!(self.location, Location::Gguf(_)) {
            return self.chunks();
        }
        let blocks = target / SAMPLE_BLOCK;
        let k = target.div_ceil(SAMPLE_CHUNK).max(8).min(blocks);
        let len = blocks.div_ceil(k) * SAMPLE_BLOCK;
        let k = target.div_ceil(len);
        (0..k)
            .map(|i| {
                let start = if k == 1 { (n - len) / 2 } else { i * (n - len) / (k - 1) };
                start..start + len
            })
            .collect()
    }

    /// Element ranges of at most about [`CHUNK`] elements, whole rows each
    /// (a GGUF tensor is dequantized by rows).
    pub fn chunks(&self) -> Vec<std::ops::Range<u64>> {
        let n = self.elements();
        let row = self.shape.last().copied().unwrap_or(1).max(1);
        let rows_per = (CHUNK as u64 / row).max(1);
        let step = rows_per * row;
        (0..n.div_ceil(step))
            .map(|i| i * step..((i + 1) * step).min(n))
            .collect()
    }

    /// The values of elements `range` (a range [`Tensor::chunks`] gave) as f32.
    pub fn read(&self, range: std::ops::Range<u64>) -> Result<Vec<f32>, String> {
        match &self.location {
            Location::Missing(why) => Err(why.clone()),
            Location::Raw { file, offset, element } => {
                let width = element.width() as u64;
                let n = usize::try_from(range.end - range.start).map_err(|e| e.to_string())?;
                let at = offset + range.start * width;
                let fail = |e: std::io::Error| format!("{}: reading `{}` failed ({e})", file.display(), self.name);
                let f = File::open(file.as_path()).map_err(fail)?;
                if *element == Element::F32 && cfg!(target_endian = "little") {
                    // Straight into the values: no byte buffer to decode.
                    let mut values = vec![0f32; n];
                    f.read_exact_at(bytemuck::cast_slice_mut(&mut values), at)
                        .map_err(fail)?;
                    return Ok(values);
                }
                let mut bytes = vec![0u8; n * element.width()];
                f.read_exact_at(&mut bytes, at).map_err(fail)?;
                Ok(decode(*element, &bytes))
            }
            Location::Memory { bytes, offset, element } => {
                let width = element.width() as u64;
                let (a, b) = (offset + range.start * width, offset + range.end * width);
                let part = usize::try_from(a)
                    .ok()
                    .zip(usize::try_from(b).ok())
                    .and_then(|(a, b)| bytes.get(a..b))
                    .ok_or_else(|| format!("`{}` lies outside the weights", self.name))?;
                Ok(decode(*element, part))
            }
            Location::Remote {
                files,
                shard,
                offset,
                element,
            } => {
                let width = element.width() as u64;
                let bytes = files.read(shard, offset + range.start * width..offset + range.end * width)?;
                Ok(decode(*element, &bytes))
            }
            Location::Gguf(weights) => {
                let row = self.shape.last().copied().unwrap_or(1).max(1);
                let (from, n) = ((range.start / row) as usize, ((range.end - range.start) / row) as usize);
                weights.read_rows(&self.name, from, n.max(1)).map_err(|e| e.to_string())
            }
        }
    }
}

fn decode(element: Element, bytes: &[u8]) -> Vec<f32> {
    match element {
        Element::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Element::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Element::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Element::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Element::Int { width, signed } => bytes
            .chunks_exact(width)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..width].copy_from_slice(c);
                if signed && c[width - 1] & 0x80 != 0 {
                    b[width..].fill(0xff);
                }
                if signed {
                    i64::from_le_bytes(b) as f32
                } else {
                    u64::from_le_bytes(b) as f32
                }
            })
            .collect(),
    }
}

/// The tensors of the model a viewer or CLI request names: the embedded
/// model's compiled-in weights, or a local file or folder.
pub fn open_model(model: &crate::arch::ModelRef) -> Result<Vec<Tensor>, ArchError> {
    use crate::arch::ModelRef;
    match model {
        ModelRef::Embedded => open_static(crate::arch::EMBEDDED_WEIGHTS, crate::arch::EMBEDDED_NAME),
        ModelRef::Path(p) => open(p),
        ModelRef::Id(id) => open_hub(id, &crate::arch::hub::HubOptions::from_env(None, false)),
        ModelRef::Engine(id) => Err(ArchError::UnsupportedConfig {
            what: id.clone(),
            detail: "weight statistics need the weights: a remote engine sends only its tensor list".into(),
        }),
    }
}

/// The tensors of a Hub model's safetensors shards, read by Range requests.
pub fn open_hub(id: &str, opts: &crate::arch::hub::HubOptions) -> Result<Vec<Tensor>, ArchError> {
    let files = Arc::new(crate::arch::hub::RemoteWeights::open(id, opts)?);
    let mut tensors = Vec::new();
    for (shard, data_start, rows) in files.shards()? {
        let shard: Arc<str> = shard.into();
        tensors.extend(rows.into_iter().map(|(row, (start, _))| Tensor {
            location: match Element::of(&row.dtype) {
                Some(element) => Location::Remote {
                    files: files.clone(),
                    shard: shard.clone(),
                    offset: data_start + start,
                    element,
                },
                None => Location::Missing(format!("{} values are not read by the lens", row.dtype)),
            },
            name: row.name,
            shape: row.shape,
            dtype: row.dtype,
        }));
    }
    Ok(tensors)
}

/// A safetensors file held in memory for the program's lifetime.
pub(crate) fn open_static(bytes: &'static [u8], what: &str) -> Result<Vec<Tensor>, ArchError> {
    let n = parse_header_prefix(bytes.get(..8).unwrap_or_default(), Some(bytes.len() as u64), what)?;
    let json = bytes.get(8..8 + n as usize).ok_or_else(|| ArchError::TooShort {
        what: what.to_string(),
        len: bytes.len() as u64,
    })?;
    let rows = crate::arch::header::parse_located(json, what)?;
    Ok(rows
        .into_iter()
        .map(|(row, (start, _))| Tensor {
            location: match Element::of(&row.dtype) {
                Some(element) => Location::Memory {
                    bytes,
                    offset: 8 + n + start,
                    element,
                },
                None => Location::Missing(format!("{} values are not read by the lens", row.dtype)),
            },
            name: row.name,
            shape: row.shape,
            dtype: row.dtype,
        })
        .collect())
}

/// The tensors of a local checkpoint: a `.safetensors` file, a `.gguf` file,
/// or a model folder (one file, an index with shards, or every
/// `.safetensors` in it).
pub fn open(path: &Path) -> Result<Vec<Tensor>, ArchError> {
    if !path.exists() {
        return Err(ArchError::NotFound {
            path: path.to_path_buf(),
        });
    }
    if path.is_dir() {
        let index = path.join("model.safetensors.index.json");
        let files = if index.is_file() {
            crate::arch::read_index_file(&index)?
                .into_iter()
                .map(|s| path.join(s))
                .collect::<Vec<_>>()
        } else if path.join("model.safetensors").is_file() {
            vec![path.join("model.safetensors")]
        } else {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| ArchError::io(path, e))?
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x == "safetensors" || x == "gguf" || x == "bin")
                })
                .collect();
            files.sort();
            files
        };
        if files.is_empty() {
            return Err(ArchError::EmptyFolder {
                path: path.to_path_buf(),
            });
        }
        let mut all = Vec::new();
        for f in files {
            all.extend(open_file(&f)?);
        }
        return Ok(all);
    }
    open_file(path)
}

fn open_file(path: &Path) -> Result<Vec<Tensor>, ArchError> {
    if path.extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf")) {
        // The inference side's errors already name the file: keep them as they are.
        let as_arch = |e: crate::inference::InferenceError| match e {
            crate::inference::InferenceError::Arch(a) => a,
            other => ArchError::Engine(other.to_string()),
        };
        let header = crate::inference::gguf::read_header(path).map_err(as_arch)?;
        let weights = Arc::new(GgufWeights::open(path, &header).map_err(as_arch)?);
        return Ok(weights
            .tensors()
            .into_iter()
            .map(|(name, shape, dtype)| Tensor {
                name,
                shape: shape.iter().map(|&d| d as u64).collect(),
                dtype,
                location: Location::Gguf(weights.clone()),
            })
            .collect());
    }
    let what = path.display().to_string();
    let (mut file, len, prefix) = crate::arch::local::open_with_prefix(path)?;
    if crate::arch::torch::is_zip(&prefix) {
        // A PyTorch checkpoint: contiguous tensors of stored members are read in place.
        use std::io::Seek;
        file.rewind().map_err(|e| ArchError::io(path, e))?;
        let located = crate::arch::torch::locate_tensors(std::io::BufReader::new(file), &what)?;
        let file = Arc::new(path.to_path_buf());
        return Ok(located
            .into_iter()
            .map(|(row, at)| {
                let element = Element::of(&row.dtype);
                let location = match (at, element) {
                    (Ok(offset), Some(element)) => Location::Raw {
                        file: file.clone(),
                        offset,
                        element,
                    },
                    (Ok(_), None) => Location::Missing(format!("{} values are not read by the lens", row.dtype)),
                    (Err(why), _) => Location::Missing(why),
                };
                Tensor {
                    name: row.name,
                    shape: row.shape,
                    dtype: row.dtype,
                    location,
                }
            })
            .collect());
    }
    let json = crate::arch::local::read_header_json(&mut file, &prefix, len, path)?;
    let rows = crate::arch::header::parse_located(&json, &what)?;
    let data_start = 8 + json.len() as u64;
    let file = Arc::new(path.to_path_buf());
    Ok(rows
        .into_iter()
        .map(|(row, (start, end))| {
            let location = match Element::of(&row.dtype) {
                _ if data_start + end > len => Location::Missing(format!(
                    "its data ends at byte {} but the file has {len} (truncated)",
                    data_start + end
                )),
                Some(element) => Location::Raw {
                    file: file.clone(),
                    offset: data_start + start,
                    element,
                },
                None => Location::Missing(format!("{} values are not read by the lens", row.dtype)),
            };
            Tensor {
                name: row.name,
                shape: row.shape,
                dtype: row.dtype,
                location,
            }
        })
        .collect())
}
