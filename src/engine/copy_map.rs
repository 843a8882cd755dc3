//! Which destination chunk each source chunk became, remembered between
//! copies. Without it every copy would decrypt and hash all of each new
//! restore point's data just to learn ids the destination already has; with
//! it, a nightly copy reads only what changed.
//!
//! A cache, not a record: a missing or damaged file costs only time. An
//! entry is trusted only while the destination's index holds its chunk, so
//! a prune on the destination cannot make copy skip data it needs.
//!
//! Layout: `<cache_dir>/<source id>/copy-<destination id>.map`, records of
//! 64 bytes (source chunk id, destination chunk id), appended per restore
//! point copied.

use crate::repo::{ChunkId, Index};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const RECORD: usize = 64;

pub fn file_for(cache_dir: &Path, src_id: &str, dst_id: &str) -> PathBuf {
    cache_dir.join(src_id).join(format!("copy-{dst_id}.map"))
}

/// The remembered pairs whose destination chunk `dst` still holds.
pub fn load(path: &Path, dst: &Index) -> HashMap<ChunkId, ChunkId> {
    let Ok(raw) = std::fs::read(path) else {
        return HashMap::new();
    };
    // A torn last record (a crash mid-append) is dropped.
    raw.chunks_exact(RECORD)
        .filter_map(|r| {
            let mut a = [0u8; 32];
            let mut b = [0u8; 32];
            a.copy_from_slice(&r[..32]);
            b.copy_from_slice(&r[32..]);
            let (src, new) = (ChunkId(a), ChunkId(b));
            dst.contains(&new).then_some((src, new))
        })
        .collect()
}

/// Appends pairs learnt by a copy whose restore point is now stored.
pub fn append(path: &Path, pairs: &[(ChunkId, ChunkId)]) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut buf = Vec::with_capacity(pairs.len() * RECORD);
    for (a, b) in pairs {
        buf.extend_from_slice(&a.0);
        buf.extend_from_slice(&b.0);
    }
    // Keeps a torn record from an earlier crash from shifting every later one.
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if len % RECORD as u64 != 0 {
        f.set_len(len - len % RECORD as u64)
            .with_context(|| format!("repairing {}", path.display()))?;
    }
    f.write_all(&buf)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::index::PackEntry;
    use crate::repo::PackId;

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn pairs_survive_a_torn_record_and_follow_the_destination_index() {
        let dir = tempfile::tempdir().unwrap();
        let p = file_for(dir.path(), "src", "dst");
        append(&p, &[(id(1), id(11)), (id(2), id(12))]).unwrap();
        // A crash mid-append leaves half a record.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[7u8; 20]).unwrap();
        append(&p, &[(id(3), id(13))]).unwrap();
        let entry = |c| PackEntry {
            id: c,
            offset: 8,
            stored_len: 1,
            raw_len: 1,
            compressed: false,
        };
        // The destination lost chunk 12 (pruned): its pair is not trusted.
        let index = Index::build([(PackId([9; 32]), vec![entry(id(11)), entry(id(13))])]);
        let m = load(&p, &index);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&id(1)), Some(&id(11)));
        assert_eq!(m.get(&id(3)), Some(&id(13)));
        assert!(!m.contains_key(&id(2)));
    }
}
