//! Writing part of a snapshot's tree into a new staging directory: the plan
//! maps every chunk to the places it goes; packs are read once each, on all
//! cores; files are written with positional writes, checked against their
//! BLAKE3 hashes, and given their metadata. A file of one chunk (almost
//! every small file) is checked from the very bytes written into it and
//! finished through the handle that wrote it: created, written, checked,
//! chowned, chmodded and timed in one open. Bigger files, whose chunks
//! arrive from several packs, are read back and hashed once complete.
//! Nothing outside the staging directory is touched: swapping it into
//! place is the caller's business.
//!
//! A restore never writes outside its target: paths with `..`, absolute
//! paths, and paths through a symlink are refused before anything is
//! written, and symlinks are created last, so nothing is ever written
//! through one.

use crate::progress::{Counters, Phase, Reporter};
use crate::repo::tree::{check_tree, is_at_or_under, size_mismatch, Node, NodeKind};
use crate::repo::{pack, ChunkId, Index, Location, Repository, Snapshot};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

pub use super::finish::hash_reader;
use super::finish::{
    apply_metadata, check_and_finish_file, create_file, finish_written, PENDING, WRONG,
};

/// Which part of a snapshot's tree to restore.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Snapshot paths to restore (with everything below them); empty
    /// restores everything.
    pub include: Vec<String>,
    /// Snapshot paths left out with everything below them: data another
    /// source restores its own way (a SQLite database inside a files path).
    pub skip: Vec<String>,
    /// Leave out streamed sources (`.lifeboat/`): they are restored into
    /// their databases, not as files.
    pub skip_streams: bool,
    /// Restore file ownership (on by default when running as root).
    pub owners: bool,
}

impl Selection {
    pub fn all() -> Selection {
        Selection {
            owners: unsafe { libc::geteuid() } == 0,
            ..Selection::default()
        }
    }

    fn keeps(&self, n: &Node) -> bool {
        matches_include(&n.path, n.kind, &self.include)
            && !self.skip.iter().any(|s| is_at_or_under(&n.path, s))
            && !(self.skip_streams && is_at_or_under(&n.path, crate::source::capture::DIR))
    }
}

/// What a tree restore wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TreeReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// With `skip_damaged`: files left out because their data is lost or
    /// damaged. None of them is in the staging copy, not even in part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<DamagedFile>,
}

/// A file a rescue restore could not restore, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DamagedFile {
    pub path: String,
    pub why: String,
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

/// Restores the selected part of `snap` (whose tree is `nodes`) into
/// `staging`, a directory that must not exist yet; the snapshot's paths
/// are recreated below it. Every file is checked against its recorded
/// hash. The caller holds the repository lock, has written `staging` down
/// in its ledger, and removes it on failure.
pub fn restore_tree(
    repo: &Repository,
    index: &Index,
    nodes: &[Node],
    snap: &Snapshot,
    sel: &Selection,
    staging: &Path,
    reporter: &Reporter,
) -> Result<TreeReport> {
    restore_tree_with(repo, index, nodes, snap, sel, staging, reporter, false)
}

/// [`restore_tree`], or with `skip_damaged` a rescue: files whose data is
/// missing, unreadable or wrong are left out (and named in the report)
/// instead of failing the restore; everything else is restored and
/// checked as usual.
#[allow(clippy::too_many_arguments)]
pub fn restore_tree_with(
    repo: &Repository,
    index: &Index,
    nodes: &[Node],
    snap: &Snapshot,
    sel: &Selection,
    staging: &Path,
    reporter: &Reporter,
    skip_damaged: bool,
) -> Result<TreeReport> {
    repo.data_identity()?;
    let include: Vec<String> = sel
        .include
        .iter()
        .map(|p| p.trim_matches('/').to_string())
        .collect();
    let sel = Selection {
        include,
        ..sel.clone()
    };
    let nodes: Vec<&Node> = nodes.iter().filter(|n| sel.keeps(n)).collect();
    for inc in &sel.include {
        if !nodes.iter().any(|n| is_at_or_under(&n.path, inc)) {
            bail!(
                "{inc:?} is not in restore point {} (list it with `lifeboat ls {} /`)",
                snap.short_id(),
                snap.short_id()
            );
        }
    }
    // Validate every path before writing anything.
    let rels = check_tree(snap, &nodes)?;
    let dirs: HashSet<&[u8]> = nodes
        .iter()
        .zip(&rels)
        .filter(|(n, _)| n.kind == NodeKind::Dir)
        .map(|(_, r)| r.as_slice())
        .collect();

    // Plan: where each chunk goes.
    let mut plan: HashMap<u32, PackPlan> = HashMap::new();
    let mut by_chunk: HashMap<ChunkId, (u32, usize)> = HashMap::new();
    let mut files: Vec<usize> = Vec::new();
    let mut bytes_total = 0u64;
    // Node positions of files left out by a rescue restore, and why.
    let mut damaged: Vec<(usize, String)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.kind != NodeKind::File {
            continue;
        }
        let locs = n
            .chunks
            .iter()
            .map(|id| {
                index.get(id).ok_or_else(|| {
                    anyhow!(
                        "{}: chunk {} is missing from the repository (run `lifeboat verify`)",
                        n.path,
                        id.short()
                    )
                })
            })
            .collect::<Result<Vec<Location>>>()
            .and_then(|locs| {
                let sum: u64 = locs.iter().map(|l| l.raw_len as u64).sum();
                if sum != n.size {
                    return Err(size_mismatch(snap, n, sum));
                }
                Ok(locs)
            });
        let locs = match locs {
            Ok(l) => l,
            Err(e) if skip_damaged => {
                damaged.push((i, format!("{e:#}")));
                continue;
            }
            Err(e) => return Err(e),
        };
        let file = files.len();
        files.push(i);
        bytes_total += n.size;
        let mut offset = 0u64;
        for (id, loc) in n.chunks.iter().zip(locs) {
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
            return Err(size_mismatch(snap, n, offset));
        }
    }
    drop(by_chunk);

    let parent = staging
        .parent()
        .ok_or_else(|| anyhow!("cannot restore onto /; choose a directory"))?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Better to refuse now than to fail halfway through.
    if let Some((_, free)) = crate::util::fs_space(parent) {
        if free < bytes_total {
            bail!(
                "{} has {} free; restoring restore point {} needs {}",
                parent.display(),
                crate::util::human_bytes(free),
                snap.short_id(),
                crate::util::human_bytes(bytes_total)
            );
        }
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .with_context(|| format!("creating staging directory {}", staging.display()))?;

    let path_of = |rel: &[u8]| staging.join(OsStr::from_bytes(rel));
    // Directories first, and empty files; files with content are created
    // by the workers on first write, in parallel. Parents the snapshot
    // does not list (a partial restore) are made as needed.
    let mut lost: HashSet<usize> = damaged.iter().map(|(i, _)| *i).collect();
    // Per node: whether its file is still to be checked, or was checked
    // (and finished) or found wrong while it was written.
    let checked: Vec<AtomicU8> = nodes.iter().map(|_| AtomicU8::new(PENDING)).collect();
    let counters = Progress {
        files_total: files.len() as u64,
        bytes_total,
        ..Progress::default()
    };
    // Made while the workers fetch their first packs (on object storage
    // that hides thousands of mkdirs behind the first round trips); they
    // write nothing before the gate opens.
    let make_dirs = || -> Result<()> {
        for (i, (n, rel)) in nodes.iter().zip(&rels).enumerate() {
            let p = path_of(rel);
            let parent_listed = rel
                .iter()
                .rposition(|b| *b == b'/')
                .is_none_or(|i| dirs.contains(&rel[..i]));
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
                NodeKind::File if n.chunks.is_empty() && !lost.contains(&i) => {
                    let f = create_file(&p)?;
                    let state = finish_written(&f, &p, n, blake3::hash(b""), sel.owners)?;
                    checked[i].store(state, Ordering::Relaxed);
                    counters.files_done.fetch_add(1, Ordering::Relaxed);
                }
                NodeKind::File | NodeKind::Symlink => {}
            }
        }

        Ok(())
    };
    let dirs_made = Gate::default();
    let unreadable: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let dirs = s.spawn(|| {
            let made = make_dirs();
            dirs_made.open(made.is_ok());
            made
        });
        let written = write_contents(
            repo,
            index,
            (&nodes, &rels, &files),
            plan,
            staging,
            (&checked, sel.owners),
            &counters,
            reporter,
            skip_damaged.then_some(&unreadable),
            &dirs_made,
        );
        // The directories' error first: the workers' is only its echo.
        dirs.join()
            .map_err(|_| anyhow!("creating the directories failed unexpectedly"))??;
        written
    })?;
    let unreadable = unreadable
        .into_inner()
        .map_err(|_| anyhow!("restore state poisoned"))?;
    let mut lost_bytes = 0u64;
    for (fi, why) in unreadable {
        let ni = files[fi];
        if lost.insert(ni) {
            lost_bytes += nodes[ni].size;
            damaged.push((ni, why));
            remove_partial(&path_of(&rels[ni]))?;
        }
    }
    // Files checked as they were written need no second look.
    let state = |ni: usize| checked[ni].load(Ordering::Relaxed);
    let whole: Vec<usize> = files
        .iter()
        .copied()
        .filter(|ni| !lost.contains(ni) && state(*ni) == PENDING)
        .collect();
    let mut bad = check_files(
        &nodes, &rels, &whole, staging, sel.owners, &counters, reporter,
    )?;
    bad.extend(
        files
            .iter()
            .copied()
            .filter(|ni| !lost.contains(ni) && state(*ni) == WRONG),
    );
    bad.sort_unstable();
    if !bad.is_empty() && !skip_damaged {
        bail!(
            "{} restored file(s) do not match their recorded hash: {}",
            bad.len(),
            bad.iter()
                .map(|ni| nodes[*ni].path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for ni in bad {
        if lost.insert(ni) {
            lost_bytes += nodes[ni].size;
            damaged.push((
                ni,
                "the restored content does not match its recorded hash (damaged data)".into(),
            ));
            remove_partial(&path_of(&rels[ni]))?;
        }
    }

    // Symlinks last: nothing is written after them, so none is followed.
    let mut report = TreeReport {
        bytes: bytes_total - lost_bytes,
        ..TreeReport::default()
    };
    for (i, (n, rel)) in nodes.iter().zip(&rels).enumerate() {
        if lost.contains(&i) {
            continue;
        }
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
            apply_metadata(&path_of(rel), n, sel.owners)?;
        }
    }
    // Everything restored reaches the disk before it replaces anything: a
    // power cut after the swap must not leave empty or truncated files.
    sync_filesystem(staging)?;
    report.damaged = damaged
        .into_iter()
        .map(|(ni, why)| DamagedFile {
            path: nodes[ni].path.clone(),
            why,
        })
        .collect();
    report.damaged.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Opens once, for good or not: threads wait at it for another's work.
#[derive(Default)]
struct Gate {
    state: Mutex<Option<bool>>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn open(&self, ok: bool) {
        if let Ok(mut s) = self.state.lock() {
            *s = Some(ok);
        }
        self.opened.notify_all();
    }

    /// Whether the work succeeded, once it is done.
    fn wait(&self) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        loop {
            if let Some(ok) = *s {
                return ok;
            }
            s = match self.opened.wait(s) {
                Ok(s) => s,
                Err(_) => return false,
            };
        }
    }
}

/// Removes a file a rescue restore could not complete: what is not whole
/// is not left behind, not even in staging.
fn remove_partial(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", p.display()))
        }
        _ => Ok(()),
    }
}

/// Shared progress of one tree restore.
#[derive(Default)]
struct Progress {
    files_total: u64,
    bytes_total: u64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
}

impl Progress {
    fn counters(&self, phase: Phase) -> Counters {
        Counters {
            phase,
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total,
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total,
            bytes_stored: 0,
        }
    }
}

/// Every pack read once, packs spread over all cores; each chunk written
/// to every place it goes.
#[allow(clippy::too_many_arguments)]
fn write_contents(
    repo: &Repository,
    index: &Index,
    (nodes, rels, files): (&[&Node], &[Vec<u8>], &[usize]),
    plan: HashMap<u32, PackPlan>,
    staging: &Path,
    (checked, owners): (&[AtomicU8], bool),
    progress: &Progress,
    reporter: &Reporter,
    unreadable: Option<&Mutex<Vec<(usize, String)>>>,
    dirs_made: &Gate,
) -> Result<()> {
    let path_of = |rel: &[u8]| staging.join(OsStr::from_bytes(rel));
    // With a rescue restore, data that cannot be read marks the files that
    // need it instead of failing the restore.
    let mark = |chunks: &[(ChunkId, Location, Vec<Dest>)], why: &anyhow::Error| {
        if let Some(Ok(mut u)) = unreadable.map(|u| u.lock()) {
            for (_, _, dests) in chunks {
                u.extend(dests.iter().map(|d| (d.file, format!("{why:#}"))));
            }
        }
    };
    let mut packs: Vec<(u32, PackPlan)> = plan.into_iter().collect();
    for (_, chunks) in packs.iter_mut() {
        chunks.sort_by_key(|(_, l, _)| l.offset);
    }
    // In the order of the file regions they fill; workers take turns from
    // the two ends, so two of them rarely write into the same big file at
    // once (buffered writes to one file serialise on its inode).
    packs.sort_by_key(|(_, chunks)| {
        chunks
            .first()
            .and_then(|(_, _, d)| d.first())
            .map(|d| (d.file, d.offset))
    });
    let queue = Mutex::new(std::collections::VecDeque::from(packs));
    let worker_ids = AtomicU64::new(0);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    // Every core, or more on object storage, where each worker spends much
    // of its time waiting for its pack to arrive.
    let restorers = super::super::workers().max(repo.backend().transfers());
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
                        reporter.check_cancelled()?;
                        let pack_id = index.pack_id(pack_no);
                        let mut r = match repo.read_pack(&pack_id) {
                            Ok(r) => r,
                            Err(e) if unreadable.is_some() => {
                                mark(&chunks, &e.context(format!("pack {}", pack_id.short())));
                                return Ok(());
                            }
                            Err(e) => {
                                let mut paths: Vec<&str> = chunks
                                    .iter()
                                    .flat_map(|(_, _, d)| d.iter())
                                    .map(|d| nodes[files[d.file]].path.as_str())
                                    .collect();
                                paths.dedup();
                                let more = paths.len().saturating_sub(5);
                                paths.truncate(5);
                                return Err(e.context(format!(
                                    "pack {} cannot be read (damaged or lost), needed by {}{}; `lifeboat restore --skip-damaged` restores everything else",
                                    pack_id.short(),
                                    paths.join(", "),
                                    if more > 0 { format!(" and {more} more") } else { String::new() }
                                )));
                            }
                        };
                        if !dirs_made.wait() {
                            bail!("the directories to restore into could not be made");
                        }
                        for (k, (id, loc, dests)) in chunks.iter().enumerate() {
                            let read =
                                pack::read_chunk(&mut r, repo.chunk_key(), id, loc, &mut scratch)
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
                                });
                            let data = match read {
                                Ok(d) => d,
                                Err(e) if unreadable.is_some() => {
                                    mark(&chunks[k..=k], &e);
                                    // A failed segment leaves the age reader
                                    // unusable; a fresh one reads the rest.
                                    match repo.read_pack(&pack_id) {
                                        Ok(fresh) => r = fresh,
                                        Err(e) => {
                                            mark(&chunks[k + 1..], &e);
                                            return Ok(());
                                        }
                                    }
                                    continue;
                                }
                                Err(e) => return Err(e),
                            };
                            // A file given its size up front reads zeros
                            // where nothing was written: leaving zero chunks
                            // unwritten keeps a disk image's holes.
                            let zeros = data.iter().all(|b| *b == 0);
                            // What a one-chunk file must hash to, computed
                            // once however many files share the chunk.
                            let mut whole_hash = None;
                            for d in dests {
                                // Chunks of one file sit together in a pack:
                                // keep its handle for the next chunk.
                                if open.as_ref().is_none_or(|(i, _)| *i != d.file) {
                                    let node = nodes[files[d.file]];
                                    let f = create_file(&path_of(&rels[files[d.file]]))?;
                                    if node.chunks.len() > 1 {
                                        f.set_len(node.size).with_context(|| {
                                            format!("allocating /{}", node.path)
                                        })?;
                                    }
                                    open = Some((d.file, f));
                                }
                                let sized = nodes[files[d.file]].chunks.len() > 1;
                                if let Some((_, f)) = open.as_ref().filter(|_| !(zeros && sized)) {
                                    f.write_all_at(&data, d.offset).with_context(|| {
                                        format!("writing /{}", nodes[files[d.file]].path)
                                    })?;
                                }
                                progress
                                    .bytes_done
                                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                                // A file of one chunk is complete now: check
                                // the bytes just written and finish it
                                // through the same handle.
                                let ni = files[d.file];
                                if nodes[ni].chunks.len() == 1 {
                                    if let Some((_, f)) = open.take() {
                                        let h = *whole_hash.get_or_insert_with(|| blake3::hash(&data));
                                        let p = path_of(&rels[ni]);
                                        let state = finish_written(&f, &p, nodes[ni], h, owners)?;
                                        checked[ni].store(state, Ordering::Relaxed);
                                        progress.files_done.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                            reporter.progress(progress.counters(Phase::Restore), None, false);
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
    match failure
        .into_inner()
        .map_err(|_| anyhow!("restore state poisoned"))?
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Checks every file against the hash recorded at backup time, and gives
/// it its owner, mode and times through the same open handle.
fn check_files(
    nodes: &[&Node],
    rels: &[Vec<u8>],
    files: &[usize],
    staging: &Path,
    owners: bool,
    progress: &Progress,
    reporter: &Reporter,
) -> Result<Vec<usize>> {
    let path_of = |rel: &[u8]| staging.join(OsStr::from_bytes(rel));
    reporter.progress(progress.counters(Phase::Checking), None, true);
    let next = AtomicU64::new(0);
    let bad: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..super::super::workers() {
            s.spawn(|| loop {
                if reporter.cancelled() {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&ni) = files.get(i) else { return };
                let n = nodes[ni];
                match check_and_finish_file(&path_of(&rels[ni]), n, owners) {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Ok(mut b) = bad.lock() {
                            b.push(ni);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
                progress.files_done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    reporter.check_cancelled()?;
    if let Some(e) = failure
        .into_inner()
        .map_err(|_| anyhow!("restore state poisoned"))?
    {
        return Err(e);
    }
    let mut bad = bad
        .into_inner()
        .map_err(|_| anyhow!("restore state poisoned"))?;
    bad.sort_unstable();
    Ok(bad)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Missing,
    Empty,
    NonEmpty,
}

pub fn target_state(target: &Path) -> Result<TargetState> {
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
pub fn sync_filesystem(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    // SAFETY: syncfs only reads the descriptor, which `d` keeps open.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("syncing the restore in {} to disk", dir.display()));
    }
    Ok(())
}
