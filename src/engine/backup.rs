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

use crate::model::SourceKind;
use crate::progress::{Counters, Phase, Reporter};
use crate::repo::index::PackEntry;
use crate::repo::snapshot::SourceRecord;
use crate::repo::snapshot::Stats;
use crate::repo::tree::{encode_os, Node, NodeKind};
use crate::repo::{
    chunker, crypto, pack::PackBuilder, ChunkId, Index, PackId, Repository, Snapshot,
};
use crate::source::capture::{self, Capture};
use crate::source::files::{self, Excludes};
use crate::source::files_cache::{self, CachedFile, FilesCache, Stamp};
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
        }
    }

    /// Everything a configured service's sources name, from its host.
    pub fn for_service(svc: &crate::model::Service, cache_dir: &std::path::Path) -> Self {
        let mut opts = BackupOptions::new(&svc.name, Vec::new());
        for src in &svc.sources {
            match &src.kind {
                SourceKind::Files { paths, exclude } => {
                    opts.paths.extend(paths.iter().cloned());
                    opts.excludes.extend(exclude.iter().cloned());
                }
                SourceKind::Secrets { paths } => {
                    opts.paths.extend(paths.iter().cloned());
                    opts.secret_paths.extend(paths.iter().cloned());
                }
                // Streamed: see `crate::source::captures`.
                _ => {}
            }
        }
        opts.host = svc.host.clone();
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
    /// A finished node (directory, symlink, unchanged or empty file).
    Node(u64, Node, Option<CachedFile>),
    /// The reader has sent every chunk of this file.
    FileEnd {
        seq: u64,
        node: Node,
        chunks: u32,
        stamp: Option<Stamp>,
    },
    /// Skip this sequence number (unreadable file).
    Skip(u64),
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

/// A backup of trees (`opts.paths`) and streamed sources: the streams are
/// stored first, under `.lifeboat/`, then the trees. Any stream that fails
/// fails the whole backup, so no restore point is recorded.
pub fn backup_with(
    repo: &Repository,
    opts: &BackupOptions,
    captures: Vec<Box<dyn Capture>>,
    reporter: &Reporter,
) -> Result<Snapshot> {
    let started = Instant::now();
    let start_time = SystemTime::now();
    let _lock = crate::repo::lock::Lock::shared(repo.backend(), "backup")?;
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
    let (index, damaged) = repo.load_index()?;
    for (name, why) in &damaged {
        reporter.warn(format!("index file {name} is unreadable ({why}); what it lists is stored again. Run `lifeboat verify`"));
    }
    let index = Arc::new(index);

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
    };
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

fn node_for(e: &files::Entry<'_>, kind: NodeKind) -> Node {
    let (path, raw_path) = encode_os(&e.rel);
    Node {
        raw_path,
        mode: e.meta.mode() & 0o7777,
        mtime_ns: files_cache::mtime_ns(&e.meta),
        uid: e.meta.uid(),
        gid: e.meta.gid(),
        ..Node::new(path, kind)
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Splits what `r` yields into chunks for file `seq` and hands them to the
/// workers; returns how many. `small` marks data known to fit in one chunk.
fn send_chunks(
    seq: u64,
    r: &mut dyn Read,
    small: Option<u64>,
    params: &chunker::Params,
    seed: u64,
    work_tx: &Sender<Work>,
    bytes_done: &AtomicU64,
) -> Result<u32> {
    let stopped = || anyhow::Error::new(Stopped);
    if let Some(size) = small {
        // Small files are one chunk: skip the chunker's buffers.
        let mut data = Vec::with_capacity(size as usize);
        r.read_to_end(&mut data)?;
        if data.is_empty() {
            return Ok(0);
        }
        bytes_done.fetch_add(data.len() as u64, Ordering::Relaxed);
        work_tx
            .send(Work { seq, idx: 0, data })
            .map_err(|_| stopped())?;
        return Ok(1);
    }
    let mut n = 0u32;
    for chunk in chunker::stream(r, params, seed) {
        let chunk = chunk.map_err(std::io::Error::from)?;
        bytes_done.fetch_add(chunk.length as u64, Ordering::Relaxed);
        work_tx
            .send(Work {
                seq,
                idx: n,
                data: chunk.data,
            })
            .map_err(|_| stopped())?;
        n += 1;
    }
    Ok(n)
}

/// Stores every artifact of every streamed source, in order, as files
/// under `.lifeboat/`. Any failure fails the backup.
#[allow(clippy::too_many_arguments)]
fn read_captures(
    captures: &mut Vec<Box<dyn Capture>>,
    seq: &mut u64,
    params: &chunker::Params,
    seed: u64,
    work_tx: &Sender<Work>,
    msg_tx: &Sender<Msg>,
    bytes_done: &AtomicU64,
    files_done: &AtomicU64,
    reporter: &Reporter,
    counters: &dyn Fn(Phase) -> Counters,
) -> Result<Vec<SourceRecord>> {
    let mut records = Vec::new();
    if captures.is_empty() {
        return Ok(records);
    }
    let stopped = || anyhow::Error::new(Stopped);
    let now_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // Dumps hold everything the database holds: owner-only.
    let owned = |path: String, kind: NodeKind| Node {
        mode: if kind == NodeKind::Dir { 0o700 } else { 0o600 },
        mtime_ns: now_ns,
        uid,
        gid,
        ..Node::new(path, kind)
    };
    let mut next = || {
        *seq += 1;
        *seq - 1
    };
    msg_tx
        .send(Msg::Node(
            next(),
            owned(capture::DIR.into(), NodeKind::Dir),
            None,
        ))
        .map_err(|_| stopped())?;
    for mut cap in captures.drain(..) {
        let name = cap.name().to_string();
        let kind = cap.kind();
        let what = || format!("source `{name}` ({kind})");
        msg_tx
            .send(Msg::Node(
                next(),
                owned(format!("{}/{name}", capture::DIR), NodeKind::Dir),
                None,
            ))
            .map_err(|_| stopped())?;
        let artifacts = cap.start().with_context(what)?;
        let mut files = Vec::new();
        for a in artifacts {
            let this = next();
            let path = capture::artifact_path(&name, &a.file);
            reporter.progress(counters(Phase::Backup), Some(&path), true);
            let mut r = HashingReader {
                inner: a.reader,
                hasher: blake3::Hasher::new(),
                read: 0,
            };
            let sent = send_chunks(this, &mut r, None, params, seed, work_tx, bytes_done);
            // Close our end first so a producer we stopped reading sees a
            // broken pipe instead of waiting for us forever.
            let HashingReader {
                inner,
                hasher,
                read,
            } = r;
            drop(inner);
            let finished = (a.done)();
            let n = sent.with_context(|| format!("{}: reading {path}", what()))?;
            finished.with_context(what)?;
            files_done.fetch_add(1, Ordering::Relaxed);
            let node = Node {
                size: read,
                hash: Some(hasher.finalize().to_hex().to_string()),
                ..owned(path.clone(), NodeKind::File)
            };
            msg_tx
                .send(Msg::FileEnd {
                    seq: this,
                    node,
                    chunks: n,
                    stamp: None,
                })
                .map_err(|_| stopped())?;
            files.push(path);
        }
        let facts = cap.facts().with_context(what)?;
        records.push(SourceRecord {
            name,
            kind: kind.to_string(),
            files,
            facts,
        });
    }
    Ok(records)
}

#[allow(clippy::too_many_arguments)]
fn read_all(
    captures: &mut Vec<Box<dyn Capture>>,
    roots: &[PathBuf],
    secret_roots: &[PathBuf],
    excludes: &Excludes,
    cache: &FilesCache,
    index: &Index,
    params: &chunker::Params,
    seed: u64,
    racy_after: i64,
    work_tx: &Sender<Work>,
    msg_tx: &Sender<Msg>,
    bytes_done: &AtomicU64,
    files_done: &AtomicU64,
    reporter: &Reporter,
    counters: &dyn Fn(Phase) -> Counters,
) -> Result<Vec<SourceRecord>> {
    let stopped = || anyhow::Error::new(Stopped);
    let mut seq = 0u64;
    let records = read_captures(
        captures, &mut seq, params, seed, work_tx, msg_tx, bytes_done, files_done, reporter,
        counters,
    )?;
    let mut visit = |e: files::Entry<'_>| -> Result<()> {
        let this = seq;
        seq += 1;
        let ft = e.meta.file_type();
        if ft.is_dir() {
            return msg_tx
                .send(Msg::Node(this, node_for(&e, NodeKind::Dir), None))
                .map_err(|_| stopped());
        }
        if ft.is_symlink() {
            let mut node = node_for(&e, NodeKind::Symlink);
            match std::fs::read_link(e.abs) {
                Ok(t) => {
                    let (t, raw) = encode_os(t.as_os_str());
                    node.target = Some(t);
                    node.raw_target = raw;
                    return msg_tx
                        .send(Msg::Node(this, node, None))
                        .map_err(|_| stopped());
                }
                Err(err) => {
                    reporter.warn(format!("skipped {}: {err}", e.abs.display()));
                    return msg_tx.send(Msg::Skip(this)).map_err(|_| stopped());
                }
            }
        }
        if !ft.is_file() {
            reporter.warn(format!(
                "skipped {}: not a regular file, directory or symlink",
                e.abs.display()
            ));
            return msg_tx.send(Msg::Skip(this)).map_err(|_| stopped());
        }
        let stamp = Stamp::of(&e.meta);
        let key = files_cache::key(e.abs.as_os_str().as_bytes());
        let mut node = node_for(&e, NodeKind::File);
        node.secret = secret_roots.iter().any(|r| e.abs.starts_with(r));
        if let Some(hit) = cache.lookup(&key, &stamp) {
            if hit.chunks.iter().all(|c| index.contains(c)) {
                node.size = stamp.size;
                node.chunks = hit.chunks.clone();
                node.hash = Some(hit.hash.clone());
                bytes_done.fetch_add(stamp.size, Ordering::Relaxed);
                files_done.fetch_add(1, Ordering::Relaxed);
                return msg_tx
                    .send(Msg::Node(this, node, Some(hit.clone())))
                    .map_err(|_| stopped());
            }
        }
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(e.abs)
        {
            Ok(f) => f,
            Err(err) => {
                reporter.warn(format!("skipped {}: {err}", e.abs.display()));
                return msg_tx.send(Msg::Skip(this)).map_err(|_| stopped());
            }
        };
        reporter.progress(counters(Phase::Backup), e.abs.to_str(), false);
        let mut r = HashingReader {
            inner: file,
            hasher: blake3::Hasher::new(),
            read: 0,
        };
        let small = (stamp.size <= params.min as u64).then_some(stamp.size);
        let res = send_chunks(this, &mut r, small, params, seed, work_tx, bytes_done);
        let n = match res {
            Ok(n) => n,
            Err(err) if err.is::<Stopped>() => return Err(err),
            Err(err) => {
                reporter.warn(format!("skipped {}: {err:#}", e.abs.display()));
                // Chunks already sent are harmless: the assembler drops them.
                return msg_tx.send(Msg::Skip(this)).map_err(|_| stopped());
            }
        };
        node.size = r.read;
        node.hash = Some(r.hasher.finalize().to_hex().to_string());
        files_done.fetch_add(1, Ordering::Relaxed);
        // A file that changed while we read it is stored as read, but not
        // cached, so the next backup reads it again.
        let unchanged = std::fs::symlink_metadata(e.abs)
            .map(|m| Stamp::of(&m) == stamp)
            .unwrap_or(false);
        let cacheable = unchanged && stamp.mtime_ns < racy_after;
        msg_tx
            .send(Msg::FileEnd {
                seq: this,
                node,
                chunks: n,
                stamp: cacheable.then_some(stamp),
            })
            .map_err(|_| stopped())
    };
    files::walk(roots, excludes, &mut visit, &mut |w| reporter.warn(w))?;
    Ok(records)
}

struct PendingFile {
    chunks: Vec<Option<ChunkId>>,
    received: u32,
    end: Option<(Node, u32, Option<Stamp>)>,
}

struct Assembler<'a> {
    index: &'a Index,
    key: [u8; 32],
    added: HashSet<ChunkId>,
    pack: PackBuilder,
    pack_size: usize,
    pack_tx: Sender<PackBuilder>,
    pending: HashMap<u64, PendingFile>,
    done: BTreeMap<u64, Option<(Node, Option<CachedFile>)>>,
    next_seq: u64,
    tree: chunker::CdcWriter,
    tree_ids: Vec<ChunkId>,
    line: Vec<u8>,
    stats: Stats,
    cache: FilesCache,
    compressor: chunker::Compressor,
}

impl Assembler<'_> {
    fn handle(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::Node(seq, node, cached) => {
                if node.kind == NodeKind::File && cached.is_some() {
                    self.stats.files_unchanged += 1;
                }
                self.done.insert(seq, Some((node, cached)));
            }
            Msg::Skip(seq) => {
                self.pending.remove(&seq);
                self.stats.skipped += 1;
                self.done.insert(seq, None);
            }
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

    fn finish(mut self) -> Result<(Vec<ChunkId>, Stats, FilesCache)> {
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
