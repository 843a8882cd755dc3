//! WAL retention: WAL groups go with the base backups that need them.
//! A restore starts from a base backup and replays the archive from the
//! segment its WAL starts in, so once the oldest kept base backup is
//! known, every group holding only older segments is of no use: no
//! restore can replay it. Groups are never thinned by a calendar policy
//! (a missing group is a gap no restore gets past); `forget SERVICE`
//! decides them from its plan for the base backups, `prune` from the
//! base backups there are.

use super::retention::Decision;
use crate::repo::Snapshot;
use crate::source::pitr::archive::{history_timeline, note_time, Archive, START_SEGMENT_NOTE};
use crate::source::pitr::window::bases;
use std::time::{Duration, SystemTime};

/// For base backups that did not record their start segment, groups
/// archived up to this long before the backup began are kept too: the
/// base backup's clock and the database host's may differ.
const CLOCK_MARGIN: Duration = Duration::from_secs(3600);

/// What to do with each WAL group of `service`, newest first, when the
/// base backups `kept` says stay (the others are being forgotten).
pub fn plan(
    snaps: &[Snapshot],
    service: &str,
    kept: &dyn Fn(&Snapshot) -> bool,
) -> Vec<(Snapshot, Decision)> {
    let archive = Archive::of(snaps, service);
    let oldest = bases(snaps, service).into_iter().find(|b| kept(&b.snap));
    let by_id = |id: &str| snaps.iter().find(|s| s.id == id).cloned();
    let rule = oldest.as_ref().map(|b| {
        let start = b
            .snap
            .sources
            .iter()
            .find_map(|r| r.facts.notes.get(START_SEGMENT_NOTE))
            .and_then(|n| archive.layout.seg(n));
        (b.snap.short_id(), start, note_time(&b.snap, "start_time"))
    });
    let mut out: Vec<(Snapshot, Decision)> = archive
        .groups
        .iter()
        .filter_map(|g| {
            let reasons: Vec<String> = match &rule {
                None => vec![format!("no base backup of {service} is kept")],
                Some((base, Some(start), _)) => {
                    let mut r = Vec::new();
                    if g.names.iter().any(|n| history_timeline(n).is_some()) {
                        r.push("timeline history".to_string());
                    }
                    if let Some(n) = g
                        .names
                        .iter()
                        .filter(|n| archive.layout.seg(n).is_some_and(|s| s >= *start))
                        .min()
                    {
                        r.push(format!("WAL base backup {base} replays (from {n})"));
                    }
                    if !g.names.iter().any(|n| archive.layout.seg(n).is_some()) && r.is_empty() {
                        r.push("holds no WAL segment lifeboat can place".to_string());
                    }
                    r
                }
                Some((base, None, Some(began))) => {
                    let since = began
                        .checked_sub(CLOCK_MARGIN)
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    match g.newest.or(g.oldest) {
                        Some(t) if t < since => Vec::new(),
                        _ => vec![format!(
                            "archived after base backup {base} began (it recorded no start segment)"
                        )],
                    }
                }
                Some((base, None, None)) => {
                    vec![format!(
                        "base backup {base} does not say where its WAL starts"
                    )]
                }
            };
            Some((
                by_id(&g.id)?,
                Decision {
                    id: g.id.clone(),
                    keep: !reasons.is_empty(),
                    reasons,
                },
            ))
        })
        .collect();
    out.reverse();
    out
}

/// The segment names a group holds, first and last, for a person.
pub fn span(g: &Snapshot) -> String {
    let notes = g.sources.iter().find_map(|r| {
        let n = &r.facts.notes;
        Some((n.get("first")?, n.get("last")?))
    });
    match notes {
        Some((a, b)) if a == b => a.clone(),
        Some((a, b)) => format!("{a}..{b}"),
        None => "WAL".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::plan;
    use crate::source::pitr::window::tests::{base, group};

    fn kept(snaps: &[crate::repo::Snapshot], keep: &[&str]) -> Vec<String> {
        plan(snaps, "db", &|s| keep.contains(&s.id.as_str()))
            .into_iter()
            .filter(|(_, d)| d.keep)
            .map(|(s, _)| s.id)
            .collect()
    }

    #[test]
    fn groups_before_the_oldest_kept_base_backup_go() {
        let snaps = vec![
            base("b1", 0, 2),
            group("g1", 10, &[2, 3]),
            group("g2", 20, &[4, 5]),
            base("b2", 25, 5),
            group("g3", 30, &[6]),
        ];
        // b2's WAL starts in segment 5, which g2 holds.
        assert_eq!(kept(&snaps, &["b2"]), ["g3", "g2"]);
        assert_eq!(kept(&snaps, &["b1", "b2"]), ["g3", "g2", "g1"]);
        // No base backup kept: nothing of the log is judged useless.
        assert_eq!(kept(&snaps, &[]), ["g3", "g2", "g1"]);
    }
}
