//! The in-memory index's layout, about 40 bytes a chunk.
//!
//! A chunk id is a keyed hash, so ids spread evenly: the table is cut into
//! 65,536 buckets by the id's first two bytes, and a record keeps only the
//! other 30 bytes plus the chunk's ordinal (3 bytes while there are fewer
//! than 16 M chunks, 4 beyond). Ordinals number every entry of every index
//! file in file order, so the entries of one pack are consecutive; what an
//! ordinal says about its chunk is kept in pack order:
//!
//! - a `u32` with the stored length (25 bits), the compression flag and the
//!   high 6 bits of the raw length's excess over the stored length, and a
//!   `u16` with that excess's low 16 bits;
//! - no offset: a pack's chunks are written back to back after the pack
//!   magic, so an offset is the magic's length plus the stored lengths
//!   before it, summed from a checkpoint kept every 32 ordinals.
//!
//! Whatever does not fit that shape (a raw length far above its stored
//! length, a pack whose chunks are not back to back) is kept whole in a
//! side map, so every index file is represented exactly.

use super::{Location, PackEntry};
use crate::repo::{ChunkId, PackId};
use std::collections::HashMap;

const TAIL: usize = 30;
const BUCKETS: usize = 1 << 16;
const CHECKPOINT: u32 = 32;
const STORED_BITS: u32 = 25;
const STORED_MASK: u32 = (1 << STORED_BITS) - 1;
const COMPRESSED_BIT: u32 = 1 << STORED_BITS;
const EXCESS_BITS: u32 = 22;
/// The excess value that means "look in `raw_exceptions`".
const EXCESS_ESCAPE: u32 = (1 << EXCESS_BITS) - 1;
/// Where a pack's first chunk starts: after its magic.
const FIRST_OFFSET: u32 = crate::repo::pack::PACK_MAGIC.len() as u32;

/// A run of consecutive ordinals that came from one pack's table.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: u32,
    pack: u32,
}

/// Sorted records of one width: 30 id bytes, then the ordinal.
#[derive(Debug)]
enum Records {
    Narrow(Vec<[u8; TAIL + 3]>),
    Wide(Vec<[u8; TAIL + 4]>),
}

impl Default for Records {
    fn default() -> Self {
        Records::Narrow(Vec::new())
    }
}

#[derive(Debug, Default)]
pub(super) struct Table {
    packs: Vec<PackId>,
    /// Record index where each bucket starts; `BUCKETS + 1` long once built.
    buckets: Vec<u32>,
    records: Records,
    segments: Vec<Segment>,
    lens: Vec<u32>,
    excess_lo: Vec<u16>,
    checkpoints: Vec<u32>,
    raw_exceptions: HashMap<u32, u32>,
    /// Entries of packs whose chunks are not back to back, by ordinal.
    irregular: HashMap<u32, Location>,
}

fn ordinal<const S: usize>(r: &[u8; S]) -> u32 {
    let mut b = [0u8; 4];
    b[..S - TAIL].copy_from_slice(&r[TAIL..]);
    u32::from_le_bytes(b)
}

fn record<const S: usize>(id: &ChunkId, ord: u32) -> [u8; S] {
    let mut r = [0u8; S];
    r[..TAIL].copy_from_slice(&id.0[2..]);
    r[TAIL..].copy_from_slice(&ord.to_le_bytes()[..S - TAIL]);
    r
}

fn bucket_of(id: &ChunkId) -> usize {
    usize::from(u16::from_be_bytes([id.0[0], id.0[1]]))
}

/// Sorts `ids` (with their ordinals) into buckets and records, keeping
/// per id the lowest-ranked copy. Returns the bucket starts.
fn sort_records<const S: usize>(
    ids: Vec<(ChunkId, u32)>,
    rank: &[u8],
    out: &mut Vec<[u8; S]>,
) -> Vec<u32> {
    let mut starts = vec![0u32; BUCKETS + 1];
    for (id, _) in &ids {
        starts[bucket_of(id) + 1] += 1;
    }
    for b in 0..BUCKETS {
        starts[b + 1] += starts[b];
    }
    let mut fill = starts.clone();
    out.clear();
    out.resize(ids.len(), [0u8; S]);
    for (id, ord) in ids {
        let b = bucket_of(&id);
        out[fill[b] as usize] = record(&id, ord);
        fill[b] += 1;
    }
    sort_runs(out, &starts);
    // Deduplicate, compacting towards the front: of equal ids the
    // lowest-ranked copy stays. Equal ids are rare (two backups raced, a
    // copy stored again), so ranks are not part of the sort.
    let mut write = 0usize;
    let mut new_starts = vec![0u32; BUCKETS + 1];
    for b in 0..BUCKETS {
        let (lo, hi) = (starts[b] as usize, starts[b + 1] as usize);
        new_starts[b] = write as u32;
        let mut i = lo;
        while i < hi {
            let mut best = i;
            let mut j = i + 1;
            while j < hi && out[j][..TAIL] == out[i][..TAIL] {
                if rank[ordinal(&out[j]) as usize] < rank[ordinal(&out[best]) as usize] {
                    best = j;
                }
                j += 1;
            }
            out[write] = out[best];
            write += 1;
            i = j;
        }
    }
    new_starts[BUCKETS] = write as u32;
    out.truncate(write);
    out.shrink_to_fit();
    new_starts
}

/// Sorts every bucket's run by id, the two halves of the buckets on two
/// threads: sorting is most of building a big index.
fn sort_runs<const S: usize>(out: &mut [[u8; S]], starts: &[u32]) {
    fn prefix(r: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&r[..8]);
        u64::from_be_bytes(b)
    }
    let sort = |runs: &mut [[u8; S]], bounds: &[u32], base: u32| {
        for w in bounds.windows(2) {
            let run = &mut runs[(w[0] - base) as usize..(w[1] - base) as usize];
            run.sort_unstable_by(|x, y| {
                prefix(x)
                    .cmp(&prefix(y))
                    .then_with(|| x[8..TAIL].cmp(&y[8..TAIL]))
            });
        }
    };
    let mid = BUCKETS / 2;
    let (left, right) = out.split_at_mut(starts[mid] as usize);
    if left.len() + right.len() < 1 << 16 {
        sort(left, &starts[..=mid], 0);
        sort(right, &starts[mid..], starts[mid]);
        return;
    }
    std::thread::scope(|s| {
        s.spawn(|| sort(left, &starts[..=mid], 0));
        sort(right, &starts[mid..], starts[mid]);
    });
}

fn find<const S: usize>(records: &[[u8; S]], buckets: &[u32], id: &ChunkId) -> Option<u32> {
    let b = bucket_of(id);
    let run = records.get(*buckets.get(b)? as usize..*buckets.get(b + 1)? as usize)?;
    run.binary_search_by(|r| r[..TAIL].cmp(&id.0[2..]))
        .ok()
        .map(|i| ordinal(&run[i]))
}

impl Table {
    pub(super) fn build(
        files: impl IntoIterator<Item = (PackId, Vec<PackEntry>)>,
        rank: impl Fn(&PackId, &ChunkId) -> Option<u8>,
    ) -> Table {
        Table::build_with(files, rank, 1 << 24)
    }

    /// `build`, with 4-byte ordinals from `wide_from` entries on (tests
    /// lower it to cover wide records without 16 M entries).
    fn build_with(
        files: impl IntoIterator<Item = (PackId, Vec<PackEntry>)>,
        rank: impl Fn(&PackId, &ChunkId) -> Option<u8>,
        wide_from: usize,
    ) -> Table {
        let mut t = Table::default();
        let mut pack_numbers: HashMap<PackId, u32> = HashMap::new();
        let mut kept: Vec<(ChunkId, u32)> = Vec::new();
        let mut ranks: Vec<u8> = Vec::new();
        for (pack, entries) in files {
            let n = *pack_numbers.entry(pack).or_insert_with(|| {
                t.packs.push(pack);
                (t.packs.len() - 1) as u32
            });
            let start = t.lens.len() as u32;
            t.segments.push(Segment { start, pack: n });
            let mut next = FIRST_OFFSET;
            let regular = entries.iter().all(|e| {
                let ok = e.offset == next && e.stored_len <= STORED_MASK;
                next = e.offset.wrapping_add(e.stored_len);
                ok
            });
            for e in entries {
                let ord = t.lens.len() as u32;
                if ord % CHECKPOINT == 0 {
                    t.checkpoints.push(e.offset);
                }
                if regular {
                    t.push_regular(ord, &e);
                } else {
                    t.lens.push(0);
                    t.excess_lo.push(0);
                    t.irregular.insert(ord, e.location(n));
                }
                match rank(&pack, &e.id) {
                    Some(r) => {
                        kept.push((e.id, ord));
                        ranks.push(r);
                    }
                    None => ranks.push(u8::MAX),
                }
            }
        }
        t.lens.shrink_to_fit();
        t.excess_lo.shrink_to_fit();
        t.checkpoints.shrink_to_fit();
        t.segments.shrink_to_fit();
        t.packs.shrink_to_fit();
        if t.lens.len() < wide_from {
            let mut r = Vec::new();
            t.buckets = sort_records(kept, &ranks, &mut r);
            t.records = Records::Narrow(r);
        } else {
            let mut r = Vec::new();
            t.buckets = sort_records(kept, &ranks, &mut r);
            t.records = Records::Wide(r);
        }
        t
    }

    fn push_regular(&mut self, ord: u32, e: &PackEntry) {
        let excess = e.raw_len.checked_sub(e.stored_len).unwrap_or(EXCESS_ESCAPE);
        let excess = if excess >= EXCESS_ESCAPE {
            self.raw_exceptions.insert(ord, e.raw_len);
            EXCESS_ESCAPE
        } else {
            excess
        };
        let flag = if e.compressed { COMPRESSED_BIT } else { 0 };
        self.lens
            .push(e.stored_len | flag | ((excess >> 16) << (STORED_BITS + 1)));
        self.excess_lo.push(excess as u16);
    }

    fn ordinal_of(&self, id: &ChunkId) -> Option<u32> {
        match &self.records {
            Records::Narrow(r) => find(r, &self.buckets, id),
            Records::Wide(r) => find(r, &self.buckets, id),
        }
    }

    fn stored_len(&self, ord: u32) -> u32 {
        self.lens[ord as usize] & STORED_MASK
    }

    /// Where the chunk numbered `ord` is.
    fn location(&self, ord: u32) -> Location {
        let seg = self.segments[self.segments.partition_point(|s| s.start <= ord) - 1];
        if let Some(loc) = self.irregular.get(&ord) {
            return *loc;
        }
        let word = self.lens[ord as usize];
        let stored_len = word & STORED_MASK;
        let excess = ((word >> (STORED_BITS + 1)) << 16) | u32::from(self.excess_lo[ord as usize]);
        let raw_len = if excess == EXCESS_ESCAPE {
            self.raw_exceptions[&ord]
        } else {
            stored_len + excess
        };
        let checkpoint = ord - ord % CHECKPOINT;
        let (mut at, mut offset) = if checkpoint >= seg.start {
            (checkpoint, self.checkpoints[(ord / CHECKPOINT) as usize])
        } else {
            (seg.start, FIRST_OFFSET)
        };
        while at < ord {
            offset += self.stored_len(at);
            at += 1;
        }
        Location {
            pack: seg.pack,
            offset,
            stored_len,
            raw_len,
            compressed: word & COMPRESSED_BIT != 0,
        }
    }

    pub(super) fn get(&self, id: &ChunkId) -> Option<Location> {
        self.ordinal_of(id).map(|o| self.location(o))
    }

    pub(super) fn contains(&self, id: &ChunkId) -> bool {
        self.ordinal_of(id).is_some()
    }

    pub(super) fn packs(&self) -> &[PackId] {
        &self.packs
    }

    pub(super) fn len(&self) -> usize {
        match &self.records {
            Records::Narrow(r) => r.len(),
            Records::Wide(r) => r.len(),
        }
    }

    /// Every (chunk, location), in chunk-id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (ChunkId, Location)> + '_ {
        let buckets = self.buckets.len().saturating_sub(1);
        (0..buckets).flat_map(move |b| {
            let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
            (lo..hi).map(move |i| {
                let (tail, ord) = match &self.records {
                    Records::Narrow(r) => (&r[i][..TAIL], ordinal(&r[i])),
                    Records::Wide(r) => (&r[i][..TAIL], ordinal(&r[i])),
                };
                let mut id = [0u8; 32];
                id[..2].copy_from_slice(&(b as u16).to_be_bytes());
                id[2..].copy_from_slice(tail);
                (ChunkId(id), self.location(ord))
            })
        })
    }

    /// Bytes held on the heap (maps counted by their entries), for the
    /// scale benchmark and tests.
    pub(super) fn heap_bytes(&self) -> usize {
        let records = match &self.records {
            Records::Narrow(r) => r.capacity() * (TAIL + 3),
            Records::Wide(r) => r.capacity() * (TAIL + 4),
        };
        records
            + self.packs.capacity() * 32
            + self.buckets.capacity() * 4
            + self.segments.capacity() * std::mem::size_of::<Segment>()
            + self.lens.capacity() * 4
            + self.excess_lo.capacity() * 2
            + self.checkpoints.capacity() * 4
            + self.raw_exceptions.capacity() * 8
            + self.irregular.capacity() * (4 + std::mem::size_of::<Location>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u32 {
            (self.next() % n) as u32
        }
    }

    /// Packs of every shape the table special-cases: back to back,
    /// gapped, huge excess, shared chunks, one pack listed twice.
    fn files(rng: &mut Rng) -> Vec<(PackId, Vec<PackEntry>)> {
        let mut ids: Vec<ChunkId> = Vec::new();
        let mut out = Vec::new();
        for p in 0..60u32 {
            let mut pack = [0u8; 32];
            pack[..4].copy_from_slice(&p.to_le_bytes());
            let gapped = p % 7 == 3;
            let mut offset = if p % 11 == 5 { 0 } else { FIRST_OFFSET };
            let mut entries = Vec::new();
            for _ in 0..rng.below(90) {
                let id = if !ids.is_empty() && rng.below(5) == 0 {
                    ids[rng.below(ids.len() as u64) as usize]
                } else {
                    let mut id = [0u8; 32];
                    for b in id.chunks_mut(8) {
                        b.copy_from_slice(&rng.next().to_le_bytes());
                    }
                    // Crowd a few buckets so runs get long.
                    if rng.below(3) == 0 {
                        id[0] = 0;
                        id[1] = rng.below(2) as u8;
                    }
                    ids.push(ChunkId(id));
                    ChunkId(id)
                };
                let stored_len = 1 + rng.below(MAX_STORED_LEN_FOR_TESTS);
                let compressed = rng.below(2) == 0;
                let raw_len = match (compressed, rng.below(10)) {
                    (false, 0) => stored_len + 1,
                    (false, _) => stored_len,
                    (true, 0) => crate::repo::index::MAX_CHUNK_LEN,
                    (true, 1) => stored_len.saturating_sub(1),
                    (true, _) => stored_len + rng.below(1 << 20),
                };
                entries.push(PackEntry {
                    id,
                    offset,
                    stored_len,
                    raw_len,
                    compressed,
                });
                offset = offset.wrapping_add(stored_len + if gapped { 3 } else { 0 });
            }
            out.push((PackId(pack), entries.clone()));
            if p % 13 == 4 {
                out.push((PackId(pack), entries));
            }
        }
        out
    }

    const MAX_STORED_LEN_FOR_TESTS: u64 = 1 << 21;

    fn rank_of(p: &PackId, c: &ChunkId) -> Option<u8> {
        match p.0[0].wrapping_add(c.0[5]) % 4 {
            0 => None,
            r => Some(r),
        }
    }

    /// What the table must answer: per chunk, a lowest-ranked copy.
    fn model(
        files: &[(PackId, Vec<PackEntry>)],
    ) -> BTreeMap<ChunkId, (u8, Vec<(PackId, PackEntry)>)> {
        let mut m: BTreeMap<ChunkId, (u8, Vec<(PackId, PackEntry)>)> = BTreeMap::new();
        for (p, entries) in files {
            for e in entries {
                let Some(r) = rank_of(p, &e.id) else { continue };
                let slot = m.entry(e.id).or_insert((r, Vec::new()));
                if r < slot.0 {
                    *slot = (r, Vec::new());
                }
                if r == slot.0 {
                    slot.1.push((*p, *e));
                }
            }
        }
        m
    }

    fn check(wide_from: usize, seed: u64) {
        let mut rng = Rng(seed);
        let files = files(&mut rng);
        let want = model(&files);
        let t = Table::build_with(files.clone(), rank_of, wide_from);
        assert_eq!(t.len(), want.len());
        let got: Vec<_> = t.iter().collect();
        assert_eq!(
            got.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            want.keys().copied().collect::<Vec<_>>(),
            "iteration is in id order and complete"
        );
        for (id, loc) in got {
            assert_eq!(t.get(&id), Some(loc));
            let copies = &want[&id].1;
            let pack = t.packs()[loc.pack as usize];
            assert!(
                copies
                    .iter()
                    .any(|(p, e)| *p == pack && e.location(loc.pack) == loc),
                "{loc:?} is one of the best copies of {id:?}"
            );
        }
        for (p, entries) in &files {
            for e in entries {
                if rank_of(p, &e.id).is_none() && !want.contains_key(&e.id) {
                    assert!(!t.contains(&e.id), "unranked-only copies are left out");
                }
            }
        }
        let mut absent = [0xa5u8; 32];
        absent[31] = 0x5a;
        assert!(t.get(&ChunkId(absent)).is_none());
    }

    #[test]
    fn the_compact_table_answers_like_a_map_of_every_copy() {
        for seed in 1..6 {
            check(1 << 24, seed);
        }
    }

    #[test]
    fn wide_records_answer_like_narrow_ones() {
        for seed in 1..4 {
            check(0, seed);
        }
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let t = Table::default();
        assert!(t.get(&ChunkId([1; 32])).is_none());
        assert_eq!(t.iter().count(), 0);
        let t = Table::build(Vec::new(), |_, _| Some(0));
        assert!(!t.contains(&ChunkId([0; 32])));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn back_to_back_packs_take_at_most_40_bytes_a_chunk() {
        let mut rng = Rng(99);
        let files: Vec<_> = (0..200u32)
            .map(|p| {
                let mut pack = [0u8; 32];
                pack[..4].copy_from_slice(&p.to_le_bytes());
                let mut offset = FIRST_OFFSET;
                let entries = (0..500)
                    .map(|_| {
                        let mut id = [0u8; 32];
                        for b in id.chunks_mut(8) {
                            b.copy_from_slice(&rng.next().to_le_bytes());
                        }
                        let stored_len = 1 + rng.below(1 << 20);
                        let e = PackEntry {
                            id: ChunkId(id),
                            offset,
                            stored_len,
                            raw_len: stored_len + rng.below(1 << 20),
                            compressed: true,
                        };
                        offset += stored_len;
                        e
                    })
                    .collect();
                (PackId(pack), entries)
            })
            .collect();
        let t = Table::build(files, |_, _| Some(0));
        let per_chunk = (t.heap_bytes() - BUCKETS * 4) as f64 / t.len() as f64;
        assert!(per_chunk <= 40.0, "{per_chunk} bytes a chunk");
    }
}
