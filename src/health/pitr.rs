//! Point-in-time recovery health: how far the WAL archive in the
//! repository trails the database, judged against the service's RPO.

use super::{age, short_duration, Check, State};
use crate::inventory::ServiceView;
use serde::Serialize;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Serialize)]
pub struct PitrHealth {
    /// Seconds since the newest archived segment reached the repository.
    pub archive_lag_secs: Option<u64>,
    /// The oldest moment a restore can reach (RFC 3339).
    pub oldest_restorable: Option<String>,
    /// The newest moment a restore can reach from the repository.
    pub newest_restorable: Option<String>,
    /// Seconds since the newest base backup was complete.
    pub base_backup_age_secs: Option<u64>,
    /// Segments missing from the archive (see `pitr::archive`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<crate::source::pitr::archive::Gap>,
    pub check: Check,
}

fn rfc(t: Option<SystemTime>) -> Option<String> {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
}

pub fn pitr_check(s: &ServiceView, now: SystemTime) -> Option<PitrHealth> {
    let p = s.pitr.as_ref()?;
    let rpo = Duration::from_secs(s.rpo_secs);
    let lag = p.newest_archived.map(|t| age(now, t));
    let check = match lag {
        None => Check::bad(
            State::Breach,
            "no WAL",
            format!(
                "{}: no WAL archived yet; set archive_command = 'lifeboat wal-push %p' and archive_mode = on",
                s.name
            ),
        ),
        Some(l) if l > rpo => Check::bad(
            State::Breach,
            format!("WAL {}/{}", short_duration(l), short_duration(rpo)),
            format!(
                "{}: newest archived WAL is {} old, RPO is {}; check archive_command in the PostgreSQL log and run `lifeboat wal-flush`",
                s.name,
                short_duration(l),
                short_duration(rpo)
            ),
        ),
        Some(l) => Check::ok(format!("WAL {}/{}", short_duration(l), short_duration(rpo))),
    };
    // A gap no later base backup bridges means the present cannot be
    // restored: a breach. One bridged is a hole in the history.
    let check = match p
        .window
        .gaps
        .iter()
        .find(|g| g.resumes.is_none())
        .or(p.window.gaps.first())
    {
        Some(g) if check.state != State::Breach || g.resumes.is_none() => {
            let until = g
                .reachable_until
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_else(|| "the end of the base backup before it".into());
            let more = match p.window.gaps.len() {
                1 => String::new(),
                n => format!(" ({n} gaps)"),
            };
            match g.resumes {
                None => Check::bad(
                    State::Breach,
                    "WAL gap",
                    format!(
                        "{}: WAL segment {} is missing from the archive{more}; no restore gets past {until} until a new base backup: run `lifeboat backup {}` now, and look for the segment in pg_wal or the spool (`lifeboat wal-push` it)",
                        s.name, g.missing, s.name
                    ),
                ),
                Some(r) => Check::bad(
                    State::Warning,
                    "WAL gap",
                    format!(
                        "{}: WAL segment {} is missing from the archive{more}; moments from {until} to {} cannot be restored",
                        s.name,
                        g.missing,
                        humantime::format_rfc3339_seconds(r)
                    ),
                ),
            }
        }
        _ => check,
    };
    Some(PitrHealth {
        archive_lag_secs: lag.map(|l| l.as_secs()),
        oldest_restorable: rfc(p.window.oldest),
        newest_restorable: rfc(p.window.newest),
        base_backup_age_secs: p.window.newest_base.map(|t| age(now, t).as_secs()),
        gaps: p.window.gaps.clone(),
        check,
    })
}
