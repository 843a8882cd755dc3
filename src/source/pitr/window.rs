//! What a point-in-time restore can reach, read from the restore point
//! summaries alone: base backups of the service and its WAL groups.

use super::archive::{base_start, opt_time, Archive, Gap};
use super::base::STOP_NOTE;
use super::wal::{groups, NEWEST_NOTE, OLDEST_NOTE};
use crate::repo::Snapshot;
use anyhow::{bail, Result};
use serde::Serialize;
use std::time::SystemTime;

pub use super::archive::note_time;

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
    /// The newest moment a restore can reach: when the newest archived
    /// segment reached the archive, unless a gap cuts the log short.
    #[serde(serialize_with = "opt_time")]
    pub newest: Option<SystemTime>,
    /// The newest base backup's end.
    #[serde(serialize_with = "opt_time")]
    pub newest_base: Option<SystemTime>,
    pub base_backups: usize,
    pub wal_groups: usize,
    /// Segments missing from the archive after the oldest base backup's
    /// start, oldest first. Moments after a gap are restorable only from
    /// a base backup taken after it (`resumes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
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

/// How far a restore from `base` can go: to the first gap after its
/// start (never less than its own end: the tar holds the WAL up to
/// there), else to the newest archived segment. The gap, if one stops it.
fn reach(a: &Archive, base: &Base) -> (SystemTime, Option<Gap>) {
    let end = a.newest().map_or(base.stop, |n| n.max(base.stop));
    if a.is_empty() {
        return (base.stop, None);
    }
    // Where its WAL starts is unknown only when it recorded no start
    // segment and nothing was archived after it began (by the archive's
    // clock): no gap can be told, and the archive's end is the answer.
    let Some(start) = base_start(a, &base.snap) else {
        return (end, None);
    };
    let first = a
        .missing(Some(start))
        .iter()
        .map(|m| a.gap(m))
        .min_by_key(|g| g.reachable_until);
    match first {
        Some(g) => (
            g.reachable_until.unwrap_or(base.stop).max(base.stop),
            Some(g),
        ),
        None => (end, None),
    }
}

/// The window of `service`; `spooled` is when the newest segment still
/// in the local spool arrived, if any (it is restorable here too, unless
/// a gap stops the log before it).
pub fn window(snaps: &[Snapshot], service: &str, spooled: Option<SystemTime>) -> Window {
    let bases = bases(snaps, service);
    let a = Archive::of(snaps, service);
    let newest_base = bases.last().map(|b| b.stop);
    let reaches: Vec<(SystemTime, Option<Gap>)> = bases.iter().map(|b| reach(&a, b)).collect();
    let cut = reaches.last().is_some_and(|(_, g)| g.is_some());
    let reached = reaches.iter().map(|(t, _)| *t).max();
    let newest = match bases.is_empty() {
        // No base backup: nothing is restorable, but say how far the log goes.
        true => [a.newest(), spooled].into_iter().flatten().max(),
        false => [reached, spooled.filter(|_| !cut), newest_base]
            .into_iter()
            .flatten()
            .max(),
    };
    let gaps = bases
        .first()
        .and_then(|oldest| base_start(&a, &oldest.snap))
        .map(|start| {
            a.missing(Some(start))
                .iter()
                .map(|m| {
                    let mut g = a.gap(m);
                    // The first base backup whose WAL starts after it.
                    g.resumes = bases
                        .iter()
                        .filter(|b| base_start(&a, &b.snap).is_some_and(|s| s > m.last))
                        .map(|b| b.stop)
                        .min();
                    g
                })
                .collect()
        })
        .unwrap_or_default();
    Window {
        oldest: bases.first().map(|b| b.stop),
        newest,
        newest_base,
        base_backups: bases.len(),
        wal_groups: groups(snaps, service).len(),
        gaps,
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

/// The base backup to start from for `moment`, or why there is none:
/// a moment outside the window, or past a gap in the WAL after the base
/// backup it would start from (named, with the last moment reachable).
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
            let chosen = bases.iter().rev().find(|b| b.stop <= *t);
            if let Some(b) = chosen {
                let a = Archive::of(snaps, service);
                if let (until, Some(gap)) = reach(&a, b) {
                    if *t > until {
                        bail!(
                            "{service} cannot be restored to {}: WAL segment {} is missing from the archive{}, so replay from base backup {} stops before it; the last moment that can be reached is {} (UTC){}. Restore to that moment or earlier, or find the segment (the database host's pg_wal or spool) and push it with `lifeboat wal-push`; take a base backup (`lifeboat backup {service}`) so later moments are restorable again",
                            show(*t),
                            gap.missing,
                            match gap.missing_count {
                                1 => String::new(),
                                n => format!(" (with {} more, up to {})", n - 1, gap.missing_last),
                            },
                            b.snap.short_id(),
                            show(until),
                            gap.resumes
                                .filter(|r| r > t)
                                .map(|r| format!("; moments from {} (UTC) on are restorable again", show(r)))
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            if *t > newest {
                bail!(
                    "{service} cannot be restored to {}: the archived WAL only reaches {}; restorable window: {window}. Run `lifeboat wal-flush` on the database host if segments are waiting in its spool",
                    show(*t),
                    show(newest)
                );
            }
            chosen
        }
    };
    chosen.cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "{service}: no base backup ends before that moment; restorable window: {window}"
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::repo::snapshot::{Facts, SourceRecord, Stats};
    use std::time::{Duration, UNIX_EPOCH};

    pub fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn fmt(t: SystemTime) -> String {
        humantime::format_rfc3339_micros(t).to_string()
    }

    fn snap(
        id: &str,
        service: &str,
        kind: &str,
        t: u64,
        notes: &[(&str, String)],
        files: &[String],
    ) -> Snapshot {
        let mut facts = Facts::default();
        for (k, v) in notes {
            facts.notes.insert(k.to_string(), v.clone());
        }
        Snapshot {
            id: id.to_string(),
            version: 1,
            time: humantime::format_rfc3339_nanos(at(t)).to_string(),
            host: "h".into(),
            service: service.into(),
            paths: Vec::new(),
            tree: Vec::new(),
            stats: Stats::default(),
            program: String::new(),
            sources: vec![SourceRecord {
                name: "cluster".into(),
                kind: kind.into(),
                files: files.to_vec(),
                facts,
            }],
            origin: None,
            tags: Vec::new(),
            repaired: Vec::new(),
        }
    }

    /// A base backup at `t` whose WAL starts in segment `seg` (timeline 1).
    pub fn base(id: &str, t: u64, seg: u64) -> Snapshot {
        snap(
            id,
            "db",
            "postgres-cluster",
            t,
            &[
                ("start_time", fmt(at(t))),
                ("stop_time", fmt(at(t + 1))),
                ("start_segment", format!("00000001000000000000{seg:04X}")),
            ],
            &[],
        )
    }

    /// A group at `t` holding segments `segs` (timeline 1, 16 MiB).
    pub fn group(id: &str, t: u64, segs: &[u64]) -> Snapshot {
        let names: Vec<String> = segs
            .iter()
            .map(|s| format!("00000001{:08X}{:08X}", s / 256, s % 256))
            .collect();
        snap(
            id,
            "db+wal",
            "postgres-wal",
            t,
            &[
                ("oldest_pushed", fmt(at(t))),
                ("newest_pushed", fmt(at(t + 1))),
                ("segment_size", (16u64 << 20).to_string()),
            ],
            &names
                .iter()
                .map(|n| format!(".lifeboat/wal/{n}"))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_gap_ends_the_window_and_a_restore_past_it_is_refused() {
        let snaps = vec![
            base("b1", 0, 2),
            group("g1", 10, &[2, 3]),
            group("g2", 20, &[4]),
            group("g4", 40, &[6, 7]),
        ];
        let w = window(&snaps, "db", None);
        assert_eq!(w.gaps.len(), 1);
        let g = &w.gaps[0];
        assert_eq!(g.missing, "000000010000000000000005");
        assert_eq!(g.missing_count, 1);
        assert_eq!(g.reachable_until, Some(at(21)), "g2's newest push");
        assert_eq!(g.resumes, None);
        assert_eq!(w.newest, Some(at(21)), "the window ends before the gap");
        // Before the gap: fine. Past it: refused, naming the segment.
        assert!(pick(&snaps, "db", &Moment::At(at(15)), &w).is_ok());
        let e = pick(&snaps, "db", &Moment::At(at(30)), &w)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("000000010000000000000005") && e.contains("last moment that can be reached"),
            "{e}"
        );
        // Latest still picks a base backup: it replays up to the gap.
        assert!(pick(&snaps, "db", &Moment::Latest, &w).is_ok());
    }

    #[test]
    fn a_base_backup_after_a_gap_makes_later_moments_restorable_again() {
        let snaps = vec![
            base("b1", 0, 2),
            group("g1", 10, &[2, 3]),
            group("g3", 30, &[6]),
            base("b2", 35, 7),
            group("g4", 40, &[7, 8]),
        ];
        let w = window(&snaps, "db", None);
        assert_eq!(w.gaps.len(), 1);
        assert_eq!(w.gaps[0].missing, "000000010000000000000004");
        assert_eq!(w.gaps[0].missing_last, "000000010000000000000005");
        assert_eq!(w.gaps[0].resumes, Some(at(36)));
        assert_eq!(w.newest, Some(at(41)));
        assert!(pick(&snaps, "db", &Moment::At(at(40)), &w).is_ok());
        let e = pick(&snaps, "db", &Moment::At(at(20)), &w)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("000000010000000000000004") && e.contains("restorable again"),
            "{e}"
        );
    }

    #[test]
    fn no_gap_while_the_newest_segments_are_still_on_their_way() {
        let snaps = vec![base("b1", 0, 0xFE), group("g1", 10, &[0xFE, 0xFF, 0x100])];
        let w = window(&snaps, "db", Some(at(50)));
        assert!(w.gaps.is_empty(), "{:?}", w.gaps);
        assert_eq!(w.newest, Some(at(50)), "the spool counts on this host");
    }
}
