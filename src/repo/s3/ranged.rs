//! Ranged reads, for random access (a tree chunk, a pack's trailer): they
//! start small and double while the reader goes on sequentially, so a
//! single chunk costs one request. Readers of whole packs use `open_whole`.
//! [`open_ahead`] fetches the ranges a reader will need first all at once.

use super::Inner;
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

const FIRST_READ: u64 = 512 * 1024;
const MAX_READ: u64 = 16 * 1024 * 1024;
/// At most this much is fetched ahead for one reader, and in at most
/// `MAX_AHEAD_RANGES` requests: more is better read as a whole object.
const MAX_AHEAD: u64 = 2 * MAX_READ;
const MAX_AHEAD_RANGES: usize = 8;

pub(super) struct RangedReader {
    inner: Arc<Inner>,
    key: ObjPath,
    size: u64,
    pos: u64,
    buf: bytes::Bytes,
    buf_start: u64,
    next_len: u64,
    /// Ranges fetched ahead ([`open_ahead`]), served before any request.
    ahead: Vec<(u64, bytes::Bytes)>,
}

/// `ahead` sorted, overlapping and touching ranges merged, empty ones
/// dropped; None when that is more than is worth fetching ahead.
fn merged(ahead: &[Range<u64>]) -> Option<Vec<Range<u64>>> {
    let mut spans: Vec<Range<u64>> = ahead.iter().filter(|r| r.start < r.end).cloned().collect();
    spans.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in spans {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    let total: u64 = out.iter().map(|r| r.end - r.start).sum();
    (!out.is_empty() && out.len() <= MAX_AHEAD_RANGES && total <= MAX_AHEAD).then_some(out)
}

/// A reader of `key` with the ranges `ahead` already fetched, in parallel
/// and without the HEAD `open` makes (each response gives the object's
/// size). None, for the caller to open it plainly, when there is nothing
/// to fetch ahead or the store refuses a range (one past the end of a
/// damaged object): that path reports what is wrong as it always has.
pub(super) fn open_ahead(
    inner: &Arc<Inner>,
    key: &ObjPath,
    ahead: &[Range<u64>],
) -> anyhow::Result<Option<RangedReader>> {
    let Some(spans) = merged(ahead) else {
        return Ok(None);
    };
    let got = inner.retry(&format!("reading {key} ahead"), || {
        let gets = spans.iter().map(|r| {
            let opts = GetOptions {
                range: Some(GetRange::Bounded(r.clone())),
                ..Default::default()
            };
            inner.fetch(key, opts)
        });
        match inner.block_on(futures::future::try_join_all(gets)) {
            Ok(parts) => Ok(Some(parts)),
            Err(e) if !super::errors::transient(&e) => Ok(None),
            Err(e) => Err(e),
        }
    })?;
    let Some(parts) = got else {
        return Ok(None);
    };
    let size = parts.first().map_or(0, |(_, meta)| meta.size);
    let mut windows = Vec::with_capacity(parts.len());
    for (r, (data, meta)) in spans.iter().zip(parts) {
        // Each response is checked as `fill` checks one: exactly the bytes
        // asked for, up to the end of the object, of one and the same size.
        if meta.size != size || data.len() as u64 != r.end.min(size).saturating_sub(r.start) {
            return Ok(None);
        }
        if let Some(p) = &inner.pacer {
            p.wait(data.len());
        }
        windows.push((r.start, data));
    }
    let mut reader = RangedReader::new(Arc::clone(inner), key.clone(), size);
    reader.ahead = windows;
    Ok(Some(reader))
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
            ahead: Vec::new(),
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let pos = self.pos;
        if let Some((start, data)) = self
            .ahead
            .iter()
            .find(|(start, data)| *start <= pos && pos < start + data.len() as u64)
        {
            self.buf_start = *start;
            self.buf = data.clone();
            return Ok(());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_fetched_ahead_are_merged_and_bounded() {
        assert_eq!(
            merged(&[10..20, 0..5, 5..8, 15..30]),
            Some(vec![0..8, 10..30])
        );
        let one = |r: Range<u64>| vec![r];
        assert_eq!(merged(&one(3..3)), None, "nothing to fetch");
        assert_eq!(merged(&one(0..MAX_AHEAD + 1)), None, "too much for ahead");
        let many: Vec<Range<u64>> = (0..20).map(|i| i * 10..i * 10 + 1).collect();
        assert_eq!(merged(&many), None, "too many requests");
    }
}
