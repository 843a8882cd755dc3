//! The part of verify that reads a restore point the way restore does: its
//! tree gets the same safety check (so a restore point restore would refuse
//! is found on the verify night, not during the incident), and with
//! `--read-data` the newest restore point of each service has every file
//! streamed and checked against its whole-file hash.

use crate::progress::Reporter;
use crate::repo::tree::{check_sizes, check_tree, Node, NodeKind};
use crate::repo::{ChunkId, Index, Repository, Snapshot};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One problem found, in the shape of verify's report.
pub(crate) struct Finding {
    pub object: String,
    pub problem: String,
    pub affects: Vec<String>,
}

/// The problem restore would stop at before writing anything, if any:
/// unsafe, duplicate or disagreeing paths, symlink parents, sizes that do
/// not match the chunks.
pub(crate) fn tree_problem(snap: &Snapshot, nodes: &[Node], index: &Index) -> Option<Finding> {
    let err = check_tree(snap, nodes)
        .and_then(|_| check_sizes(snap, nodes, index))
        .err()?;
    Some(Finding {
        object: format!("snapshots/{}", snap.id),
        problem: format!("restore would refuse it: {err:#}"),
        affects: vec![format!(
            "{} ({}): every file",
            snap.short_id(),
            snap.service
        )],
    })
}

/// The newest restore point of each service, by id.
pub(crate) fn newest_per_service(snaps: &[Snapshot]) -> HashSet<String> {
    let mut newest: HashMap<&str, &Snapshot> = HashMap::new();
    for s in snaps {
        let e = newest.entry(&s.service).or_insert(s);
        if (s.time.as_str(), s.id.as_str()) > (e.time.as_str(), e.id.as_str()) {
            *e = s;
        }
    }
    newest.values().map(|s| s.id.clone()).collect()
}

/// Streams every file of `nodes` whose chunks are all present and not
/// known damaged through the file reader (one chunk in memory at a time,
/// on all cores) and checks it against its recorded size and hash. Returns
/// how many files were read and the problem, if any file failed.
pub(crate) fn check_whole_files(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    nodes: &[Node],
    known_bad: &dyn Fn(&ChunkId) -> bool,
    reporter: &Reporter,
) -> (u64, Option<Finding>) {
    let files: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.kind == NodeKind::File)
        .filter(|n| n.chunks.iter().all(|c| index.contains(c) && !known_bad(c)))
        .collect();
    let next = AtomicU64::new(0);
    let read = AtomicU64::new(0);
    let bad: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    // The reader reports restore progress; verify has its own.
    let quiet = Reporter::silent();
    std::thread::scope(|s| {
        for _ in 0..super::workers() {
            s.spawn(|| loop {
                if reporter.cancelled() {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(n) = files.get(i) else { return };
                let mut r = crate::repo::reader::FileReader::new(repo, index, n, &quiet);
                if let Err(e) = std::io::copy(&mut r, &mut std::io::sink()) {
                    if let Ok(mut b) = bad.lock() {
                        b.push((n.path.clone(), e.to_string()));
                    }
                }
                read.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    // A worker that panicked still leaves what it found.
    let mut bad = bad.into_inner().unwrap_or_else(|p| p.into_inner());
    if bad.is_empty() {
        return (read.into_inner(), None);
    }
    bad.sort();
    let label = format!("{} ({})", snap.short_id(), snap.service);
    let problem = Finding {
        object: format!("snapshots/{}", snap.id),
        problem: format!(
            "{} file(s) do not match their recorded size and hash: {}",
            bad.len(),
            bad[0].1
        ),
        affects: bad.iter().map(|(p, _)| format!("{label}: /{p}")).collect(),
    };
    (read.into_inner(), Some(problem))
}
