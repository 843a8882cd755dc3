//! Copy: replicate restore points from one repository to another (on-site →
//! off-site), the "1" of the 3-2-1 rule.
//!
//! The two repositories have different keys, so nothing is copied as it is
//! stored: each chunk is decrypted with the source's key, filed under the
//! destination's keyed chunk id, and packed and sealed for the destination.
//! Stored (compressed) bytes are reused as they are. Only chunks the
//! destination lacks are sent; its index is the list of what it has.
//!
//! Crash safety is the backup's: packs first, index files after their packs
//! (every few packs, so an interrupted copy's work is found again by the
//! next run), the snapshot last, after what was sent has been checked. A
//! killed copy leaves at most unreferenced packs, which prune removes.

use crate::progress::{Counters, Phase, Reporter};
use crate::repo::index::PackEntry;
use crate::repo::{
    chunker, crypto, pack, pack::PackBuilder, ChunkId, Index, Kind, PackId, Repository, Snapshot,
};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Only these services' restore points; all when empty.
    pub services: Vec<String>,
    /// Skip reading back what was sent (it is still checked for presence,
    /// size and indexing). Reading back needs the destination's identity.
    pub no_read_back: bool,
    /// Where to remember which destination chunk each source chunk became
    /// (see [`super::copy_map`]); without it every copy reads all the data
    /// of each new restore point.
    pub cache_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopiedSnapshot {
    pub service: String,
    pub time: String,
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    pub copied: Vec<CopiedSnapshot>,
    /// Restore points the destination already had.
    pub already_there: usize,
    pub chunks_sent: u64,
    /// Chunks the destination already held (from an earlier or interrupted run).
    pub chunks_present: u64,
    pub bytes_sent: u64,
    pub packs_sent: u64,
    /// Packs read back from the destination and checked chunk by chunk.
    pub packs_read_back: u64,
    pub warnings: Vec<String>,
}

/// Index files are written after this many packs, or this long after the
/// last one, whichever comes first: a copy over a slow link that is killed
/// keeps what it sent.
const INDEX_EVERY_PACKS: usize = 8;
const INDEX_EVERY: Duration = Duration::from_secs(10);

/// The identity of a restore point across copies: the id it had where it
/// was made.
fn origin_of(s: &Snapshot) -> &str {
    s.origin.as_deref().unwrap_or(&s.id)
}

pub fn copy(
    src: &Repository,
    dst: &Repository,
    opts: &CopyOptions,
    reporter: &Reporter,
) -> Result<CopyReport> {
    anyhow::ensure!(
        src.config().id != dst.config().id,
        "{} and {} are the same repository",
        src.location(),
        dst.location()
    );
    src.data_identity()
        .context("copying reads the source's data")?;
    let _src_lock = src.lock(crate::repo::lock::Mode::Read, "copy", &|w| reporter.warn(w))?;
    let _dst_lock = dst.lock(crate::repo::lock::Mode::Write, "copy", &|w| {
        reporter.warn(w)
    })?;

    let (src_snaps, damaged) = src.list_snapshots()?;
    for (name, why) in damaged {
        reporter.warn(format!(
            "source restore point {name} is unreadable ({why}); not copied"
        ));
    }
    let (dst_snaps, _) = dst.list_snapshots()?;
    let present: HashSet<&str> = dst_snaps.iter().map(origin_of).collect();
    let wanted = |s: &Snapshot| opts.services.is_empty() || opts.services.contains(&s.service);
    let todo: Vec<&Snapshot> = src_snaps
        .iter()
        .filter(|s| wanted(s) && !present.contains(origin_of(s)))
        .collect();
    let report = CopyReport {
        already_there: src_snaps
            .iter()
            .filter(|s| wanted(s) && present.contains(origin_of(s)))
            .count(),
        ..Default::default()
    };
    if todo.is_empty() {
        return Ok(report);
    }

    let (src_index, _) = src.load_index()?;
    let writing = dst.load_index_for_writing()?;
    for (name, why) in &writing.damaged_files {
        reporter.warn(format!(
            "destination index file {name} is unreadable ({why}); what it lists is sent again"
        ));
    }
    for w in writing.warnings("destination: ") {
        reporter.warn(w);
    }
    let dst_index = writing.index;
    let total: u64 = todo.iter().map(|s| s.stats.bytes).sum();
    let map_file = opts
        .cache_dir
        .as_ref()
        .map(|d| super::copy_map::file_for(d, &src.config().id, &dst.config().id));
    let map = map_file
        .as_ref()
        .map(|f| super::copy_map::load(f, &dst_index))
        .unwrap_or_default();
    let mut job = Job {
        src,
        dst,
        src_index,
        dst_index,
        map,
        learnt: Vec::new(),
        map_file,
        sent: HashSet::new(),
        report,
        reporter,
        bytes_done: 0,
        bytes_total: total,
    };
    for snap in todo {
        let copied = job.copy_one(snap, opts).with_context(|| {
            format!(
                "copying restore point {} of {}",
                snap.short_id(),
                snap.service
            )
        })?;
        job.report.copied.push(copied);
    }
    Ok(job.report)
}

struct Job<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    src_index: Index,
    dst_index: Index,
    /// Source chunk id → destination chunk id, for chunks the destination
    /// holds (remembered from earlier copies, or read this run).
    map: HashMap<ChunkId, ChunkId>,
    /// Pairs read since the last restore point was stored, to remember.
    learnt: Vec<(ChunkId, ChunkId)>,
    map_file: Option<std::path::PathBuf>,
    /// Destination chunks sent this run (not yet in `dst_index`).
    sent: HashSet<ChunkId>,
    report: CopyReport,
    reporter: &'a Reporter,
    bytes_done: u64,
    bytes_total: u64,
}

/// Packs on their way to the destination.
struct Outbox<'f> {
    tx: crossbeam_channel::Sender<PackBuilder>,
    pack: PackBuilder,
    pack_size: usize,
    /// Set by an uploader that failed: stop reading the source.
    failed: &'f AtomicBool,
}

impl Outbox<'_> {
    fn add(&mut self, id: ChunkId, stored: &[u8], raw_len: u32, compressed: bool) -> Result<()> {
        self.pack.add(id, stored, raw_len, compressed);
        if self.pack.len() >= self.pack_size {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        if self.failed.load(Ordering::Relaxed) {
            bail!("a pack upload failed");
        }
        if !self.pack.is_empty() {
            let full = std::mem::replace(&mut self.pack, PackBuilder::new(self.pack_size));
            self.tx
                .send(full)
                .map_err(|_| anyhow!("the pack uploader stopped"))?;
        }
        Ok(())
    }
}

/// What the uploaders did: every pack sent with its table and sealed size.
#[derive(Default)]
struct Uploaded {
    packs: Vec<(PackId, Vec<PackEntry>, u64)>,
    /// Packs not yet in an index file.
    unindexed: Vec<(PackId, Vec<PackEntry>)>,
    last_index: Option<Instant>,
}

impl Job<'_> {
    fn copy_one(&mut self, snap: &Snapshot, opts: &CopyOptions) -> Result<CopiedSnapshot> {
        let nodes = self.src.read_tree(&self.src_index, snap)?;
        let pack_size = self.dst.config().pack_size as usize;
        let uploaded = Mutex::new(Uploaded {
            last_index: Some(Instant::now()),
            ..Default::default()
        });
        let dst = self.dst;

        let failed = AtomicBool::new(false);
        let upload_one = |pack: PackBuilder| -> Result<()> {
            let (plain, entries) = pack.finish();
            let id = PackId::random();
            let size = dst.store_pack(&id, &plain)?;
            drop(plain);
            let batch = {
                let mut u = uploaded
                    .lock()
                    .map_err(|_| anyhow!("uploader state poisoned"))?;
                u.packs.push((id, entries.clone(), size));
                u.unindexed.push((id, entries));
                let due = u.unindexed.len() >= INDEX_EVERY_PACKS
                    || u.last_index.is_some_and(|t| t.elapsed() >= INDEX_EVERY);
                if due {
                    u.last_index = Some(Instant::now());
                    std::mem::take(&mut u.unindexed)
                } else {
                    Vec::new()
                }
            };
            if !batch.is_empty() {
                dst.write_index(&batch)?;
            }
            Ok(())
        };
        let upload = |rx: Receiver<PackBuilder>| -> Result<()> {
            let r = (|| {
                for pack in &rx {
                    upload_one(pack)?;
                }
                Ok(())
            })();
            // One failed upload fails the snapshot: dropping this receiver
            // alone would leave the others sending what can never be used,
            // so tell the feeder to stop.
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            r
        };
        let (tree_ids, result) = std::thread::scope(|s| {
            // A rendezvous, as in backup: memory stays at 1 + uploaders packs.
            let (tx, rx) = bounded::<PackBuilder>(0);
            let upload = &upload;
            let handles: Vec<_> = (0..dst.backend().transfers().max(1))
                .map(|_| {
                    let rx = rx.clone();
                    s.spawn(move || upload(rx))
                })
                .collect();
            drop(rx);
            let mut out = Outbox {
                tx,
                pack: PackBuilder::new(pack_size),
                pack_size,
                failed: &failed,
            };
            let fed = self.send_data(&nodes, &mut out).and_then(|()| {
                let ids = self.send_tree(&nodes, &mut out)?;
                out.flush()?;
                Ok(ids)
            });
            drop(out);
            let mut first_err = None;
            for h in handles {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a pack uploader crashed")));
                if let Err(e) = r {
                    first_err.get_or_insert(e);
                }
            }
            match (fed, first_err) {
                // The uploader's error is the cause; the feeder only saw it stop.
                (_, Some(e)) => (Vec::new(), Err(e)),
                (Err(e), None) => (Vec::new(), Err(e)),
                (Ok(ids), None) => (ids, Ok(())),
            }
        });
        result?;
        let uploaded = uploaded
            .into_inner()
            .map_err(|_| anyhow!("uploader state poisoned"))?;
        if !uploaded.unindexed.is_empty() {
            self.dst.write_index(&uploaded.unindexed)?;
        }
        self.check_sent(&nodes, &tree_ids, &uploaded.packs, opts)?;
        self.report.packs_sent += uploaded.packs.len() as u64;

        let mut copy = Snapshot {
            id: String::new(),
            version: snap.version,
            time: snap.time.clone(),
            host: snap.host.clone(),
            service: snap.service.clone(),
            paths: snap.paths.clone(),
            tree: tree_ids,
            stats: snap.stats.clone(),
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
            // Facts name tree paths, never chunk ids: they travel as they are.
            sources: snap.sources.clone(),
            origin: Some(origin_of(snap).to_string()),
            tags: snap.tags.clone(),
            repaired: snap.repaired.clone(),
        };
        // Last: only now is the copy visible as a restore point.
        self.dst.save_snapshot(&mut copy)?;
        if let Some(f) = &self.map_file {
            if let Err(e) = super::copy_map::append(f, &self.learnt) {
                self.reporter.warn(format!(
                    "could not remember copied chunk ids (the next copy reads more): {e:#}"
                ));
            }
        }
        self.learnt.clear();
        Ok(CopiedSnapshot {
            service: snap.service.clone(),
            time: snap.time.clone(),
            source: snap.id.clone(),
            destination: copy.id,
        })
    }

    /// Sends every file chunk the destination lacks, reading each source
    /// pack once, in offset order.
    fn send_data(&mut self, nodes: &[crate::repo::tree::Node], out: &mut Outbox<'_>) -> Result<()> {
        let mut by_pack: BTreeMap<u32, Vec<(ChunkId, crate::repo::Location)>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for n in nodes {
            for id in &n.chunks {
                if !seen.insert(*id) {
                    continue;
                }
                if self.map.contains_key(id) {
                    // Known to be in the destination: not even read.
                    self.report.chunks_present += 1;
                    continue;
                }
                let loc = self.src_index.get(id).ok_or_else(|| {
                    anyhow!(
                        "chunk {} of {} is not in the source index: run `lifeboat verify` on the source",
                        id.short(),
                        n.path
                    )
                })?;
                by_pack.entry(loc.pack).or_default().push((*id, loc));
            }
        }
        let src_key = *self.src.chunk_key();
        let dst_key = *self.dst.chunk_key();
        let mut scratch = Vec::new();
        for (pack_no, mut chunks) in by_pack {
            chunks.sort_by_key(|(_, l)| l.offset);
            let pack_id = self.src_index.pack_id(pack_no);
            // A few chunks of a pack (an incremental copy) are read by range;
            // most of one, whole.
            let wanted: u64 = chunks.iter().map(|(_, l)| l.stored_len as u64).sum();
            let mut r = if wanted >= 4 << 20 {
                self.src.read_pack(&pack_id)?
            } else {
                self.src.open_pack(&pack_id)?
            };
            for (id, loc) in chunks {
                let data = pack::read_chunk(&mut r, &src_key, &id, &loc, &mut scratch)
                    .with_context(|| format!("in source pack {}", pack_id.short()))?;
                let new_id = crypto::chunk_id(&dst_key, &data);
                self.map.insert(id, new_id);
                self.learnt.push((id, new_id));
                self.bytes_done += data.len() as u64;
                if self.dst_index.contains(&new_id) || self.sent.contains(&new_id) {
                    self.report.chunks_present += 1;
                } else {
                    // The stored form (compressed or not) travels unchanged.
                    out.add(new_id, &scratch, loc.raw_len, loc.compressed)?;
                    self.sent.insert(new_id);
                    self.report.chunks_sent += 1;
                    self.report.bytes_sent += scratch.len() as u64;
                }
            }
            self.progress(false);
        }
        Ok(())
    }

    /// The file list, with destination chunk ids, chunked and stored as the
    /// destination's backups store theirs.
    fn send_tree(
        &mut self,
        nodes: &[crate::repo::tree::Node],
        out: &mut Outbox<'_>,
    ) -> Result<Vec<ChunkId>> {
        let cfg = self.dst.config();
        let mut cdc = chunker::CdcWriter::new(cfg.chunker, chunker::seed(self.dst.chunk_key()));
        let mut compressor = chunker::Compressor::new(cfg.compression_level)?;
        let mut chunks = Vec::new();
        let mut line = Vec::new();
        for n in nodes {
            let mut n = n.clone();
            for c in n.chunks.iter_mut() {
                *c = *self.map.get(c).ok_or_else(|| {
                    anyhow!("chunk {} was not copied (internal error)", c.short())
                })?;
            }
            line.clear();
            crate::repo::tree::encode_line(&n, &mut line)?;
            cdc.write(&line, &mut chunks);
        }
        cdc.finish(&mut chunks);
        let key = *self.dst.chunk_key();
        let mut ids = Vec::with_capacity(chunks.len());
        for data in chunks {
            let id = crypto::chunk_id(&key, &data);
            ids.push(id);
            if self.dst_index.contains(&id) || self.sent.contains(&id) {
                continue;
            }
            let raw_len = data.len() as u32;
            match compressor.compress(&data)? {
                Some(c) => out.add(id, &c, raw_len, true)?,
                None => out.add(id, &data, raw_len, false)?,
            }
            self.sent.insert(id);
            self.report.chunks_sent += 1;
        }
        Ok(ids)
    }

    /// Before the snapshot is written: every pack sent is stored at its
    /// size, the destination's index (as read back from storage) holds every
    /// chunk the snapshot needs, and, with the destination's identity, each
    /// sent pack decrypts and every chunk in it matches its id.
    fn check_sent(
        &mut self,
        nodes: &[crate::repo::tree::Node],
        tree_ids: &[ChunkId],
        packs: &[(PackId, Vec<PackEntry>, u64)],
        opts: &CopyOptions,
    ) -> Result<()> {
        let stored: HashMap<String, u64> =
            self.dst.backend().list(Kind::Data)?.into_iter().collect();
        for (id, _, size) in packs {
            match stored.get(&id.hex()) {
                Some(s) if s == size => {}
                Some(s) => bail!(
                    "pack {} was sent as {size} bytes but the destination holds {s}",
                    id.short()
                ),
                None => bail!(
                    "pack {} was sent but the destination does not list it",
                    id.short()
                ),
            }
        }
        let index = self.dst.load_index_for_writing()?.index;
        let needed = nodes
            .iter()
            .flat_map(|n| n.chunks.iter())
            .map(|c| self.map.get(c).copied())
            .chain(tree_ids.iter().copied().map(Some));
        for id in needed {
            let id = id.ok_or_else(|| anyhow!("a chunk was not copied (internal error)"))?;
            if !index.contains(&id) {
                bail!(
                    "chunk {} is not in the destination's index after sending",
                    id.short()
                );
            }
        }
        if !opts.no_read_back {
            if self.dst.data_identity().is_err() {
                self.report.warnings.push(format!(
                    "the key for {} cannot read data, so what was sent was checked for presence and size only",
                    self.dst.location()
                ));
            } else {
                let key = *self.dst.chunk_key();
                let mut scratch = Vec::new();
                for (id, entries, _) in packs {
                    let mut r = self.dst.read_pack(id)?;
                    for e in entries {
                        pack::read_chunk(&mut r, &key, &e.id, &e.location(0), &mut scratch)
                            .with_context(|| format!("reading back pack {}", id.short()))?;
                    }
                    self.report.packs_read_back += 1;
                }
            }
        }
        self.dst_index = index;
        self.sent.clear();
        Ok(())
    }

    fn progress(&self, force: bool) {
        self.reporter.progress(
            Counters {
                phase: Phase::Backup,
                bytes_done: self.bytes_done,
                bytes_total: self.bytes_total,
                bytes_stored: self.report.bytes_sent,
                ..Default::default()
            },
            None,
            force,
        );
    }
}
