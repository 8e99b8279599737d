//! Safetensors header parsing: the 8-byte length prefix and the JSON table of
//! tensors, validated the way the format demands (contiguous offsets, sizes that
//! match shape x dtype, data inside the file) without touching the weights.

use std::fmt;

use safetensors::Dtype;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor};

use super::ArchError;

/// Largest header we accept, the same limit as the `safetensors` crate.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One row of a header: what a tensor is called, its shape and dtype.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct HeaderTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub dtype: String,
    pub shard: Option<String>,
}

/// Reads the 8-byte little-endian header length and checks it against the limit
/// and, when known, the file length. `what` names the file in errors.
pub fn parse_header_prefix(prefix: &[u8], file_len: Option<u64>, what: &str) -> Result<u64, ArchError> {
    let what = what.to_string();
    if let Some(0) = file_len {
        return Err(ArchError::Empty { what });
    }
    let Some(bytes) = prefix.get(..8) else {
        return Err(ArchError::TooShort {
            what,
            len: prefix.len() as u64,
        });
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(bytes);
    let claimed = u64::from_le_bytes(le);
    if claimed > MAX_HEADER_BYTES {
        return Err(ArchError::HeaderTooLarge { what, claimed });
    }
    if let Some(len) = file_len
        && claimed > len.saturating_sub(8)
    {
        return Err(ArchError::HeaderTruncated {
            what,
            claimed,
            available: len.saturating_sub(8),
        });
    }
    if claimed < 2 {
        return Err(ArchError::BadHeader {
            what,
            detail: format!("header length is {claimed}"),
        });
    }
    Ok(claimed)
}

/// Parses and validates a header's JSON (the bytes after the length prefix).
/// Returns tensors in file order (by data offset). With `file_len`, also checks
/// that every tensor's data lies inside the file.
pub fn parse_header(json: &[u8], file_len: Option<u64>, what: &str) -> Result<Vec<HeaderTensor>, ArchError> {
    let located = parse_located(json, what)?;
    if let Some(len) = file_len {
        let data_start = 8 + json.len() as u64;
        let needed = data_start + located.last().map_or(0, |(_, (_, end))| *end);
        if needed > len {
            return Err(ArchError::DataOutOfRange {
                what: what.to_string(),
                end: needed,
                len,
            });
        }
    }
    Ok(located.into_iter().map(|(row, _)| row).collect())
}

/// [`parse_header`] without the file-length check, each row with its
/// `data_offsets` (relative to the end of the header): the weights lens
/// reads what a truncated file still holds.
pub fn parse_located(json: &[u8], what: &str) -> Result<Vec<(HeaderTensor, (u64, u64))>, ArchError> {
    let entries = parse_entries(json).map_err(|e| ArchError::BadHeader {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    let mut rows = Vec::with_capacity(entries.0.len());
    for (name, raw) in entries.0 {
        let dtype = Dtype::deserialize(raw.dtype.as_str().into_deserializer()).map_err(|_: de::value::Error| {
            ArchError::UnknownDtype {
                what: what.to_string(),
                tensor: name.clone(),
                dtype: raw.dtype.clone(),
            }
        })?;
        rows.push((name, raw, dtype));
    }
    // File order is data order; ties (empty tensors) keep a stable name order.
    rows.sort_by(|a, b| a.1.data_offsets.cmp(&b.1.data_offsets).then_with(|| a.0.cmp(&b.0)));

    let mut expected_start = 0u64;
    for (name, raw, dtype) in &rows {
        let (start, end) = raw.data_offsets;
        let bad = |detail: String| ArchError::BadOffsets {
            what: what.to_string(),
            tensor: name.clone(),
            detail,
        };
        if end < start {
            return Err(bad(format!("ends at {end} before it starts at {start}")));
        }
        if start != expected_start {
            let how = if start < expected_start {
                "overlaps the previous tensor"
            } else {
                "leaves a gap after the previous tensor"
            };
            return Err(bad(format!("starts at {start}, {how} (expected {expected_start})")));
        }
        let bits = super::element_count(&raw.shape)
            .and_then(|n| n.checked_mul(dtype.bitsize() as u64))
            .ok_or_else(|| bad(format!("shape {:?} overflows", raw.shape)))?;
        if bits % 8 != 0 || bits / 8 != end - start {
            return Err(bad(format!(
                "holds {} bytes but shape {:?} x {} needs {}",
                end - start,
                raw.shape,
                raw.dtype,
                bits.div_ceil(8)
            )));
        }
        expected_start = end;
    }
    Ok(rows
        .into_iter()
        .map(|(name, raw, _)| {
            (
                HeaderTensor {
                    name,
                    shape: raw.shape,
                    dtype: raw.dtype,
                    shard: None,
                },
                raw.data_offsets,
            )
        })
        .collect())
}

#[derive(Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The header's tensor entries in JSON order, `__metadata__` skipped.
struct Entries(Vec<(String, RawInfo)>);

fn parse_entries(json: &[u8]) -> Result<Entries, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let entries = Entries::deserialize(&mut de)?;
    de.end()?;
    Ok(entries)
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(key) = map.next_key::<String>()? {
                    if key == "__metadata__" {
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        let info: RawInfo = map
                            .next_value()
                            .map_err(|e| de::Error::custom(format!("tensor `{key}`: {e}")))?;
                        out.push((key, info));
                    }
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Parses a complete in-memory safetensors file (prefix + header + data).
pub fn parse_file_bytes(bytes: &[u8], what: &str) -> Result<Vec<HeaderTensor>, ArchError> {
    let n = parse_header_prefix(bytes, Some(bytes.len() as u64), what)?;
    let json = bytes.get(8..8 + n as usize).ok_or_else(|| ArchError::HeaderTruncated {
        what: what.to_string(),
        claimed: n,
        available: bytes.len().saturating_sub(8) as u64,
    })?;
    parse_header(json, Some(bytes.len() as u64), what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.resize(v.len() + data_len, 0);
        v
    }

    #[test]
    fn parses_in_offset_order_and_skips_metadata() {
        let h = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}"#;
        let rows = parse_file_bytes(&file(h, 16), "t").unwrap();
        assert_eq!(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(rows[0].shape, vec![2, 2]);
        assert_eq!(rows[0].dtype, "F16");
    }

    #[test]
    fn rejects_each_corruption_with_its_own_error() {
        assert!(matches!(
            parse_header_prefix(&[], Some(0), "t"),
            Err(ArchError::Empty { .. })
        ));
        assert!(matches!(
            parse_header_prefix(&[1, 2, 3], Some(3), "t"),
            Err(ArchError::TooShort { .. })
        ));
        let huge = (MAX_HEADER_BYTES + 1).to_le_bytes();
        assert!(matches!(
            parse_header_prefix(&huge, Some(1 << 40), "t"),
            Err(ArchError::HeaderTooLarge { .. })
        ));
        assert!(matches!(
            parse_header_prefix(&100u64.to_le_bytes(), Some(20), "t"),
            Err(ArchError::HeaderTruncated { .. })
        ));
        let bad_json = file("{not json", 0);
        assert!(matches!(
            parse_file_bytes(&bad_json, "t"),
            Err(ArchError::BadHeader { .. })
        ));
        let dtype = file(r#"{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#, 4);
        assert!(matches!(
            parse_file_bytes(&dtype, "t"),
            Err(ArchError::UnknownDtype { .. })
        ));
        let overlap = file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            12,
        );
        assert!(matches!(
            parse_file_bytes(&overlap, "t"),
            Err(ArchError::BadOffsets { .. })
        ));
        let mismatch = file(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8);
        assert!(matches!(
            parse_file_bytes(&mismatch, "t"),
            Err(ArchError::BadOffsets { .. })
        ));
        let outside = file(r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, 8);
        assert!(matches!(
            parse_file_bytes(&outside, "t"),
            Err(ArchError::DataOutOfRange { .. })
        ));
    }

    #[test]
    fn header_alone_parses_without_the_data() {
        let h = r#"{"w":{"dtype":"BF16","shape":[1000,1000],"data_offsets":[0,2000000]}}"#;
        let rows = parse_header(h.as_bytes(), None, "remote").unwrap();
        assert_eq!(rows[0].shape, vec![1000, 1000]);
    }
}
