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

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}
