//! A local copy of the repository's decrypted restore point summaries, so
//! listing 50,000 of them costs one listing and one file read instead of
//! 50,000 GETs and decryptions.
//!
//! The copy is never the authority. Every use starts from a fresh listing
//! of `snapshots/`: an entry stands in for an object only while the object
//! has the same name, size and version (see [`Listed::version`]); anything
//! else is read from the repository again, and entries whose object is
//! gone are dropped. A cache file that is damaged, written for another
//! repository or key, or too big is ignored and rebuilt, never an error.
//!
//! The file is sealed with age to the repository's metadata recipient (the
//! same protection the summaries have in the repository, so a stolen cache
//! reveals nothing the repository does not) and carries a keyed BLAKE3 MAC
//! whose key is derived from the metadata identity: the recipient is
//! public, so sealing alone would let anyone who can write the cache
//! directory forge summaries.

use super::backend::Listed;
use super::{Damaged, Repository, Snapshot};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"lifeboat-snapshot-cache-1\n";
const MAC_CONTEXT: &str = "lifeboat 2026-12 snapshot cache MAC";
/// A cache file bigger than this is not read (a summary is well under
/// 10 KiB; a million of them compress to far less).
const MAX_FILE: u64 = 1 << 30;
/// Nor is more than this decompressed from it.
const MAX_PLAIN: u64 = 4 << 30;

#[derive(Serialize, Deserialize)]
struct Body {
    repository: String,
    entries: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    size: u64,
    version: String,
    snapshot: Snapshot,
}

/// Where the cache of repository `repo_id` lives under `cache_dir`, or
/// `None` for an id that is not a plain name (the config is outside input).
pub fn file_for(cache_dir: &Path, repo_id: &str) -> Option<PathBuf> {
    super::backend::valid_name(repo_id).ok()?;
    Some(cache_dir.join(repo_id).join("snapshots.cache"))
}

fn mac_key(repo: &Repository) -> [u8; 32] {
    use age::secrecy::ExposeSecret;
    let secret = repo.access().meta().to_string();
    blake3::derive_key(MAC_CONTEXT, secret.expose_secret().as_bytes())
}

fn mac(key: &[u8; 32], repo_id: &str, compressed: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&(repo_id.len() as u64).to_le_bytes());
    h.update(repo_id.as_bytes());
    h.update(compressed);
    h.finalize()
}

/// The entries of the cache file at `path`, by name; empty when there is
/// none or it cannot be trusted (the reason is logged, never returned).
fn load(repo: &Repository, path: &Path) -> HashMap<String, Entry> {
    match read(repo, path) {
        Ok(entries) => entries,
        Err(e) => {
            if path.exists() {
                tracing::info!(
                    "ignoring the restore point cache {}: {e:#}; it is rebuilt",
                    path.display()
                );
            }
            HashMap::new()
        }
    }
}

fn read(repo: &Repository, path: &Path) -> Result<HashMap<String, Entry>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut sealed = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut sealed)
        .with_context(|| format!("reading {}", path.display()))?;
    if sealed.len() as u64 > MAX_FILE {
        bail!("it is bigger than {MAX_FILE} bytes");
    }
    let plain = repo.open_meta(&sealed)?;
    let rest = plain
        .strip_prefix(MAGIC)
        .context("it is not a restore point cache")?;
    if rest.len() < 32 {
        bail!("it is cut short");
    }
    let (tag, compressed) = rest.split_at(32);
    let id = &repo.config().id;
    let want = mac(&mac_key(repo), id, compressed);
    // blake3::Hash compares in constant time.
    if blake3::Hash::from_bytes(tag.try_into().context("it is cut short")?) != want {
        bail!("it was written for another repository or key, or altered");
    }
    let mut json = Vec::new();
    zstd::stream::read::Decoder::new(compressed)?
        .take(MAX_PLAIN + 1)
        .read_to_end(&mut json)
        .context("decompressing it")?;
    if json.len() as u64 > MAX_PLAIN {
        bail!("it decompresses to more than {MAX_PLAIN} bytes");
    }
    let body: Body = serde_json::from_slice(&json).context("parsing it")?;
    if &body.repository != id {
        bail!("it belongs to repository {}", body.repository);
    }
    Ok(body
        .entries
        .into_iter()
        .map(|mut e| {
            e.snapshot.id = e.name.clone();
            (e.name.clone(), e)
        })
        .collect())
}

/// Writes the cache atomically: a temporary file in the same directory,
/// synced, then renamed over the old one.
fn save(repo: &Repository, path: &Path, entries: &[&Entry]) -> Result<()> {
    #[derive(Serialize)]
    struct BodyRef<'a> {
        repository: &'a str,
        entries: &'a [&'a Entry],
    }
    let id = &repo.config().id;
    let json = serde_json::to_vec(&BodyRef {
        repository: id,
        entries,
    })?;
    let compressed = zstd::bulk::compress(&json, 1)?;
    let mut plain = Vec::with_capacity(MAGIC.len() + 32 + compressed.len());
    plain.extend_from_slice(MAGIC);
    plain.extend_from_slice(mac(&mac_key(repo), id, &compressed).as_bytes());
    plain.extend_from_slice(&compressed);
    let sealed = repo.seal_meta(&plain)?;
    let dir = path.parent().context("the cache path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, &sealed)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

thread_local! {
    /// Summaries [`fetch_all`] was asked for on this thread (see [`fetched`]).
    static FETCHED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many restore point summaries listings on the calling thread have
/// read from the repository instead of the cache: a hit costs none. Per
/// thread, so a test (or a caller) sees only its own listings.
pub fn fetched() -> u64 {
    FETCHED.with(|f| f.get())
}

/// Reads the summaries named `names` from the repository, several at a
/// time: a network store hides its latency behind requests in flight, and
/// decryption uses every core. Results are in the order of `names`.
pub fn fetch_all(repo: &Repository, names: &[String]) -> Vec<Result<Snapshot>> {
    FETCHED.with(|f| f.set(f.get() + names.len() as u64));
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = repo
        .backend()
        .transfers()
        .max(cores)
        .min(64)
        .min(names.len());
    if workers <= 1 {
        return names.iter().map(|n| repo.load_snapshot(n)).collect();
    }
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Result<Snapshot>>>> =
        Mutex::new((0..names.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { break };
                let r = repo.load_snapshot(name);
                if let Ok(mut o) = out.lock() {
                    o[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_default()
        .into_iter()
        .zip(names)
        .map(|(r, name)| {
            r.unwrap_or_else(|| Err(anyhow::anyhow!("restore point {name} was not read")))
        })
        .collect()
}

/// Every restore point summary, oldest first, as
/// [`Repository::list_snapshots`] returns them, read through the cache at
/// `path` (none: no cache) and bringing it up to date.
pub fn list(repo: &Repository, path: Option<&Path>) -> Result<(Vec<Snapshot>, Damaged)> {
    let listed = repo.backend().list_versions(super::Kind::Snapshots)?;
    let mut cached = match path {
        Some(p) => load(repo, p),
        None => HashMap::new(),
    };
    let before = cached.len();
    let mut kept: Vec<Entry> = Vec::with_capacity(listed.len());
    let mut missing: Vec<&Listed> = Vec::new();
    for l in &listed {
        match (cached.remove(&l.name), &l.version) {
            (Some(e), Some(v)) if !v.is_empty() && e.size == l.size && &e.version == v => {
                kept.push(e)
            }
            _ => missing.push(l),
        }
    }
    let dropped = before - kept.len();
    let names: Vec<String> = missing.iter().map(|l| l.name.clone()).collect();
    let mut damaged = Vec::new();
    let mut added = 0;
    for (l, r) in missing.iter().zip(fetch_all(repo, &names)) {
        match r {
            Ok(snapshot) => match &l.version {
                Some(v) => {
                    added += 1;
                    kept.push(Entry {
                        name: l.name.clone(),
                        size: l.size,
                        version: v.clone(),
                        snapshot,
                    })
                }
                // Read, but not kept: nothing could tell a rewrite.
                None => kept.push(Entry {
                    name: l.name.clone(),
                    size: l.size,
                    version: String::new(),
                    snapshot,
                }),
            },
            // Damage is never cached: it is read (and reported) every time.
            Err(e) => damaged.push((l.name.clone(), format!("{e:#}"))),
        }
    }
    if let Some(p) = path {
        if added > 0 || dropped > 0 {
            let keep: Vec<&Entry> = kept.iter().filter(|e| !e.version.is_empty()).collect();
            // A cache that cannot be written only makes the next listing
            // slower.
            if let Err(e) = save(repo, p, &keep) {
                tracing::warn!(
                    "could not write the restore point cache {}: {e:#}",
                    p.display()
                );
            }
        }
    }
    let mut snaps: Vec<Snapshot> = kept.into_iter().map(|e| e.snapshot).collect();
    snaps.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    Ok((snaps, damaged))
}
