//! Changing a restore point's tags: the one change made to a snapshot after
//! it is written (see `Repository::update_snapshot`).

use crate::repo::snapshot::tag_set;
use crate::repo::{Repository, Snapshot};
use anyhow::Result;

/// Adds and removes tags on snapshot `id` (a full id). Returns the
/// snapshot as it now is, and whether anything had to be written.
/// `notify` hears about waiting for a lock.
pub fn tag(
    repo: &Repository,
    id: &str,
    add: &[String],
    remove: &[String],
    notify: &dyn Fn(String),
) -> Result<(Snapshot, bool)> {
    let add = tag_set(add)?;
    let remove = tag_set(remove)?;
    // Like a backup's: prune (exclusive) must not delete the snapshot
    // while it is being rewritten.
    let lock = repo.lock(crate::repo::lock::Mode::Write, "tag", notify)?;
    // Read again under the lock: the rewrite starts from what is stored now.
    let mut snap = repo.load_snapshot(id)?;
    let mut tags: Vec<String> = snap
        .tags
        .iter()
        .filter(|t| !remove.contains(t))
        .cloned()
        .chain(add)
        .collect();
    tags.sort();
    tags.dedup();
    if tags == snap.tags {
        return Ok((snap, false));
    }
    snap.tags = tags;
    // A lock lost meanwhile (taken over as stale) no longer keeps prune out.
    lock.ensure_held()?;
    repo.update_snapshot(&snap)?;
    Ok((snap, true))
}
