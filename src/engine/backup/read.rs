//! The reading stage of a backup: streamed sources first, then the trees,
//! walked in order; files cut into chunks for the workers, unchanged files
//! taken from the files cache without being read.

use super::{Msg, Stopped, Work};
use crate::progress::{Counters, Phase, Reporter};
use crate::repo::snapshot::SourceRecord;
use crate::repo::tree::{encode_os, Node, NodeKind};
use crate::repo::{chunker, Index};
use crate::source::capture::{self, Capture};
use crate::source::files::{self, Excludes};
use crate::source::files_cache::{self, CachedFile, FilesCache, Stamp};
use crate::source::fs_snapshot;
use anyhow::{Context, Result};
use crossbeam_channel::Sender;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

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

pub(super) struct HashingReader<R> {
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
/// workers; returns how many. `small` marks data known to fit in one chunk;
/// `fixed` asks for chunks of that size (pages) instead of content-defined.
#[allow(clippy::too_many_arguments)]
pub(super) fn send_chunks(
    seq: u64,
    r: &mut dyn Read,
    small: Option<u64>,
    fixed: Option<u32>,
    params: &chunker::Params,
    seed: u64,
    work_tx: &Sender<Work>,
    bytes_done: &AtomicU64,
) -> Result<u32> {
    let stopped = || anyhow::Error::new(Stopped);
    if let Some(size) = fixed.filter(|s| *s <= params.max) {
        let mut n = 0u32;
        for data in chunker::fixed(r, size) {
            let data = data?;
            bytes_done.fetch_add(data.len() as u64, Ordering::Relaxed);
            work_tx
                .send(Work { seq, idx: n, data })
                .map_err(|_| stopped())?;
            n += 1;
        }
        return Ok(n);
    }
    let mut head = Vec::new();
    if let Some(size) = small {
        // Small files are one chunk: skip the chunker's buffers.
        let mut data = Vec::with_capacity(size as usize);
        (&mut *r)
            .take(params.max as u64 + 1)
            .read_to_end(&mut data)?;
        if data.is_empty() {
            return Ok(0);
        }
        // A file that grew since it was listed is chunked like any other:
        // no chunk may exceed the chunker's maximum.
        if data.len() <= params.max as usize {
            bytes_done.fetch_add(data.len() as u64, Ordering::Relaxed);
            work_tx
                .send(Work { seq, idx: 0, data })
                .map_err(|_| stopped())?;
            return Ok(1);
        }
        head = data;
    }
    let mut n = 0u32;
    let r = std::io::Cursor::new(head).chain(r);
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
pub(super) fn read_captures(
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
        .send(Msg::Nodes(vec![(
            next(),
            owned(capture::DIR.into(), NodeKind::Dir),
            None,
        )]))
        .map_err(|_| stopped())?;
    for mut cap in captures.drain(..) {
        let name = cap.name().to_string();
        let kind = cap.kind();
        let what = || format!("source `{name}` ({kind})");
        msg_tx
            .send(Msg::Nodes(vec![(
                next(),
                owned(format!("{}/{name}", capture::DIR), NodeKind::Dir),
                None,
            )]))
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
            let fixed = cap.chunk_size(&a.file);
            let sent = send_chunks(this, &mut r, None, fixed, params, seed, work_tx, bytes_done);
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
        // A source that had to store less than it was asked to says so.
        if let Some(w) = facts.notes.get("warning") {
            reporter.warn(format!("{}: {w}", what()));
        }
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
pub(super) fn read_all(
    captures: &mut Vec<Box<dyn Capture>>,
    roots: &[PathBuf],
    (service, snapshots): (&str, &[fs_snapshot::Request]),
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
    // Taken after `before_backup` and the captures (which may write into
    // the tree); dropped, and so deleted, however this function returns.
    let fs_snapshots = fs_snapshot::take(service, snapshots, &mut |w| reporter.warn(w))?;
    let views = fs_snapshots.views();
    // Skipped with a warning, and counted: the restore point lacks it.
    let unreadable = |this: u64, what: String| -> Result<()> {
        reporter.warn(format!("skipped {what}"));
        msg_tx
            .send(Msg::Skip(this, Some(what)))
            .map_err(|_| stopped())
    };
    let mut nodes = NodeBatch::new(msg_tx);
    let mut visit = |e: files::Entry<'_>| -> Result<()> {
        let this = seq;
        seq += 1;
        let ft = e.meta.file_type();
        if ft.is_dir() {
            return nodes.push(this, node_for(&e, NodeKind::Dir), None);
        }
        if ft.is_symlink() {
            let mut node = node_for(&e, NodeKind::Symlink);
            match std::fs::read_link(e.read) {
                Ok(t) => {
                    let (t, raw) = encode_os(t.as_os_str());
                    node.target = Some(t);
                    node.raw_target = raw;
                    return nodes.push(this, node, None);
                }
                Err(err) => {
                    nodes.flush()?;
                    return unreadable(this, format!("{}: {err}", e.abs.display()));
                }
            }
        }
        if !ft.is_file() {
            reporter.warn(format!(
                "skipped {}: not a regular file, directory or symlink",
                e.abs.display()
            ));
            nodes.flush()?;
            return msg_tx.send(Msg::Skip(this, None)).map_err(|_| stopped());
        }
        warn_if_live_sqlite(e.abs, reporter);
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
                return nodes.push(this, node, Some(hit.clone()));
            }
        }
        // A file to read: what the reader holds goes first, so the tree
        // keeps streaming while the file is chunked.
        nodes.flush()?;
        let file = match open_source(e.read) {
            Ok(f) => f,
            Err(err) => return unreadable(this, format!("{}: {err}", e.abs.display())),
        };
        reporter.progress(counters(Phase::Backup), e.abs.to_str(), false);
        let mut r = HashingReader {
            inner: file,
            hasher: blake3::Hasher::new(),
            read: 0,
        };
        let small = (stamp.size <= params.min as u64).then_some(stamp.size);
        let res = send_chunks(this, &mut r, small, None, params, seed, work_tx, bytes_done);
        let n = match res {
            Ok(n) => n,
            Err(err) if err.is::<Stopped>() => return Err(err),
            // A read error part-way (EIO on a failing disk): the chunks
            // already sent are dropped by the assembler.
            Err(err) => return unreadable(this, format!("{}: {err:#}", e.abs.display())),
        };
        node.size = r.read;
        node.hash = Some(r.hasher.finalize().to_hex().to_string());
        files_done.fetch_add(1, Ordering::Relaxed);
        // A file that changed while we read it is stored as read, but not
        // cached, so the next backup reads it again. Asked of the open
        // handle (no second path lookup): a file replaced by a rename
        // meanwhile keeps its old inode number here, and the next backup's
        // stamp, with the new one, misses the cache.
        let unchanged = r
            .inner
            .metadata()
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
    // Everything the walk warns about is something it could not read.
    let mut walk_warning = |w: String| {
        reporter.warn(w.clone());
        // A stopped pipeline fails the next visit; nothing to do here.
        let _ = msg_tx.send(Msg::Unreadable(w));
    };
    files::walk_from(roots, views, excludes, &mut visit, &mut walk_warning)?;
    nodes.flush()?;
    fs_snapshots.finish(&mut |w| reporter.warn(w));
    Ok(records)
}

/// Finished nodes on their way to the assembler, a batch at a time.
struct NodeBatch<'a> {
    nodes: Vec<(u64, Node, Option<CachedFile>)>,
    tx: &'a Sender<Msg>,
}

impl<'a> NodeBatch<'a> {
    /// Enough to make the hand-off rare, few enough to keep the tree
    /// streaming and memory flat.
    const SIZE: usize = 256;

    fn new(tx: &'a Sender<Msg>) -> Self {
        NodeBatch {
            nodes: Vec::with_capacity(Self::SIZE),
            tx,
        }
    }

    fn push(&mut self, seq: u64, node: Node, cached: Option<CachedFile>) -> Result<()> {
        self.nodes.push((seq, node, cached));
        if self.nodes.len() >= Self::SIZE {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.nodes.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.nodes, Vec::with_capacity(Self::SIZE));
        self.tx
            .send(Msg::Nodes(batch))
            .map_err(|_| anyhow::Error::new(Stopped))
    }
}

/// Opens a file to back up, never through a symlink, and without
/// touching its access time where the kernel allows it (we own the file or
/// are root): a backup is not a use, and an atime update dirties the inode
/// of every file read, which the filesystem then has to write back.
fn open_source(p: &std::path::Path) -> std::io::Result<std::fs::File> {
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | flags)
            .open(p)
    };
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        r => r,
    }
}

/// A `-wal` file means a SQLite database in use beside it: a files copy of
/// it, read while it is written, can be torn. Said once per database, at
/// its WAL (which sorts right after it); its own source is the remedy.
fn warn_if_live_sqlite(abs: &std::path::Path, reporter: &Reporter) {
    let Some(db) = abs
        .as_os_str()
        .as_bytes()
        .strip_suffix(b"-wal")
        .map(|b| std::path::Path::new(std::ffi::OsStr::from_bytes(b)))
    else {
        return;
    };
    if db.is_file() {
        reporter.warn(format!(
            "{} is a SQLite database in use (its -wal is beside it): a copy read while it is written can be torn; give it its own source, {{ kind = \"sqlite\", path = \"{}\" }} (docs/sources.md)",
            db.display(),
            db.display()
        ));
    }
}
