//! Snapshot summaries: one small sealed object per restore point, readable
//! with the metadata identity alone so listing never touches packs.

use super::ChunkId;
use serde::{Deserialize, Serialize};
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
    /// For a copy made by `lifeboat copy`: the id of the restore point in
    /// the repository where it was made, so copies are never made twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
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
