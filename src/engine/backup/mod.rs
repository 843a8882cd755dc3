//! Backup: a pipeline that keeps every core busy and memory flat.
//!
//! ```text
//! walk + read + chunk ──chunks──► workers (hash, probe, compress) ──┐
//!        │ (one thread)              (one per core)                  ▼
//!        └──────────── nodes, file ends ─────────────────► assembler (dedup, packs, tree)
//!                                                                     │ full packs
//!                                                                     ▼
//!                                   writers, 2 or the backend's bound (seal with age, store)
//! ```
//! Queues between stages are bounded. One huge file is spread over all
//! workers chunk by chunk. Index files are written after their packs are
//! durable, and the snapshot after everything it references.

mod assemble;
pub mod hooks;
mod read;

use crate::model::SourceKind;
use crate::progress::{Counters, Phase, Reporter};
use crate::repo::index::PackEntry;
use crate::repo::snapshot::SourceRecord;
use crate::repo::snapshot::Stats;
use crate::repo::tree::Node;
use crate::repo::{
    chunker, crypto, pack::PackBuilder, ChunkId, Index, PackId, Repository, Snapshot,
};
use crate::source::capture::Capture;
use crate::source::files::{self, Excludes};
use crate::source::files_cache::{CachedFile, FilesCache, Stamp};
use anyhow::{anyhow, Context, Result};
use assemble::Assembler;
use crossbeam_channel::{bounded, Receiver, Sender};
use read::read_all;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub service: String,
    pub paths: Vec<PathBuf>,
    pub excludes: Vec<String>,
    pub host: String,
    /// Reuse chunk lists of unchanged files (the default).
    pub use_files_cache: bool,
    pub cache_dir: PathBuf,
    /// Paths never backed up (the repository itself when it lives inside a
    /// source, the cache directory).
    pub skip_paths: Vec<PathBuf>,
    /// The time recorded for the restore point; now unless given (imports,
    /// and the demo's simulated history).
    pub time: Option<SystemTime>,
    /// Files at or under these paths are secrets (`.env`): flagged so they
    /// are never previewed and are restored mode 0600.
    pub secret_paths: Vec<PathBuf>,
    /// Recorded on the restore point (see `repo::snapshot::validate_tag`).
    pub tags: Vec<String>,
    /// The service's `before_backup` / `after_backup` commands.
    pub hooks: crate::model::Hooks,
    /// Paths read from a read-only Btrfs snapshot (`snapshot = "btrfs"`).
    pub snapshots: Vec<crate::source::fs_snapshot::Request>,
}

impl BackupOptions {
    pub fn new(service: &str, paths: Vec<PathBuf>) -> Self {
        BackupOptions {
            service: service.to_string(),
            paths,
            excludes: Vec::new(),
            host: crate::paths::hostname(),
            use_files_cache: true,
            cache_dir: crate::paths::cache_dir(),
            skip_paths: Vec::new(),
            time: None,
            secret_paths: Vec::new(),
            tags: Vec::new(),
            hooks: crate::model::Hooks::default(),
            snapshots: Vec::new(),
        }
    }

    /// Everything a configured service's sources name, from its host.
    pub fn for_service(svc: &crate::model::Service, cache_dir: &std::path::Path) -> Self {
        let mut opts = BackupOptions::new(&svc.name, Vec::new());
        for src in &svc.sources {
            match &src.kind {
                SourceKind::Files {
                    paths,
                    exclude,
                    snapshot,
                } => {
                    opts.paths.extend(paths.iter().cloned());
                    opts.excludes.extend(exclude.iter().cloned());
                    if snapshot.is_some() {
                        opts.snapshots.extend(paths.iter().map(|p| {
                            crate::source::fs_snapshot::Request {
                                source: src.name.clone(),
                                path: p.clone(),
                            }
                        }));
                    }
                }
                SourceKind::Secrets { paths } => {
                    opts.paths.extend(paths.iter().cloned());
                    opts.secret_paths.extend(paths.iter().cloned());
                }
                // Streamed: see `crate::source::captures`.
                _ => {}
            }
        }
        // A database inside a files path (Vaultwarden's data/db.sqlite3)
        // is stored once, from its source's consistent copy: the raw file
        // read while it is written would be torn, and twice the size.
        for src in &svc.sources {
            if let SourceKind::Sqlite { path } | SourceKind::VmImage { path } = &src.kind {
                opts.skip_paths.push(path.clone());
                for suffix in ["-wal", "-shm", "-journal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    opts.skip_paths.push(p.into());
                }
            }
        }
        opts.host = svc.host.clone();
        opts.hooks = svc.hooks.clone();
        opts.cache_dir = cache_dir.to_path_buf();
        opts
    }
}

/// Packs are flushed to an index file this often, so an interrupted backup
/// of a huge tree leaves most of its work reusable by the next run.
const INDEX_EVERY_PACKS: usize = 32;

/// A later stage has stopped; its own error says why.
#[derive(Debug, thiserror::Error)]
#[error("backup pipeline stopped")]
struct Stopped;

struct Work {
    seq: u64,
    idx: u32,
    data: Vec<u8>,
}

enum Msg {
    /// Finished nodes (directories, symlinks, unchanged files), in walk
    /// order: sent in batches, since an unchanged tree is little else and
    /// one message a node costs more in hand-offs than the node itself.
    Nodes(Vec<(u64, Node, Option<CachedFile>)>),
    /// The reader has sent every chunk of this file.
    FileEnd {
        seq: u64,
        node: Node,
        chunks: u32,
        stamp: Option<Stamp>,
    },
    /// Skip this sequence number: a special file (`None`) or one that
    /// could not be read (`PATH: why`).
    Skip(u64, Option<String>),
    /// Something the walk could not read (a directory's listing), as
    /// `PATH: why`; it has no node of its own.
    Unreadable(String),
    Chunk {
        seq: u64,
        idx: u32,
        id: ChunkId,
        raw_len: u32,
        stored: Option<(Vec<u8>, bool)>,
    },
}

#[derive(Default)]
struct Shared {
    bytes_total: AtomicU64,
    files_total: AtomicU64,
    scan_done: std::sync::atomic::AtomicBool,
    /// Set when reading is over: the sizing walk has nothing left to add.
    reading_done: std::sync::atomic::AtomicBool,
}

pub fn backup(repo: &Repository, opts: &BackupOptions, reporter: &Reporter) -> Result<Snapshot> {
    backup_with(repo, opts, Vec::new(), reporter)
}

/// A backup of trees (`opts.paths`) and streamed sources: the streams
/// (databases first among them, in the order configured) are stored
/// first, under `.lifeboat/`, then the trees. Any stream that fails fails
/// the whole backup, so no restore point is recorded. The service's hooks
/// run around it: a failing `before_backup` means no backup; `after_backup`
/// runs whatever happened and its failure fails the job (the restore point,
/// if made, stays).
pub fn backup_with(
    repo: &Repository,
    opts: &BackupOptions,
    captures: Vec<Box<dyn Capture>>,
    reporter: &Reporter,
) -> Result<Snapshot> {
    let h = &opts.hooks;
    let before = match &h.before_backup {
        Some(cmd) => hooks::run(
            "before_backup",
            cmd,
            &opts.service,
            None,
            h.timeout,
            reporter,
        )
        .context("the backup did not run"),
        None => Ok(()),
    };
    let result = before.and_then(|()| backup_inner(repo, opts, captures, reporter));
    let Some(cmd) = &h.after_backup else {
        return result;
    };
    let outcome = hooks::Outcome {
        ok: result.is_ok(),
        snapshot: result.as_ref().ok().map(|s| s.id.as_str()),
    };
    let after = hooks::run(
        "after_backup",
        cmd,
        &opts.service,
        Some(outcome),
        h.timeout,
        reporter,
    );
    match (result, after) {
        (r, Ok(())) => r,
        (Ok(snap), Err(e)) => Err(e.context(format!(
            "restore point {} was saved, but the job failed",
            snap.short_id()
        ))),
        // The backup's own failure is the news; the hook's is said too.
        (Err(be), Err(ae)) => {
            reporter.warn(format!("{ae:#}"));
            Err(be)
        }
    }
}

fn backup_inner(
    repo: &Repository,
    opts: &BackupOptions,
    captures: Vec<Box<dyn Capture>>,
    reporter: &Reporter,
) -> Result<Snapshot> {
    let started = Instant::now();
    let start_time = SystemTime::now();
    // Checked first: a bad tag must not cost a whole backup.
    let tags = crate::repo::snapshot::tag_set(&opts.tags)?;
    crate::engine::locks::check(repo.backend())?;
    let lock = repo.lock(crate::repo::lock::Mode::Write, "backup", &|w| {
        reporter.warn(w)
    })?;
    anyhow::ensure!(
        !opts.paths.is_empty() || !captures.is_empty(),
        "nothing to back up: no paths or sources given"
    );
    let mut roots = Vec::new();
    for p in &opts.paths {
        let abs =
            std::path::absolute(p).with_context(|| format!("backup source {}", p.display()))?;
        std::fs::symlink_metadata(&abs)
            .with_context(|| format!("backup source {}", abs.display()))?;
        roots.push(abs);
    }
    crate::source::fs_snapshot::check(&opts.service, &opts.snapshots)?;
    let mut excludes = Excludes::new(&opts.excludes)?;
    for p in &opts.skip_paths {
        if let Ok(c) = std::fs::canonicalize(p) {
            excludes.skip_path(c);
        }
    }

    reporter.progress(
        Counters {
            phase: Phase::Scanning,
            ..Default::default()
        },
        None,
        true,
    );
    // Never deduplicate against a copy that is gone or known damaged: a
    // restore point referencing it could not be restored.
    let writing = repo.load_index_for_writing()?;
    for (name, why) in &writing.damaged_files {
        reporter.warn(format!("index file {name} is unreadable ({why}); what it lists is stored again. Run `lifeboat verify`"));
    }
    for w in writing.warnings("") {
        reporter.warn(w);
    }
    let index = Arc::new(writing.index);

    let cache_path = FilesCache::file_for(&opts.cache_dir, &repo.config().id, &opts.service);
    let old_cache = if opts.use_files_cache {
        FilesCache::load(&cache_path)
    } else {
        FilesCache::default()
    };

    let workers = super::workers();
    let (work_tx, work_rx) = bounded::<Work>(workers * 2);
    let (msg_tx, msg_rx) = bounded::<Msg>(workers * 2);
    // A rendezvous: at most one pack filling and one per writer being
    // written, which bounds memory at 1 + writers packs however fast the
    // readers are.
    let (pack_tx, pack_rx) = bounded::<PackBuilder>(0);
    let written: Mutex<Vec<(PackId, Vec<PackEntry>)>> = Mutex::new(Vec::new());
    let shared = Shared::default();
    let bytes_done = AtomicU64::new(0);
    let files_done = AtomicU64::new(0);
    let params = repo.config().chunker;
    let seed = chunker::seed(repo.chunk_key());
    let level = repo.config().compression_level;
    let pack_size = repo.config().pack_size as usize;
    // Files modified shortly before the start are not cached: a write in the
    // same timestamp tick as our read would leave mtime unchanged and go
    // unnoticed next time. (A later write moves mtime and ctime, so only
    // mtime needs this margin.)
    let racy_after = start_time
        .checked_sub(std::time::Duration::from_secs(2))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(i64::MAX);

    let counters = |phase| Counters {
        phase,
        files_done: files_done.load(Ordering::Relaxed),
        files_total: if shared.scan_done.load(Ordering::Relaxed) {
            shared.files_total.load(Ordering::Relaxed)
        } else {
            0
        },
        bytes_done: bytes_done.load(Ordering::Relaxed),
        bytes_total: if shared.scan_done.load(Ordering::Relaxed) {
            shared.bytes_total.load(Ordering::Relaxed)
        } else {
            0
        },
        bytes_stored: 0,
    };

    let secret_roots: Vec<PathBuf> = opts
        .secret_paths
        .iter()
        .filter_map(|p| std::path::absolute(p).ok())
        .collect();
    let mut captures = captures;
    let outcome = std::thread::scope(
        |s| -> Result<(Vec<ChunkId>, Stats, FilesCache, Vec<SourceRecord>)> {
            // Sizing the job for the progress bar: a metadata-only walk.
            s.spawn(|| {
                let mut visit = |e: files::Entry<'_>| {
                    if shared.reading_done.load(Ordering::Relaxed) {
                        anyhow::bail!("the backup no longer needs its size");
                    }
                    if e.meta.is_file() {
                        shared.files_total.fetch_add(1, Ordering::Relaxed);
                        shared
                            .bytes_total
                            .fetch_add(e.meta.len(), Ordering::Relaxed);
                    }
                    Ok(())
                };
                // Totals only count once complete; an abandoned walk leaves them unknown.
                if files::walk(&roots, &excludes, &mut visit, &mut |_| {}).is_ok() {
                    shared.scan_done.store(true, Ordering::Relaxed);
                }
            });

            let mut handles = Vec::new();
            for _ in 0..workers {
                let work_rx = work_rx.clone();
                let msg_tx = msg_tx.clone();
                let index = Arc::clone(&index);
                let key = *repo.chunk_key();
                handles.push(s.spawn(move || worker(work_rx, msg_tx, &index, &key, level)));
            }
            drop(work_rx);

            // Several writers: while one waits for its pack to reach the disk
            // (fsync) or the store (PUT), another seals the next.
            let write_packs = |rx: Receiver<PackBuilder>| -> Result<()> {
                for pack in rx {
                    let (plain, entries) = pack.finish();
                    let id = PackId::random();
                    repo.store_pack(&id, &plain)?;
                    drop(plain);
                    let batch = {
                        let mut w = written
                            .lock()
                            .map_err(|_| anyhow!("writer state poisoned"))?;
                        w.push((id, entries));
                        if w.len() >= INDEX_EVERY_PACKS {
                            std::mem::take(&mut *w)
                        } else {
                            Vec::new()
                        }
                    };
                    if !batch.is_empty() {
                        repo.write_index(&batch)?;
                    }
                }
                Ok(())
            };
            // A disk gets two; object storage more, to hide each PUT's latency.
            let writers: Vec<_> = (0..repo.backend().transfers().max(1))
                .map(|_| {
                    let rx = pack_rx.clone();
                    s.spawn(move || write_packs(rx))
                })
                .collect();
            drop(pack_rx);

            let assembler = {
                let index = Arc::clone(&index);
                let key = *repo.chunk_key();
                let counters = &counters;
                s.spawn(move || {
                    let mut a = Assembler {
                        index: &index,
                        key,
                        added: HashSet::new(),
                        pack: PackBuilder::new(pack_size),
                        pack_size,
                        pack_tx,
                        pending: HashMap::new(),
                        done: BTreeMap::new(),
                        next_seq: 0,
                        tree: chunker::CdcWriter::new(params, seed),
                        tree_ids: Vec::new(),
                        line: Vec::new(),
                        stats: Stats::default(),
                        cache: FilesCache::default(),
                        compressor: chunker::Compressor::new(level)?,
                        skipped_files: HashSet::new(),
                    };
                    for msg in msg_rx {
                        a.handle(msg)?;
                        let c = Counters {
                            bytes_stored: a.stats.bytes_added,
                            ..counters(Phase::Backup)
                        };
                        reporter.progress(c, None, false);
                    }
                    a.finish()
                })
            };

            // The reader runs here, on the calling thread.
            let read_result = read_all(
                &mut captures,
                &roots,
                (&opts.service, &opts.snapshots),
                &secret_roots,
                &excludes,
                &old_cache,
                &index,
                &params,
                seed,
                racy_after,
                &work_tx,
                &msg_tx,
                &bytes_done,
                &files_done,
                reporter,
                &counters,
            );
            shared.reading_done.store(true, Ordering::Relaxed);
            drop(work_tx);
            drop(msg_tx);
            let (read_result, read_err) = match read_result {
                Ok(r) => (Ok(r), None),
                Err(e) => (Err(anyhow!("the backup reader stopped")), Some(e)),
            };
            let mut first_err = read_err;
            for h in handles {
                if let Err(e) = h.join().map_err(|_| anyhow!("a backup worker crashed"))? {
                    first_err.get_or_insert(e);
                }
            }
            let assembled = assembler
                .join()
                .map_err(|_| anyhow!("the backup assembler crashed"))?;
            let mut writer_result = Ok(());
            for w in writers {
                let r = w.join().map_err(|_| anyhow!("a pack writer crashed"))?;
                if writer_result.is_ok() {
                    writer_result = r;
                }
            }
            let records = match (first_err, read_result) {
                // "Stopped" only means a later stage failed: report that stage.
                (Some(e), _) if e.is::<Stopped>() => {
                    writer_result?;
                    assembled?;
                    return Err(e);
                }
                (Some(e), _) => return Err(e),
                (None, Ok(records)) => records,
                // Unreachable: an error is kept in first_err.
                (None, Err(e)) => return Err(e),
            };
            writer_result?;
            let (tree, stats, cache) = assembled?;
            Ok((tree, stats, cache, records))
        },
    );
    let (tree, mut stats, new_cache, records) = outcome?;

    reporter.progress(counters(Phase::Finishing), None, true);
    let rest = std::mem::take(
        &mut *written
            .lock()
            .map_err(|_| anyhow!("writer state poisoned"))?,
    );
    if !rest.is_empty() {
        repo.write_index(&rest)?;
    }
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let mut snap = Snapshot {
        id: String::new(),
        version: 1,
        time: humantime::format_rfc3339_nanos(opts.time.unwrap_or(start_time)).to_string(),
        host: opts.host.clone(),
        service: opts.service.clone(),
        paths: roots.iter().map(|p| p.display().to_string()).collect(),
        tree,
        stats,
        program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        sources: records,
        origin: None,
        tags,
        repaired: Vec::new(),
    };
    // A lock removed under us may mean a prune already ran.
    lock.ensure_held()?;
    repo.save_snapshot(&mut snap)?;
    if opts.use_files_cache {
        if let Err(e) = new_cache.save(&cache_path) {
            reporter.warn(format!(
                "could not save the files cache (the next backup reads everything again): {e:#}"
            ));
        }
    }
    let mut c = counters(Phase::Done);
    c.bytes_stored = snap.stats.bytes_added;
    reporter.progress(c, None, true);
    Ok(snap)
}

fn worker(
    rx: Receiver<Work>,
    tx: Sender<Msg>,
    index: &Index,
    key: &[u8; 32],
    level: i32,
) -> Result<()> {
    let mut compressor = chunker::Compressor::new(level)?;
    for w in rx {
        let id = crypto::chunk_id(key, &w.data);
        let raw_len = w.data.len() as u32;
        let stored = if index.contains(&id) {
            None
        } else {
            Some(match compressor.compress(&w.data)? {
                Some(c) => (c, true),
                None => (w.data, false),
            })
        };
        tx.send(Msg::Chunk {
            seq: w.seq,
            idx: w.idx,
            id,
            raw_len,
            stored,
        })
        .map_err(|_| anyhow!("backup pipeline stopped"))?;
    }
    Ok(())
}
