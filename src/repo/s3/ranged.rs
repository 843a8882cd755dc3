//! Ranged reads, for random access (a tree chunk, a pack's trailer): they
//! start small and double while the reader goes on sequentially, so a
//! single chunk costs one request. Readers of whole packs use `open_whole`.

use super::Inner;
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

const FIRST_READ: u64 = 512 * 1024;
const MAX_READ: u64 = 16 * 1024 * 1024;

pub(super) struct RangedReader {
    inner: Arc<Inner>,
    key: ObjPath,
    size: u64,
    pos: u64,
    buf: bytes::Bytes,
    buf_start: u64,
    next_len: u64,
}

impl RangedReader {
    pub(super) fn new(inner: Arc<Inner>, key: ObjPath, size: u64) -> RangedReader {
        RangedReader {
            inner,
            key,
            size,
            pos: 0,
            buf: bytes::Bytes::new(),
            buf_start: 0,
            next_len: FIRST_READ,
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        // Reading on from where the last range ended is sequential.
        if self.pos == buf_end && !self.buf.is_empty() {
            self.next_len = (self.next_len * 2).min(MAX_READ);
        } else {
            self.next_len = FIRST_READ;
        }
        let end = (self.pos + self.next_len).min(self.size);
        let range = self.pos..end;
        let inner = &self.inner;
        let key = &self.key;
        let data = inner
            .retry(&format!("reading {key}"), || {
                let opts = GetOptions {
                    range: Some(GetRange::Bounded(range.clone())),
                    ..Default::default()
                };
                inner.block_on(inner.fetch(key, opts)).map(|(data, _)| data)
            })
            // Still a storage error inside the I/O error, so callers can
            // tell a failing store from damaged data.
            .map_err(|e| {
                std::io::Error::other(crate::Error::Storage {
                    what: format!("{e:#}"),
                    hint: crate::error::hint_for(&e).unwrap_or_default(),
                })
            })?;
        if data.len() as u64 != end - self.pos {
            return Err(std::io::Error::other(format!(
                "{key}: asked for {} bytes, got {}",
                end - self.pos,
                data.len()
            )));
        }
        if let Some(p) = &inner.pacer {
            p.wait(data.len());
        }
        self.buf_start = self.pos;
        self.buf = data;
        Ok(())
    }
}

impl Read for RangedReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos >= buf_end {
            self.fill()?;
        }
        let off = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - off);
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangedReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            )),
        }
    }
}
