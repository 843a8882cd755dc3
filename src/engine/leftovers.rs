//! What restores leave behind: the kept copies of what they replaced (for
//! rollback, until the admin discards them) and, after a crash, staging
//! that nobody will finish. Both are read from the restores' records; a
//! kept copy is listed with its size and age, staging of a restore whose
//! process is provably gone is removed.

use crate::source::cleanup;
use crate::source::ledger::{self, Made, Record, Replaced};
use anyhow::Result;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    /// The restore that left it (`lifeboat rollback ID` uses it).
    pub restore: String,
    pub service: String,
    /// What it is a copy of.
    pub of: String,
    /// Where it is: a path, or `database NAME`.
    pub at: String,
    /// Bytes it takes, where that can be measured.
    pub bytes: Option<u64>,
    pub since: String,
    #[serde(skip)]
    pub age: Duration,
}

fn age_of(rec: &Record, now: SystemTime) -> Duration {
    humantime::parse_rfc3339_weak(&rec.started)
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default()
}

/// Bytes under a path (files only; symlinks not followed).
pub fn disk_usage(p: &Path) -> Option<u64> {
    let m = std::fs::symlink_metadata(p).ok()?;
    if !m.is_dir() {
        return Some(m.len());
    }
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    Some(total)
}

/// Every kept copy still there, oldest first.
pub fn list(state_dir: &Path, now: SystemTime) -> Vec<Leftover> {
    let (records, _) = ledger::list(state_dir);
    let mut out = Vec::new();
    for rec in &records {
        for r in &rec.replaced {
            let (at, bytes) = match r {
                Replaced::Path { kept: Some(k), .. } | Replaced::Redis { kept: Some(k), .. } => {
                    if std::fs::symlink_metadata(k).is_err() {
                        continue;
                    }
                    (k.display().to_string(), disk_usage(k))
                }
                Replaced::Postgres {
                    kept: Some(k), db, ..
                } => (
                    format!("database `{k}`"),
                    crate::source::postgres::size(db, k),
                ),
                Replaced::Mysql { kept: Some(k), .. } => (format!("database `{k}`"), None),
                _ => continue,
            };
            out.push(Leftover {
                restore: rec.id.clone(),
                service: rec.service.clone(),
                of: r.what(),
                at,
                bytes,
                since: rec.started.clone(),
                age: age_of(rec, now),
            });
        }
    }
    out
}

/// Removes staging of restores that can never finish (their process is
/// gone); returns what was removed, for a log line.
pub fn clean_stale(state_dir: &Path) -> Vec<String> {
    let (records, _) = ledger::list(state_dir);
    let mut said = Vec::new();
    for mut rec in records {
        if rec.made.is_empty() || !(rec.finished || rec.holder.is_gone()) {
            continue;
        }
        let mut left: Vec<Made> = Vec::new();
        for m in std::mem::take(&mut rec.made).into_iter().rev() {
            // A swap that finished before the crash stays, written down.
            if let Some(r) = cleanup::finished_swap(&m) {
                said.push(format!(
                    "restore {} had replaced {} before it stopped; the old copy is kept (`lifeboat rollback {}`)",
                    rec.id,
                    r.what(),
                    rec.id
                ));
                if !rec.replaced.contains(&r) {
                    rec.replaced.push(r);
                }
                continue;
            }
            match cleanup::remove(&m) {
                Ok(()) => said.push(format!(
                    "removed {} left by interrupted restore {}",
                    m.describe(),
                    rec.id
                )),
                Err(e) => {
                    said.push(format!("could not remove {}: {e:#}", m.describe()));
                    left.push(m);
                }
            }
        }
        left.reverse();
        rec.made = left;
        rec.finished = true;
        let _ = if rec.made.is_empty() && rec.replaced.is_empty() && rec.undoes.is_none() {
            ledger::remove(state_dir, &rec.id)
        } else {
            ledger::save(state_dir, &rec)
        };
    }
    said
}

/// Discards kept copies: those of restore `id`, or all older than
/// `older_than`. A restore whose copies are gone can no longer be rolled
/// back; its record goes too.
pub fn remove(state_dir: &Path, id: Option<&str>, older_than: Duration) -> Result<Vec<String>> {
    let now = SystemTime::now();
    let (records, _) = ledger::list(state_dir);
    let mut said = Vec::new();
    for rec in records {
        if id.is_some_and(|i| i != rec.id) || (id.is_none() && age_of(&rec, now) < older_than) {
            continue;
        }
        if !rec.made.is_empty() && !rec.holder.is_gone() && !rec.finished {
            said.push(format!("restore {} is still running; left alone", rec.id));
            continue;
        }
        for r in &rec.replaced {
            let gone = match r {
                Replaced::Path {
                    kept: Some(k),
                    suffixes,
                    ..
                } => suffixes
                    .iter()
                    .try_for_each(|s| {
                        let mut p = k.as_os_str().to_os_string();
                        p.push(s);
                        cleanup::remove_path(Path::new(&p))
                    })
                    .and_then(|()| cleanup::remove_path(k))
                    .map(|()| k.display().to_string()),
                Replaced::Redis { kept: Some(k), .. } => {
                    cleanup::remove_path(k).map(|()| k.display().to_string())
                }
                Replaced::Postgres {
                    kept: Some(k), db, ..
                } => crate::source::postgres::drop_named(db, k).map(|()| format!("database `{k}`")),
                Replaced::Mysql {
                    kept: Some(k), db, ..
                } => crate::source::mysql::drop_named(db, k).map(|()| format!("database `{k}`")),
                _ => continue,
            };
            match gone {
                Ok(what) => said.push(format!("removed {what} (kept by restore {})", rec.id)),
                Err(e) => anyhow::bail!(
                    "could not remove the copy kept by restore {} of {}: {e:#}",
                    rec.id,
                    r.what()
                ),
            }
        }
        ledger::remove(state_dir, &rec.id)?;
    }
    if let Some(i) = id {
        if said.is_empty() {
            anyhow::bail!("restore {i} keeps nothing (see `lifeboat leftovers`)");
        }
    }
    Ok(said)
}
