//! WAL groups in the repository: one restore point of `SERVICE+wal` per
//! flush, holding the spooled segments as `.lifeboat/wal/NAME`, and
//! finding a segment again for `wal-fetch`.

use super::spool::Spooled;
use super::{wal_service, WAL_KIND};
use crate::progress::Reporter;
use crate::repo::snapshot::Facts;
use crate::repo::{Repository, Snapshot};
use crate::source::capture::{artifact_path, Artifact, Capture};
use crate::source::Streams;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
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

/// Writes segment `name` of `service` from the repository to `to`
/// (through a temporary file, renamed when complete). Ok(false) when the
/// repository does not hold it: PostgreSQL asks for segments past the
/// end of the archive, and that is how recovery learns where it ends.
pub fn fetch(repo: &Repository, service: &str, name: &str, to: &Path) -> Result<bool> {
    super::check_wal_name(name)?;
    let (snaps, _) = repo.list_snapshots()?;
    let path = artifact_path(SOURCE, name);
    let Some(snap) = groups(&snaps, service)
        .into_iter()
        .find(|s| s.sources.iter().any(|r| r.files.iter().any(|f| f == &path)))
    else {
        return Ok(false);
    };
    let (index, _) = repo.load_index()?;
    let tree = repo.read_tree(&index, snap)?;
    let reporter = Reporter::silent();
    let streams = Streams::new(repo, &index, &tree, &reporter);
    let mut reader = streams.open(&path)?;
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    std::io::copy(&mut reader, &mut tmp)
        .with_context(|| format!("reading {name} from restore point {}", snap.short_id()))?;
    tmp.flush()?;
    tmp.persist(to)
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(true)
}
