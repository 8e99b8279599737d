//! Weights read from safetensors files for inference — read, not
//! memory-mapped. A mapped file that another program truncates or rewrites
//! while it is mapped kills the process with SIGBUS on the next access (the
//! failure a test suite fetching its fixture concurrently once hit). Reading
//! instead turns the same event into an error naming the file: each tensor's
//! bytes are read at their offset when the model asks for them (a short read
//! is an error), then converted into the tensor the model keeps — which every
//! load copies anyway, so the cost is one tensor-sized buffer at a time, not a
//! second copy of the model.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

use super::InferenceError;
use crate::arch::{parse_header, parse_header_prefix};

/// Where one tensor's bytes are.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    /// Absolute offset in the file.
    offset: u64,
    len: usize,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
}

/// The tensors of one or more safetensors files (shards), read on demand.
#[derive(Debug, Default)]
pub struct FileWeights {
    tensors: HashMap<String, Entry>,
}

impl FileWeights {
    /// Reads and validates every file's header (the tensor data is not read yet).
    pub fn open(files: &[PathBuf]) -> Result<FileWeights, InferenceError> {
        let mut weights = FileWeights::default();
        for path in files {
            weights.add(path)?;
        }
        Ok(weights)
    }

    fn add(&mut self, path: &Path) -> Result<(), InferenceError> {
        let what = path.display().to_string();
        let io = |e: std::io::Error| InferenceError::Io {
            path: path.to_path_buf(),
            error: e,
        };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut prefix = [0u8; 8];
        file.read_exact(&mut prefix).map_err(io)?;
        // Bounded (100 MB) and checked against the file's length before allocating.
        let n = parse_header_prefix(&prefix, Some(len), &what)?;
        let mut header = prefix.to_vec();
        header.resize(8 + n as usize, 0);
        file.read_exact(&mut header[8..]).map_err(io)?;
        // The same validation as the architecture view: dtypes, offsets inside the file.
        parse_header(&header[8..], Some(len), &what)?;
        let metadata: safetensors::tensor::Metadata =
            serde_json::from_slice(&header[8..]).map_err(|e| InferenceError::Model {
                what: what.clone(),
                detail: format!("invalid safetensors header ({e})"),
            })?;
        let data_start = 8 + n;
        for (name, info) in metadata.tensors() {
            let (start, end) = info.data_offsets;
            self.tensors.insert(
                name,
                Entry {
                    path: path.to_path_buf(),
                    offset: data_start + start as u64,
                    len: end - start,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                },
            );
        }
        Ok(())
    }

    /// The dtype the model keeps its weights in: the checkpoint's half
    /// precision (bf16/f16) when most of its bytes are half, else f32.
    pub fn storage_dtype(&self) -> DType {
        let bytes =
            |d: safetensors::Dtype| -> usize { self.tensors.values().filter(|e| e.dtype == d).map(|e| e.len).sum() };
        let total: usize = self.tensors.values().map(|e| e.len).sum();
        let (bf16, f16) = (bytes(safetensors::Dtype::BF16), bytes(safetensors::Dtype::F16));
        match (bf16.max(f16) * 2 > total, bf16 >= f16) {
            (true, true) => DType::BF16,
            (true, false) => DType::F16,
            _ => DType::F32,
        }
    }

    /// Reads one tensor's bytes from its file; the file having shrunk or gone
    /// since its header was read is an error naming it.
    fn read(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let entry = self
            .tensors
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())?;
        let changed = |e: std::io::Error| {
            candle_core::Error::Msg(format!(
                "{}: reading tensor `{name}` failed ({e}); the file changed while tensorcity was reading it — open the model again",
                entry.path.display()
            ))
        };
        let mut file = File::open(&entry.path).map_err(changed)?;
        file.seek(SeekFrom::Start(entry.offset)).map_err(changed)?;
        let mut bytes = vec![0u8; entry.len];
        file.read_exact(&mut bytes).map_err(changed)?;
        let view = safetensors::tensor::TensorView::new(entry.dtype, entry.shape.clone(), &bytes)
            .map_err(|e| candle_core::Error::Msg(format!("{}: tensor `{name}`: {e}", entry.path.display())))?;
        view.load(dev)
    }
}

impl SimpleBackend for FileWeights {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        super::vb::expect_shape(self.read(name, dev)?.to_dtype(dtype)?, s, name)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.read(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-tensor safetensors file of `values`.
    fn write(path: &Path, values: &[f32]) {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![values.len()], &data).unwrap();
        safetensors::serialize_to_file([("w", view)], None, path).unwrap();
    }

    #[test]
    fn a_file_truncated_after_opening_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write(&path, &[1.0, 2.0, 3.0, 4.0]);
        let weights = FileWeights::open(std::slice::from_ref(&path)).unwrap();
        let t = weights.get_unchecked("w", DType::F32, &Device::Cpu).unwrap();
        assert_eq!(t.to_vec1::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        // Rewritten shorter underneath (what a concurrent fetch or an editor does).
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 8)
            .unwrap();
        let err = weights
            .get_unchecked("w", DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the file changed"), "{err}");
        assert!(!weights.contains_tensor("x"));
    }
}
