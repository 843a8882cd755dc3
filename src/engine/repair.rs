//! Repairs for a damaged repository.
//!
//! - [`repair_index`]: the index rebuilt from the packs' own trailers (each
//!   pack repeats its table, docs/format.md), so a lost or damaged index
//!   file costs nothing that the packs still hold. New index files are
//!   written before the old ones are removed: killed at any instant, the
//!   repository keeps an index (at worst two that agree).
//! - [`repair_snapshots`]: restore points that need chunks the repository no
//!   longer holds are rewritten without the files that cannot be restored,
//!   marked `repaired` with what was dropped; the original is removed only
//!   after its replacement is stored.

use crate::progress::Reporter;
use crate::repo::damage::DamagedCopy;
use crate::repo::index::PackEntry;
use crate::repo::lock::Mode;
use crate::repo::snapshot::Repaired;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::{chunker, crypto, pack, Kind, PackId, Repository, Snapshot};
use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Packs per rebuilt index file: small enough that a file is cheap to
/// rewrite, large enough that a big repository has few.
const PACKS_PER_INDEX_FILE: usize = 2000;

#[derive(Debug, Clone, Default)]
pub struct RepairIndexOptions {
    /// Also decrypt and hash every chunk; damaged ones are left out of the
    /// new index, so the next backup of the same data stores them again.
    pub read_data: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexReport {
    pub packs: usize,
    pub chunks: usize,
    /// Packs whose trailer could not be read: (pack, why). Their chunks
    /// are no longer indexed; `repair snapshots` drops what needed them.
    pub unreadable_packs: Vec<(String, String)>,
    /// Chunks left out with `read_data`: (pack, chunk, why).
    pub damaged_chunks: Vec<(String, String, String)>,
    /// Packs whose trailer could not be read but which an old index file
    /// names: (pack, why). The chunks it names that read back were kept
    /// (a pack cut short loses only its last segment's chunks).
    pub trailerless_packs: Vec<(String, String)>,
    pub index_files_written: usize,
    pub index_files_removed: usize,
}

impl RepairIndexReport {
    /// Whether everything stored could be indexed.
    pub fn ok(&self) -> bool {
        self.unreadable_packs.is_empty()
            && self.damaged_chunks.is_empty()
            && self.trailerless_packs.is_empty()
    }
}

/// Rebuilds the index from every pack's trailer, under the exclusive lock.
pub fn repair_index(
    repo: &Repository,
    opts: &RepairIndexOptions,
    reporter: &Reporter,
) -> Result<RepairIndexReport> {
    repo.data_identity()?;
    let _lock = repo.lock(Mode::Exclusive, "repair index", &|w| reporter.warn(w))?;
    let old: Vec<String> = repo
        .backend()
        .list(Kind::Index)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut report = RepairIndexReport::default();
    // What the old index says, for packs whose own trailer is lost. A
    // store that fails to hand over an index file aborts the repair: the
    // file may be perfectly good, and removing it would lose its packs.
    let mut claimed: std::collections::HashMap<PackId, Vec<PackEntry>> = Default::default();
    for (_, packs) in load_index_files_strict(repo)?.0 {
        for (p, entries) in packs {
            claimed.entry(p).or_insert(entries);
        }
    }
    let mut packs = Vec::new();
    for name in repo.backend().list_names(Kind::Data)? {
        match PackId::parse(&name) {
            Ok(p) => packs.push(p),
            Err(_) => report
                .unreadable_packs
                .push((name, "not a pack name; left alone".into())),
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<PackResult>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..super::workers().max(repo.backend().transfers()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = packs.get(i) else { return };
                let r = read_pack_table(repo, p, opts.read_data, claimed.get(p));
                if let Ok(mut v) = results.lock() {
                    v.push(r);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow!("repair state poisoned"))?;
    // A store that fails proves nothing about a pack: rebuilding without it
    // and removing the old index would turn an outage into lost data. Stop
    // before anything is written or removed.
    if let Some(r) = results.iter().find(|r| r.store_failure.is_some()) {
        let why = r.store_failure.as_deref().unwrap_or_default();
        return Err(crate::Error::Storage {
            what: format!(
                "repair index stopped, nothing changed: the store failed to hand over pack {}: {why}",
                r.pack.short()
            ),
            hint: "the old index is untouched; run `lifeboat repair index` again once the store answers".into(),
        }
        .into());
    }
    let mut table: Vec<(PackId, Vec<PackEntry>)> = Vec::new();
    for r in results {
        match r.entries {
            Ok(entries) => {
                report.chunks += entries.len();
                if !entries.is_empty() {
                    table.push((r.pack, entries));
                }
            }
            Err(why) => report.unreadable_packs.push((r.pack.hex(), why)),
        }
        if let Some(why) = r.trailerless {
            report.trailerless_packs.push((r.pack.hex(), why));
        }
        for (c, why) in r.damaged {
            report
                .damaged_chunks
                .push((r.pack.hex(), c.chunk.hex(), why));
        }
    }
    table.sort_by_key(|(p, _)| *p);
    report.packs = table.len();
    for batch in table.chunks(PACKS_PER_INDEX_FILE) {
        repo.write_index(batch)
            .context("writing the rebuilt index (the old index is still in place)")?;
        report.index_files_written += 1;
    }
    // Only now that the new index is durable does the old one go.
    for name in old {
        repo.backend()
            .remove(Kind::Index, &name)
            .with_context(|| format!("removing old index file {name}"))?;
        report.index_files_removed += 1;
    }
    report.unreadable_packs.sort();
    report.damaged_chunks.sort();
    report.trailerless_packs.sort();
    Ok(report)
}

struct PackResult {
    pack: PackId,
    /// Err only when the pack's bytes arrived and failed authentication or
    /// decoding: proven damage.
    entries: std::result::Result<Vec<PackEntry>, String>,
    /// The store failed while reading the pack: nothing is proven.
    store_failure: Option<String>,
    damaged: Vec<(DamagedCopy, String)>,
    /// Why the trailer could not be read, when the old index stood in.
    trailerless: Option<String>,
}

/// One pack's table, from its trailer; with `read_data`, only the chunks
/// that read back as themselves. A pack whose trailer is lost (cut short
/// in its last segment, say) keeps the chunks the old index names for it
/// that read back, judged as verify judges them.
fn read_pack_table(
    repo: &Repository,
    p: &PackId,
    read_data: bool,
    claimed: Option<&Vec<PackEntry>>,
) -> PackResult {
    let mut out = PackResult {
        pack: *p,
        entries: Ok(Vec::new()),
        store_failure: None,
        damaged: Vec::new(),
        trailerless: None,
    };
    let fail = |mut out: PackResult, e: anyhow::Error| {
        if crate::repo::backend::is_store_failure(&e) {
            out.store_failure = Some(format!("{e:#}"));
        } else {
            out.entries = Err(format!("{e:#}"));
        }
        out
    };
    let opened = if read_data {
        repo.read_pack(p)
    } else {
        repo.open_pack(p)
    };
    let table = opened.map(|mut r| {
        let trailer = pack::read_trailer(&mut r);
        (r, trailer)
    });
    let (mut r, entries) = match table {
        Ok((r, Ok(entries))) => (r, entries),
        Ok((_, Err(e))) => match claimed {
            Some(c) if !crate::repo::backend::is_store_failure(&e) => {
                out.trailerless = Some(format!("trailer unreadable: {e:#}"));
                match repo.read_pack(p) {
                    Ok(r) => (r, c.clone()),
                    Err(e) => return fail(out, e),
                }
            }
            _ => return fail(out, e),
        },
        Err(e) => return fail(out, e),
    };
    if !read_data && out.trailerless.is_none() {
        out.entries = Ok(entries);
        return out;
    }
    let mut good = Vec::with_capacity(entries.len());
    for (e, damage) in pack::read_back(&mut r, repo.chunk_key(), &entries, &|_| {}) {
        match damage {
            None => good.push(e),
            Some(why) => out.damaged.push((
                DamagedCopy {
                    pack: *p,
                    chunk: e.id,
                },
                why,
            )),
        }
    }
    out.entries = Ok(good);
    out
}

/// Every index file, like [`Repository::load_index_files`], except that a
/// store failing to hand one over is an error rather than damage: only a
/// file whose bytes arrived and do not open or decode is damaged.
fn load_index_files_strict(
    repo: &Repository,
) -> Result<(Vec<crate::repo::IndexFile>, crate::repo::Damaged)> {
    let mut files = Vec::new();
    let mut damaged = Vec::new();
    for (name, _) in repo.backend().list(Kind::Index)? {
        let raw = repo
            .backend()
            .get(Kind::Index, &name)
            .with_context(|| format!("reading index file {name}"))?;
        match repo
            .open_meta(&raw)
            .and_then(|plain| crate::repo::index::decode_index_file(&plain))
        {
            Ok(packs) => files.push((name, packs)),
            Err(e) => damaged.push((name, format!("{e:#}"))),
        }
    }
    Ok((files, damaged))
}

#[derive(Debug, Clone, Default)]
pub struct RepairSnapshotsOptions {
    /// Say what would be done; change nothing.
    pub dry_run: bool,
    /// Remove restore points whose file list is lost: nothing in them can
    /// be restored or kept.
    pub forget_lost: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairedSnapshot {
    pub service: String,
    pub time: String,
    /// The broken restore point (removed unless a dry run).
    pub original: String,
    /// Its replacement; None in a dry run.
    pub replacement: Option<String>,
    /// Files left out because data they need is gone.
    pub dropped: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairSnapshotsReport {
    pub checked: usize,
    pub dry_run: bool,
    pub repaired: Vec<RepairedSnapshot>,
    /// Restore points that cannot be repaired (their file list is lost):
    /// (snapshot, why). They are left as they are.
    pub unrepairable: Vec<(String, String)>,
    /// With `forget_lost`: restore points removed because their file list
    /// is lost: (snapshot, service, why). In a dry run, those that would be.
    pub removed: Vec<(String, String, String)>,
}

impl RepairSnapshotsReport {
    pub fn ok(&self) -> bool {
        self.unrepairable.is_empty()
    }
}

/// Rewrites every restore point that needs chunks the repository does not
/// hold (or holds only damaged), leaving out what cannot be restored.
pub fn repair_snapshots(
    repo: &Repository,
    opts: &RepairSnapshotsOptions,
    reporter: &Reporter,
) -> Result<RepairSnapshotsReport> {
    repo.data_identity()?;
    let _lock = repo.lock(Mode::Exclusive, "repair snapshots", &|w| reporter.warn(w))?;
    let writing = repo.load_index_for_writing()?;
    if !writing.damaged_files.is_empty() {
        return Err(refuse_damaged_index(repo, &writing.damaged_files));
    }
    let index = writing.index;
    let (snaps, damaged) = repo.list_snapshots()?;
    let mut report = RepairSnapshotsReport {
        checked: snaps.len(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    for (name, why) in damaged {
        report.unrepairable.push((
            name,
            format!("the restore point itself is unreadable: {why}"),
        ));
    }
    // Originals whose replacement is already stored (a repair killed
    // before it removed them): repairing them again would store a second
    // replacement.
    let replaced: std::collections::HashMap<&str, (&Snapshot, &Repaired)> = snaps
        .iter()
        .flat_map(|s| {
            s.repaired
                .iter()
                .map(move |r| (r.original.as_str(), (s, r)))
        })
        .collect();
    // Listed only when a file list fails to read: whether its chunks are
    // absent from every pack stored, or merely unreadable.
    let mut unindexed_packs: Option<usize> = None;
    for snap in &snaps {
        if let Some((by, rec)) = replaced.get(snap.id.as_str()) {
            if !opts.dry_run {
                repo.backend()
                    .remove(Kind::Snapshots, &snap.id)
                    .with_context(|| {
                        format!("removing the original of restore point {}", snap.id)
                    })?;
            }
            report.repaired.push(RepairedSnapshot {
                service: snap.service.clone(),
                time: snap.time.clone(),
                original: snap.id.clone(),
                replacement: Some(by.id.clone()),
                dropped: rec.dropped.clone(),
            });
            continue;
        }
        let nodes = match repo.read_tree(&index, snap) {
            Ok(n) => n,
            Err(e) if crate::repo::backend::is_store_failure(&e) => {
                return Err(e.context(format!(
                    "reading the file list of restore point {} (nothing more was changed)",
                    snap.short_id()
                )));
            }
            Err(e) => {
                let lost = snap.tree.iter().any(|c| !index.contains(c));
                let unindexed = match unindexed_packs {
                    Some(n) => n,
                    None => {
                        let n = count_unindexed_packs(repo, &index)?;
                        unindexed_packs = Some(n);
                        n
                    }
                };
                // Gone, not just unreadable: a chunk no index file names,
                // while the index names every pack stored (and no index
                // file is damaged, checked above).
                if opts.forget_lost && lost && unindexed == 0 {
                    if !opts.dry_run {
                        repo.backend()
                            .remove(Kind::Snapshots, &snap.id)
                            .with_context(|| format!("removing restore point {}", snap.id))?;
                    }
                    report
                        .removed
                        .push((snap.id.clone(), snap.service.clone(), format!("{e:#}")));
                } else if lost && unindexed > 0 {
                    report.unrepairable.push((
                        snap.id.clone(),
                        format!(
                            "its file list is not indexed, and {} stored not indexed may hold it; run `lifeboat repair index` first: {e:#}",
                            crate::util::plural(unindexed as u64, "pack")
                        ),
                    ));
                } else if lost {
                    report.unrepairable.push((
                        snap.id.clone(),
                        format!(
                            "its file list cannot be read, so nothing in it can be kept: {e:#}"
                        ),
                    ));
                } else {
                    report.unrepairable.push((
                        snap.id.clone(),
                        format!("its file list is stored but damaged, so nothing in it can be kept; it is not removed: {e:#}"),
                    ));
                }
                continue;
            }
        };
        let (kept, dropped): (Vec<Node>, Vec<Node>) = nodes
            .into_iter()
            .partition(|n| n.kind != NodeKind::File || n.chunks.iter().all(|c| index.contains(c)));
        if dropped.is_empty() {
            continue;
        }
        let dropped_paths: Vec<String> = dropped.iter().map(|n| n.path.clone()).collect();
        let replacement = if opts.dry_run {
            None
        } else {
            Some(
                write_repaired(repo, &index, snap, &kept, &dropped)
                    .with_context(|| format!("repairing restore point {}", snap.short_id()))?,
            )
        };
        if replacement.is_some() {
            // The replacement is stored: the broken original can go.
            repo.backend()
                .remove(Kind::Snapshots, &snap.id)
                .with_context(|| format!("removing the original of restore point {}", snap.id))?;
        }
        report.repaired.push(RepairedSnapshot {
            service: snap.service.clone(),
            time: snap.time.clone(),
            original: snap.id.clone(),
            replacement,
            dropped: dropped_paths,
        });
    }
    Ok(report)
}

/// The repository's index is damaged: say which files, unless the store
/// itself failed to hand them over (then that is the error).
fn refuse_damaged_index(repo: &Repository, damaged: &crate::repo::Damaged) -> anyhow::Error {
    for (name, _) in damaged {
        if let Err(e) = repo.backend().get(Kind::Index, name) {
            if crate::repo::backend::is_store_failure(&e) {
                return e.context(format!(
                    "reading index file {name} (repair snapshots changed nothing)"
                ));
            }
        }
    }
    let names: Vec<String> = damaged
        .iter()
        .take(3)
        .map(|(n, why)| format!("{}: {why}", &n[..8.min(n.len())]))
        .collect();
    crate::Error::IndexDamaged {
        what: format!(
            "repair snapshots changed nothing: {} unreadable ({}); with it, chunks still stored look lost, so run `lifeboat repair index` first",
            if damaged.len() == 1 { "1 index file is".to_string() } else { format!("{} index files are", damaged.len()) },
            names.join("; ")
        ),
    }
    .into()
}

/// Packs stored that no index file names (a backup killed before writing
/// its index, say): chunks in them look lost but are not.
fn count_unindexed_packs(repo: &Repository, index: &crate::repo::Index) -> Result<usize> {
    let indexed: HashSet<&PackId> = index.packs().iter().collect();
    let mut n = 0;
    for name in repo.backend().list_names(Kind::Data)? {
        match PackId::parse(&name) {
            Ok(p) if !indexed.contains(&p) => n += 1,
            // Indexed, or not a pack at all (repair index leaves those).
            _ => {}
        }
    }
    Ok(n)
}

/// Stores the kept part of `snap`'s tree and a restore point for it;
/// returns the new restore point's id.
fn write_repaired(
    repo: &Repository,
    index: &crate::repo::Index,
    snap: &Snapshot,
    kept: &[Node],
    dropped: &[Node],
) -> Result<String> {
    let cfg = repo.config();
    let mut cdc = chunker::CdcWriter::new(cfg.chunker, chunker::seed(repo.chunk_key()));
    let mut line = Vec::new();
    let mut chunks = Vec::new();
    for n in kept {
        line.clear();
        crate::repo::tree::encode_line(n, &mut line)?;
        cdc.write(&line, &mut chunks);
    }
    cdc.finish(&mut chunks);
    let mut compressor = chunker::Compressor::new(cfg.compression_level)?;
    let mut pack = pack::PackBuilder::new(0);
    let mut in_pack = HashSet::new();
    let mut tree = Vec::with_capacity(chunks.len());
    for data in chunks {
        let id = crypto::chunk_id(repo.chunk_key(), &data);
        tree.push(id);
        if index.contains(&id) || !in_pack.insert(id) {
            continue;
        }
        let raw_len = data.len() as u32;
        match compressor.compress(&data)? {
            Some(c) => pack.add(id, &c, raw_len, true),
            None => pack.add(id, &data, raw_len, false),
        }
    }
    if !pack.is_empty() {
        let (plain, entries) = pack.finish();
        let id = PackId::random();
        repo.store_pack(&id, &plain)?;
        repo.write_index(&[(id, entries)])?;
    }
    let dropped_set: BTreeSet<&str> = dropped.iter().map(|n| n.path.as_str()).collect();
    let mut stats = snap.stats.clone();
    stats.files = stats.files.saturating_sub(dropped.len() as u64);
    stats.bytes = stats
        .bytes
        .saturating_sub(dropped.iter().map(|n| n.size).sum());
    let mut repaired = snap.clone();
    repaired.tree = tree;
    repaired.stats = stats;
    // A database or stream whose file is gone cannot be restored or
    // checked as a source any more.
    repaired
        .sources
        .retain(|s| !s.files.iter().any(|f| dropped_set.contains(f.as_str())));
    repaired.program = format!("lifeboat {}", env!("CARGO_PKG_VERSION"));
    repaired.repaired.push(Repaired {
        time: crate::repo::snapshot::now_rfc3339(),
        original: snap.id.clone(),
        dropped_files: dropped_set.len() as u64,
        dropped: dropped_set
            .iter()
            .take(Repaired::MAX_LISTED)
            .map(|s| s.to_string())
            .collect(),
    });
    if !repaired.tags.iter().any(|t| t == REPAIRED_TAG) {
        repaired.tags.push(REPAIRED_TAG.into());
        repaired.tags.sort();
    }
    repo.save_snapshot(&mut repaired)?;
    Ok(repaired.id)
}

/// The tag every repaired restore point carries, so lists show it.
pub const REPAIRED_TAG: &str = "repaired";
