//! The files cache: a file whose size, mtime, ctime and inode are unchanged
//! since the last backup of the same service is not read again; its chunk
//! list is reused (after checking the chunks are still in the repository).
//! Kept on the backup host, never in the repository.

use crate::repo::ChunkId;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

/// A file's modification time in nanoseconds since the epoch.
pub fn mtime_ns(m: &Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

impl Stamp {
    pub fn of(m: &Metadata) -> Stamp {
        Stamp {
            size: m.size(),
            mtime_ns: mtime_ns(m),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedFile {
    pub stamp: Stamp,
    pub hash: String,
    pub chunks: Vec<ChunkId>,
}

/// The cache key of an absolute path: the path itself when it is UTF-8,
/// otherwise a NUL-prefixed hex form (NUL cannot occur in a path).
pub fn key(abs: &[u8]) -> String {
    match std::str::from_utf8(abs) {
        Ok(s) => s.to_string(),
        Err(_) => format!("\0{}", hex::encode(abs)),
    }
}

#[derive(Default, Deserialize)]
pub struct FilesCache {
    files: HashMap<String, CachedFile>,
}

impl FilesCache {
    pub fn file_for(cache_dir: &Path, repo_id: &str, service: &str) -> PathBuf {
        let key = blake3::hash(service.as_bytes()).to_hex();
        cache_dir
            .join(repo_id)
            .join(format!("files-{}.bin", &key[..16]))
    }

    /// A missing, unreadable or damaged cache is an empty one: the next
    /// backup just reads everything. Where only the JSON cache of earlier
    /// versions is there, it is read instead, so an upgrade does not read
    /// every file of a big tree again.
    pub fn load(path: &Path) -> FilesCache {
        match std::fs::read(path) {
            Ok(b) => decode(&b),
            Err(_) => std::fs::read(path.with_extension("json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok()),
        }
        .unwrap_or_default()
    }

    pub fn lookup(&self, path: &str, stamp: &Stamp) -> Option<&CachedFile> {
        self.files.get(path).filter(|c| c.stamp == *stamp)
    }

    pub fn insert(&mut self, path: String, entry: CachedFile) {
        self.files.insert(path, entry);
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().context("cache path has no parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, self.encode())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        // The JSON cache of earlier versions, now superseded.
        let _ = std::fs::remove_file(path.with_extension("json"));
        Ok(())
    }

    /// The cache as [`decode`] reads it: `MAGIC`, the entry count, the
    /// entries (path, stamp, hash and chunk ids, lengths first), and the
    /// BLAKE3 of everything before it. Binary, because a million files'
    /// worth of JSON took a fifth of an unchanged backup to parse and write.
    fn encode(&self) -> Vec<u8> {
        let per_file: usize = self
            .files
            .iter()
            .map(|(p, c)| ENTRY_MIN + p.len() + c.hash.len() + 32 * c.chunks.len())
            .sum();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + per_file + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.files.len() as u64).to_le_bytes());
        for (path, c) in &self.files {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path.as_bytes());
            out.extend_from_slice(&c.stamp.size.to_le_bytes());
            out.extend_from_slice(&c.stamp.mtime_ns.to_le_bytes());
            out.extend_from_slice(&c.stamp.ctime_ns.to_le_bytes());
            out.extend_from_slice(&c.stamp.ino.to_le_bytes());
            out.extend_from_slice(&(c.hash.len() as u32).to_le_bytes());
            out.extend_from_slice(c.hash.as_bytes());
            out.extend_from_slice(&(c.chunks.len() as u32).to_le_bytes());
            for id in &c.chunks {
                out.extend_from_slice(&id.0);
            }
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }
}

const MAGIC: &[u8; 8] = b"LBFILES1";

/// An entry's fixed part: three lengths (4 bytes each) and the stamp (32).
const ENTRY_MIN: usize = 44;

/// Reads what [`FilesCache::encode`] wrote; `None` for anything else (a
/// torn write, a damaged disk, another version), every length checked
/// against what is left.
fn decode(b: &[u8]) -> Option<FilesCache> {
    let body_len = b.len().checked_sub(32)?;
    let (body, sum) = b.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = body.strip_prefix(MAGIC.as_slice())?;
    let count = u64_le(&mut r)?;
    // Never reserve beyond what the bytes left could hold.
    let mut files = HashMap::with_capacity((count as usize).min(r.len() / ENTRY_MIN));
    for _ in 0..count {
        let path_len = u32_le(&mut r)? as usize;
        let path = std::str::from_utf8(take(&mut r, path_len)?)
            .ok()?
            .to_string();
        let stamp = Stamp {
            size: u64_le(&mut r)?,
            mtime_ns: u64_le(&mut r)? as i64,
            ctime_ns: u64_le(&mut r)? as i64,
            ino: u64_le(&mut r)?,
        };
        let hash_len = u32_le(&mut r)? as usize;
        let hash = std::str::from_utf8(take(&mut r, hash_len)?)
            .ok()?
            .to_string();
        let n = u32_le(&mut r)? as usize;
        let ids = take(&mut r, n.checked_mul(32)?)?;
        let chunks = ids
            .chunks_exact(32)
            .map(|id| id.try_into().map(ChunkId))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        files.insert(
            path,
            CachedFile {
                stamp,
                hash,
                chunks,
            },
        );
    }
    r.is_empty().then_some(FilesCache { files })
}

fn u32_le(r: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(r, 4)?.try_into().ok()?))
}

fn u64_le(r: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(r, 8)?.try_into().ok()?))
}

/// The next `n` bytes of `r`, if there are that many.
fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> FilesCache {
        let mut c = FilesCache::default();
        for i in 0..50u64 {
            c.insert(
                format!("/srv/app/f{i}"),
                CachedFile {
                    stamp: Stamp {
                        size: i * 1000,
                        mtime_ns: -(i as i64),
                        ctime_ns: i as i64 * 7,
                        ino: u64::MAX - i,
                    },
                    hash: if i == 3 {
                        String::new()
                    } else {
                        format!("{i:064x}")
                    },
                    chunks: (0..i % 4)
                        .map(|k| ChunkId([k as u8 + i as u8; 32]))
                        .collect(),
                },
            );
        }
        c.insert(key(b"/srv/\xff"), cache_one());
        c
    }

    fn cache_one() -> CachedFile {
        CachedFile {
            stamp: Stamp {
                size: 1,
                mtime_ns: 2,
                ctime_ns: 3,
                ino: 4,
            },
            hash: "h".into(),
            chunks: vec![ChunkId([9; 32])],
        }
    }

    #[test]
    fn a_saved_cache_loads_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = FilesCache::file_for(dir.path(), "repo", "app");
        let c = cache();
        c.save(&path).unwrap();
        let back = FilesCache::load(&path);
        assert_eq!(back.len(), c.len());
        for (p, e) in &c.files {
            let got = back.lookup(p, &e.stamp).expect(p);
            assert_eq!((&got.hash, &got.chunks), (&e.hash, &e.chunks));
        }
    }

    #[test]
    fn a_damaged_or_torn_cache_is_an_empty_one() {
        let good = cache().encode();
        assert_eq!(decode(&good).map(|c| c.len()), Some(51));
        // Every truncation, and a flipped bit anywhere.
        for cut in [0, 1, 8, 16, good.len() / 2, good.len() - 1] {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        for at in [0, 9, 20, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert!(decode(&bad).is_none(), "bit flipped at {at}");
        }
        // A count no file could hold, with a valid checksum: refused, not
        // reserved.
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        let sum = blake3::hash(&body);
        body.extend_from_slice(sum.as_bytes());
        assert!(decode(&body).is_none());
        // JSON where the binary cache belongs is damage like any other.
        let dir = tempfile::tempdir().unwrap();
        let path = FilesCache::file_for(dir.path(), "repo", "app");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{\"files\":{}}").unwrap();
        assert!(FilesCache::load(&path).is_empty());
    }

    #[test]
    fn the_json_cache_of_earlier_versions_is_read_once_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = FilesCache::file_for(dir.path(), "repo", "app");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let old = path.with_extension("json");
        let json = r#"{"files":{"/srv/a":{"stamp":{"size":3,"mtime_ns":1,"ctime_ns":2,"ino":7},"hash":"abc","chunks":[]}}}"#;
        std::fs::write(&old, json).unwrap();
        let stamp = Stamp {
            size: 3,
            mtime_ns: 1,
            ctime_ns: 2,
            ino: 7,
        };
        let c = FilesCache::load(&path);
        assert_eq!(
            c.lookup("/srv/a", &stamp).map(|h| h.hash.as_str()),
            Some("abc")
        );
        c.save(&path).unwrap();
        assert!(!old.exists(), "the JSON cache is replaced");
        assert!(FilesCache::load(&path).lookup("/srv/a", &stamp).is_some());
        // A damaged JSON cache is an empty one, as it always was.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&old, "{\"files\": {").unwrap();
        assert!(FilesCache::load(&path).is_empty());
    }
}
