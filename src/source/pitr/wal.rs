//! WAL groups in the repository: one restore point of `SERVICE+wal` per
//! flush, holding the spooled segments as `.lifeboat/wal/NAME`
//! (`wal-fetch` finds them again through `fetch`).

use super::spool::Spooled;
use super::{wal_service, WAL_KIND};
use crate::repo::snapshot::Facts;
use crate::repo::Snapshot;
use crate::source::capture::{Artifact, Capture};
use anyhow::{Context, Result};
use std::time::SystemTime;

/// The source name of WAL groups; their files are `.lifeboat/wal/NAME`.
pub const SOURCE: &str = "wal";
/// When the newest segment of a group reached the spool.
pub const NEWEST_NOTE: &str = "newest_pushed";
pub const OLDEST_NOTE: &str = "oldest_pushed";

/// The segments of one flush, as a capture.
pub struct GroupCapture {
    segments: Vec<Spooled>,
}

impl GroupCapture {
    pub fn new(segments: Vec<Spooled>) -> Self {
        GroupCapture { segments }
    }
}

impl Capture for GroupCapture {
    fn name(&self) -> &str {
        SOURCE
    }

    fn kind(&self) -> &'static str {
        WAL_KIND
    }

    fn start(&mut self) -> Result<Vec<Artifact>> {
        self.segments
            .iter()
            .map(|s| {
                let f = std::fs::File::open(&s.path)
                    .with_context(|| format!("reading {}", s.path.display()))?;
                Ok(Artifact {
                    file: s.name.clone(),
                    // A spooled file never grows; read at most a segment's length.
                    reader: Box::new(std::io::Read::take(f, super::spool::MAX_SEGMENT)),
                    done: Box::new(|| Ok(())),
                })
            })
            .collect()
    }

    fn facts(self: Box<Self>) -> Result<Facts> {
        let mut f = Facts::default();
        let times = self.segments.iter().map(|s| s.pushed);
        let fmt = |t: SystemTime| humantime::format_rfc3339_micros(t).to_string();
        if let Some(t) = times.clone().max() {
            f.notes.insert(NEWEST_NOTE.into(), fmt(t));
        }
        if let Some(t) = times.min() {
            f.notes.insert(OLDEST_NOTE.into(), fmt(t));
        }
        // Full segments all have the cluster's segment size: what maps
        // names to numbers when looking for gaps (see `archive`).
        let size = self
            .segments
            .iter()
            .filter(|s| s.name.len() == 24)
            .filter_map(|s| std::fs::metadata(&s.path).ok().map(|m| m.len()))
            .max();
        if let Some(size) = size.filter(|n| n.is_power_of_two()) {
            f.notes
                .insert(super::archive::SEGMENT_SIZE_NOTE.into(), size.to_string());
        }
        if let (Some(a), Some(b)) = (self.segments.first(), self.segments.last()) {
            f.notes.insert("first".into(), a.name.clone());
            f.notes.insert("last".into(), b.name.clone());
        }
        Ok(f)
    }
}

/// The WAL groups of `service` among `snaps`, newest first.
pub fn groups<'a>(snaps: &'a [Snapshot], service: &str) -> Vec<&'a Snapshot> {
    let name = wal_service(service);
    let mut v: Vec<&Snapshot> = snaps
        .iter()
        .filter(|s| s.service == name && s.sources.iter().any(|r| r.kind == WAL_KIND))
        .collect();
    v.sort_by(|a, b| b.time.cmp(&a.time));
    v
}

pub use super::fetch::fetch;
