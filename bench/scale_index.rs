//! Chunk-index scale benchmark (not a test): writes index objects for
//! millions of synthetic chunks into a local repository through the
//! library, then times opening the repository and loading its index.
//!
//!     cargo run --release --example scale_index -- gen DIR CHUNKS [PER_PACK]
//!     cargo run --release --example scale_index -- open DIR
//!
//! `gen` writes one index object per 10,000 chunks (a backup's worth) and an
//! empty file per pack, so the packs count as present the way a real
//! repository's do. `open` prints the load times, the index's own heap
//! bytes per chunk, and the process's resident memory.
//!
//! Targets (issue 19): at most 40 B a chunk, opened in under 2 s.

use anyhow::{Context, Result};
use lifeboat::repo::index::PackEntry;
use lifeboat::repo::{ChunkId, PackId, Repository};
use std::path::{Path, PathBuf};
use std::time::Instant;

const PER_INDEX_FILE: usize = 10_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn id(&mut self) -> [u8; 32] {
        let mut id = [0u8; 32];
        for b in id.chunks_mut(8) {
            b.copy_from_slice(&self.next().to_le_bytes());
        }
        id
    }
}

fn key_file(dir: &Path) -> PathBuf {
    dir.with_extension("key")
}

fn gen(dir: &Path, chunks: usize, per_pack: usize) -> Result<()> {
    let backend = lifeboat::repo::backend_at(&dir.display().to_string())?;
    Repository::init(backend, Some(key_file(dir)))?;
    let repo = lifeboat::repo::open_at(&dir.display().to_string(), Some(&key_file(dir)))?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut written = 0;
    let started = Instant::now();
    while written < chunks {
        let mut packs = Vec::new();
        let in_file = PER_INDEX_FILE.min(chunks - written);
        let mut left = in_file;
        while left > 0 {
            let n = per_pack.min(left);
            let pack = PackId(rng.id());
            let mut offset = 8u32;
            let entries: Vec<PackEntry> = (0..n)
                .map(|_| {
                    // Mostly small chunks (files under 256 KiB), some up to
                    // the default chunker's 4 MiB ceiling.
                    let stored_len = 1 + (rng.next() % (256 << 10)) as u32;
                    let compressed = rng.next() % 2 == 0;
                    let raw_len = if compressed {
                        stored_len + (rng.next() % (1 << 20)) as u32
                    } else {
                        stored_len
                    };
                    let e = PackEntry {
                        id: ChunkId(rng.id()),
                        offset,
                        stored_len,
                        raw_len,
                        compressed,
                    };
                    offset += stored_len;
                    e
                })
                .collect();
            let hex = pack.hex();
            let sub = dir.join("data").join(&hex[..2]);
            std::fs::create_dir_all(&sub)?;
            std::fs::write(sub.join(&hex), b"").context("writing a placeholder pack")?;
            packs.push((pack, entries));
            left -= n;
        }
        repo.write_index(&packs)?;
        written += in_file;
    }
    println!(
        "wrote {chunks} chunks ({} index objects, {per_pack} a pack) in {:.1} s",
        chunks.div_ceil(PER_INDEX_FILE),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open(dir: &Path) -> Result<()> {
    let rss_before = status("VmRSS:");
    let t = Instant::now();
    let repo = lifeboat::repo::open_at(&dir.display().to_string(), Some(&key_file(dir)))?;
    let opened = t.elapsed();
    let (index, damaged) = repo.load_index()?;
    let loaded = t.elapsed();
    anyhow::ensure!(damaged.is_empty(), "damaged index objects: {damaged:?}");
    let n = index.len();
    let heap = index.heap_bytes();
    let rss_after = status("VmRSS:");
    println!(
        "read index: {n} chunks, open {:.3} s, open+load {:.3} s, {:.1} B/chunk held, \
         RSS +{:.1} B/chunk, peak RSS {} MiB",
        opened.as_secs_f64(),
        loaded.as_secs_f64(),
        heap as f64 / n as f64,
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / n as f64,
        status("VmHWM:") / 1024
    );
    drop(index);
    before(&repo)?;
    let t = Instant::now();
    let writing = repo.load_index_for_writing()?;
    println!(
        "writing index: {} chunks, load {:.3} s",
        writing.index.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The index as it was before issue 19 (one sorted array of 52-byte
/// entries), rebuilt here from the same files so before and after are
/// measured on one machine in one run.
fn before(repo: &Repository) -> Result<()> {
    #[derive(Clone, Copy)]
    #[allow(dead_code)]
    struct Entry {
        id: ChunkId,
        loc: lifeboat::repo::Location,
    }
    let t = Instant::now();
    let (files, _) = repo.load_index_files()?;
    let read = t.elapsed();
    let health = repo.copy_health()?;
    let mut numbers = std::collections::HashMap::new();
    let mut packs = Vec::new();
    let mut ranked: Vec<(Entry, u8)> = Vec::new();
    for (pack, entries) in files.into_iter().flat_map(|(_, p)| p) {
        let n = *numbers.entry(pack).or_insert_with(|| {
            packs.push(pack);
            (packs.len() - 1) as u32
        });
        ranked.extend(entries.into_iter().map(|e| {
            (
                Entry {
                    id: e.id,
                    loc: e.location(n),
                },
                health.rank(&pack, &e.id),
            )
        }));
    }
    ranked.sort_unstable_by_key(|(e, r)| (e.id, *r));
    ranked.dedup_by(|a, b| a.0.id == b.0.id);
    let entries: Vec<Entry> = ranked.into_iter().map(|(e, _)| e).collect();
    println!(
        "before (sorted 52-byte entries): read+decode {:.3} s, load {:.3} s, {:.1} B/chunk held",
        read.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        (entries.capacity() * std::mem::size_of::<Entry>() + packs.capacity() * 32) as f64
            / entries.len() as f64
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["gen", dir, chunks] => gen(Path::new(dir), chunks.parse()?, 64),
        ["gen", dir, chunks, per_pack] => gen(Path::new(dir), chunks.parse()?, per_pack.parse()?),
        ["open", dir] => open(Path::new(dir)),
        _ => anyhow::bail!("usage: scale_index gen DIR CHUNKS [PER_PACK] | open DIR"),
    }
}
