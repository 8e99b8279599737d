//! PyTorch checkpoints (`torch.save`'s zip archives: `.bin`, `.pt`, `.pth`,
//! `.ckpt`): tensor names, shapes and dtypes from `{archive}/data.pkl`, read
//! by the restricted [`pickle`](super::pickle) reader (nothing is executed),
//! each tensor checked against its storage record's size. Works on any
//! `Read + Seek`: a file, or a Hub file read through Range requests (the zip's
//! central directory at the end, then the `data.pkl` member).

use std::io::{Read, Seek};

use super::pickle::{self, PickleError};
use super::{ArchError, HeaderTensor};

/// Reads a checkpoint's tensors; `what` names it in errors.
pub fn read_tensors<R: Read + Seek>(reader: R, what: &str) -> Result<Vec<HeaderTensor>, ArchError> {
    Ok(read(reader, what, false)?.into_iter().map(|(row, _)| row).collect())
}

/// The tensors and, for each, the absolute byte offset of its first element
/// in the file when its values can be read in place (a contiguous view into an
/// uncompressed storage record), else why not.
pub fn locate_tensors<R: Read + Seek>(
    reader: R,
    what: &str,
) -> Result<Vec<(HeaderTensor, Result<u64, String>)>, ArchError> {
    read(reader, what, true)
}

/// Whether a strided view walks its elements in row-major order.
fn contiguous(shape: &[u64], stride: &[u64]) -> bool {
    let mut expected = 1u64;
    for (&n, &s) in shape.iter().zip(stride).rev() {
        if n > 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(n);
    }
    true
}

fn read<R: Read + Seek>(
    reader: R,
    what: &str,
    locate: bool,
) -> Result<Vec<(HeaderTensor, Result<u64, String>)>, ArchError> {
    let fail = |detail: String| ArchError::BadPickle {
        what: what.to_string(),
        detail,
    };
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| match e {
        zip::result::ZipError::Io(io) => fail(format!("cannot read it ({io})")),
        other => fail(format!(
            "not a zip archive ({other}); PyTorch checkpoints since 1.6 are zip files — re-save it with a current torch"
        )),
    })?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    let pkl = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .cloned()
        .ok_or_else(|| fail("a zip archive without `data.pkl`; not a torch.save checkpoint".into()))?;
    let root = pkl.trim_end_matches("data.pkl").to_string();
    let bytes = {
        let member = zip
            .by_name(&pkl)
            .map_err(|e| fail(format!("cannot open data.pkl ({e})")))?;
        let size = member.size();
        if size > pickle::MAX_PICKLE_BYTES as u64 {
            return Err(fail(format!(
                "data.pkl is {size} bytes, over the {} MB limit for a state dict",
                pickle::MAX_PICKLE_BYTES >> 20
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        member
            .take(pickle::MAX_PICKLE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read data.pkl ({e})")))?;
        bytes
    };
    let value = pickle::load(&bytes).map_err(|e| match e {
        PickleError::Global(global) => ArchError::PickleGlobal {
            what: what.to_string(),
            global,
        },
        PickleError::Malformed(detail) => fail(format!("data.pkl: {detail}")),
    })?;
    let tensors = pickle::tensors(&value);
    if tensors.is_empty() {
        return Err(fail("data.pkl holds no tensors".into()));
    }
    let mut rows = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let record = format!("{root}data/{}", t.storage.key);
        // From the central directory: the member itself is never read.
        let stored = zip
            .index_for_name(&record)
            .and_then(|i| zip.by_index_data(i).ok())
            .map(|entry| entry.size())
            .ok_or_else(|| fail(format!("tensor `{name}`: its storage `{record}` is not in the archive")))?;
        check_extent(&name, t, stored).map_err(fail)?;
        let at = if !locate {
            Err(String::new())
        } else if !contiguous(&t.shape, &t.stride) {
            Err("a strided view of its storage (not read in place)".into())
        } else {
            member_data_start(&mut zip, &record).and_then(|start| {
                t.offset
                    .checked_mul(width(t.storage.dtype))
                    .and_then(|o| o.checked_add(start))
                    .ok_or_else(|| "its offset overflows".to_string())
            })
        };
        rows.push((
            HeaderTensor {
                name,
                shape: t.shape.clone(),
                dtype: t.storage.dtype.to_string(),
                shard: None,
            },
            at,
        ));
    }
    Ok(rows)
}

/// Where a stored (uncompressed) member's bytes start in the archive.
fn member_data_start<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, record: &str) -> Result<u64, String> {
    let i = zip.index_for_name(record).ok_or("its storage is missing")?;
    let member = zip
        .by_index_raw(i)
        .map_err(|e| format!("its storage cannot be opened ({e})"))?;
    if member.compression() != zip::CompressionMethod::Stored {
        return Err("its storage is compressed in the archive (not read in place)".into());
    }
    member
        .data_start()
        .ok_or_else(|| "its storage's start is unknown".into())
}

fn width(dtype: &str) -> u64 {
    match dtype {
        "F64" | "I64" | "C64" => 8,
        "F32" | "I32" => 4,
        "F16" | "BF16" | "I16" => 2,
        _ => 1,
    }
}

/// The tensor's last element lies inside its storage record.
fn check_extent(name: &str, t: &pickle::TensorRef, stored: u64) -> Result<(), String> {
    let width = width(t.storage.dtype);
    let overflow = || format!("tensor `{name}`: its size {:?} overflows", t.shape);
    if t.shape.contains(&0) {
        return Ok(());
    }
    let mut last = t.offset;
    for (&n, &s) in t.shape.iter().zip(&t.stride) {
        let step = (n - 1).checked_mul(s).ok_or_else(overflow)?;
        last = last.checked_add(step).ok_or_else(overflow)?;
    }
    let end = last
        .checked_add(1)
        .and_then(|e| e.checked_mul(width))
        .ok_or_else(overflow)?;
    if end > stored {
        return Err(format!(
            "tensor `{name}` reaches byte {end} of its storage, which has {stored}; the checkpoint is corrupt"
        ));
    }
    Ok(())
}

/// Whether the first bytes are a zip's local header (a torch.save archive).
pub fn is_zip(prefix: &[u8]) -> bool {
    prefix.starts_with(b"PK\x03\x04")
}

/// Whether the first bytes are a bare pickle (PyTorch before 1.6 wrote a
/// magic number and several pickles, with no zip around them).
pub fn is_legacy(prefix: &[u8]) -> bool {
    prefix.first() == Some(&0x80) && prefix.get(1).is_some_and(|p| (2..=5).contains(p))
}
