//! `wal-fetch` made cheap. PostgreSQL runs restore_command once per
//! segment, so a recovery through a day of WAL is thousands of calls;
//! each used to decrypt every restore point summary and load the whole
//! repository index. Now a call finds the group from the summary cache
//! ([`Repository::list_snapshots_cached`]) and reads the segment through
//! a small local index of where the chunks of the service's WAL groups
//! are: the locations of the requested group's and the following
//! groups' trees and segments, written whenever the full index had to
//! be loaded.
//!
//! That location cache needs no seal or MAC: what a chunk is comes from
//! the summary (its tree's chunk ids) and the tree, and every chunk read
//! is checked against its id, the whole segment against its hash. A
//! stale or forged location can only make a read fail, and a failed read
//! through the cache is retried with the full index.

use super::wal::{groups, SOURCE};
use crate::progress::Reporter;
use crate::repo::index::{self, Index, PackEntry};
use crate::repo::{Repository, Snapshot};
use crate::source::capture::artifact_path;
use crate::source::Streams;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"lifeboat-wal-fetch-cache-1\n";
/// How many groups from the requested one on a rebuild covers: recovery
/// asks for segments in order, so these are the next ones it needs.
const AHEAD: usize = 256;
/// A cache file bigger than this is not read.
const MAX_FILE: u64 = 256 << 20;

/// Writes segment `name` of `service` from the repository to `to`
/// (through a temporary file, renamed when complete). Ok(false) when the
/// repository does not hold it: PostgreSQL asks for segments past the
/// end of the archive, and that is how recovery learns where it ends.
/// `cache_dir` is where the location cache lives (None: not used).
pub fn fetch(
    repo: &Repository,
    cache_dir: Option<&Path>,
    service: &str,
    name: &str,
    to: &Path,
) -> Result<bool> {
    super::check_wal_name(name)?;
    let (snaps, _) = repo.list_snapshots_cached()?;
    let path = artifact_path(SOURCE, name);
    // Oldest first, so the groups after the one asked for are the ones
    // recovery asks for next.
    let mut mine = groups(&snaps, service);
    mine.reverse();
    let Some(at) = mine
        .iter()
        .position(|s| s.sources.iter().any(|r| r.files.iter().any(|f| f == &path)))
    else {
        return Ok(false);
    };
    let snap = mine[at];
    let cache = cache_dir.and_then(|d| cache_file(d, repo, service));
    if let Some(small) = cache.as_deref().and_then(load) {
        match write(repo, &small, snap, &path, to) {
            Ok(()) => return Ok(true),
            Err(e) => tracing::info!(
                "the wal-fetch location cache did not serve {name}: {e:#}; loading the repository index"
            ),
        }
    }
    let (full, _) = repo.load_index()?;
    write(repo, &full, snap, &path, to)?;
    if let Some(file) = cache {
        let ahead: Vec<&Snapshot> = mine[at..].iter().take(AHEAD).copied().collect();
        if let Err(e) = save(repo, &full, &ahead, &file) {
            // Only slower next time.
            tracing::info!("not writing the wal-fetch cache {}: {e:#}", file.display());
        }
    }
    Ok(true)
}

/// Streams `path` of group `snap` into `to`, reading through `index`.
fn write(repo: &Repository, index: &Index, snap: &Snapshot, path: &str, to: &Path) -> Result<()> {
    let tree = repo.read_tree(index, snap)?;
    let reporter = Reporter::silent();
    let streams = Streams::new(repo, index, &tree, &reporter);
    let mut reader = streams.open(path)?;
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    std::io::copy(&mut reader, &mut tmp)
        .with_context(|| format!("reading {path} from restore point {}", snap.short_id()))?;
    tmp.flush()?;
    tmp.persist(to)
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(())
}

/// The cache of `service`'s chunk locations in `repo`.
fn cache_file(cache_dir: &Path, repo: &Repository, service: &str) -> Option<PathBuf> {
    let snaps = crate::repo::snapshot_cache::file_for(cache_dir, &repo.config().id)?;
    // Service names are config input: the file is named by their hash.
    let h = blake3::hash(service.as_bytes()).to_hex();
    Some(snaps.with_file_name(format!("wal-fetch-{}.idx", &h[..16])))
}

fn load(path: &Path) -> Option<Index> {
    let read = || -> Result<Index> {
        let len = std::fs::metadata(path)?.len();
        if len > MAX_FILE {
            bail!("{len} bytes is too big");
        }
        let b = std::fs::read(path)?;
        let Some(body) = b.strip_prefix(MAGIC) else {
            bail!("not a wal-fetch cache");
        };
        Ok(Index::build(index::decode_index_file(body)?))
    };
    match read() {
        Ok(i) => Some(i),
        Err(e) => {
            if path.exists() {
                tracing::info!("ignoring the wal-fetch cache {}: {e:#}", path.display());
            }
            None
        }
    }
}

/// Writes the locations of every chunk of `groups` (their trees and
/// WAL files) as `full` has them.
fn save(repo: &Repository, full: &Index, groups: &[&Snapshot], path: &Path) -> Result<()> {
    let prefix = artifact_path(SOURCE, "");
    let mut want = BTreeSet::new();
    for g in groups {
        want.extend(g.tree.iter().copied());
        for n in repo.read_tree(full, g)? {
            if n.path.starts_with(&prefix) {
                want.extend(n.chunks);
            }
        }
    }
    let mut packs: BTreeMap<u32, Vec<PackEntry>> = BTreeMap::new();
    for id in want {
        let Some(loc) = full.get(&id) else { continue };
        packs.entry(loc.pack).or_default().push(PackEntry {
            id,
            offset: loc.offset,
            stored_len: loc.stored_len,
            raw_len: loc.raw_len,
            compressed: loc.compressed,
        });
    }
    let files: Vec<_> = packs
        .into_iter()
        .map(|(p, e)| (full.pack_id(p), e))
        .collect();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(MAGIC)?;
    tmp.write_all(&index::encode_index_file(&files))?;
    tmp.persist(path)?;
    Ok(())
}
