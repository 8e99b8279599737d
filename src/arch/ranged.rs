//! `Read + Seek` over a remote file of known length, fetched in aligned
//! blocks through a callback (HTTP Range requests) and kept: what a zip
//! reader touches — the central directory at the end, one member — is all
//! that crosses the wire.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

use super::ArchError;

/// Bytes per request.
pub const BLOCK: u64 = 64 << 10;

pub struct Ranged<F> {
    len: u64,
    pos: u64,
    blocks: BTreeMap<u64, Vec<u8>>,
    fetch: F,
    /// The callback's own error, for the caller to report instead of the reader's.
    pub error: Option<ArchError>,
    /// Bytes fetched so far.
    pub fetched: u64,
}

impl<F: FnMut(u64, u64) -> Result<Vec<u8>, ArchError>> Ranged<F> {
    pub fn new(len: u64, fetch: F) -> Self {
        Ranged {
            len,
            pos: 0,
            blocks: BTreeMap::new(),
            fetch,
            error: None,
            fetched: 0,
        }
    }

    fn block(&mut self, start: u64) -> io::Result<&[u8]> {
        if !self.blocks.contains_key(&start) {
            let n = BLOCK.min(self.len - start);
            let bytes = (self.fetch)(start, n).map_err(|e| {
                let message = e.to_string();
                self.error = Some(e);
                io::Error::other(message)
            })?;
            if bytes.len() as u64 != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("asked for {n} bytes at {start}, got {}", bytes.len()),
                ));
            }
            self.fetched += n;
            self.blocks.insert(start, bytes);
        }
        Ok(self.blocks.get(&start).map_or(&[][..], Vec::as_slice))
    }
}

impl<F: FnMut(u64, u64) -> Result<Vec<u8>, ArchError>> Read for Ranged<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let start = self.pos - self.pos % BLOCK;
        let skip = (self.pos - start) as usize;
        let block = self.block(start)?;
        let n = buf.len().min(block.len().saturating_sub(skip));
        buf[..n].copy_from_slice(&block[skip..skip + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<F> Seek for Ranged<F> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_blocks_and_fetches_each_once() {
        let data: Vec<u8> = (0..3 * BLOCK + 10).map(|i| (i % 251) as u8).collect();
        let mut calls = 0;
        let mut r = Ranged::new(data.len() as u64, |at, n| {
            calls += 1;
            Ok(data[at as usize..(at + n) as usize].to_vec())
        });
        r.seek(SeekFrom::End(-(BLOCK as i64) - 5)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, data[data.len() - BLOCK as usize - 5..]);
        r.seek(SeekFrom::Start(2 * BLOCK)).unwrap();
        let mut again = [0u8; 16];
        r.read_exact(&mut again).unwrap();
        assert_eq!(r.fetched, BLOCK + 10);
        drop(r);
        assert_eq!(calls, 2);
    }
}
