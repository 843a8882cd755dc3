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
