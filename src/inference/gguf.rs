//! GGUF weights for inference. Matrices stay quantized in memory (a
//! [`Linear`](super::layers::Linear) multiplies with them through candle's
//! `QMatMul`, which quantizes the activations to the weights' 8-bit partner
//! type for the dot products); everything else — norms, biases, the token
//! embedding — is dequantized to f32 when loaded. Tensors are read at their
//! offset (not memory-mapped, as with safetensors: a file changed underneath is
//! an error, not a crash), under their Hugging Face names, so the family
//! modules load a GGUF exactly like a safetensors checkpoint:
//!
//! - a fused expert tensor (`blk.N.ffn_gate_exps`, `[experts, out, in]`) is
//!   one matrix per expert (`…experts.E.w1`), each a contiguous slice;
//! - llama.cpp's converter reorders the rows of `attn_q`/`attn_k` of `llama`
//!   models for its interleaved rotary embedding; they are put back in the
//!   Hugging Face (rotate-half) order, per head, on the raw blocks (rows are
//!   independent in every ggml type).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use serde_json::Value;

use super::InferenceError;
use crate::arch::gguf::{self, GgufHeader};

#[derive(Debug, Clone)]
struct Entry {
    /// Absolute offset of the tensor (or its expert's slice) in the file.
    offset: u64,
    bytes: usize,
    dtype: GgmlDType,
    /// The ggml type as GGUF names it (`Q4_K`).
    type_name: &'static str,
    /// Outermost first (PyTorch order).
    shape: Vec<usize>,
    /// How llama.cpp's converter reordered the rows (undone when read).
    reorder: Option<Reorder>,
    /// Gemma's norms are stored as `1 + w`; the family adds the 1 itself.
    minus_one: bool,
}

#[derive(Debug, Clone, Copy)]
enum Reorder {
    /// `attn_q`/`attn_k` of llama: rotary pairs interleaved, per head.
    RopePairs(usize),
    /// GPT-NeoX's fused `attn_qkv` (weight and bias): `[q; k; v]` over all
    /// heads instead of q, k, v per head.
    QkvBlocks(usize),
}

/// The tensors of one GGUF file by Hugging Face name, read on demand.
#[derive(Debug)]
pub struct GgufWeights {
    path: PathBuf,
    tensors: HashMap<String, Entry>,
}

fn ggml_dtype(name: &str) -> Option<GgmlDType> {
    Some(match name {
        "F32" => GgmlDType::F32,
        "F16" => GgmlDType::F16,
        "BF16" => GgmlDType::BF16,
        "Q4_0" => GgmlDType::Q4_0,
        "Q4_1" => GgmlDType::Q4_1,
        "Q5_0" => GgmlDType::Q5_0,
        "Q5_1" => GgmlDType::Q5_1,
        "Q8_0" => GgmlDType::Q8_0,
        "Q8_1" => GgmlDType::Q8_1,
        "Q2_K" => GgmlDType::Q2K,
        "Q3_K" => GgmlDType::Q3K,
        "Q4_K" => GgmlDType::Q4K,
        "Q5_K" => GgmlDType::Q5K,
        "Q6_K" => GgmlDType::Q6K,
        "Q8_K" => GgmlDType::Q8K,
        _ => return None,
    })
}

/// Reads and validates the header of `path` (the same checks as the
/// architecture view: bounded counts and strings, data inside the file).
pub fn read_header(path: &Path) -> Result<GgufHeader, InferenceError> {
    let io = |error| InferenceError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let what = path.display().to_string();
    let (header, _) = gguf::read(len, 1 << 20, &what, |offset, n| {
        let mut buf = vec![0u8; n.min(len.saturating_sub(offset)) as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| crate::arch::ArchError::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
        Ok(buf)
    })?;
    Ok(header)
}

/// The `config.json` a GGUF's metadata describes (see [`gguf::config`]).
pub fn config_json(header: &GgufHeader) -> Value {
    gguf::config(header)
}

impl GgufWeights {
    pub fn open(path: &Path, header: &GgufHeader) -> Result<GgufWeights, InferenceError> {
        let what = path.display().to_string();
        let bad = |detail: String| InferenceError::Model {
            what: what.clone(),
            detail,
        };
        let m = &header.metadata;
        let arch = m.get("general.architecture").and_then(Value::as_str).unwrap_or("");
        let count = |k: &str| {
            m.get(&format!("{arch}.{k}"))
                .and_then(Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
        };
        let heads = count("attention.head_count");
        let kv_heads = count("attention.head_count_kv").or(heads);
        let rows = gguf::rows(header);
        let mut tensors = HashMap::new();
        let mut row = rows.iter();
        for t in &header.tensors {
            let dtype = ggml_dtype(t.ggml_type).ok_or_else(|| {
                bad(format!(
                    "tensor `{}` is {}, a type candle cannot compute with; use a file quantized as Q4_K_M, Q5_K_M, Q6_K, Q8_0 or F16",
                    t.name, t.ggml_type
                ))
            })?;
            let start = header.data_start.saturating_add(t.offset);
            let experts = gguf::fused_experts(arch, t).map_or(1, |(_, _, n)| n.max(1));
            let part = t.bytes / experts;
            if part * experts != t.bytes {
                return Err(bad(format!(
                    "tensor `{}`: its bytes do not split into {experts} experts",
                    t.name
                )));
            }
            let reorder = match (arch, t.name.rsplit('.').nth(1)) {
                ("llama", Some("attn_q")) => heads.map(Reorder::RopePairs),
                ("llama", Some("attn_k")) => kv_heads.map(Reorder::RopePairs),
                ("gptneox", Some("attn_qkv")) => heads.map(Reorder::QkvBlocks),
                _ => None,
            };
            let minus_one = arch.starts_with("gemma") && t.name.ends_with("norm.weight");
            for e in 0..experts {
                let Some(r) = row.next() else {
                    return Err(bad("the tensor table and its names disagree".into()));
                };
                let shape = r
                    .shape
                    .iter()
                    .map(|&d| usize::try_from(d))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad(format!("tensor `{}` is too large for this machine", t.name)))?;
                tensors.insert(
                    r.name.clone(),
                    Entry {
                        offset: start.saturating_add(e * part),
                        bytes: usize::try_from(part).map_err(|_| bad(format!("tensor `{}` is too large", t.name)))?,
                        dtype,
                        type_name: t.ggml_type,
                        shape,
                        reorder,
                        minus_one,
                    },
                );
            }
        }
        Ok(GgufWeights {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Every tensor: its Hugging Face name, shape and ggml type name.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, String)> {
        let mut out: Vec<_> = self
            .tensors
            .iter()
            .map(|(n, e)| (n.clone(), e.shape.clone(), e.type_name.to_string()))
            .collect();
        out.sort();
        out
    }

    /// Rows `from..from + n` of a tensor (outermost dimension) dequantized to
    /// f32, in Hugging Face order; a tensor whose rows were reordered is read
    /// whole first (these are at most a layer's attention projection).
    pub fn read_rows(&self, name: &str, from: usize, n: usize) -> candle_core::Result<Vec<f32>> {
        let entry = self.entry(name)?;
        // Rows: all but the innermost dimension (a vector is one row).
        let cols = entry.shape.last().copied().unwrap_or(1).max(1);
        let rows = (entry.shape.iter().product::<usize>() / cols).max(1);
        let end = from.saturating_add(n).min(rows);
        let per_row = entry.bytes / rows;
        let minus = |v: Vec<f32>| {
            if entry.minus_one {
                v.into_iter().map(|x| x - 1.0).collect()
            } else {
                v
            }
        };
        if entry.reorder.is_some() || entry.shape.len() != 2 {
            let all = self
                .qtensor(name)?
                .dequantize(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            return Ok(minus(all.get(from * cols..end * cols).unwrap_or_default().to_vec()));
        }
        let part = Entry {
            offset: entry.offset.saturating_add((from * per_row) as u64),
            bytes: (end - from) * per_row,
            shape: std::iter::once(end - from)
                .chain(entry.shape[1..].iter().copied())
                .collect(),
            ..entry.clone()
        };
        let q = self.read_entry(name, &part)?;
        Ok(minus(q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?))
    }

    fn entry(&self, name: &str) -> candle_core::Result<&Entry> {
        self.tensors
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())
    }

    /// One tensor's blocks, its rows in Hugging Face order.
    fn qtensor(&self, name: &str) -> candle_core::Result<QTensor> {
        self.read_entry(name, self.entry(name)?)
    }

    fn read_entry(&self, name: &str, entry: &Entry) -> candle_core::Result<QTensor> {
        let changed = |e: std::io::Error| {
            candle_core::Error::Msg(format!(
                "{}: reading tensor `{name}` failed ({e}); the file changed while tensorcity was reading it — open the model again",
                self.path.display()
            ))
        };
        // u64 words: every block type's alignment (f16 scales) holds.
        let mut words = vec![0u64; entry.bytes.div_ceil(8)];
        let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..entry.bytes];
        let mut file = File::open(&self.path).map_err(changed)?;
        file.seek(SeekFrom::Start(entry.offset)).map_err(changed)?;
        file.read_exact(bytes).map_err(changed)?;
        if let Some(reorder) = entry.reorder {
            let rows = entry.shape.first().copied().unwrap_or(0);
            match reorder {
                Reorder::RopePairs(heads) => unpermute_rows(bytes, rows, heads),
                Reorder::QkvBlocks(heads) => interleave_qkv(bytes, rows, heads),
            }
            .map_err(|e| candle_core::Error::Msg(format!("{}: tensor `{name}`: {e}", self.path.display())))?;
        }
        let block = entry.dtype.block_size();
        let elems: usize = entry.shape.iter().product();
        if !elems.is_multiple_of(block) || elems / block * entry.dtype.type_size() != entry.bytes {
            return Err(candle_core::Error::Msg(format!(
                "{}: tensor `{name}`: {} bytes do not hold {elems} {:?} elements",
                self.path.display(),
                entry.bytes,
                entry.dtype
            )));
        }
        let storage = QStorage::from_data(std::borrow::Cow::Borrowed(&*bytes), &Device::Cpu, entry.dtype)?;
        QTensor::new(storage, entry.shape.clone())
    }
}

/// Undoes llama.cpp's `permute(w, n_head)`: within each head of `hd` rows,
/// GGUF row `2i + j` is Hugging Face row `j * hd/2 + i`.
fn unpermute_rows(bytes: &mut [u8], rows: usize, heads: usize) -> Result<(), String> {
    if rows == 0
        || heads == 0
        || !rows.is_multiple_of(heads)
        || !(rows / heads).is_multiple_of(2)
        || !bytes.len().is_multiple_of(rows)
    {
        return Err(format!("{rows} rows do not split into {heads} heads of rotary pairs"));
    }
    let (hd, row) = (rows / heads, bytes.len() / rows);
    let half = hd / 2;
    let mut head = vec![0u8; hd * row];
    for h in 0..heads {
        let block = &mut bytes[h * hd * row..(h + 1) * hd * row];
        head.copy_from_slice(block);
        for i in 0..half {
            for j in 0..2 {
                let (from, to) = (2 * i + j, j * half + i);
                block[to * row..(to + 1) * row].copy_from_slice(&head[from * row..(from + 1) * row]);
            }
        }
    }
    Ok(())
}

/// Undoes llama.cpp's GPT-NeoX `query_key_value` reordering: GGUF row
/// `s * hidden + h * hd + d` (all queries, then keys, then values) is Hugging
/// Face row `h * 3hd + s * hd + d` (q, k, v of each head in turn).
fn interleave_qkv(bytes: &mut [u8], rows: usize, heads: usize) -> Result<(), String> {
    if rows == 0 || heads == 0 || !rows.is_multiple_of(3 * heads) || !bytes.len().is_multiple_of(rows) {
        return Err(format!("{rows} rows do not split into q, k and v of {heads} heads"));
    }
    let (hd, row) = (rows / 3 / heads, bytes.len() / rows);
    let hidden = heads * hd;
    let source = bytes.to_vec();
    for h in 0..heads {
        for s in 0..3 {
            for d in 0..hd {
                let (from, to) = (s * hidden + h * hd + d, h * 3 * hd + s * hd + d);
                bytes[to * row..(to + 1) * row].copy_from_slice(&source[from * row..(from + 1) * row]);
            }
        }
    }
    Ok(())
}

impl super::vb::Quantized for GgufWeights {
    /// Matrices of a quantized type; f32/f16/bf16 ones load dense.
    fn quantized(&self, name: &str) -> Option<candle_core::Result<QTensor>> {
        let entry = self.tensors.get(name)?;
        let dense = matches!(entry.dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        (entry.shape.len() == 2 && !dense).then(|| self.qtensor(name))
    }
}

/// The dense side of [`GgufWeights`] (candle's `VarBuilder` owns its backend).
pub struct Dense(pub std::sync::Arc<GgufWeights>);

impl SimpleBackend for Dense {
    fn get(
        &self,
        s: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get(s, name, init, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

impl SimpleBackend for GgufWeights {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        super::vb::expect_shape(self.get_unchecked(name, dtype, dev)?, s, name)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.qtensor(name)?.dequantize(dev)?;
        let t = if self.entry(name)?.minus_one { (t - 1.0)? } else { t };
        t.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermuting_restores_the_rotate_half_order() {
        // 2 heads of 4 rows, one byte per row; llama.cpp's order within a head is (0, 2, 1, 3).
        let mut rows = vec![0, 2, 1, 3, 4, 6, 5, 7];
        unpermute_rows(&mut rows, 8, 2).unwrap();
        assert_eq!(rows, vec![0, 1, 2, 3, 4, 5, 6, 7]);
        assert!(unpermute_rows(&mut [0u8; 6], 6, 4).is_err());
        // 2 heads of 1 row each: GGUF (q0 q1 k0 k1 v0 v1) -> (q0 k0 v0 q1 k1 v1).
        let mut qkv = vec![10, 11, 20, 21, 30, 31];
        interleave_qkv(&mut qkv, 6, 2).unwrap();
        assert_eq!(qkv, vec![10, 20, 30, 11, 21, 31]);
    }
}
