//! Reads that do not wait for one another: a key file's own key objects
//! fetched beside the config, and chunks (a restore point's file list)
//! read with the stretch of each pack that holds them fetched ahead, the
//! packs side by side. Over a link each is one round trip where reading
//! one object after another was several.

use super::{
    crypto, index, key_object_name, keys, pack, Backend, ChunkId, Index, Kind, Location, Repository,
};
use anyhow::{anyhow, Context, Result};

impl Repository {
    /// Reads and checks the chunks `ids`, in their order. Each pack they
    /// are in is opened once, with the stretch of it that holds them
    /// fetched ahead, and the packs are read side by side.
    pub fn read_chunks(&self, index: &Index, ids: &[ChunkId]) -> Result<Vec<Vec<u8>>> {
        let mut located = Vec::with_capacity(ids.len());
        for id in ids {
            let loc = index
                .get(id)
                .ok_or_else(|| crate::Error::ChunkNotIndexed { chunk: id.short() })?;
            located.push((*id, loc));
        }
        let mut packs: Vec<u32> = located.iter().map(|(_, l)| l.pack).collect();
        packs.sort_unstable();
        packs.dedup();
        let read = index::in_parallel(&packs, index::readers(self.backend()), |&n| {
            let pack = index.pack_id(n);
            let mine: Vec<&(ChunkId, Location)> =
                located.iter().filter(|(_, l)| l.pack == n).collect();
            let lo = mine.iter().map(|(_, l)| l.offset as u64).min();
            let hi = mine
                .iter()
                .map(|(_, l)| l.offset as u64 + l.stored_len as u64)
                .max();
            let (lo, hi) = (lo.unwrap_or(0), hi.unwrap_or(0));
            let wanted: u64 = mine.iter().map(|(_, l)| l.stored_len as u64).sum();
            // Chunks scattered over a pack are read one by one instead:
            // what is fetched ahead is held, so it must be mostly wanted.
            let ahead = if hi - lo <= 4 * wanted + (1 << 20) {
                vec![0..crypto::HEADER_AHEAD, crypto::sealed_span(&(lo..hi))]
            } else {
                Vec::new()
            };
            let opened = self
                .backend
                .open_ahead(Kind::Data, &pack.hex(), &ahead)
                .and_then(|raw| self.unseal_pack(raw))
                .with_context(|| format!("pack {}", pack.short()));
            let mut r = match opened {
                Ok(r) => r,
                // The first of its chunks carries the error as it is (a
                // failing store stays one), the others its message.
                Err(e) => {
                    let again = format!("{e:#}");
                    let rest = (1..mine.len()).map(|_| Err(anyhow!("{again}")));
                    return std::iter::once(Err(e)).chain(rest).collect();
                }
            };
            let mut scratch = Vec::new();
            mine.iter()
                .map(|(id, loc)| {
                    pack::read_chunk(&mut r, self.chunk_key(), id, loc, &mut scratch)
                        .with_context(|| format!("in pack {}", pack.short()))
                })
                .collect::<Vec<Result<Vec<u8>>>>()
        });
        let mut per_pack: std::collections::HashMap<u32, _> = packs
            .iter()
            .copied()
            .zip(read.into_iter().map(|chunks| chunks.into_iter()))
            .collect();
        located
            .iter()
            .map(|(id, loc)| {
                per_pack
                    .get_mut(&loc.pack)
                    .and_then(|chunks| chunks.next())
                    .unwrap_or_else(|| Err(anyhow!("chunk {} was not read", id.short())))
            })
            .collect()
    }
}

/// The key objects of the key file at `path` (an identity file's own,
/// `keys/<name of its recipient>`), read by name; none for a key file that
/// cannot be read or a write-only one. Failures are left for
/// [`keys::access_for`] to report.
pub(super) fn own_key_objects(
    backend: &dyn Backend,
    path: &std::path::Path,
) -> Vec<(String, Vec<u8>)> {
    let Ok(keys::KeyFile::Identity(ids)) = keys::KeyFile::load(path) else {
        return Vec::new();
    };
    ids.iter()
        .take(4)
        .filter_map(|id| {
            let name = key_object_name(&id.to_public());
            let raw = backend.get_if_exists(Kind::Keys, &name).ok()??;
            Some((name, raw))
        })
        .collect()
}
