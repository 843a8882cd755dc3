//! Content-defined chunking (FastCDC 2020) and the per-chunk compression
//! decision. The gear table is seeded from the secret chunk-id key, so chunk
//! boundaries do not fingerprint content either.

use anyhow::{bail, Result};
use fastcdc::v2020::{FastCDC, Normalization, StreamCDC};
use serde::{Deserialize, Serialize};
use std::io::Read;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for Params {
    /// 256 KiB / 1 MiB / 4 MiB: a 1 % change to a 400 MB dump touches a
    /// handful of chunks, and a million-chunk repository indexes in ~48 MB.
    fn default() -> Self {
        Params {
            min: 256 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

impl Params {
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::*;
        let in_range = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max)
            && self.min < self.avg
            && self.avg < self.max;
        if !in_range {
            bail!("the repository's chunker parameters are out of range (damaged config?)");
        }
        Ok(())
    }
}

pub fn seed(chunk_key: &[u8; 32]) -> u64 {
    let k = blake3::derive_key("lifeboat 2024 chunker gear seed", chunk_key);
    u64::from_le_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]])
}

/// Chunks a reader.
pub fn stream<R: Read>(r: R, p: &Params, seed: u64) -> StreamCDC<R> {
    StreamCDC::with_level_and_seed(r, p.min, p.avg, p.max, Normalization::Level1, seed)
}

/// Files changed in place a page at a time (SQLite databases) are cut into
/// whole pages instead: a page never moves, so an insert that rewrites a
/// few hundred scattered pages adds those pages, where content-defined
/// chunks of a megabyte would each hold one of them. Pages are grouped only
/// as far as needed to keep a file under `MAX_PAGE_CHUNKS` chunks (so the
/// index stays small for a huge database). None for a page size that is not
/// a power of two from 512 to 64 KiB.
pub fn page_chunk_size(page: u32, file_len: u64) -> Option<u32> {
    const MAX_PAGE_CHUNKS: u64 = 256 * 1024;
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return None;
    }
    let mut size = page as u64;
    while file_len.div_ceil(size) > MAX_PAGE_CHUNKS && size < Params::default().max as u64 {
        size *= 2;
    }
    Some(size as u32)
}

/// Cuts a reader into chunks of exactly `size` bytes (the last one
/// shorter), for [`page_chunk_size`].
pub struct FixedChunks<R> {
    r: R,
    size: usize,
    done: bool,
}

pub fn fixed<R: Read>(r: R, size: u32) -> FixedChunks<R> {
    FixedChunks {
        r,
        size: size.max(1) as usize,
        done: false,
    }
}

impl<R: Read> Iterator for FixedChunks<R> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut buf = Vec::with_capacity(self.size);
        match (&mut self.r).take(self.size as u64).read_to_end(&mut buf) {
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
            Ok(n) => {
                self.done = n < self.size;
                (n > 0).then_some(Ok(buf))
            }
        }
    }
}

/// Chunks data that is produced bit by bit (the tree stream). Cutting all but
/// the last chunk of the buffer gives the same boundaries as chunking the
/// whole stream at once, because a FastCDC cut depends only on the bytes
/// since the previous cut.
pub struct CdcWriter {
    params: Params,
    seed: u64,
    buf: Vec<u8>,
}

impl CdcWriter {
    pub fn new(params: Params, seed: u64) -> Self {
        CdcWriter {
            params,
            seed,
            buf: Vec::new(),
        }
    }

    pub fn write(&mut self, data: &[u8], out: &mut Vec<Vec<u8>>) {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 2 * self.params.max as usize {
            self.cut(false, out);
        }
    }

    pub fn finish(mut self, out: &mut Vec<Vec<u8>>) {
        self.cut(true, out);
    }

    fn cut(&mut self, eof: bool, out: &mut Vec<Vec<u8>>) {
        let p = self.params;
        let cdc = FastCDC::with_level_and_seed(
            &self.buf,
            p.min,
            p.avg,
            p.max,
            Normalization::Level1,
            self.seed,
        );
        let chunks: Vec<_> = cdc.collect();
        let keep = if eof {
            chunks.len()
        } else {
            chunks.len().saturating_sub(1)
        };
        let mut consumed = 0;
        for c in &chunks[..keep] {
            out.push(self.buf[c.offset..c.offset + c.length].to_vec());
            consumed = c.offset + c.length;
        }
        self.buf.drain(..consumed);
    }
}

/// Compresses a chunk unless a cheap probe says it will not shrink (photos,
/// archives, already-compressed dumps). Returns the stored bytes and whether
/// they are compressed.
pub struct Compressor {
    level: i32,
    inner: zstd::bulk::Compressor<'static>,
    probe: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    pub fn new(level: i32) -> Result<Self> {
        Ok(Compressor {
            level,
            inner: zstd::bulk::Compressor::new(level)?,
            probe: zstd::bulk::Compressor::new(1)?,
        })
    }

    pub fn compress(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.level == 0 || data.len() < 64 {
            return Ok(None);
        }
        // A 64 KiB sample from the middle at level 1 costs ~2 % of
        // compressing the chunk and tells random from structured data.
        if data.len() > 256 * 1024 {
            let mid = data.len() / 2;
            let sample = &data[mid - 32 * 1024..mid + 32 * 1024];
            let probe = self.probe.compress(sample)?;
            if probe.len() * 100 > sample.len() * 97 {
                return Ok(None);
            }
        }
        let out = self.inner.compress(data)?;
        Ok((out.len() * 100 < data.len() * 98).then_some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_chunks_until_a_file_has_too_many() {
        assert_eq!(page_chunk_size(4096, 80 << 20), Some(4096));
        assert_eq!(page_chunk_size(65536, 80 << 20), Some(65536));
        // 4 GiB of 4 KiB pages: grouped four to a chunk.
        assert_eq!(page_chunk_size(4096, 4 << 30), Some(16384));
        // Never beyond the largest content-defined chunk.
        assert_eq!(page_chunk_size(4096, 1 << 50), Some(4 << 20));
        assert_eq!(page_chunk_size(1000, 1 << 20), None);
        assert_eq!(page_chunk_size(256, 1 << 20), None);
    }

    #[test]
    fn fixed_chunks_cut_on_the_size_and_keep_every_byte() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<Vec<u8>> = fixed(&data[..], 4096).map(|c| c.unwrap()).collect();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [4096, 4096, 1808]
        );
        assert_eq!(chunks.concat(), data);
        assert_eq!(fixed(&data[..8192], 4096).count(), 2);
        assert_eq!(fixed(&[][..], 4096).count(), 0);
    }
}
