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

#[derive(Default, Serialize, Deserialize)]
pub struct FilesCache {
    files: HashMap<String, CachedFile>,
}

impl FilesCache {
    pub fn file_for(cache_dir: &Path, repo_id: &str, service: &str) -> PathBuf {
        let key = blake3::hash(service.as_bytes()).to_hex();
        cache_dir
            .join(repo_id)
            .join(format!("files-{}.json", &key[..16]))
    }

    /// A missing or unreadable cache is an empty one: the next backup just
    /// reads everything.
    pub fn load(path: &Path) -> FilesCache {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
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
        std::fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}
