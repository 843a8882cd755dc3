//! What a repository holds and what deduplication saves: per service and in
//! total, from the snapshot trees and the index (packs are never read).

use crate::repo::tree::NodeKind;
use crate::repo::{ChunkId, Index, Kind, Repository, Snapshot};
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Totals over a set of restore points.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub restore_points: u64,
    /// Files summed over the restore points (a file kept in ten restore
    /// points counts ten times, as it would in ten restores).
    pub files: u64,
    /// File bytes summed the same way: what restoring every one would write.
    pub raw_bytes: u64,
    /// Distinct chunks of file content these restore points need.
    pub chunks: u64,
    /// Their size in packs, after compression (before encryption framing).
    pub stored_bytes: u64,
    /// `raw_bytes / stored_bytes`; 0 when nothing is stored.
    pub dedup_ratio: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct StatsReport {
    /// Over every selected restore point.
    pub total: Totals,
    pub services: BTreeMap<String, Totals>,
    /// Every object in the repository's storage, referenced or not (packs
    /// that prune would reclaim included), as the storage bills it.
    pub storage_bytes: u64,
    pub packs: u64,
    /// Chunks some selected restore point needs that the index lacks (run
    /// `lifeboat verify`).
    pub missing_chunks: u64,
    /// (short id, why) of each restore point whose file list cannot be
    /// read; the totals leave it out.
    pub unreadable: Vec<(String, String)>,
}

/// The report over `snaps` (the restore points a filter chose). Memory:
/// one chunk id per distinct chunk of one service at a time, plus the
/// repository-wide set; each distinct tree is read once.
pub fn stats(repo: &Repository, snaps: &[Snapshot]) -> Result<StatsReport> {
    // A key that cannot read is an error, not every restore point skipped.
    repo.data_identity()?;
    let (index, _) = repo.load_index()?;
    let mut report = StatsReport::default();
    let mut by_service: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for s in snaps {
        by_service.entry(&s.service).or_default().push(s);
    }
    let mut everything: HashSet<ChunkId> = HashSet::new();
    for (service, snaps) in by_service {
        let mut t = Totals::default();
        let mut chunks: HashSet<ChunkId> = HashSet::new();
        // Restore points of an unchanged service share their tree.
        let mut seen_trees: HashMap<&[ChunkId], (u64, u64)> = HashMap::new();
        for snap in snaps {
            let (files, bytes) = match seen_trees.get(snap.tree.as_slice()) {
                Some(counts) => *counts,
                None => {
                    let nodes = match repo.read_tree(&index, snap) {
                        Ok(nodes) => nodes,
                        Err(e) => {
                            report.unreadable.push((snap.short_id(), format!("{e:#}")));
                            continue;
                        }
                    };
                    let mut counts = (0, 0);
                    for n in nodes {
                        if n.kind == NodeKind::File {
                            counts.0 += 1;
                            counts.1 += n.size;
                            chunks.extend(n.chunks);
                        }
                    }
                    seen_trees.insert(snap.tree.as_slice(), counts);
                    counts
                }
            };
            t.restore_points += 1;
            t.files += files;
            t.raw_bytes += bytes;
        }
        let (n, stored, missing) = measure(&index, &chunks);
        t.chunks = n;
        t.stored_bytes = stored;
        report.missing_chunks += missing;
        report.total.restore_points += t.restore_points;
        report.total.files += t.files;
        report.total.raw_bytes += t.raw_bytes;
        t.dedup_ratio = ratio(t.raw_bytes, t.stored_bytes);
        report.services.insert(service.to_string(), t);
        everything.extend(chunks);
    }
    let (n, stored, _) = measure(&index, &everything);
    report.total.chunks = n;
    report.total.stored_bytes = stored;
    report.total.dedup_ratio = ratio(report.total.raw_bytes, stored);
    for kind in [
        Kind::Config,
        Kind::Keys,
        Kind::Data,
        Kind::Index,
        Kind::Snapshots,
    ] {
        for (_, size) in repo.backend().list(kind)? {
            report.storage_bytes += size;
            if kind == Kind::Data {
                report.packs += 1;
            }
        }
    }
    Ok(report)
}

/// (chunks found in the index, their stored bytes, chunks missing).
fn measure(index: &Index, chunks: &HashSet<ChunkId>) -> (u64, u64, u64) {
    let mut out = (0, 0, 0);
    for id in chunks {
        match index.get(id) {
            Some(loc) => {
                out.0 += 1;
                out.1 += u64::from(loc.stored_len);
            }
            None => out.2 += 1,
        }
    }
    out
}

fn ratio(raw: u64, stored: u64) -> f64 {
    if stored == 0 {
        0.0
    } else {
        raw as f64 / stored as f64
    }
}
