//! Stored chunk copies that `verify --read-data` found damaged, and packs
//! the index names that storage no longer holds.
//!
//! Verify writes what it found into `damage/` (a small object sealed to the
//! metadata recipient, so every host that backs up can read it, even with
//! a write-only key). Backups then treat those copies as absent and store
//! the chunks again instead of deduplicating against damage forever;
//! readers still try them, last, when no other copy exists.

use super::{ChunkId, Damaged, Index, IndexFile, Kind, PackId, Repository};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A damage record far larger than this cannot have been written by
/// verify (64 bytes of ids a chunk); refuse it rather than read it whole.
const MAX_RECORD_BYTES: u64 = 64 << 20;

/// One `damage/` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DamageRecord {
    pub time: String,
    pub chunks: Vec<DamagedCopy>,
}

/// A chunk as stored in one pack that did not read back as itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DamagedCopy {
    pub pack: PackId,
    pub chunk: ChunkId,
}

/// What is known about the stored copies the index names.
#[derive(Debug, Default)]
pub struct CopyHealth {
    /// Every pack storage lists.
    pub present: HashSet<PackId>,
    /// Copies verify found damaged.
    pub damaged: HashSet<DamagedCopy>,
    /// Damage records that could not be read.
    pub unreadable: Damaged,
}

impl CopyHealth {
    /// 0 for a copy believed good, 1 for one verify found damaged, 2 for
    /// one whose pack is gone.
    pub fn rank(&self, pack: &PackId, chunk: &ChunkId) -> u8 {
        self.rank_in(self.present.contains(pack), pack, chunk)
    }

    fn rank_in(&self, present: bool, pack: &PackId, chunk: &ChunkId) -> u8 {
        if !present {
            2
        } else if self.damaged.contains(&DamagedCopy {
            pack: *pack,
            chunk: *chunk,
        }) {
            1
        } else {
            0
        }
    }

    /// [`rank`](Self::rank) for copies that come grouped by pack, as index
    /// files hold them: whether a pack is present is looked up once for
    /// its run of chunks, not once per chunk (10 M hash lookups on a big
    /// repository's every open).
    pub fn ranker(&self) -> impl Fn(&PackId, &ChunkId) -> u8 + '_ {
        let last: std::cell::Cell<Option<(PackId, bool)>> = std::cell::Cell::new(None);
        move |pack, chunk| {
            let present = match last.get() {
                Some((p, present)) if p == *pack => present,
                _ => {
                    let present = self.present.contains(pack);
                    last.set(Some((*pack, present)));
                    present
                }
            };
            self.rank_in(present, pack, chunk)
        }
    }
}

/// The index a backup deduplicates against: only copies believed good.
pub struct WritingIndex {
    pub index: Index,
    /// Index files that could not be read.
    pub damaged_files: Damaged,
    /// Packs some index file names that storage does not hold.
    pub missing_packs: usize,
    /// Chunks left out because their only copies verify found damaged.
    pub damaged_chunks: usize,
    /// Damage records that could not be read.
    pub unreadable_records: Damaged,
}

impl WritingIndex {
    /// The warnings a writer prints about what it will store again.
    pub fn warnings(&self, side: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.missing_packs > 0 {
            out.push(format!(
                "{side}{} indexed pack(s) are missing from the repository; their chunks will be stored again (run `lifeboat repair index`)",
                self.missing_packs
            ));
        }
        if self.damaged_chunks > 0 {
            out.push(format!(
                "{side}{} chunk(s) that verify found damaged will be stored again",
                self.damaged_chunks
            ));
        }
        for (name, why) in &self.unreadable_records {
            out.push(format!("{side}damage record {name} is unreadable ({why})"));
        }
        out
    }
}

/// Why a pack could not be opened for reading: the store did not give
/// it (worth checking again later) or what it gave is not a pack sealed
/// for this repository (damage).
pub enum PackOpenError {
    Unreachable(anyhow::Error),
    Damaged(anyhow::Error),
}

impl PackOpenError {
    pub fn error(&self) -> &anyhow::Error {
        match self {
            PackOpenError::Unreachable(e) | PackOpenError::Damaged(e) => e,
        }
    }
}

impl Repository {
    /// [`Repository::read_pack`], telling a store that failed from a pack
    /// that is damaged, so only real damage is recorded.
    pub fn read_pack_classified(
        &self,
        pack: &PackId,
    ) -> std::result::Result<super::crypto::SealedReader, PackOpenError> {
        self.data_identity().map_err(PackOpenError::Unreachable)?;
        let raw = self
            .backend
            .open_whole(Kind::Data, &pack.hex())
            .map_err(PackOpenError::Unreachable)?;
        self.unseal_pack(raw)
            .with_context(|| format!("pack {}", pack.short()))
            .map_err(PackOpenError::Damaged)
    }

    /// Which packs exist (one listing) and which copies are damaged.
    pub fn copy_health(&self) -> Result<CopyHealth> {
        let mut health = CopyHealth::default();
        for name in self.backend.list_names(Kind::Data)? {
            if let Ok(p) = PackId::parse(&name) {
                health.present.insert(p);
            }
        }
        for (name, size) in self.backend.list(Kind::Damage)? {
            match self.load_damage_record(&name, size) {
                Ok(rec) => health.damaged.extend(rec.chunks),
                Err(e) => health.unreadable.push((name, format!("{e:#}"))),
            }
        }
        Ok(health)
    }

    fn load_damage_record(&self, name: &str, size: u64) -> Result<DamageRecord> {
        if size > MAX_RECORD_BYTES {
            bail!("{size} bytes is more than a damage record can hold (damaged)");
        }
        let raw = self.backend.get(Kind::Damage, name)?;
        let plain = self.open_meta(&raw)?;
        serde_json::from_slice(&plain).context("damage record is damaged")
    }

    /// Records copies found damaged; returns the object's name.
    pub fn record_damage(&self, copies: &[DamagedCopy]) -> Result<String> {
        let rec = DamageRecord {
            time: super::snapshot::now_rfc3339(),
            chunks: copies.to_vec(),
        };
        let name = hex::encode(rand::random::<[u8; 32]>());
        let sealed = self.seal_meta(&serde_json::to_vec(&rec)?)?;
        self.backend.put(Kind::Damage, &name, &sealed)?;
        Ok(name)
    }

    /// The index for writing: copies in missing packs and copies verify
    /// found damaged are left out, so what they held is stored again.
    pub fn load_index_for_writing(&self) -> Result<WritingIndex> {
        let (files, damaged_files) = self.load_index_files()?;
        let health = self.copy_health()?;
        Ok(writing_index(files, damaged_files, health))
    }
}

/// Builds the writing index from index files and what is known of copies.
pub fn writing_index(
    files: Vec<IndexFile>,
    damaged_files: Damaged,
    health: CopyHealth,
) -> WritingIndex {
    let mut missing: HashSet<PackId> = HashSet::new();
    let mut damaged_ids: HashSet<ChunkId> = HashSet::new();
    for (_, packs) in &files {
        for (p, entries) in packs {
            if !health.present.contains(p) {
                missing.insert(*p);
            } else if !health.damaged.is_empty() {
                damaged_ids.extend(
                    entries
                        .iter()
                        .filter(|e| health.rank(p, &e.id) == 1)
                        .map(|e| e.id),
                );
            }
        }
    }
    let index = {
        let rank = health.ranker();
        Index::build_ranked(files.into_iter().flat_map(|(_, p)| p), |p, c| {
            (rank(p, c) == 0).then_some(0)
        })
    };
    WritingIndex {
        damaged_chunks: damaged_ids.iter().filter(|c| !index.contains(c)).count(),
        index,
        damaged_files,
        missing_packs: missing.len(),
        unreadable_records: health.unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranker_ranks_every_copy_as_rank_does_whatever_order_packs_come_in() {
        let (a, b, gone) = (PackId([1; 32]), PackId([2; 32]), PackId([3; 32]));
        let health = CopyHealth {
            present: [a, b].into_iter().collect(),
            damaged: [DamagedCopy {
                pack: b,
                chunk: ChunkId([9; 32]),
            }]
            .into_iter()
            .collect(),
            unreadable: Vec::new(),
        };
        let rank = health.ranker();
        // Runs of one pack, and a pack coming back after another.
        let copies = [a, a, gone, gone, b, b, a, gone, b];
        for (k, pack) in copies.iter().enumerate() {
            for chunk in [ChunkId([k as u8; 32]), ChunkId([9; 32])] {
                assert_eq!(
                    rank(pack, &chunk),
                    health.rank(pack, &chunk),
                    "{pack:?} {chunk:?}"
                );
            }
        }
        assert_eq!(rank(&b, &ChunkId([9; 32])), 1);
        assert_eq!(rank(&gone, &ChunkId([9; 32])), 2);
        assert_eq!(rank(&a, &ChunkId([9; 32])), 0);
    }
}
