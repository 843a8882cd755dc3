//! Object Lock jobs: how much is locked and until when, which objects lack
//! a lock, extending the locks of what kept restore points need, and
//! bringing back what someone deleted or replaced under a lock.
//!
//! Extending is what lets a repository lock each upload for a short time
//! (`days`) and still keep a restore point a monthly rule holds for a year
//! protected all year: each run moves the retain-until of everything a
//! kept restore point needs to `days` (plus margin) from now, and what only
//! forgotten restore points need is left to run out.

use crate::progress::Reporter;
use crate::repo::backend::Backend;
use crate::repo::object_lock::{ser_time, LockSettings, ObjectLocks, Recovered};
use crate::repo::tree::NodeKind;
use crate::repo::{Kind, Repository};
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::time::SystemTime;

/// The kinds Lifeboat locks, and how each object of them is named.
const LOCKED_KINDS: [Kind; 5] = [
    Kind::Config,
    Kind::Keys,
    Kind::Snapshots,
    Kind::Index,
    Kind::Data,
];

#[derive(Debug, Clone, Default, Serialize)]
pub struct LockStatus {
    pub mode: String,
    pub retain_days: f64,
    pub objects: u64,
    pub bytes: u64,
    pub locked_objects: u64,
    pub locked_bytes: u64,
    /// When the first locked bytes free up, and when the last do.
    #[serde(serialize_with = "ser_time")]
    pub first_frees: Option<SystemTime>,
    #[serde(serialize_with = "ser_time")]
    pub all_free: Option<SystemTime>,
    /// `kind/name` of objects stored without any lock.
    pub never_locked: Vec<String>,
    /// `kind/name` of restore points, keys and the config whose lock ran
    /// out (`locks extend` renews them).
    pub expired: Vec<String>,
}

fn objects(b: &dyn Backend) -> Result<Vec<(Kind, String, u64)>> {
    let mut out = Vec::new();
    for kind in LOCKED_KINDS {
        for (name, size) in b.list(kind)? {
            out.push((kind, name, size));
        }
    }
    Ok(out)
}

/// The lock of every object a repository locks; `None` without Object Lock.
pub fn status(b: &dyn Backend) -> Result<Option<LockStatus>> {
    let Some(locks) = b.object_lock() else {
        return Ok(None);
    };
    let s = locks.settings();
    let now = SystemTime::now();
    let mut st = LockStatus {
        mode: format!("{:?}", s.mode).to_lowercase(),
        retain_days: s.retain.as_secs_f64() / 86_400.0,
        ..Default::default()
    };
    for (kind, name, size) in objects(b)? {
        let size = if kind == Kind::Config {
            b.get(kind, &name).map(|d| d.len() as u64).unwrap_or(0)
        } else {
            size
        };
        st.objects += 1;
        st.bytes += size;
        let lock = locks.lock_of(kind, &name)?;
        let label = format!("{}/{name}", kind.dir())
            .trim_start_matches('/')
            .to_string();
        match lock.until {
            None => st.never_locked.push(label),
            Some(u) if u > now => {
                st.locked_objects += 1;
                st.locked_bytes += size;
                st.first_frees = Some(st.first_frees.map_or(u, |f| f.min(u)));
                st.all_free = Some(st.all_free.map_or(u, |f| f.max(u)));
            }
            Some(_) if kind != Kind::Data && kind != Kind::Index => st.expired.push(label),
            Some(_) => {}
        }
    }
    Ok(Some(st))
}

/// Problems `verify` reports: objects stored without a lock (written by
/// something other than Lifeboat under this config, or before
/// `object_lock` was set) and restore points whose lock ran out.
pub fn audit(b: &dyn Backend) -> Result<Vec<(String, String)>> {
    let Some(st) = status(b)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for o in st.never_locked {
        out.push((o, "carries no Object Lock: any host with delete rights can destroy it; `lifeboat locks extend` locks what kept restore points need".into()));
    }
    for o in st.expired {
        out.push((o, "its Object Lock has run out: run `lifeboat locks extend` (the nightly `forget --all --prune` runs it)".into()));
    }
    Ok(out)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ExtendReport {
    pub restore_points: usize,
    pub objects: usize,
    /// Restore points left to run out (the retention policy lets them go).
    pub left_to_expire: usize,
    #[serde(serialize_with = "ser_time")]
    pub until: Option<SystemTime>,
}

/// Extends the lock of every object the restore points not in `going`
/// need (their snapshot objects, packs, the config and keys) to the
/// repository's lock time from now. Needs a key that can read trees.
pub fn extend(
    repo: &Repository,
    going: &HashSet<String>,
    reporter: &Reporter,
) -> Result<ExtendReport> {
    let b = repo.backend();
    let locks = lock_settings(b)?;
    repo.data_identity()?;
    let _lock = repo.lock(crate::repo::lock::Mode::Read, "locks extend", &|w| {
        reporter.warn(w)
    })?;
    let until = locks.1.until(SystemTime::now());
    let (index, _) = repo.load_index()?;
    let (snaps, _) = repo.list_snapshots()?;
    let mut report = ExtendReport {
        until: Some(until),
        ..Default::default()
    };
    let mut packs: BTreeSet<u32> = BTreeSet::new();
    for snap in &snaps {
        if going.contains(&snap.id) {
            report.left_to_expire += 1;
            continue;
        }
        let mut chunks: Vec<crate::repo::ChunkId> = snap.tree.clone();
        for n in repo.read_tree(&index, snap)? {
            if n.kind == NodeKind::File {
                chunks.extend(n.chunks);
            }
        }
        packs.extend(chunks.iter().filter_map(|c| index.get(c)).map(|l| l.pack));
        locks.0.extend(Kind::Snapshots, &snap.id, until)?;
        report.restore_points += 1;
        report.objects += 1;
    }
    for p in packs {
        locks.0.extend(Kind::Data, &index.pack_id(p).hex(), until)?;
        report.objects += 1;
    }
    locks.0.extend(Kind::Config, "config", until)?;
    report.objects += 1;
    for (name, _) in b.list(Kind::Keys)? {
        locks.0.extend(Kind::Keys, &name, until)?;
        report.objects += 1;
    }
    Ok(report)
}

fn lock_settings(b: &dyn Backend) -> Result<(&dyn ObjectLocks, LockSettings)> {
    let locks = b.object_lock().ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no Object Lock: set object_lock = {{ mode = \"governance\", days = 30 }} in its config section (S3 repositories only)",
            b.location()
        )
    })?;
    Ok((locks, locks.settings()))
}

/// Makes current again, from their locked versions, the objects someone
/// deleted or replaced (`locks recover`). Needs no key: it copies
/// versions. Run `repair index` after it (the CLI does).
pub fn recover(b: &dyn Backend) -> Result<Recovered> {
    let (locks, _) = lock_settings(b)?;
    locks.recover()
}

/// `init` and `backup`: a repository that asks for Object Lock is on a
/// bucket that enforces it, or the job stops and says so.
pub fn check(b: &dyn Backend) -> Result<()> {
    match b.object_lock() {
        Some(l) => l.check(),
        None => Ok(()),
    }
}
