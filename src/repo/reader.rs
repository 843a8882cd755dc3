//! Reading one file of a snapshot straight from the repository, in order.

use super::tree::Node;
use super::{pack, Index, Repository};
use crate::progress::{Counters, Phase, Reporter};
use anyhow::{bail, Context, Result};

/// Reads one file of a snapshot straight from the repository, in order:
/// how streamed sources (dumps, images) are fed back to their tools. Every
/// chunk is checked against its id, and at the end the whole stream against
/// the file's recorded hash and size; a mismatch is a read error, so a
/// consumer never mistakes damaged data for a clean end.
pub struct FileReader<'a> {
    repo: &'a Repository,
    index: &'a Index,
    node: &'a Node,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    hasher: blake3::Hasher,
    read: u64,
    pack: Option<(u32, super::crypto::SealedReader)>,
    scratch: Vec<u8>,
    reporter: &'a Reporter,
    /// Stops with an error when the job is cancelled (not for a stream
    /// already going into a live restore command: cutting it short would
    /// leave the live data half-restored).
    cancellable: bool,
}

impl<'a> FileReader<'a> {
    pub fn new(
        repo: &'a Repository,
        index: &'a Index,
        node: &'a Node,
        reporter: &'a Reporter,
    ) -> Self {
        FileReader {
            repo,
            index,
            node,
            next: 0,
            buf: Vec::new(),
            pos: 0,
            hasher: blake3::Hasher::new(),
            read: 0,
            pack: None,
            scratch: Vec::new(),
            reporter,
            cancellable: true,
        }
    }

    /// Reads to the end even when the job is cancelled meanwhile.
    pub fn to_the_end(mut self) -> Self {
        self.cancellable = false;
        self
    }

    fn fill(&mut self) -> Result<bool> {
        let Some(id) = self.node.chunks.get(self.next) else {
            if self.read != self.node.size
                || Some(self.hasher.finalize().to_hex().as_str()) != self.node.hash.as_deref()
            {
                bail!(
                    "{}: the restored stream does not match its recorded hash (damaged repository; run `lifeboat verify`)",
                    self.node.path
                );
            }
            return Ok(false);
        };
        let loc = self
            .index
            .get(id)
            .ok_or_else(|| crate::Error::ChunkNotIndexed { chunk: id.short() })
            .with_context(|| self.node.path.clone())?;
        if self.pack.as_ref().map(|(p, _)| *p) != Some(loc.pack) {
            let pack = self.index.pack_id(loc.pack);
            self.pack = Some((loc.pack, self.repo.open_pack(&pack)?));
        }
        let Some((_, r)) = self.pack.as_mut() else {
            bail!("internal: no pack open");
        };
        self.buf = pack::read_chunk(r, self.repo.chunk_key(), id, &loc, &mut self.scratch)
            .with_context(|| self.node.path.clone())?;
        self.hasher.update(&self.buf);
        self.pos = 0;
        self.next += 1;
        Ok(true)
    }
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.cancellable && self.reporter.cancelled() {
            return Err(std::io::Error::other("cancelled"));
        }
        while self.pos == self.buf.len() {
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(format!("{e:#}"))),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.read += n as u64;
        self.reporter.progress(
            Counters {
                phase: Phase::Restore,
                bytes_done: self.read,
                bytes_total: self.node.size,
                files_total: 1,
                ..Default::default()
            },
            Some(&self.node.path),
            false,
        );
        Ok(n)
    }
}
