//! Restore: plan, then execute. The plan maps every chunk to the places it
//! goes; packs are read once each, on all cores; files are written with
//! positional writes into a staging directory, checked against their
//! BLAKE3 hashes, and only then moved into the target.
//!
//! A restore never writes outside its target: paths with `..`, absolute
//! paths, and paths through a symlink are refused before anything is
//! written, and symlinks are created last, so nothing is ever written
//! through one.

use crate::progress::{Counters, Phase, Reporter};
use crate::repo::tree::{is_at_or_under, Node, NodeKind};
use crate::repo::{pack, ChunkId, Location, Repository, Snapshot};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Paths inside the snapshot to restore (with everything below them);
    /// empty restores everything.
    pub include: Vec<String>,
    /// Move existing content of a non-empty target aside instead of refusing.
    pub force: bool,
    /// Restore file ownership (on by default when running as root).
    pub owners: bool,
    /// Leave out streamed sources (`.lifeboat/`): they are restored into
    /// their databases, not as files.
    pub skip_streams: bool,
}

impl RestoreOptions {
    pub fn new(target: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            target: target.into(),
            include: Vec::new(),
            force: false,
            owners: unsafe { libc::geteuid() } == 0,
            skip_streams: false,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub snapshot: String,
    pub target: PathBuf,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Where the target's previous content was moved (with --force).
    pub rollback: Option<PathBuf>,
    pub duration_ms: u64,
}

/// Checks a snapshot path and returns its components.
fn safe_components<'a>(snap: &Snapshot, node: &Node, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>> {
    let unsafe_path = |why| crate::Error::UnsafePath {
        snapshot: snap.short_id(),
        path: node.path.clone(),
        why,
    };
    if bytes.is_empty() {
        return Err(unsafe_path("empty path").into());
    }
    if bytes[0] == b'/' {
        return Err(unsafe_path("absolute path").into());
    }
    if bytes.contains(&0) {
        return Err(unsafe_path("NUL byte in path").into());
    }
    let parts: Vec<&[u8]> = bytes.split(|b| *b == b'/').collect();
    for p in &parts {
        match *p {
            b"" => return Err(unsafe_path("empty path component").into()),
            b"." | b".." => return Err(unsafe_path("`.` or `..` in path").into()),
            _ => {}
        }
    }
    Ok(parts)
}

fn matches_include(path: &str, kind: NodeKind, include: &[String]) -> bool {
    include.is_empty()
        || include.iter().any(|inc| {
            is_at_or_under(path, inc)
                // Ancestors of an included path, so it lands where it was.
                || (kind == NodeKind::Dir && is_at_or_under(inc, path))
        })
}

struct Dest {
    file: usize,
    offset: u64,
}

/// The chunks to read from one pack and where each one goes.
type PackPlan = Vec<(ChunkId, Location, Vec<Dest>)>;

pub fn restore(
    repo: &Repository,
    snap: &Snapshot,
    opts: &RestoreOptions,
    reporter: &Reporter,
) -> Result<RestoreReport> {
    let started = Instant::now();
    repo.data_identity()?;
    let target = std::path::absolute(&opts.target)
        .with_context(|| format!("target {}", opts.target.display()))?;
    // Refuse before doing any work.
    let target_state = target_state(&target)?;
    if target_state == TargetState::NonEmpty && !opts.force {
        return Err(crate::Error::TargetNotEmpty { target }.into());
    }
    let _lock = crate::repo::lock::Lock::shared(repo.backend(), "restore")?;
    reporter.progress(
        Counters {
            phase: Phase::Restore,
            ..Default::default()
        },
        None,
        true,
    );
    let (index, _) = repo.load_index()?;
    let nodes = repo.read_tree(&index, snap)?;

    let include: Vec<String> = opts
        .include
        .iter()
        .map(|p| p.trim_matches('/').to_string())
        .collect();
    let nodes: Vec<Node> = nodes
        .into_iter()
        .filter(|n| matches_include(&n.path, n.kind, &include))
        .filter(|n| !(opts.skip_streams && is_at_or_under(&n.path, crate::source::capture::DIR)))
        .collect();
    for inc in &include {
        if !nodes.iter().any(|n| is_at_or_under(&n.path, inc)) {
            bail!(
                "{inc:?} is not in snapshot {} (list it with `lifeboat ls {} /`)",
                snap.short_id(),
                snap.short_id()
            );
        }
    }

    // Validate every path before writing anything.
    let mut kinds: HashMap<Vec<u8>, NodeKind> = HashMap::new();
    let mut rels = Vec::with_capacity(nodes.len());
    for n in &nodes {
        let bytes = n.path_bytes()?;
        safe_components(snap, n, &bytes)?;
        if kinds.insert(bytes.clone(), n.kind).is_some() {
            return Err(crate::Error::UnsafePath {
                snapshot: snap.short_id(),
                path: n.path.clone(),
                why: "listed twice",
            }
            .into());
        }
        rels.push(bytes);
    }
    // Every parent must be a directory: a file under a symlink would be
    // written through it.
    for (n, rel) in nodes.iter().zip(&rels) {
        let parent_not_dir = rel
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .any(|(i, _)| kinds.get(&rel[..i]).is_some_and(|k| *k != NodeKind::Dir));
        if parent_not_dir {
            return Err(crate::Error::UnsafePath {
                snapshot: snap.short_id(),
                path: n.path.clone(),
                why: "a parent is not a directory (symlink escape)",
            }
            .into());
        }
    }

    // Plan: where each chunk goes.
    let mut plan: HashMap<u32, PackPlan> = HashMap::new();
    let mut by_chunk: HashMap<ChunkId, (u32, usize)> = HashMap::new();
    let mut files: Vec<usize> = Vec::new();
    let mut bytes_total = 0u64;
    for (i, n) in nodes.iter().enumerate() {
        if n.kind != NodeKind::File {
            continue;
        }
        let file = files.len();
        files.push(i);
        bytes_total += n.size;
        let mut offset = 0u64;
        for id in &n.chunks {
            let loc = index.get(id).ok_or_else(|| {
                anyhow!(
                    "{}: chunk {} is missing from the repository (run `lifeboat verify`)",
                    n.path,
                    id.short()
                )
            })?;
            let dest = Dest { file, offset };
            offset += loc.raw_len as u64;
            match by_chunk.get(id) {
                Some(&(p, k)) => plan.get_mut(&p).map(|v| v[k].2.push(dest)).unwrap_or(()),
                None => {
                    let v = plan.entry(loc.pack).or_default();
                    by_chunk.insert(*id, (loc.pack, v.len()));
                    v.push((*id, loc, vec![dest]));
                }
            }
        }
        if offset != n.size {
            bail!("{}: its chunks add up to {offset} bytes but the snapshot says {} (damaged snapshot)", n.path, n.size);
        }
    }
    drop(by_chunk);

    let parent = target
        .parent()
        .ok_or_else(|| anyhow!("cannot restore onto /; choose a directory"))?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Better to refuse now than to fail halfway through.
    if let Some((_, free)) = crate::util::fs_space(parent) {
        if free < bytes_total {
            bail!(
                "{} has {} free; restoring snapshot {} needs {}",
                parent.display(),
                crate::util::human_bytes(free),
                snap.short_id(),
                crate::util::human_bytes(bytes_total)
            );
        }
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(
        ".{name}.lifeboat-staging-{:08x}",
        rand::random::<u32>()
    ));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| format!("creating staging directory {}", staging.display()))?;

    let result = (|| -> Result<RestoreReport> {
        let path_of = |rel: &[u8]| staging.join(OsStr::from_bytes(rel));
        // Directories first, and empty files; files with content are
        // created by the workers on first write, in parallel. Parents the
        // snapshot does not list (a partial restore) are made as needed.
        for (n, rel) in nodes.iter().zip(&rels) {
            let p = path_of(rel);
            let parent_listed = rel
                .iter()
                .rposition(|b| *b == b'/')
                .is_none_or(|i| kinds.get(&rel[..i]) == Some(&NodeKind::Dir));
            if !parent_listed {
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
            }
            match n.kind {
                NodeKind::Dir => fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&p)
                    .with_context(|| format!("creating {}", p.display()))?,
                NodeKind::File if n.chunks.is_empty() => {
                    create_file(&p)?;
                }
                NodeKind::File | NodeKind::Symlink => {}
            }
        }

        // Contents: each pack read once, packs spread over all cores.
        let done = AtomicU64::new(0);
        let files_done = AtomicU64::new(0);
        let mut packs: Vec<(u32, PackPlan)> = plan.into_iter().collect();
        for (_, chunks) in packs.iter_mut() {
            chunks.sort_by_key(|(_, l, _)| l.offset);
        }
        // In the order of the file regions they fill; workers take turns
        // from the two ends, so two of them rarely write into the same big
        // file at once (buffered writes to one file serialise on its inode).
        packs.sort_by_key(|(_, chunks)| {
            chunks
                .first()
                .and_then(|(_, _, d)| d.first())
                .map(|d| (d.file, d.offset))
        });
        let queue = Mutex::new(std::collections::VecDeque::from(packs));
        let worker_ids = AtomicU64::new(0);
        let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let counters = |phase| Counters {
            phase,
            files_done: files_done.load(Ordering::Relaxed),
            files_total: files.len() as u64,
            bytes_done: done.load(Ordering::Relaxed),
            bytes_total,
            bytes_stored: 0,
        };
        // Every core, or more on object storage, where each worker spends
        // much of its time waiting for its pack to arrive.
        let restorers = super::workers().max(repo.backend().transfers());
        std::thread::scope(|s| {
            for _ in 0..restorers {
                s.spawn(|| {
                    let w = worker_ids.fetch_add(1, Ordering::Relaxed);
                    let mut scratch = Vec::new();
                    let mut open: Option<(usize, fs::File)> = None;
                    loop {
                        if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                            return;
                        }
                        let Some((pack_no, chunks)) = queue.lock().ok().and_then(|mut q| {
                            if w % 2 == 0 {
                                q.pop_front()
                            } else {
                                q.pop_back()
                            }
                        }) else {
                            return;
                        };
                        let res = (|| -> Result<()> {
                            let pack_id = index.pack_id(pack_no);
                            let mut r = repo.read_pack(&pack_id)?;
                            for (id, loc, dests) in &chunks {
                                let data = pack::read_chunk(
                                    &mut r,
                                    repo.chunk_key(),
                                    id,
                                    loc,
                                    &mut scratch,
                                )
                                .map_err(|e| {
                                    let paths: Vec<&str> = dests
                                        .iter()
                                        .map(|d| nodes[files[d.file]].path.as_str())
                                        .collect();
                                    e.context(format!(
                                        "pack {}, needed by {}",
                                        pack_id.short(),
                                        paths.join(", ")
                                    ))
                                })?;
                                for d in dests {
                                    // Chunks of one file sit together in a pack:
                                    // keep its handle for the next chunk.
                                    if open.as_ref().is_none_or(|(i, _)| *i != d.file) {
                                        let node = &nodes[files[d.file]];
                                        let f = create_file(&path_of(&rels[files[d.file]]))?;
                                        if node.chunks.len() > 1 {
                                            f.set_len(node.size).with_context(|| {
                                                format!("allocating /{}", node.path)
                                            })?;
                                        }
                                        open = Some((d.file, f));
                                    }
                                    if let Some((_, f)) = &open {
                                        f.write_all_at(&data, d.offset).with_context(|| {
                                            format!("writing /{}", nodes[files[d.file]].path)
                                        })?;
                                    }
                                    done.fetch_add(data.len() as u64, Ordering::Relaxed);
                                }
                                reporter.progress(counters(Phase::Restore), None, false);
                            }
                            Ok(())
                        })();
                        if let Err(e) = res {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = failure
            .into_inner()
            .map_err(|_| anyhow!("restore state poisoned"))?
        {
            return Err(e);
        }

        // Check every file against the hash recorded at backup time, and
        // give it its owner, mode and times through the same open handle.
        reporter.progress(counters(Phase::Checking), None, true);
        let next = AtomicU64::new(0);
        let bad: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let meta_failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        // Every core, or more on object storage, where each worker spends
        // much of its time waiting for its pack to arrive.
        let restorers = super::workers().max(repo.backend().transfers());
        std::thread::scope(|s| {
            for _ in 0..restorers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&ni) = files.get(i) else { return };
                    let n = &nodes[ni];
                    match check_and_finish_file(&path_of(&rels[ni]), n, opts.owners) {
                        Ok(true) => {}
                        Ok(false) => {
                            if let Ok(mut b) = bad.lock() {
                                b.push(n.path.clone());
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = meta_failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                    files_done.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        if let Some(e) = meta_failure
            .into_inner()
            .map_err(|_| anyhow!("restore state poisoned"))?
        {
            return Err(e);
        }
        let bad = bad
            .into_inner()
            .map_err(|_| anyhow!("restore state poisoned"))?;
        if !bad.is_empty() {
            bail!(
                "{} restored file(s) do not match their recorded hash: {}",
                bad.len(),
                bad.join(", ")
            );
        }

        // Symlinks last: nothing is written after them, so none is followed.
        let mut report = RestoreReport {
            snapshot: snap.id.clone(),
            target: target.clone(),
            files: 0,
            dirs: 0,
            symlinks: 0,
            bytes: bytes_total,
            rollback: None,
            duration_ms: 0,
        };
        for (n, rel) in nodes.iter().zip(&rels) {
            let p = path_of(rel);
            match n.kind {
                NodeKind::Symlink => {
                    let t = n.target_bytes()?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(&t), &p)
                        .with_context(|| format!("creating symlink {}", p.display()))?;
                    report.symlinks += 1;
                }
                NodeKind::File => report.files += 1,
                NodeKind::Dir => report.dirs += 1,
            }
        }
        // Directories and symlinks last, deepest first, so a directory's
        // mtime is set after everything inside it.
        for (n, rel) in nodes.iter().zip(&rels).rev() {
            if n.kind != NodeKind::File {
                apply_metadata(&path_of(rel), n, opts.owners)?;
            }
        }
        Ok(report)
    })();

    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e.context(format!(
                "restore of snapshot {} failed; {} was not changed",
                snap.short_id(),
                target.display()
            )));
        }
    };
    // Everything restored reaches the disk before it replaces anything: a
    // power cut after the swap must not leave empty or truncated files.
    if let Err(e) = sync_filesystem(&staging) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e.context(format!("{} was not changed", target.display())));
    }
    report.rollback = move_into_place(&staging, &target, target_state)?;
    if let Some(p) = target.parent() {
        let _ = fs::File::open(p).and_then(|d| d.sync_all());
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    reporter.progress(
        Counters {
            phase: Phase::Done,
            files_done: report.files,
            files_total: report.files,
            bytes_done: report.bytes,
            bytes_total: report.bytes,
            bytes_stored: 0,
        },
        None,
        true,
    );
    Ok(report)
}

/// Opens a restored file for writing, creating it (mode 0600 until its
/// metadata is applied). Never follows a symlink.
fn create_file(p: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .with_context(|| format!("creating {}", p.display()))
}

/// Hashes a restored file; when it matches, applies the snapshot's owner,
/// mode and times. Owner first: changing it clears set-id bits.
fn check_and_finish_file(p: &Path, n: &Node, owners: bool) -> Result<bool> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .with_context(|| format!("opening {}", p.display()))?;
    if hash_reader(&f)? != n.hash.as_deref().unwrap_or_default() {
        return Ok(false);
    }
    if owners {
        std::os::unix::fs::fchown(&f, Some(n.uid), Some(n.gid))
            .with_context(|| format!("setting owner of {}", p.display()))?;
    }
    // Secrets are owner-only whatever their mode was when backed up.
    let mode = if n.secret { 0o600 } else { n.mode & 0o7777 };
    f.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", p.display()))?;
    let t = system_time(n.mtime_ns);
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .with_context(|| format!("setting times of {}", p.display()))?;
    Ok(true)
}

fn system_time(ns: i64) -> std::time::SystemTime {
    let d = std::time::Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    }
}

/// The BLAKE3 of a file's content, as snapshots record it.
pub fn hash_reader(mut f: &fs::File) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

fn apply_metadata(p: &Path, n: &Node, owners: bool) -> Result<()> {
    if owners {
        std::os::unix::fs::lchown(p, Some(n.uid), Some(n.gid))
            .with_context(|| format!("setting owner of {}", p.display()))?;
    }
    let mtime = filetime::FileTime::from_system_time(system_time(n.mtime_ns));
    if n.kind == NodeKind::Symlink {
        filetime::set_symlink_file_times(p, mtime, mtime)
            .with_context(|| format!("setting times of {}", p.display()))?;
        return Ok(());
    }
    fs::set_permissions(p, fs::Permissions::from_mode(n.mode & 0o7777))
        .with_context(|| format!("setting mode of {}", p.display()))?;
    filetime::set_file_times(p, mtime, mtime)
        .with_context(|| format!("setting times of {}", p.display()))?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetState {
    Missing,
    Empty,
    NonEmpty,
}

fn target_state(target: &Path) -> Result<TargetState> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TargetState::Missing),
        Err(e) => Err(e).with_context(|| format!("target {}", target.display())),
        Ok(m) if !m.is_dir() => bail!("target {} exists and is not a directory", target.display()),
        Ok(_) => {
            let mut rd =
                fs::read_dir(target).with_context(|| format!("target {}", target.display()))?;
            Ok(if rd.next().is_some() {
                TargetState::NonEmpty
            } else {
                TargetState::Empty
            })
        }
    }
}

/// Flushes every dirty page of the filesystem holding `dir` (one syncfs
/// instead of an fsync per restored file).
fn sync_filesystem(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    // SAFETY: syncfs only reads the descriptor, which `d` keeps open.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("syncing the restore in {} to disk", dir.display()));
    }
    Ok(())
}

/// Swaps the checked staging directory into place. With a non-empty target,
/// whatever the restore replaces is moved to a rollback directory beside it.
fn move_into_place(staging: &Path, target: &Path, state: TargetState) -> Result<Option<PathBuf>> {
    match state {
        TargetState::Missing => {
            fs::rename(staging, target)
                .with_context(|| format!("moving the restore into {}", target.display()))?;
            Ok(None)
        }
        TargetState::Empty => {
            fs::remove_dir(target)
                .with_context(|| format!("replacing empty {}", target.display()))?;
            fs::rename(staging, target)
                .with_context(|| format!("moving the restore into {}", target.display()))?;
            Ok(None)
        }
        TargetState::NonEmpty => {
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string()
                .replace(':', "");
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rollback = target.with_file_name(format!(".{name}.lifeboat-rollback-{stamp}"));
            fs::create_dir(&rollback)
                .with_context(|| format!("creating rollback directory {}", rollback.display()))?;
            let mut moved_aside = HashSet::new();
            for e in fs::read_dir(staging)? {
                let e = e?;
                let dest = target.join(e.file_name());
                if fs::symlink_metadata(&dest).is_ok() {
                    fs::rename(&dest, rollback.join(e.file_name()))
                        .with_context(|| format!("moving {} aside", dest.display()))?;
                    moved_aside.insert(e.file_name());
                }
                fs::rename(e.path(), &dest)
                    .with_context(|| format!("moving the restore into {}", dest.display()))?;
            }
            fs::remove_dir(staging).ok();
            if moved_aside.is_empty() {
                fs::remove_dir(&rollback).ok();
                return Ok(None);
            }
            Ok(Some(rollback))
        }
    }
}

/// Reads one file of a snapshot straight from the repository, in order:
/// how streamed sources (dumps, images) are fed back to their tools. Every
/// chunk is checked against its id, and at the end the whole stream against
/// the file's recorded hash and size; a mismatch is a read error, so a
/// consumer never mistakes damaged data for a clean end.
pub struct FileReader<'a> {
    repo: &'a Repository,
    index: &'a crate::repo::Index,
    node: &'a Node,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    hasher: blake3::Hasher,
    read: u64,
    pack: Option<(
        u32,
        age::stream::StreamReader<Box<dyn crate::repo::backend::ReadSeek>>,
    )>,
    scratch: Vec<u8>,
    reporter: &'a Reporter,
}

impl<'a> FileReader<'a> {
    pub fn new(
        repo: &'a Repository,
        index: &'a crate::repo::Index,
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
        }
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
        let loc = self.index.get(id).ok_or_else(|| {
            anyhow!(
                "{}: chunk {} is not in the index",
                self.node.path,
                id.short()
            )
        })?;
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
