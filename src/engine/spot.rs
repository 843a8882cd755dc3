//! The spot check (borgmatic's): sample live files of a service's files
//! sources and compare their content with the latest restore point. A file
//! modified after the backup began is "changed since", which is expected;
//! one older than the backup that is missing from it, or whose content
//! differs, is a difference: the backup does not hold what it should.

use crate::repo::tree::{encode_os, NodeKind};
use crate::repo::Repository;
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct SpotOptions {
    pub service: String,
    /// The service's files (and secrets) paths, and its excludes.
    pub paths: Vec<PathBuf>,
    pub excludes: Vec<String>,
    /// How many live files to compare.
    pub sample: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpotDifference {
    pub path: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpotReport {
    pub service: String,
    pub snapshot: String,
    pub backup_time: String,
    /// Live regular files under the paths.
    pub live_files: usize,
    pub sampled: usize,
    pub same: usize,
    /// Modified after the backup began: not judged.
    pub changed_since: Vec<String>,
    pub differences: Vec<SpotDifference>,
}

impl SpotReport {
    pub fn ok(&self) -> bool {
        self.differences.is_empty()
    }
}

pub fn spot(repo: &Repository, opts: &SpotOptions) -> Result<SpotReport> {
    if opts.paths.is_empty() {
        bail!(
            "service `{}` has no files or secrets source: the spot check compares live files",
            opts.service
        );
    }
    let (snaps, _) = repo.list_snapshots()?;
    let Some(snap) = snaps
        .into_iter()
        .filter(|s| s.service == opts.service)
        .max_by(|a, b| a.time.cmp(&b.time))
    else {
        bail!(
            "service `{}` has no restore point to compare with\n  run `lifeboat backup {}` first",
            opts.service,
            opts.service
        );
    };
    let backup_ns = snap
        .system_time()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .with_context(|| {
            format!(
                "restore point {}: unreadable time {:?}",
                snap.short_id(),
                snap.time
            )
        })?;
    let (index, _) = repo.load_index()?;
    let tree = repo.read_tree(&index, &snap).with_context(|| {
        format!(
            "reading restore point {} (the spot check needs a key that can read)",
            snap.short_id()
        )
    })?;
    let nodes: HashMap<(String, Option<String>), &crate::repo::tree::Node> = tree
        .iter()
        .map(|n| ((n.path.clone(), n.raw_path.clone()), n))
        .collect();

    let excludes = crate::source::files::Excludes::new(&opts.excludes)?;
    let mut live = Vec::new();
    let roots: Vec<PathBuf> = opts.paths.iter().filter(|p| p.exists()).cloned().collect();
    crate::source::files::walk(
        &roots,
        &excludes,
        &mut |e| {
            if e.meta.is_file() && opts.paths.iter().any(|p| e.abs.starts_with(p)) {
                live.push((e.abs.to_path_buf(), e.rel.clone()));
            }
            Ok(())
        },
        &mut |_| {},
    )?;
    let live_files = live.len();
    live.shuffle(&mut rand::thread_rng());
    live.truncate(opts.sample);
    live.sort();

    let mut report = SpotReport {
        service: opts.service.clone(),
        snapshot: snap.id.clone(),
        backup_time: snap.time.clone(),
        live_files,
        sampled: live.len(),
        same: 0,
        changed_since: Vec::new(),
        differences: Vec::new(),
    };
    for (abs, rel) in live {
        let shown = abs.display().to_string();
        let Ok(meta) = std::fs::symlink_metadata(&abs) else {
            // Gone since the walk: a live system.
            report.changed_since.push(shown);
            continue;
        };
        if crate::source::files_cache::mtime_ns(&meta) >= backup_ns {
            report.changed_since.push(shown);
            continue;
        }
        let key = encode_os(&rel);
        let Some(node) = nodes.get(&key).filter(|n| n.kind == NodeKind::File) else {
            report.differences.push(SpotDifference {
                path: shown,
                why: "not in the restore point, though older than it".into(),
            });
            continue;
        };
        let hash = match hash_file(&abs) {
            Ok(h) => h,
            Err(e) => {
                report.differences.push(SpotDifference {
                    path: shown,
                    why: format!("cannot be read now: {e}"),
                });
                continue;
            }
        };
        match &node.hash {
            Some(h) if *h == hash => report.same += 1,
            Some(_) => report.differences.push(SpotDifference {
                path: shown,
                why: format!(
                    "content differs from the restore point ({} live, {} backed up), though not modified since the backup",
                    meta.len(),
                    node.size
                ),
            }),
            None => report.differences.push(SpotDifference {
                path: shown,
                why: "the restore point records no content hash for it".into(),
            }),
        }
    }
    Ok(report)
}

fn hash_file(p: &std::path::Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}
