//! The WAL archive as the restore point summaries describe it: which
//! segments each group holds (its file list), where a base backup's WAL
//! starts, and the segments missing between them. Nothing here reads a
//! tree or a pack, so health, the window and retention stay cheap.
//!
//! A segment is named `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the
//! segment number split into a "log" and a segment within it; with
//! 16 MiB segments YY runs 00..FF, with 1 MiB segments 000..FFF. Groups
//! record the segment size (`segment_size`); for groups written before
//! that, it is inferred from the names.

use super::wal::{groups, NEWEST_NOTE, OLDEST_NOTE, SOURCE};
use crate::repo::Snapshot;
use crate::source::capture::artifact_path;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

/// The note on a group: the size of its segments in bytes.
pub const SEGMENT_SIZE_NOTE: &str = "segment_size";
/// The note on a base backup: the segment its WAL starts in (from the
/// `backup_label` at the head of its tar).
pub const START_SEGMENT_NOTE: &str = "start_segment";
/// PostgreSQL's default: 16 MiB.
const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

/// A segment: timeline and number. Ordered by timeline, then number,
/// which is the order of their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seg {
    pub tl: u32,
    pub no: u64,
}

fn hex32(s: &str) -> Option<u64> {
    u32::from_str_radix(s, 16).ok().map(u64::from)
}

/// The three fields of a 24-hex-digit name (a `.partial` counts as its
/// segment; a `.backup` names the segment its backup started in).
fn fields(name: &str) -> Option<(u32, u64, u64)> {
    let base = name
        .strip_suffix(".partial")
        .or_else(|| name.strip_suffix(".backup").and_then(|n| n.get(..24)))
        .unwrap_or(name);
    if base.len() != 24 || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u32::from_str_radix(&base[..8], 16).ok()?,
        hex32(&base[8..16])?,
        hex32(&base[16..24])?,
    ))
}

/// The timeline a `.history` file describes.
pub fn history_timeline(name: &str) -> Option<u32> {
    let t = name.strip_suffix(".history")?;
    (t.len() == 8)
        .then(|| u32::from_str_radix(t, 16).ok())
        .flatten()
}

/// How names map to numbers: segments per "log" (2^32 bytes of WAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    per_log: u64,
}

impl Layout {
    pub fn of_size(segment_size: u64) -> Layout {
        // PostgreSQL allows powers of two from 1 MiB to 1 GiB.
        let size = segment_size.clamp(1 << 20, 1 << 30).next_power_of_two();
        Layout {
            per_log: (1u64 << 32) / size,
        }
    }

    pub fn seg(&self, name: &str) -> Option<Seg> {
        let (tl, log, seg) = fields(name)?;
        (seg < self.per_log).then_some(Seg {
            tl,
            no: log * self.per_log + seg,
        })
    }

    pub fn name(&self, s: Seg) -> String {
        format!(
            "{:08X}{:08X}{:08X}",
            s.tl,
            s.no / self.per_log,
            s.no % self.per_log
        )
    }
}

/// One group as the archive sees it.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub id: String,
    pub time: String,
    pub oldest: Option<SystemTime>,
    pub newest: Option<SystemTime>,
    /// The WAL file names it holds.
    pub names: Vec<String>,
}

/// What the archive holds: every segment, the group it is in, and the
/// timelines whose history is archived.
#[derive(Debug, Clone)]
pub struct Archive {
    pub layout: Layout,
    pub groups: Vec<GroupView>,
    /// Per timeline: segment number → the group holding it.
    segs: BTreeMap<u32, BTreeMap<u64, usize>>,
    pub histories: BTreeSet<u32>,
}

pub fn note_time(s: &Snapshot, note: &str) -> Option<SystemTime> {
    s.sources
        .iter()
        .find_map(|r| r.facts.notes.get(note))
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
}

fn note<'a>(s: &'a Snapshot, note: &str) -> Option<&'a str> {
    s.sources
        .iter()
        .find_map(|r| r.facts.notes.get(note))
        .map(String::as_str)
}

/// A gap: segments missing between archived ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub first: Seg,
    pub last: Seg,
    /// The archived segment just before it, when there is one.
    pub after: Option<Seg>,
}

impl Archive {
    /// The archive of `service` among `snaps` (its WAL groups).
    pub fn of(snaps: &[Snapshot], service: &str) -> Archive {
        let prefix = artifact_path(SOURCE, "");
        let mut views: Vec<GroupView> = groups(snaps, service)
            .into_iter()
            .map(|g| GroupView {
                id: g.id.clone(),
                time: g.time.clone(),
                oldest: note_time(g, OLDEST_NOTE),
                newest: note_time(g, NEWEST_NOTE),
                names: g
                    .sources
                    .iter()
                    .filter(|r| r.kind == super::WAL_KIND)
                    .flat_map(|r| r.files.iter())
                    .filter_map(|f| f.strip_prefix(&prefix).map(str::to_string))
                    .collect(),
            })
            .collect();
        views.reverse(); // oldest first
        let recorded = groups(snaps, service)
            .iter()
            .filter_map(|g| note(g, SEGMENT_SIZE_NOTE)?.parse::<u64>().ok())
            .max();
        let layout = match recorded {
            Some(size) => Layout::of_size(size),
            None => infer(&views),
        };
        let mut segs: BTreeMap<u32, BTreeMap<u64, usize>> = BTreeMap::new();
        let mut histories = BTreeSet::new();
        for (i, g) in views.iter().enumerate() {
            for n in &g.names {
                if let Some(tl) = history_timeline(n) {
                    histories.insert(tl);
                } else if !n.ends_with(".backup") {
                    if let Some(s) = layout.seg(n) {
                        segs.entry(s.tl).or_default().insert(s.no, i);
                    }
                }
            }
        }
        Archive {
            layout,
            groups: views,
            segs,
            histories,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// The first segment of the oldest group whose newest segment arrived
    /// at or after `t`: where the WAL of a base backup that began at `t`
    /// starts at the latest (for base backups that did not record it).
    pub fn first_after(&self, t: SystemTime) -> Option<Seg> {
        let g = self
            .groups
            .iter()
            .position(|g| g.newest.or(g.oldest).is_some_and(|n| n >= t))?;
        self.groups[g]
            .names
            .iter()
            .filter_map(|n| self.layout.seg(n))
            .min()
    }

    /// When the WAL up to the end of `s` had surely reached the archive:
    /// its group's newest push if it is the group's last segment, else
    /// the group's oldest (the group records no time per segment).
    pub fn time_of(&self, s: Seg) -> Option<SystemTime> {
        let g = &self.groups[*self.segs.get(&s.tl)?.get(&s.no)?];
        let last = g.names.iter().filter_map(|n| self.layout.seg(n)).max();
        match last == Some(s) {
            true => g.newest.or(g.oldest),
            false => g.oldest,
        }
    }

    /// When the newest segment reached the archive.
    pub fn newest(&self) -> Option<SystemTime> {
        self.groups
            .iter()
            .filter_map(|g| g.newest.or(g.oldest))
            .max()
    }

    /// The segments missing between `from` (where a base backup's WAL
    /// starts; None: the oldest archived) and the newest archived one, in
    /// order. Segments past the newest archived are not missing, only not
    /// archived yet. A timeline switch is not a gap: a new timeline
    /// starts at the segment where it branched off, and what its parent
    /// wrote before that must be there (on any older timeline, since the
    /// history files' contents are not in the summaries).
    pub fn missing(&self, from: Option<Seg>) -> Vec<Missing> {
        let Some(from) = from.or_else(|| {
            let (tl, m) = self.segs.iter().next()?;
            Some(Seg {
                tl: *tl,
                no: *m.keys().next()?,
            })
        }) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // The highest segment reached on each timeline seen so far.
        let mut reached: BTreeMap<u32, u64> = BTreeMap::new();
        for (&tl, present) in self.segs.range(from.tl..) {
            let nos: Vec<u64> = present.range(from.no..).map(|(n, _)| *n).collect();
            let (Some(&min), Some(&max)) = (nos.first(), nos.last()) else {
                continue;
            };
            let mut cursor = if tl == from.tl {
                from.no
            } else {
                // Where this timeline branched off: its parent reached
                // the segment before (or the base starts here).
                // A timeline that began at or before the base backup's
                // start branched off elsewhere: nothing of it is needed.
                let began = present.keys().next().copied().unwrap_or(min);
                let parent = reached.range(..tl).max_by_key(|(_, m)| **m);
                let covered = began <= from.no || parent.is_some_and(|(_, m)| *m + 1 >= min);
                if !covered {
                    let (ptl, after) = match parent {
                        Some((t, m)) => (*t, Some(*m)),
                        None => (from.tl, None),
                    };
                    let first = after.map_or(from.no, |m| m + 1);
                    out.push(Missing {
                        first: Seg { tl: ptl, no: first },
                        last: Seg {
                            tl: ptl,
                            no: min - 1,
                        },
                        after: after.map(|no| Seg { tl: ptl, no }),
                    });
                }
                min
            };
            for &n in &nos {
                if n > cursor {
                    out.push(Missing {
                        first: Seg { tl, no: cursor },
                        last: Seg { tl, no: n - 1 },
                        after: (cursor > from.no || tl != from.tl)
                            .then_some(Seg { tl, no: cursor - 1 }),
                    });
                }
                cursor = n + 1;
            }
            reached.insert(tl, max);
        }
        out
    }
}

/// Segments per log for groups that did not record their segment size:
/// the smallest power of two above every segment field seen (at least
/// 4, at most 4096: 1 GiB to 1 MiB segments).
fn infer(views: &[GroupView]) -> Layout {
    let max = views
        .iter()
        .flat_map(|g| g.names.iter())
        .filter_map(|n| fields(n).map(|(_, _, s)| s))
        .max();
    match max {
        // Nothing that tells; PostgreSQL's default.
        None => Layout::of_size(DEFAULT_SEGMENT_SIZE),
        Some(m) => {
            let per_log = (m + 1).next_power_of_two().clamp(4, 4096).max(
                // A young 16 MiB cluster has not passed seg 0x3F yet, and
                // 256 is the default: never infer fewer without evidence
                // of a log boundary.
                if views
                    .iter()
                    .flat_map(|g| &g.names)
                    .any(|n| fields(n).is_some_and(|(_, log, seg)| log > 0 && seg == 0))
                {
                    4
                } else {
                    256
                },
            );
            Layout { per_log }
        }
    }
}

/// A gap as the window, health and a refused restore show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gap {
    /// The first missing segment.
    pub missing: String,
    /// The last one (the same when one segment is missing).
    pub missing_last: String,
    pub missing_count: u64,
    /// The last moment a restore can reach before it.
    #[serde(serialize_with = "opt_time")]
    pub reachable_until: Option<SystemTime>,
    /// When the first base backup after it was complete: moments from
    /// then on are restorable again. None: nothing after the gap is.
    #[serde(serialize_with = "opt_time")]
    pub resumes: Option<SystemTime>,
}

pub fn opt_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_micros(*t).to_string()),
        None => s.serialize_none(),
    }
}

impl Archive {
    pub fn gap(&self, m: &Missing) -> Gap {
        Gap {
            missing: self.layout.name(m.first),
            missing_last: self.layout.name(m.last),
            missing_count: m.last.no.saturating_sub(m.first.no) + 1,
            reachable_until: m.after.and_then(|a| self.time_of(a)),
            resumes: None,
        }
    }
}

/// Where the WAL of base backup `base` starts: its recorded start
/// segment, else the first segment archived after it began.
pub fn base_start(archive: &Archive, base: &Snapshot) -> Option<Seg> {
    if let Some(s) = note(base, START_SEGMENT_NOTE).and_then(|n| archive.layout.seg(n)) {
        return Some(s);
    }
    note_time(base, "start_time").and_then(|t| archive.first_after(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(names: &[&[&str]], per_log: u64) -> Archive {
        let views: Vec<GroupView> = names
            .iter()
            .enumerate()
            .map(|(i, g)| GroupView {
                id: format!("g{i}"),
                time: String::new(),
                oldest: None,
                newest: None,
                names: g.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        let layout = Layout { per_log };
        let mut segs: BTreeMap<u32, BTreeMap<u64, usize>> = BTreeMap::new();
        let mut histories = BTreeSet::new();
        for (i, g) in views.iter().enumerate() {
            for n in &g.names {
                if let Some(t) = history_timeline(n) {
                    histories.insert(t);
                } else if let Some(s) = layout.seg(n) {
                    segs.entry(s.tl).or_default().insert(s.no, i);
                }
            }
        }
        Archive {
            layout,
            groups: views,
            segs,
            histories,
        }
    }

    fn names(a: &Archive, from: Option<&str>) -> Vec<(String, String)> {
        let from = from.and_then(|f| a.layout.seg(f));
        a.missing(from)
            .iter()
            .map(|m| (a.layout.name(m.first), a.layout.name(m.last)))
            .collect()
    }

    #[test]
    fn names_round_trip_across_a_log_boundary() {
        let l = Layout::of_size(16 << 20);
        let s = l.seg("0000000100000003000000FF").unwrap();
        assert_eq!(
            l.name(Seg {
                tl: 1,
                no: s.no + 1
            }),
            "000000010000000400000000"
        );
        let small = Layout::of_size(1 << 20);
        let s = small.seg("000000010000000000000FFF").unwrap();
        assert_eq!(
            small.name(Seg {
                tl: 1,
                no: s.no + 1
            }),
            "000000010000000100000000"
        );
        assert!(
            l.seg("000000010000000000000100").is_none(),
            "not a 16 MiB name"
        );
    }

    #[test]
    fn a_contiguous_archive_across_a_log_boundary_has_no_gap() {
        let a = archive(
            &[
                &["0000000100000000000000FE", "0000000100000000000000FF"],
                &["000000010000000100000000"],
            ],
            256,
        );
        assert!(names(&a, Some("0000000100000000000000FE")).is_empty());
    }

    #[test]
    fn a_missing_segment_is_named() {
        let a = archive(
            &[&["000000010000000000000003"], &["000000010000000000000006"]],
            256,
        );
        assert_eq!(
            names(&a, Some("000000010000000000000002")),
            [
                (
                    "000000010000000000000002".to_string(),
                    "000000010000000000000002".to_string()
                ),
                (
                    "000000010000000000000004".to_string(),
                    "000000010000000000000005".to_string()
                )
            ]
        );
        // Not yet archived is not missing.
        assert!(names(&a, Some("000000010000000000000006")).is_empty());
        assert!(names(&a, Some("000000010000000000000009")).is_empty());
    }

    #[test]
    fn a_timeline_switch_is_not_a_gap() {
        // Promoted in segment 5: timeline 1's last is a .partial, 2 starts at 5.
        let a = archive(
            &[
                &["000000010000000000000003", "000000010000000000000004"],
                &["000000010000000000000005.partial", "00000002.history"],
                &["000000020000000000000005", "000000020000000000000006"],
            ],
            256,
        );
        assert!(names(&a, Some("000000010000000000000003")).is_empty());
        // A restore to a moment: timeline 1 went on past the branch.
        let b = archive(
            &[
                &[
                    "000000010000000000000003",
                    "000000010000000000000004",
                    "000000010000000000000005",
                ],
                &[
                    "000000010000000000000006",
                    "00000002.history",
                    "000000020000000000000004",
                ],
            ],
            256,
        );
        assert!(names(&b, Some("000000010000000000000003")).is_empty());
        // The parent stopped short of the branch point: its segments are.
        let c = archive(
            &[&["000000010000000000000003"], &["000000020000000000000006"]],
            256,
        );
        assert_eq!(
            names(&c, Some("000000010000000000000003")),
            [(
                "000000010000000000000004".to_string(),
                "000000010000000000000005".to_string()
            )]
        );
    }

    #[test]
    fn segment_size_is_inferred_from_names_past_ff() {
        let v = vec![GroupView {
            id: "g".into(),
            time: String::new(),
            oldest: None,
            newest: None,
            names: vec!["000000010000000000000100".into()],
        }];
        assert_eq!(infer(&v).per_log, 512);
        assert_eq!(infer(&[]).per_log, 256);
    }
}
