//! Where every chunk lives. In memory the index takes about 40 bytes a
//! chunk (see `table`), so a repository with millions of chunks opens fast
//! and stays small.
//!
//! On storage an index file lists, per pack, the entries of that pack; see
//! docs/format.md for the byte layout.

use super::ChunkId;
use anyhow::{bail, Context, Result};

mod table;

/// Where a chunk's stored bytes sit inside a pack's plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: u32,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    pub compressed: bool,
}

/// One record of a pack's table, in index files and in pack trailers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub id: ChunkId,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    pub compressed: bool,
}

pub const ENTRY_LEN: usize = 32 + 4 + 4 + 4 + 1;

/// The largest chunk any chunker setting cuts (FastCDC's ceiling, 16 MiB).
pub const MAX_CHUNK_LEN: u32 = fastcdc::v2020::MAXIMUM_MAX;
/// The most a chunk's stored form can take: chunks are stored compressed
/// only when that is smaller, so this is the raw ceiling plus zstd's
/// worst-case framing, with room to spare.
pub const MAX_STORED_LEN: u32 = MAX_CHUNK_LEN + MAX_CHUNK_LEN / 128 + 4096;

impl PackEntry {
    /// Where this entry's chunk is, in the pack numbered `pack`.
    pub fn location(&self, pack: u32) -> Location {
        Location {
            pack,
            offset: self.offset,
            stored_len: self.stored_len,
            raw_len: self.raw_len,
            compressed: self.compressed,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.push(self.compressed as u8);
    }

    pub fn decode(b: &[u8]) -> Result<PackEntry> {
        if b.len() < ENTRY_LEN {
            bail!("truncated pack entry");
        }
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let flags = b[44];
        if flags > 1 {
            bail!("unknown compression flag {flags}");
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        let (stored_len, raw_len) = (u(36), u(40));
        // Every reader allocates what these say: a forged entry must not
        // make it allocate more than a real chunk can be.
        if raw_len > MAX_CHUNK_LEN || stored_len > MAX_STORED_LEN {
            bail!(
                "the entry for chunk {} declares {} bytes, more than a chunk can be ({} at most): damaged or forged",
                ChunkId(id).short(),
                raw_len.max(stored_len),
                MAX_STORED_LEN
            );
        }
        Ok(PackEntry {
            id: ChunkId(id),
            offset: u(32),
            stored_len,
            raw_len,
            compressed: flags == 1,
        })
    }
}

const INDEX_MAGIC: &[u8; 8] = b"LBINDEX1";

/// The plaintext of one index file: packs and their entries.
pub fn encode_index_file(packs: &[(super::PackId, Vec<PackEntry>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        8 + packs
            .iter()
            .map(|(_, e)| 36 + e.len() * ENTRY_LEN)
            .sum::<usize>(),
    );
    out.extend_from_slice(INDEX_MAGIC);
    for (pack, entries) in packs {
        out.extend_from_slice(&pack.0);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            e.encode(&mut out);
        }
    }
    out
}

pub fn decode_index_file(b: &[u8]) -> Result<Vec<(super::PackId, Vec<PackEntry>)>> {
    if b.len() < 8 || &b[..8] != INDEX_MAGIC {
        bail!("not a Lifeboat index file");
    }
    let mut out = Vec::new();
    let mut i = 8;
    while i < b.len() {
        if b.len() - i < 36 {
            bail!("truncated index file");
        }
        let mut pack = [0u8; 32];
        pack.copy_from_slice(&b[i..i + 32]);
        let n = u32::from_le_bytes(b[i + 32..i + 36].try_into().context("index")?) as usize;
        i += 36;
        if n > (b.len() - i) / ENTRY_LEN {
            bail!("truncated index file");
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(PackEntry::decode(&b[i..i + ENTRY_LEN])?);
            i += ENTRY_LEN;
        }
        out.push((super::PackId(pack), entries));
    }
    Ok(out)
}

/// The in-memory index: chunk id → location (layout in `table`).
#[derive(Default)]
pub struct Index {
    table: table::Table,
}

impl Index {
    /// Builds the index from every index file's packs. When a chunk is in
    /// several packs (two backups raced), any copy will do.
    pub fn build(files: impl IntoIterator<Item = (super::PackId, Vec<PackEntry>)>) -> Index {
        Index::build_ranked(files, |_, _| Some(0))
    }

    /// Builds the index keeping, for a chunk stored more than once, the
    /// copy `rank` prefers (lowest); copies ranked `None` are left out.
    /// Backups rank copies in lost packs and copies verify found damaged
    /// out, so they store those chunks again; readers rank them last, so a
    /// good copy is used when one exists.
    pub fn build_ranked(
        files: impl IntoIterator<Item = (super::PackId, Vec<PackEntry>)>,
        rank: impl Fn(&super::PackId, &ChunkId) -> Option<u8>,
    ) -> Index {
        Index {
            table: table::Table::build(files, rank),
        }
    }

    pub fn get(&self, id: &ChunkId) -> Option<Location> {
        self.table.get(id)
    }

    pub fn contains(&self, id: &ChunkId) -> bool {
        self.table.contains(id)
    }

    pub fn pack_id(&self, n: u32) -> super::PackId {
        self.table.packs()[n as usize]
    }

    pub fn packs(&self) -> &[super::PackId] {
        self.table.packs()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (chunk, location), in chunk-id order.
    pub fn iter(&self) -> impl Iterator<Item = (ChunkId, Location)> + '_ {
        self.table.iter()
    }

    /// Bytes the index holds on the heap (for the scale benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::PackId;

    fn entry(id: u8, offset: u32) -> PackEntry {
        PackEntry {
            id: ChunkId([id; 32]),
            offset,
            stored_len: 10,
            raw_len: 10,
            compressed: false,
        }
    }

    #[test]
    fn a_ranked_build_keeps_the_preferred_copy_and_drops_unranked_ones() {
        let (lost, good) = (PackId([1; 32]), PackId([2; 32]));
        let files = vec![
            (lost, vec![entry(7, 8), entry(9, 18)]),
            (good, vec![entry(7, 100)]),
        ];
        let rank = |p: &PackId, _: &ChunkId| if *p == lost { 2 } else { 0 };
        let read = Index::build_ranked(files.clone(), |p, c| Some(rank(p, c)));
        let seven = read.get(&ChunkId([7; 32])).unwrap();
        assert_eq!((read.pack_id(seven.pack), seven.offset), (good, 100));
        assert!(
            read.contains(&ChunkId([9; 32])),
            "readers keep the only copy"
        );
        let write = Index::build_ranked(files, |p, c| (rank(p, c) == 0).then_some(0));
        assert!(write.contains(&ChunkId([7; 32])));
        assert!(!write.contains(&ChunkId([9; 32])), "writers store it again");
    }
}
