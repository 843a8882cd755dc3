//! Snapshot summaries: one small sealed object per restore point, readable
//! with the metadata identity alone so listing never touches packs.

use super::ChunkId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::SystemTime;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Sum of file sizes in the snapshot.
    pub bytes: u64,
    /// Files taken from the files cache without being read.
    pub files_unchanged: u64,
    /// Bytes newly stored in the repository (after dedup and compression).
    pub bytes_added: u64,
    pub chunks_added: u64,
    pub duration_ms: u64,
    /// Entries skipped with a warning (unreadable files, device nodes).
    pub skipped: u64,
    /// Of those, entries that could not be read (a file, a symlink, a
    /// directory's listing): the restore point is incomplete when this is
    /// not zero. Sockets, FIFOs and devices are skipped but not counted.
    pub unreadable: u64,
    /// The first [`MAX_UNREADABLE_LISTED`] of them, as `PATH: why`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_paths: Vec<String>,
}

/// How many unreadable entries a restore point names; the count is exact.
pub const MAX_UNREADABLE_LISTED: usize = 100;

impl Stats {
    /// True when something that should have been backed up could not be
    /// read: the restore point exists but lacks it.
    pub fn incomplete(&self) -> bool {
        self.unreadable > 0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The object's name; not stored inside it.
    #[serde(skip)]
    pub id: String,
    pub version: u32,
    /// RFC 3339, UTC, nanoseconds.
    pub time: String,
    pub host: String,
    pub service: String,
    pub paths: Vec<String>,
    /// The chunks of the tree stream, in order.
    pub tree: Vec<ChunkId>,
    pub stats: Stats,
    pub program: String,
    /// What each database, stream or image source stored and what a later
    /// check compares against. Files sources have no record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceRecord>,
    /// For a copy made by `lifeboat copy`: the id of the restore point in
    /// the repository where it was made, so copies are never made twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Labels the admin gave (`backup --tag`, `lifeboat tag`), sorted and
    /// unique; see [`validate_tag`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// What `lifeboat repair snapshots` left out of this restore point
    /// because the repository had lost it, one note per repair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<Repaired>,
}

/// One repair of a restore point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Repaired {
    pub time: String,
    /// The id of the restore point it replaced.
    pub original: String,
    /// How many files were left out.
    pub dropped_files: u64,
    /// Their paths (the first [`Repaired::MAX_LISTED`]).
    pub dropped: Vec<String>,
}

impl Repaired {
    /// Keeps a summary small however much was lost.
    pub const MAX_LISTED: usize = 1000;
}

/// One streamed source in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceRecord {
    /// The source's name in the service's config.
    pub name: String,
    pub kind: String,
    /// Its files in the snapshot's tree, in the order they were stored.
    pub files: Vec<String>,
    pub facts: Facts,
}

impl SourceRecord {
    /// Its file whose name ends with `ending` ("" for the first), or an
    /// error naming what is missing (`what`: "SQL dump", "RDB file").
    pub fn file(&self, ending: &str, what: &str) -> anyhow::Result<&str> {
        self.files
            .iter()
            .find(|f| f.ends_with(ending))
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("the restore point holds no {what} for `{}`", self.name))
    }
}

/// What a source looked like when it was backed up, recorded so a restore
/// (or a drill) can be checked at the application level.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Facts {
    /// Server or tool version, e.g. "PostgreSQL 15.4".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Rows per table (databases) or keys per database (Redis).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    /// A hash of the schema: tables, columns and their types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Counts may legitimately differ from a restore (the server was
    /// being written while they were taken).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub approximate: bool,
    /// Anything else worth showing (format, image size).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, String>,
    /// What a restore must bring back exactly beyond tables and rows,
    /// name → what identifies it: `function public.f(integer)` → a hash
    /// of its definition, `matview public.m` → `populated`. Empty in
    /// restore points made before it was recorded: then not compared.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, String>,
    /// Values that only grow (sequences), name → the value when the backup
    /// began; a restored copy must hold at least as much.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub minimums: BTreeMap<String, i64>,
}

impl Facts {
    /// How `found` (read from a restored copy) differs from what was recorded.
    pub fn differences(&self, found: &Facts) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(a), Some(b)) = (&self.schema, &found.schema) {
            if a != b {
                out.push(format!(
                    "schema differs (recorded {}, restored {})",
                    short(a),
                    short(b)
                ));
            }
        }
        for (name, want) in &self.counts {
            match found.counts.get(name) {
                None => out.push(format!("{name}: missing after restore (had {want})")),
                Some(got) if got != want => {
                    out.push(format!("{name}: {got} after restore, {want} recorded"))
                }
                Some(_) => {}
            }
        }
        for name in found.counts.keys() {
            if !self.counts.contains_key(name) {
                out.push(format!(
                    "{name}: not in the backup but present after restore"
                ));
            }
        }
        if !self.objects.is_empty() {
            for (name, want) in &self.objects {
                match found.objects.get(name) {
                    None => out.push(format!("{name}: missing after restore")),
                    Some(got) if got != want => {
                        out.push(format!("{name}: {got} after restore, {want} recorded"))
                    }
                    Some(_) => {}
                }
            }
            for name in found.objects.keys() {
                if !self.objects.contains_key(name) {
                    out.push(format!(
                        "{name}: not in the backup but present after restore"
                    ));
                }
            }
        }
        for (name, want) in &self.minimums {
            match found.minimums.get(name) {
                Some(got) if got >= want => {}
                Some(got) => out.push(format!(
                    "{name}: {got} after restore, at least {want} recorded"
                )),
                None => out.push(format!(
                    "{name}: not set after restore (at least {want} recorded)"
                )),
            }
        }
        out
    }
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

impl Snapshot {
    pub fn short_id(&self) -> String {
        self.id.chars().take(8).collect()
    }

    pub fn system_time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.time).ok()
    }
}

/// A tag is one word a person can type and a filter can match: no
/// whitespace or control characters (they would not survive a shell or a
/// terminal), a size that keeps snapshot summaries small.
pub fn validate_tag(tag: &str) -> anyhow::Result<()> {
    if tag.is_empty() {
        anyhow::bail!("a tag cannot be empty");
    }
    if tag.len() > MAX_TAG_LEN {
        anyhow::bail!("the tag {tag:?} is longer than {MAX_TAG_LEN} bytes");
    }
    if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("the tag {tag:?} contains whitespace or a control character");
    }
    Ok(())
}

pub const MAX_TAG_LEN: usize = 64;

/// `tags` checked, sorted and without repeats, as a snapshot stores them.
pub fn tag_set(tags: &[String]) -> anyhow::Result<Vec<String>> {
    for t in tags {
        validate_tag(t)?;
    }
    let mut out = tags.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Which restore points a command looks at. Every field narrows: a
/// restore point must match all that are given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub service: Option<String>,
    pub host: Option<String>,
    /// Any one group matches when the restore point has every tag in it
    /// (restic's `--tag a,b --tag c`: a and b, or c).
    pub tags: Vec<Vec<String>>,
    /// Only the newest N of each service.
    pub latest: Option<usize>,
}

impl Filter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.service.as_ref().is_none_or(|v| &s.service == v)
            && self.host.as_ref().is_none_or(|v| &s.host == v)
            && (self.tags.is_empty()
                || self
                    .tags
                    .iter()
                    .any(|group| group.iter().all(|t| s.tags.contains(t))))
    }

    /// The restore points that pass, oldest first (as `snaps` must be).
    pub fn apply(&self, snaps: Vec<Snapshot>) -> Vec<Snapshot> {
        let mut kept: Vec<Snapshot> = snaps.into_iter().filter(|s| self.matches(s)).collect();
        if let Some(n) = self.latest {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            let mut keep = vec![false; kept.len()];
            for (i, s) in kept.iter().enumerate().rev() {
                let count = seen.entry(s.service.clone()).or_default();
                if *count < n {
                    *count += 1;
                    keep[i] = true;
                }
            }
            let mut flags = keep.into_iter();
            kept.retain(|_| flags.next().unwrap_or(false));
        }
        kept
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    fn snap(id: &str, service: &str, host: &str, tags: &[&str]) -> Snapshot {
        Snapshot {
            id: id.into(),
            version: 1,
            time: format!("2026-01-01T00:00:0{id}Z"),
            host: host.into(),
            service: service.into(),
            paths: vec![],
            tree: vec![],
            stats: Stats::default(),
            program: String::new(),
            sources: vec![],
            origin: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            repaired: vec![],
        }
    }

    fn ids(f: &Filter, snaps: &[Snapshot]) -> Vec<String> {
        f.apply(snaps.to_vec()).into_iter().map(|s| s.id).collect()
    }

    #[test]
    fn filters_narrow_and_latest_counts_per_service() {
        let all = [
            snap("1", "a", "h1", &["x"]),
            snap("2", "b", "h2", &["x", "y"]),
            snap("3", "a", "h1", &["y"]),
            snap("4", "a", "h2", &[]),
        ];
        assert_eq!(ids(&Filter::default(), &all), ["1", "2", "3", "4"]);
        let latest = Filter {
            latest: Some(1),
            ..Default::default()
        };
        assert_eq!(ids(&latest, &all), ["2", "4"]);
        let f = Filter {
            service: Some("a".into()),
            host: Some("h1".into()),
            latest: Some(1),
            ..Default::default()
        };
        assert_eq!(
            ids(&f, &all),
            ["3"],
            "latest applies after the other filters"
        );
        let both = Filter {
            tags: vec![vec!["x".into(), "y".into()]],
            ..Default::default()
        };
        assert_eq!(ids(&both, &all), ["2"]);
        let either = Filter {
            tags: vec![vec!["x".into()], vec!["y".into()]],
            ..Default::default()
        };
        assert_eq!(ids(&either, &all), ["1", "2", "3"]);
    }

    #[test]
    fn tags_are_checked_sorted_and_unique() {
        assert!(validate_tag("pre-upgrade_2.1").is_ok());
        assert!(validate_tag("").is_err());
        assert!(validate_tag("a b").is_err());
        assert!(validate_tag("a\u{1b}[31m").is_err());
        assert!(validate_tag(&"x".repeat(64)).is_ok());
        assert!(validate_tag(&"x".repeat(65)).is_err());
        let t = tag_set(&["b".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(t, ["a", "b"]);
    }
}
