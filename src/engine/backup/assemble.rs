//! The assembling stage of a backup: chunks back in order, deduplicated
//! against the index and each other, into packs; nodes into the tree.

use super::Msg;
use crate::repo::snapshot::Stats;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::{chunker, crypto, pack::PackBuilder, ChunkId, Index};
use crate::source::files_cache::{self, CachedFile, FilesCache, Stamp};
use anyhow::{anyhow, Result};
use crossbeam_channel::Sender;
use std::collections::{BTreeMap, HashMap, HashSet};

pub(super) struct PendingFile {
    pub(super) chunks: Vec<Option<ChunkId>>,
    pub(super) received: u32,
    pub(super) end: Option<(Node, u32, Option<Stamp>)>,
}

pub(super) struct Assembler<'a> {
    pub(super) index: &'a Index,
    pub(super) key: [u8; 32],
    pub(super) added: HashSet<ChunkId>,
    pub(super) pack: PackBuilder,
    pub(super) pack_size: usize,
    pub(super) pack_tx: Sender<PackBuilder>,
    pub(super) pending: HashMap<u64, PendingFile>,
    pub(super) done: BTreeMap<u64, Option<(Node, Option<CachedFile>)>>,
    pub(super) next_seq: u64,
    pub(super) tree: chunker::CdcWriter,
    pub(super) tree_ids: Vec<ChunkId>,
    pub(super) line: Vec<u8>,
    pub(super) stats: Stats,
    pub(super) cache: FilesCache,
    pub(super) compressor: chunker::Compressor,
    /// Files given up on; their late chunks are dropped.
    pub(super) skipped_files: HashSet<u64>,
}

impl Assembler<'_> {
    pub(super) fn handle(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::Nodes(nodes) => {
                for (seq, node, cached) in nodes {
                    if node.kind == NodeKind::File && cached.is_some() {
                        self.stats.files_unchanged += 1;
                    }
                    self.done.insert(seq, Some((node, cached)));
                }
            }
            Msg::Skip(seq, unreadable) => {
                self.pending.remove(&seq);
                self.skipped_files.insert(seq);
                self.stats.skipped += 1;
                if let Some(what) = unreadable {
                    self.unreadable(what);
                }
                self.done.insert(seq, None);
            }
            // The directory itself is stored, but what it holds is skipped.
            Msg::Unreadable(what) => {
                self.stats.skipped += 1;
                self.unreadable(what);
            }
            // Chunks of a file that failed part-way may still be in flight
            // from the workers: they belong to no node, so they are dropped
            // (a chunk another file needs comes again with that file).
            Msg::Chunk { seq, .. } if self.skipped_files.contains(&seq) => {}
            Msg::Chunk {
                seq,
                idx,
                id,
                raw_len,
                stored,
            } => {
                if let Some((data, compressed)) = stored {
                    self.store(id, &data, raw_len, compressed)?;
                }
                let p = self.pending.entry(seq).or_insert_with(|| PendingFile {
                    chunks: Vec::new(),
                    received: 0,
                    end: None,
                });
                if p.chunks.len() <= idx as usize {
                    p.chunks.resize(idx as usize + 1, None);
                }
                p.chunks[idx as usize] = Some(id);
                p.received += 1;
                self.try_complete(seq);
            }
            Msg::FileEnd {
                seq,
                node,
                chunks,
                stamp,
            } => {
                let p = self.pending.entry(seq).or_insert_with(|| PendingFile {
                    chunks: Vec::new(),
                    received: 0,
                    end: None,
                });
                p.end = Some((node, chunks, stamp));
                self.try_complete(seq);
            }
        }
        self.flush_ready()
    }

    fn unreadable(&mut self, what: String) {
        self.stats.unreadable += 1;
        if self.stats.unreadable_paths.len() < crate::repo::snapshot::MAX_UNREADABLE_LISTED {
            self.stats.unreadable_paths.push(what);
        }
    }

    fn try_complete(&mut self, seq: u64) {
        let ready = matches!(self.pending.get(&seq), Some(p) if p.end.as_ref().is_some_and(|(_, n, _)| *n == p.received));
        if !ready {
            return;
        }
        let Some(p) = self.pending.remove(&seq) else {
            return;
        };
        let Some((mut node, _, stamp)) = p.end else {
            return;
        };
        node.chunks = p.chunks.into_iter().flatten().collect();
        let cached = stamp.map(|stamp| CachedFile {
            stamp,
            hash: node.hash.clone().unwrap_or_default(),
            chunks: node.chunks.clone(),
        });
        self.done.insert(seq, Some((node, cached)));
    }

    /// Emits finished nodes into the tree stream in walk order.
    fn flush_ready(&mut self) -> Result<()> {
        while let Some(entry) = self.done.remove(&self.next_seq) {
            self.next_seq += 1;
            let Some((node, cached)) = entry else {
                continue;
            };
            match node.kind {
                NodeKind::Dir => self.stats.dirs += 1,
                NodeKind::Symlink => self.stats.symlinks += 1,
                NodeKind::File => {
                    self.stats.files += 1;
                    self.stats.bytes += node.size;
                }
            }
            if let Some(c) = cached {
                let mut abs = b"/".to_vec();
                abs.extend(node.path_bytes()?);
                self.cache.insert(files_cache::key(&abs), c);
            }
            self.line.clear();
            crate::repo::tree::encode_line(&node, &mut self.line)?;
            let mut out = Vec::new();
            let line = std::mem::take(&mut self.line);
            self.tree.write(&line, &mut out);
            self.line = line;
            self.store_tree_chunks(out)?;
        }
        Ok(())
    }

    fn store_tree_chunks(&mut self, chunks: Vec<Vec<u8>>) -> Result<()> {
        for data in chunks {
            let id = crypto::chunk_id(&self.key, &data);
            self.tree_ids.push(id);
            if !self.index.contains(&id) {
                let raw_len = data.len() as u32;
                match self.compressor.compress(&data)? {
                    Some(c) => self.store(id, &c, raw_len, true)?,
                    None => self.store(id, &data, raw_len, false)?,
                }
            }
        }
        Ok(())
    }

    fn store(&mut self, id: ChunkId, stored: &[u8], raw_len: u32, compressed: bool) -> Result<()> {
        if self.index.contains(&id) || !self.added.insert(id) {
            return Ok(());
        }
        self.pack.add(id, stored, raw_len, compressed);
        self.stats.bytes_added += stored.len() as u64;
        self.stats.chunks_added += 1;
        if self.pack.len() >= self.pack_size {
            let full = std::mem::replace(&mut self.pack, PackBuilder::new(self.pack_size));
            self.pack_tx
                .send(full)
                .map_err(|_| anyhow!("the pack writer stopped"))?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<(Vec<ChunkId>, Stats, FilesCache)> {
        if !self.pending.is_empty() || !self.done.is_empty() {
            anyhow::bail!("backup pipeline ended with unfinished files (internal error)");
        }
        let mut out = Vec::new();
        let tree = std::mem::replace(
            &mut self.tree,
            chunker::CdcWriter::new(chunker::Params::default(), 0),
        );
        tree.finish(&mut out);
        self.store_tree_chunks(out)?;
        if !self.pack.is_empty() {
            let last = std::mem::replace(&mut self.pack, PackBuilder::new(0));
            self.pack_tx
                .send(last)
                .map_err(|_| anyhow!("the pack writer stopped"))?;
        }
        Ok((self.tree_ids, self.stats, self.cache))
    }
}
