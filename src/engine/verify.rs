//! Verify: is every restore point restorable?
//!
//! The structural check proves every chunk a snapshot needs is indexed, in
//! a pack that exists, and that each pack's own trailer agrees with the
//! index. `read_data` also decrypts and hashes chunks (all, or a random
//! share of packs per run). Every problem names the snapshots and file
//! paths it affects, so the admin knows which restore points are still good.

use crate::progress::{Counters, Phase, Reporter};
use crate::repo::damage::{CopyHealth, DamagedCopy, PackOpenError};
use crate::repo::index::PackEntry;
use crate::repo::tree::NodeKind;
use crate::repo::{pack, ChunkId, Index, Kind, PackId, Repository};
use anyhow::{anyhow, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Percentage of packs whose data is read, 0 for a structural check only.
    pub read_data_percent: f64,
    /// Which slice to read when reading part: run n reads slice n mod
    /// ⌈100 / percent⌉, so consecutive runs cover every pack.
    pub rotation: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub object: String,
    pub problem: String,
    /// `snapshot (service): path` for every restore point that is affected.
    pub affects: Vec<String>,
}

impl From<super::verify_files::Finding> for Problem {
    fn from(f: super::verify_files::Finding) -> Problem {
        Problem {
            object: f.object,
            problem: f.problem,
            affects: f.affects,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub snapshots: usize,
    pub packs: usize,
    pub chunks: usize,
    pub packs_read: usize,
    pub chunks_read: u64,
    pub bytes_read: u64,
    /// Packs no index mentions: left by an interrupted backup, harmless,
    /// removed by prune — unless an index file is damaged, when they may
    /// hold the data it listed.
    pub unreferenced_packs: usize,
    /// Index files that could not be read (each is also a problem).
    pub damaged_index_files: usize,
    pub problems: Vec<Problem>,
    /// Snapshots with no problem.
    pub good_snapshots: Vec<String>,
    /// Services with at least one restore point that is not restorable.
    pub affected_services: Vec<String>,
    /// Files of the newest restore points read whole and checked against
    /// their recorded hash (`--read-data`).
    pub files_hashed: u64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn verify(
    repo: &Repository,
    opts: &VerifyOptions,
    reporter: &Reporter,
) -> Result<VerifyReport> {
    repo.data_identity()?;
    let _lock = repo.lock(crate::repo::lock::Mode::Read, "verify", &|w| {
        reporter.warn(w)
    })?;
    let mut report = VerifyReport::default();
    reporter.progress(
        Counters {
            phase: Phase::Verify,
            ..Default::default()
        },
        None,
        true,
    );

    let (index_files, damaged_index) = repo.load_index_files()?;
    report.damaged_index_files = damaged_index.len();
    for (name, why) in damaged_index {
        report.problems.push(Problem {
            object: format!("index/{name}"),
            problem: why,
            affects: vec![],
        });
    }
    // Per pack, the entries the indexes claim (a pack may be indexed twice).
    let mut claimed: BTreeMap<PackId, Vec<PackEntry>> = BTreeMap::new();
    for (_, packs) in &index_files {
        for (p, entries) in packs {
            claimed.entry(*p).or_insert_with(|| entries.clone());
        }
    }
    let health = repo.copy_health()?;
    drop(index_files);
    let stored: HashMap<String, u64> = repo.backend().list(Kind::Data)?.into_iter().collect();
    report.packs = claimed.len();
    report.unreferenced_packs = stored
        .keys()
        .filter(|n| {
            PackId::parse(n)
                .map(|p| !claimed.contains_key(&p))
                .unwrap_or(true)
        })
        .count();

    // Structure: packs exist and their trailers agree with the index.
    let mut bad_chunks: HashMap<ChunkId, Option<PackId>> = HashMap::new();
    let mut pack_problems: BTreeMap<PackId, Problem> = BTreeMap::new();
    let packs: Vec<(PackId, Vec<PackEntry>)> = claimed.into_iter().collect();
    let failing = StoreFailures::default();
    // Packs that open but whose trailer is lost, each chunk read back.
    let mut trailerless: BTreeMap<PackId, (String, ReadBack)> = BTreeMap::new();
    for (p, entries) in &packs {
        let problem = if !stored.contains_key(&p.hex()) {
            Some("missing from storage".to_string())
        } else {
            let trailer = repo
                .open_pack(p)
                .and_then(|mut r| pack::read_trailer(&mut r));
            failing.count(trailer.as_ref().err());
            if let Some(e) = failing.gave_up() {
                return Err(could_not_check(repo, e));
            }
            match trailer {
                Err(e) => {
                    let why = format!("trailer unreadable: {e:#}");
                    match read_back_trailerless(repo, p, entries, &e) {
                        Some(read) => {
                            trailerless.insert(*p, (why, read));
                            None
                        }
                        None => Some(why),
                    }
                }
                Ok(t) => {
                    let mut a = t.clone();
                    let mut b = entries.clone();
                    a.sort_by_key(|e| e.id);
                    b.sort_by_key(|e| e.id);
                    (a != b).then(|| "trailer does not match the index".to_string())
                }
            }
        };
        if let Some(problem) = problem {
            for e in entries {
                bad_chunks.insert(e.id, Some(*p));
            }
            pack_problems.insert(
                *p,
                Problem {
                    object: format!("data/{}", p.hex()),
                    problem,
                    affects: vec![],
                },
            );
        }
    }

    // Data: decrypt, decompress and hash chunks of the chosen packs.
    let structural_bad: HashSet<PackId> = pack_problems.keys().copied().collect();
    let mut found_copies: Vec<DamagedCopy> = Vec::new();
    let mut failed_copies: HashSet<DamagedCopy> = HashSet::new();
    let mut packs_read: HashSet<PackId> = HashSet::new();
    if opts.read_data_percent > 0.0 {
        let mut chosen: Vec<&(PackId, Vec<PackEntry>)> = packs
            .iter()
            .filter(|(p, _)| stored.contains_key(&p.hex()) && !trailerless.contains_key(p))
            .collect();
        if opts.read_data_percent < 100.0 {
            // Pack ids are random, so slicing by id spreads evenly; the
            // slices are disjoint and together are every pack.
            let slices = (100.0 / opts.read_data_percent).ceil().max(1.0) as u64;
            let slice = opts.rotation % slices;
            chosen.retain(|(p, _)| {
                u64::from_le_bytes([
                    p.0[0], p.0[1], p.0[2], p.0[3], p.0[4], p.0[5], p.0[6], p.0[7],
                ]) % slices
                    == slice
            });
        }
        report.packs_read = chosen.len();
        packs_read.extend(chosen.iter().map(|(p, _)| *p));
        let bytes_total: u64 = chosen
            .iter()
            .flat_map(|(_, e)| e.iter().map(|e| e.raw_len as u64))
            .sum();
        let next = AtomicU64::new(0);
        let bytes_done = AtomicU64::new(0);
        let chunks_read = AtomicU64::new(0);
        // (pack, chunk, why, whether the chunk itself read back wrong
        // rather than the pack not opening)
        let found: Mutex<Vec<(PackId, ChunkId, String, bool)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..super::workers() {
                s.spawn(|| loop {
                    if failing.stopped() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some((p, entries)) = chosen.get(i) else {
                        return;
                    };
                    let mut bad = Vec::new();
                    let opened = repo.read_pack_classified(p);
                    failing.count(match &opened {
                        Err(PackOpenError::Unreachable(e)) => Some(e),
                        Err(PackOpenError::Damaged(_)) | Ok(_) => None,
                    });
                    if failing.stopped() {
                        return;
                    }
                    match opened {
                        Err(e) => {
                            let content = matches!(e, PackOpenError::Damaged(_));
                            let why = format!("{:#}", e.error());
                            bad.extend(entries.iter().map(|c| (*p, c.id, why.clone(), content)))
                        }
                        Ok(mut r) => {
                            let read = pack::read_back(&mut r, repo.chunk_key(), entries, &|c| {
                                chunks_read.fetch_add(1, Ordering::Relaxed);
                                bytes_done.fetch_add(c.raw_len as u64, Ordering::Relaxed);
                            });
                            bad.extend(
                                read.into_iter()
                                    .filter_map(|(c, why)| why.map(|why| (*p, c.id, why, true))),
                            );
                        }
                    }
                    reporter.progress(
                        Counters {
                            phase: Phase::Verify,
                            bytes_done: bytes_done.load(Ordering::Relaxed),
                            bytes_total,
                            ..Default::default()
                        },
                        None,
                        false,
                    );
                    if let Ok(mut f) = found.lock() {
                        f.extend(bad);
                    }
                });
            }
        });
        if let Some(e) = failing.gave_up() {
            // Nothing found is recorded: packs the store would not give
            // are not damaged, only unchecked.
            return Err(could_not_check(repo, e));
        }
        report.chunks_read = chunks_read.into_inner();
        report.bytes_read = bytes_done.into_inner();
        let found = found
            .into_inner()
            .map_err(|_| anyhow!("verify state poisoned"))?;
        let mut per_pack: BTreeMap<PackId, Vec<(ChunkId, String)>> = BTreeMap::new();
        for (p, c, why, content) in found {
            failed_copies.insert(DamagedCopy { pack: p, chunk: c });
            if content {
                found_copies.push(DamagedCopy { pack: p, chunk: c });
            }
            per_pack.entry(p).or_default().push((c, why));
        }
        for (p, chunks) in per_pack {
            for (c, _) in &chunks {
                bad_chunks.entry(*c).or_insert(Some(p));
            }
            let problem = format!(
                "{}: {}",
                crate::util::plural(chunks.len() as u64, "damaged chunk"),
                chunks[0].1
            );
            pack_problems
                .entry(p)
                .and_modify(|e| e.problem = format!("{}; {problem}", e.problem))
                .or_insert(Problem {
                    object: format!("data/{}", p.hex()),
                    problem,
                    affects: vec![],
                });
        }
    }

    for (p, (why, read)) in trailerless {
        judge_trailerless(
            p,
            why,
            &read,
            &mut report,
            &mut bad_chunks,
            &mut pack_problems,
        );
        packs_read.insert(p);
        for (e, damage) in &read {
            if damage.is_some() {
                // What does not read back is damage like any other found.
                let copy = DamagedCopy {
                    pack: p,
                    chunk: e.id,
                };
                failed_copies.insert(copy);
                found_copies.push(copy);
            }
        }
    }

    let index = judge_copies(
        repo,
        &packs,
        &Judged {
            health: &health,
            structural_bad: &structural_bad,
            failed: &failed_copies,
            found: &found_copies,
            packs_read: &packs_read,
        },
        &mut bad_chunks,
        &mut pack_problems,
        reporter,
    );
    report.chunks = index.len();

    // Snapshots: every chunk they need must be indexed and undamaged.
    let (snaps, damaged_snaps) = repo.list_snapshots()?;
    for (name, why) in damaged_snaps {
        report.problems.push(Problem {
            object: format!("snapshots/{name}"),
            problem: why,
            affects: vec![name.clone()],
        });
    }
    report.snapshots = snaps.len();
    let newest = super::verify_files::newest_per_service(&snaps);
    let mut affects: HashMap<ChunkId, Vec<String>> = HashMap::new();
    for snap in &snaps {
        let label = format!("{} ({})", snap.short_id(), snap.service);
        let mut snapshot_ok = true;
        for id in &snap.tree {
            if !index.contains(id) || bad_chunks.contains_key(id) {
                snapshot_ok = false;
                affects
                    .entry(*id)
                    .or_default()
                    .push(format!("{label}: the file list"));
            }
        }
        let nodes = match repo.read_tree(&index, snap) {
            Ok(n) => n,
            Err(e) => {
                if !report.affected_services.contains(&snap.service) {
                    report.affected_services.push(snap.service.clone());
                }
                report.problems.push(Problem {
                    object: format!("snapshots/{}", snap.id),
                    problem: format!("{e:#}"),
                    affects: vec![format!("{label}: every file")],
                });
                continue;
            }
        };
        for n in nodes.iter().filter(|n| n.kind == NodeKind::File) {
            for id in &n.chunks {
                if !index.contains(id) {
                    bad_chunks.insert(*id, None);
                }
                if bad_chunks.contains_key(id) {
                    snapshot_ok = false;
                    affects
                        .entry(*id)
                        .or_default()
                        .push(format!("{label}: /{}", n.path));
                }
            }
        }
        // Everything restore checks before writing, and for the newest
        // point of each service (what an incident restores) every file.
        if let Some(p) = super::verify_files::tree_problem(snap, &nodes, &index) {
            snapshot_ok = false;
            report.problems.push(p.into());
        } else if opts.read_data_percent >= 100.0 && newest.contains(&snap.id) {
            // Only on a full read: a partial one is chosen to bound what a
            // night reads, and the newest point may be most of the data.
            let (n, problem) = super::verify_files::check_whole_files(
                repo,
                &index,
                snap,
                &nodes,
                &|c| bad_chunks.contains_key(c),
                reporter,
            );
            report.files_hashed += n;
            if let Some(p) = problem {
                snapshot_ok = false;
                report.problems.push(p.into());
            } else if let Some(why) =
                crate::source::pitr::verify::base_problem(repo, &index, snap, &nodes, reporter)
            {
                snapshot_ok = false;
                report.problems.push(Problem {
                    object: format!("restore point {}", snap.short_id()),
                    problem: why,
                    affects: vec![],
                });
            }
        }
        if snapshot_ok {
            report.good_snapshots.push(snap.short_id());
        } else if !report.affected_services.contains(&snap.service) {
            report.affected_services.push(snap.service.clone());
        }
    }
    // Attach affected restore points to the problems that cause them.
    let mut unindexed = Problem {
        object: "index".into(),
        problem: "chunks that restore points need are not in any index".into(),
        affects: vec![],
    };
    for (id, a) in affects {
        // Every damaged chunk was recorded together with its pack's problem.
        match bad_chunks
            .get(&id)
            .copied()
            .flatten()
            .and_then(|p| pack_problems.get_mut(&p))
        {
            Some(problem) => problem.affects.extend(a),
            None => unindexed.affects.extend(a),
        }
    }
    for mut p in pack_problems
        .into_values()
        .chain((!unindexed.affects.is_empty()).then_some(unindexed))
    {
        p.affects.sort();
        p.affects.dedup();
        report.problems.push(p);
    }
    // Under Object Lock: what a host with delete rights could destroy.
    for (object, problem) in super::locks::audit(repo.backend())? {
        report.problems.push(Problem {
            object,
            problem,
            affects: vec![],
        });
    }
    reporter.progress(
        Counters {
            phase: Phase::Done,
            ..Default::default()
        },
        None,
        true,
    );
    Ok(report)
}

/// Packs in a row the store failed to give (after its own retries) before
/// verify stops: going on pack by pack against a store that is down costs
/// a retry deadline per pack and proves nothing.
const STORE_FAILURES_IN_A_ROW: usize = 3;

/// Counts consecutive store failures across verify's workers.
#[derive(Default)]
struct StoreFailures {
    in_a_row: std::sync::atomic::AtomicUsize,
    last: Mutex<Option<String>>,
}

impl StoreFailures {
    fn count(&self, failure: Option<&anyhow::Error>) {
        match failure {
            Some(e) if crate::repo::backend::is_store_failure(e) => {
                if let Ok(mut last) = self.last.lock() {
                    *last = Some(format!("{e:#}"));
                }
                self.in_a_row.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                if !self.stopped() {
                    self.in_a_row.store(0, Ordering::SeqCst);
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        self.in_a_row.load(Ordering::SeqCst) >= STORE_FAILURES_IN_A_ROW
    }

    fn gave_up(&self) -> Option<String> {
        if !self.stopped() {
            return None;
        }
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

fn could_not_check(repo: &Repository, last: String) -> anyhow::Error {
    crate::Error::Storage {
        what: format!(
            "could not check the repository at {}: the store failed on {STORE_FAILURES_IN_A_ROW} packs in a row ({last})",
            repo.backend().location()
        ),
        hint: "verify stopped early and recorded no result and no damage; run it again once the store answers (check the endpoint, network and the provider's status page)".into(),
    }
    .into()
}

/// Each chunk of a pack read back: the chunk and why it is damaged, if it is.
type ReadBack = Vec<(PackEntry, Option<String>)>;

/// A pack whose trailer is lost (a pack cut short in its last segment,
/// say) still holds every chunk of the segments before: read back each
/// chunk the index names, so only files needing the damaged part are
/// flagged. None when the pack itself cannot be had (the store failed, or
/// no header): then every chunk of it counts as damaged.
fn read_back_trailerless(
    repo: &Repository,
    p: &PackId,
    entries: &[PackEntry],
    trailer_error: &anyhow::Error,
) -> Option<ReadBack> {
    if crate::repo::backend::is_store_failure(trailer_error) {
        return None;
    }
    let mut r = repo.read_pack_classified(p).ok()?;
    Some(pack::read_back(&mut r, repo.chunk_key(), entries, &|_| {}))
}

/// Records what reading back a trailerless pack found.
fn judge_trailerless(
    p: PackId,
    why: String,
    read: &ReadBack,
    report: &mut VerifyReport,
    bad_chunks: &mut HashMap<ChunkId, Option<PackId>>,
    pack_problems: &mut BTreeMap<PackId, Problem>,
) {
    report.packs_read += 1;
    report.chunks_read += read.len() as u64;
    let damaged: Vec<(&PackEntry, &String)> = read
        .iter()
        .filter_map(|(e, d)| d.as_ref().map(|d| (e, d)))
        .collect();
    for (e, _) in &damaged {
        bad_chunks.insert(e.id, Some(p));
    }
    report.bytes_read += read
        .iter()
        .filter(|(_, d)| d.is_none())
        .map(|(e, _)| e.raw_len as u64)
        .sum::<u64>();
    let problem = match damaged.first() {
        None => format!(
            "{why}; every one of the {} chunks the index names in it reads back, so no restore point is affected",
            read.len()
        ),
        Some((_, first)) => format!(
            "{why}; {} of {} chunks the index names in it cannot be read back: {first}",
            damaged.len(),
            read.len()
        ),
    };
    pack_problems.insert(
        p,
        Problem {
            object: format!("data/{}", p.hex()),
            problem,
            affects: vec![],
        },
    );
}

/// What verify learnt about stored copies this run.
struct Judged<'a> {
    health: &'a CopyHealth,
    /// Packs missing, or whose trailer is unreadable or disagrees.
    structural_bad: &'a HashSet<PackId>,
    /// Copies that did not read back this run, for any reason.
    failed: &'a HashSet<DamagedCopy>,
    /// Of those, copies whose stored bytes are wrong (not a pack that
    /// would not open): recorded for later backups.
    found: &'a [DamagedCopy],
    packs_read: &'a HashSet<PackId>,
}

/// Decides which stored copies are bad, records newly found damage for
/// later backups, and returns the index to read snapshots with (good
/// copies first). A chunk stays in `bad_chunks` only when no good copy of
/// it exists: a chunk a later backup stored again is not damage.
fn judge_copies(
    repo: &Repository,
    packs: &[(PackId, Vec<PackEntry>)],
    j: &Judged<'_>,
    bad_chunks: &mut HashMap<ChunkId, Option<PackId>>,
    pack_problems: &mut BTreeMap<PackId, Problem>,
    reporter: &Reporter,
) -> Index {
    // Damage an earlier run found stands until its pack is read again.
    let mut earlier: BTreeMap<PackId, usize> = BTreeMap::new();
    for (p, entries) in packs {
        if j.packs_read.contains(p) {
            continue;
        }
        for e in entries {
            if j.health.damaged.contains(&DamagedCopy {
                pack: *p,
                chunk: e.id,
            }) {
                bad_chunks.entry(e.id).or_insert(Some(*p));
                *earlier.entry(*p).or_default() += 1;
            }
        }
    }
    for (p, n) in earlier {
        let problem = format!(
            "{} found damaged by an earlier `verify --read-data`",
            crate::util::plural(n as u64, "chunk")
        );
        pack_problems
            .entry(p)
            .and_modify(|e| e.problem = format!("{}; {problem}", e.problem))
            .or_insert(Problem {
                object: format!("data/{}", p.hex()),
                problem,
                affects: vec![],
            });
    }
    let new: Vec<DamagedCopy> = j
        .found
        .iter()
        .filter(|c| !j.health.damaged.contains(c))
        .copied()
        .collect();
    if !new.is_empty() {
        // Where backups will see it; a repository verify cannot write to
        // still gets its report.
        if let Err(e) = repo.record_damage(&new) {
            reporter.warn(format!(
                "could not record the damaged chunks for later backups, which will keep deduplicating against them: {e:#}"
            ));
        }
    }
    let rank = |p: &PackId, c: &ChunkId| -> u8 {
        let copy = DamagedCopy {
            pack: *p,
            chunk: *c,
        };
        let bad = !j.health.present.contains(p)
            || j.structural_bad.contains(p)
            || j.failed.contains(&copy)
            || (!j.packs_read.contains(p) && j.health.damaged.contains(&copy));
        bad as u8
    };
    let good = Index::build_ranked(packs.iter().cloned(), |p, c| (rank(p, c) == 0).then_some(0));
    bad_chunks.retain(|c, _| !good.contains(c));
    Index::build_ranked(packs.iter().cloned(), |p, c| Some(rank(p, c)))
}
