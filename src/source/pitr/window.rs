//! What a point-in-time restore can reach, read from the restore point
//! summaries alone: base backups of the service and its WAL groups.

use super::base::STOP_NOTE;
use super::wal::{groups, NEWEST_NOTE, OLDEST_NOTE};
use crate::repo::Snapshot;
use anyhow::{bail, Result};
use serde::Serialize;
use std::time::SystemTime;

/// A base backup and the moment it was complete.
#[derive(Debug, Clone)]
pub struct Base {
    pub snap: Snapshot,
    pub stop: SystemTime,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    /// The end of the oldest base backup: nothing earlier can be reached.
    #[serde(serialize_with = "opt_time")]
    pub oldest: Option<SystemTime>,
    /// When the newest archived segment reached the archive.
    #[serde(serialize_with = "opt_time")]
    pub newest: Option<SystemTime>,
    /// The newest base backup's end.
    #[serde(serialize_with = "opt_time")]
    pub newest_base: Option<SystemTime>,
    pub base_backups: usize,
    pub wal_groups: usize,
}

fn opt_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_micros(*t).to_string()),
        None => s.serialize_none(),
    }
}

fn note_time(s: &Snapshot, note: &str) -> Option<SystemTime> {
    s.sources
        .iter()
        .find_map(|r| r.facts.notes.get(note))
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
}

/// The base backups of `service`, oldest first.
pub fn bases(snaps: &[Snapshot], service: &str) -> Vec<Base> {
    let mut v: Vec<Base> = snaps
        .iter()
        .filter(|s| s.service == service)
        .filter(|s| s.sources.iter().any(|r| r.kind == "postgres-cluster"))
        .filter_map(|s| {
            Some(Base {
                stop: note_time(s, STOP_NOTE)?,
                snap: s.clone(),
            })
        })
        .collect();
    v.sort_by_key(|b| b.stop);
    v
}

/// The window of `service`; `spooled` is when the newest segment still
/// in the local spool arrived, if any (it is restorable here too).
pub fn window(snaps: &[Snapshot], service: &str, spooled: Option<SystemTime>) -> Window {
    let bases = bases(snaps, service);
    let groups = groups(snaps, service);
    let archived = groups
        .iter()
        .filter_map(|g| note_time(g, NEWEST_NOTE))
        .max();
    let newest_base = bases.last().map(|b| b.stop);
    Window {
        oldest: bases.first().map(|b| b.stop),
        newest: [archived, spooled, newest_base].into_iter().flatten().max(),
        newest_base,
        base_backups: bases.len(),
        wal_groups: groups.len(),
    }
}

/// The newest segment time in the repository alone: what archive lag is
/// measured from.
pub fn newest_archived(snaps: &[Snapshot], service: &str) -> Option<SystemTime> {
    groups(snaps, service)
        .iter()
        .filter_map(|g| note_time(g, NEWEST_NOTE).or_else(|| note_time(g, OLDEST_NOTE)))
        .max()
}

/// Where a restore to a moment goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Moment {
    /// Everything archived.
    Latest,
    At(SystemTime),
}

impl Moment {
    /// `latest`, `TIME` or `before:TIME` (RFC 3339 in UTC, or
    /// `2026-12-01 14:03:00`, read as UTC). Recovery stops before the
    /// first transaction that committed after TIME, so `before:` means
    /// the same as the plain time.
    pub fn parse(s: &str) -> Result<Moment> {
        let s = s.trim();
        if s == "latest" {
            return Ok(Moment::Latest);
        }
        let t = s.strip_prefix("before:").unwrap_or(s).trim();
        match humantime::parse_rfc3339_weak(t) {
            Ok(t) => Ok(Moment::At(t)),
            Err(e) => bail!(
                "--at {s:?}: {e}; give `latest` or a UTC time like \"2026-12-01 14:03:00\" or 2026-12-01T14:03:00.25Z"
            ),
        }
    }
}

fn show(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The base backup to start from for `moment`, or why there is none.
pub fn pick(snaps: &[Snapshot], service: &str, moment: &Moment, w: &Window) -> Result<Base> {
    let bases = bases(snaps, service);
    let (Some(oldest), Some(newest)) = (w.oldest, w.newest) else {
        bail!("{service} has no base backup yet; take one with `lifeboat backup {service}`");
    };
    let window = format!("{} to {} (UTC)", show(oldest), show(newest));
    let chosen = match moment {
        Moment::Latest => bases.last(),
        Moment::At(t) => {
            if *t < oldest {
                bail!(
                    "{service} cannot be restored to {}: the oldest base backup ends later; restorable window: {window}",
                    show(*t)
                );
            }
            if *t > newest {
                bail!(
                    "{service} cannot be restored to {}: the archived WAL only reaches {}; restorable window: {window}. Run `lifeboat wal-flush` on the database host if segments are waiting in its spool",
                    show(*t),
                    show(newest)
                );
            }
            bases.iter().rev().find(|b| b.stop <= *t)
        }
    };
    chosen.cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "{service}: no base backup ends before that moment; restorable window: {window}"
        )
    })
}
