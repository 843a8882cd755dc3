//! The check after a restore: every file the restore wrote, read back from
//! where it now is and hashed, against the restore point; every database
//! and stream in scope, as it is live now, against what the backup
//! recorded. Files owned by other sources are theirs to check.

use super::plan::{tree_selections, Scope};
use super::tree::hash_reader;
use crate::model::Service;
use crate::repo::tree::{is_at_or_under, NodeKind};
use crate::repo::{Repository, Snapshot};
use anyhow::{bail, Result};
use std::path::Path;

/// Checks what a restore of `scope` of `svc` from `snap` put under `root`
/// (`/` for a live restore, else the directory it restored into).
/// Returns what was checked; an error says what differs.
pub fn check(
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    scope: &Scope,
    root: &Path,
) -> Result<String> {
    let (index, _) = repo.load_index()?;
    let nodes = repo.read_tree(&index, snap)?;
    let recorded: Vec<String> = snap.sources.iter().map(|r| r.name.clone()).collect();
    let sels = tree_selections(svc, scope, &recorded)?;
    let mut files = 0u64;
    let mut bad = Vec::new();
    for sel in &sels {
        let r = sel.live.to_string_lossy().trim_matches('/').to_string();
        for n in nodes
            .iter()
            .filter(|n| is_at_or_under(&n.path, &r))
            .filter(|n| !sel.skip.iter().any(|s| is_at_or_under(&n.path, s)))
        {
            let p = root.join(&n.path);
            match n.kind {
                NodeKind::File => {
                    files += 1;
                    let ok = match (&n.hash, std::fs::File::open(&p)) {
                        (Some(want), Ok(f)) => hash_reader(&f).is_ok_and(|h| h == *want),
                        (None, Ok(_)) => true,
                        (_, Err(_)) => false,
                    };
                    if !ok {
                        bad.push(format!("/{}", n.path));
                    }
                }
                NodeKind::Dir | NodeKind::Symlink => {
                    if p.symlink_metadata().is_err() {
                        bad.push(format!("/{}", n.path));
                    }
                }
            }
        }
    }
    if !bad.is_empty() {
        bail!(
            "{} of {} files differ from restore point {} or are missing: {}{}",
            bad.len(),
            files,
            snap.short_id(),
            bad.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if bad.len() > 5 { ", …" } else { "" }
        );
    }
    if files == 0 && scope.path.is_some() {
        bail!(
            "nothing of {} is in restore point {}",
            scope.path.as_deref().unwrap_or(Path::new("")).display(),
            snap.short_id()
        );
    }
    let mut said = Vec::new();
    if !sels.is_empty() {
        said.push(format!(
            "{files} files of {} match restore point {}",
            svc.name,
            snap.short_id()
        ));
    }
    if scope.path.is_none() && root == Path::new("/") {
        // Databases and streams: what is live now, against what was recorded.
        for c in crate::source::check_live(svc, snap, &scope.kinds)? {
            if !c.differences.is_empty() {
                bail!(
                    "{} {} differs from restore point {}: {}",
                    c.kind,
                    c.source,
                    snap.short_id(),
                    c.differences.join("; ")
                );
            }
            said.push(format!("{} {}: {}", c.kind, c.source, c.detail));
        }
    }
    Ok(said.join("; "))
}
