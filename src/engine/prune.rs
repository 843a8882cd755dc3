//! Forget and prune: dropping restore points the retention policy no longer
//! wants, then reclaiming the space only they used.
//!
//! Prune runs under the exclusive lock and is ordered so that `kill -9` at
//! any instant leaves a repository that verifies clean:
//!
//! 1. rewrite packs that are mostly garbage into new packs (durable first);
//! 2. write one new index covering every pack that stays and every new one;
//! 3. delete every old index file;
//! 4. only then delete packs that no longer hold anything needed.
//!
//! Until 3 finishes, old packs still exist for any old index that names
//! them; after 3, no index names a pack that step 4 deletes.

use super::retention::{self, Decision, Policy};
use crate::progress::{Counters, Phase, Reporter};
use crate::repo::index::PackEntry;
use crate::repo::object_lock::{ser_time, still_locked, Reclaimed};
use crate::repo::pack::{self, PackBuilder};
use crate::repo::tree::NodeKind;
use crate::repo::{ChunkId, Kind, PackId, Repository, Snapshot};
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the policy decides for one service's restore points, newest first.
pub fn plan_forget(
    repo: &Repository,
    service: &str,
    policy: &Policy,
) -> Result<Vec<(Snapshot, Decision)>> {
    let (snaps, _) = repo.list_snapshots()?;
    // One history per host and set of paths, as restic groups them: two
    // ad-hoc backups of different directories (both `adhoc`) are not
    // versions of each other, and keeping the last of one must not forget
    // the only copy of the other.
    let mut groups: std::collections::BTreeMap<(String, Vec<String>), Vec<Snapshot>> =
        Default::default();
    for s in snaps.into_iter().filter(|s| s.service == service) {
        let mut paths = s.paths.clone();
        paths.sort();
        groups.entry((s.host.clone(), paths)).or_default().push(s);
    }
    let mut out = Vec::new();
    for (_, mut mine) in groups {
        mine.sort_by(|a, b| b.time.cmp(&a.time));
        let points: Vec<(String, std::time::SystemTime)> = mine
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    s.system_time().unwrap_or(std::time::UNIX_EPOCH),
                )
            })
            .collect();
        let decisions = retention::apply(&points, policy);
        out.extend(mine.into_iter().zip(decisions));
    }
    out.sort_by(|a, b| b.0.time.cmp(&a.0.time));
    Ok(out)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    pub removed: usize,
    /// Restore points the policy lets go whose Object Lock still runs:
    /// (id, locked until). They stay, and a later forget drops them.
    pub locked: Vec<(String, std::time::SystemTime)>,
}

/// Removes the snapshot objects the plans say go. Their data stays until
/// `prune`. Under Object Lock a restore point still locked stays.
pub fn forget(
    repo: &Repository,
    plans: &[(Snapshot, Decision)],
    reporter: &Reporter,
) -> Result<ForgetReport> {
    let _lock = repo.lock(crate::repo::lock::Mode::Exclusive, "forget", &|w| {
        reporter.warn(w)
    })?;
    let mut r = ForgetReport::default();
    for (snap, d) in plans {
        if !d.keep {
            match repo.backend().remove(Kind::Snapshots, &snap.id) {
                Ok(()) => r.removed += 1,
                Err(e) => match still_locked(&e) {
                    Some(l) => r.locked.push((snap.id.clone(), l.until)),
                    None => return Err(e),
                },
            }
        }
    }
    Ok(r)
}

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub dry_run: bool,
    /// A pack with more than this share of unneeded bytes is rewritten.
    pub repack_above: f64,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_above: 0.5,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub packs_before: usize,
    pub bytes_before: u64,
    /// Packs no restore point needs anything from.
    pub packs_deleted: usize,
    /// Mostly-garbage packs whose needed chunks were rewritten.
    pub packs_repacked: usize,
    pub packs_written: usize,
    /// Packs no index mentions (left by interrupted backups).
    pub packs_unreferenced: usize,
    pub chunks_dropped: u64,
    /// Half-written temp files of interrupted writes, removed.
    pub leftovers_removed: usize,
    pub bytes_after: u64,
    pub dry_run: bool,
    /// Packs that would go but whose Object Lock still runs: kept, and
    /// reclaimable from `reclaimable_from` (the last at `locked_until`).
    pub packs_locked: usize,
    pub bytes_locked: u64,
    #[serde(serialize_with = "ser_time")]
    pub reclaimable_from: Option<std::time::SystemTime>,
    #[serde(serialize_with = "ser_time")]
    pub locked_until: Option<std::time::SystemTime>,
    /// Old versions of removed objects, deleted once their lock ran out.
    pub versions: Option<Reclaimed>,
}

impl PruneReport {
    pub fn reclaimed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

pub fn prune(repo: &Repository, opts: &PruneOptions, reporter: &Reporter) -> Result<PruneReport> {
    repo.data_identity()?;
    let _lock = repo.lock(crate::repo::lock::Mode::Exclusive, "prune", &|w| {
        reporter.warn(w)
    })?;
    reporter.progress(
        Counters {
            phase: Phase::Verify,
            ..Default::default()
        },
        None,
        true,
    );
    let (index_files, damaged) = repo.load_index_files()?;
    if let Some((name, why)) = damaged.first() {
        return Err(crate::Error::IndexDamaged {
            what: format!("index file {name} is unreadable ({why}); prune cannot tell what is still needed and changed nothing"),
        }
        .into());
    }
    let (snaps, damaged) = repo.list_snapshots()?;
    if let Some((name, why)) = damaged.first() {
        bail!("restore point {name} is unreadable ({why}); prune cannot tell what it needs and changed nothing. Run `lifeboat verify`");
    }
    let index = crate::repo::Index::build(index_files.iter().flat_map(|(_, p)| p.clone()));

    // Every chunk some restore point needs.
    let mut needed: HashSet<ChunkId> = HashSet::new();
    for snap in &snaps {
        needed.extend(snap.tree.iter().copied());
        for n in repo.read_tree(&index, snap)? {
            if n.kind == NodeKind::File {
                needed.extend(n.chunks);
            }
        }
    }
    for id in &needed {
        if !index.contains(id) {
            return Err(crate::Error::IndexDamaged {
                what: format!(
                    "chunk {} that a restore point needs is in no index; prune changed nothing",
                    id.short()
                ),
            }
            .into());
        }
    }

    let stored: HashMap<String, u64> = repo.backend().list(Kind::Data)?.into_iter().collect();
    let mut claimed: BTreeMap<PackId, Vec<PackEntry>> = BTreeMap::new();
    for (_, packs) in &index_files {
        for (p, e) in packs {
            claimed.entry(*p).or_insert_with(|| e.clone());
        }
    }
    let mut report = PruneReport {
        packs_before: stored.len(),
        bytes_before: stored.values().sum(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut keep: Vec<(PackId, Vec<PackEntry>)> = Vec::new();
    let mut delete: Vec<PackId> = Vec::new();
    let mut repack: Vec<(PackId, Vec<PackEntry>)> = Vec::new();
    // A chunk needed from a pack that goes is copied once, from its first pack.
    let mut rescued: HashSet<ChunkId> = HashSet::new();
    for (p, entries) in &claimed {
        if !stored.contains_key(&p.hex()) {
            bail!("pack {} is missing from storage; prune changed nothing. Run `lifeboat verify` to see what it affects", p.short());
        }
        let total: u64 = entries.iter().map(|e| u64::from(e.stored_len)).sum();
        let used: u64 = entries
            .iter()
            .filter(|e| needed.contains(&e.id))
            .map(|e| u64::from(e.stored_len))
            .sum();
        if used == 0 {
            delete.push(*p);
            report.chunks_dropped += entries.len() as u64;
        } else if total > 0 && (total - used) as f64 / total as f64 > opts.repack_above {
            repack.push((*p, entries.clone()));
        } else {
            keep.push((*p, entries.clone()));
        }
    }
    // Chunks that stay in a kept pack need no copy.
    for (_, entries) in &keep {
        rescued.extend(entries.iter().map(|e| e.id));
    }
    let unreferenced: Vec<String> = stored
        .keys()
        .filter(|n| {
            PackId::parse(n)
                .map(|p| !claimed.contains_key(&p))
                .unwrap_or(true)
        })
        .cloned()
        .collect();
    let unreferenced = hold_locked(
        repo,
        (&stored, &claimed),
        (&mut delete, &mut repack, &mut keep),
        unreferenced,
        &mut report,
    )?;
    for (_, entries) in &keep {
        rescued.extend(entries.iter().map(|e| e.id));
    }
    report.packs_unreferenced = unreferenced.len();
    report.packs_deleted = delete.len();
    report.packs_repacked = repack.len();

    let repack_bytes: u64 = repack
        .iter()
        .map(|(p, _)| stored.get(&p.hex()).copied().unwrap_or(0))
        .sum();
    let delete_bytes: u64 = delete
        .iter()
        .map(|p| stored.get(&p.hex()).copied().unwrap_or(0))
        .sum::<u64>()
        + unreferenced
            .iter()
            .map(|n| stored.get(n).copied().unwrap_or(0))
            .sum::<u64>();
    if opts.dry_run {
        // Estimate: repacked packs shrink to their needed share.
        let repacked_needed: u64 = repack
            .iter()
            .flat_map(|(_, e)| e.iter())
            .filter(|e| needed.contains(&e.id))
            .map(|e| u64::from(e.stored_len))
            .sum();
        report.bytes_after = report.bytes_before - delete_bytes - repack_bytes + repacked_needed;
        return Ok(report);
    }

    // 1. Rewrite the needed chunks of mostly-garbage packs.
    let pack_size = repo.config().pack_size as usize;
    let mut written: Vec<(PackId, Vec<PackEntry>)> = Vec::new();
    let mut builder = PackBuilder::new(pack_size);
    let mut scratch = Vec::new();
    let flush = |b: PackBuilder, written: &mut Vec<(PackId, Vec<PackEntry>)>| -> Result<()> {
        let (plain, entries) = b.finish();
        let id = PackId::random();
        repo.store_pack(&id, &plain)?;
        written.push((id, entries));
        Ok(())
    };
    for (p, entries) in &repack {
        let mut r = repo.read_pack(p)?;
        let mut sorted = entries.clone();
        sorted.sort_by_key(|e| e.offset);
        for e in sorted.iter().filter(|e| needed.contains(&e.id)) {
            if !rescued.insert(e.id) {
                continue;
            }
            let loc = e.location(0);
            // Read back through the checked path: a damaged chunk stops
            // prune before anything is deleted.
            pack::read_chunk(&mut r, repo.chunk_key(), &e.id, &loc, &mut scratch)?;
            builder.add(e.id, &scratch, e.raw_len, e.compressed);
            if builder.len() >= pack_size {
                flush(
                    std::mem::replace(&mut builder, PackBuilder::new(pack_size)),
                    &mut written,
                )?;
            }
        }
        reporter.progress(
            Counters {
                phase: Phase::Verify,
                files_done: written.len() as u64,
                ..Default::default()
            },
            None,
            false,
        );
    }
    if !builder.is_empty() {
        flush(builder, &mut written)?;
    }
    report.packs_written = written.len();

    // 2. One index for everything that stays.
    let mut all = keep;
    all.extend(written);
    let new_index = repo.write_index(&all)?;
    // 3. Old index files go...
    for (name, _) in &index_files {
        if *name != new_index {
            repo.backend().remove(Kind::Index, name)?;
        }
    }
    // 4. ...and only then the packs they named.
    for p in delete.iter().chain(repack.iter().map(|(p, _)| p)) {
        repo.backend().remove(Kind::Data, &p.hex())?;
    }
    for n in &unreferenced {
        repo.backend().remove(Kind::Data, n)?;
    }
    report.leftovers_removed = repo.backend().remove_leftovers()?;
    if let Some(locks) = repo.backend().object_lock() {
        report.versions = Some(locks.reclaim()?);
    }
    report.bytes_after = repo
        .backend()
        .list(Kind::Data)?
        .iter()
        .map(|(_, s)| s)
        .sum();
    Ok(report)
}

type Packs = Vec<(PackId, Vec<PackEntry>)>;

/// Under Object Lock: packs that would be deleted or rewritten but are
/// still locked stay as they are (in the new index, so it stays whole);
/// returns the unreferenced packs that may go.
fn hold_locked(
    repo: &Repository,
    (stored, claimed): (&HashMap<String, u64>, &BTreeMap<PackId, Vec<PackEntry>>),
    (delete, repack, keep): (&mut Vec<PackId>, &mut Packs, &mut Packs),
    unreferenced: Vec<String>,
    report: &mut PruneReport,
) -> Result<Vec<String>> {
    let Some(locks) = repo.backend().object_lock() else {
        return Ok(unreferenced);
    };
    let now = std::time::SystemTime::now();
    let note = |name: &str, report: &mut PruneReport| -> Result<bool> {
        let lock = locks.lock_of(Kind::Data, name)?;
        let Some(until) = lock.until.filter(|_| lock.holds_at(now)) else {
            return Ok(false);
        };
        report.packs_locked += 1;
        report.bytes_locked += stored.get(name).copied().unwrap_or(0);
        report.reclaimable_from = Some(report.reclaimable_from.map_or(until, |f| f.min(until)));
        report.locked_until = Some(report.locked_until.map_or(until, |f| f.max(until)));
        Ok(true)
    };
    let mut free = Vec::new();
    for p in std::mem::take(delete) {
        if note(&p.hex(), report)? {
            let entries = claimed.get(&p).cloned().unwrap_or_default();
            report.chunks_dropped -= entries.len() as u64;
            keep.push((p, entries));
        } else {
            free.push(p);
        }
    }
    *delete = free;
    let mut free = Vec::new();
    for (p, e) in std::mem::take(repack) {
        if note(&p.hex(), report)? {
            keep.push((p, e));
        } else {
            free.push((p, e));
        }
    }
    *repack = free;
    let mut out = Vec::new();
    for n in unreferenced {
        if !note(&n, report)? {
            out.push(n);
        }
    }
    Ok(out)
}
