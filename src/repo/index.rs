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

/// How many reads of small objects (index files, a tree's packs) to keep
/// in flight: the store's transfers, and at least one per core for the
/// decryption that follows.
pub fn readers(backend: &dyn super::Backend) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    backend.transfers().max(cores).min(32)
}

/// `f` of every item on up to `workers` threads; the results in the order
/// of `items`, whatever order they finish in.
pub fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (done, results) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let done = done.clone();
            let (next, f) = (&next, &f);
            s.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if done.send((i, f(item))).is_err() {
                    break;
                }
            });
        }
    });
    drop(done);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in results {
        out[i] = Some(r);
    }
    // Every item was done: a worker that panicked has re-raised it above.
    out.into_iter().flatten().collect()
}

/// `ids` in consecutive runs whose chunks hold at most `max_bytes` of
/// plaintext together (each run at least one chunk), by what the index
/// says they hold; ids it does not know count for nothing.
pub fn batches<'a>(
    index: &'a Index,
    ids: &'a [ChunkId],
    max_bytes: u64,
) -> impl Iterator<Item = &'a [ChunkId]> + 'a {
    let mut rest = ids;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0u64;
        let mut n = 0;
        for id in rest {
            let len = index.get(id).map_or(0, |l| l.raw_len as u64);
            if n > 0 && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            n += 1;
        }
        let (batch, after) = rest.split_at(n);
        rest = after;
        Some(batch)
    })
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
    fn parallel_reads_come_back_in_order_failures_and_all() {
        let names: Vec<String> = (0..200).map(|i| format!("file-{i}")).collect();
        let read = |name: &String| -> Result<String> {
            match name.trim_start_matches("file-").parse::<u32>() {
                Ok(n) if n % 7 == 3 => bail!("{name} is damaged"),
                _ => Ok(name.to_uppercase()),
            }
        };
        let shown = |r: Result<String>| match r {
            Ok(v) => v,
            Err(e) => format!("error: {e:#}"),
        };
        let serial: Vec<String> = names.iter().map(|n| shown(read(n))).collect();
        for workers in [1, 2, 5, 64, 500] {
            let parallel: Vec<String> = in_parallel(&names, workers, read)
                .into_iter()
                .map(shown)
                .collect();
            assert_eq!(parallel, serial, "{workers} workers");
        }
        assert!(in_parallel(&[] as &[u8], 4, |_| 1).is_empty());
    }

    #[test]
    fn batches_hold_at_most_the_bytes_asked_and_every_id_once() {
        let pack = PackId([1; 32]);
        let entries: Vec<PackEntry> = (0..10u8)
            .map(|i| PackEntry {
                raw_len: 100 * (i as u32 + 1),
                ..entry(i, 1000 * i as u32)
            })
            .collect();
        let index = Index::build(vec![(pack, entries)]);
        let mut ids: Vec<ChunkId> = (0..10u8).map(|i| ChunkId([i; 32])).collect();
        ids.push(ChunkId([99; 32])); // not in the index
        let got: Vec<&[ChunkId]> = batches(&index, &ids, 1000).collect();
        assert_eq!(got.concat(), ids);
        for b in &got {
            let bytes: u64 = b
                .iter()
                .map(|id| index.get(id).map_or(0, |l| l.raw_len as u64))
                .sum();
            assert!(b.len() == 1 || bytes <= 1000, "{b:?}: {bytes} bytes");
        }
        // A chunk bigger than a batch is a batch of its own.
        assert!(batches(&index, &ids, 10).all(|b| b.len() == 1));
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
