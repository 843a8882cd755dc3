//! Restore drills: restore a restore point into a throwaway sandbox through
//! the real restore path (which checks every file's hash, and restores
//! every database into a database of its own and checks it), measure how
//! long it took, and tear the sandbox down. The live service is never
//! touched.

use super::probe::ProbeState;
use super::restore::tree::{restore_tree, Selection, TreeReport};
use crate::progress::Reporter;
use crate::repo::{Repository, Snapshot};
use crate::source::ledger::{Ledger, Made};
use crate::source::{Streams, To};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Where sandboxes are made (a directory with room for the restore).
    pub sandbox_root: PathBuf,
    /// The service's recovery time objective, to compare against.
    pub rto: Duration,
    /// The service as configured: its databases and streams are restored
    /// into sandboxes of their own and checked. Without it only files are.
    pub service: Option<crate::model::Service>,
    /// Where the drill's record of what it made goes, so a killed drill's
    /// sandboxes are cleaned up later; None keeps it in memory.
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub snapshot: String,
    /// When the restore point was taken.
    pub point_time: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub rto_ms: u64,
    pub within_rto: bool,
    pub files: u64,
    pub bytes: u64,
    /// What went wrong, or what was checked.
    pub detail: String,
    /// Each probe's pass/fail line.
    pub probes: Vec<super::probe::ProbeResult>,
}

/// What restoring a point into a sandbox found.
pub struct SandboxReport {
    pub tree: TreeReport,
    /// (source, kind, detail, differences) per database or stream.
    pub sources: Vec<(String, String, String, Vec<String>)>,
    /// What the service's probes found (empty when it has none).
    pub probes: Vec<super::probe::ProbeResult>,
}

impl SandboxReport {
    pub fn differences(&self) -> Vec<String> {
        self.sources
            .iter()
            .flat_map(|(s, _, _, d)| d.iter().map(move |x| format!("{s}: {x}")))
            .collect()
    }

    pub fn detail(&self) -> String {
        let mut detail = vec![format!(
            "restored {} into a sandbox; every file matched its recorded hash",
            crate::util::plural(self.tree.files, "file")
        )];
        detail.extend(
            self.sources
                .iter()
                .map(|(s, k, d, _)| format!("{k} {s}: {d}")),
        );
        let passed = self
            .probes
            .iter()
            .filter(|p| p.state == ProbeState::Pass)
            .count();
        if !self.probes.is_empty() {
            detail.push(format!("{passed} of {} probes passed", self.probes.len()));
        }
        let failed: Vec<String> = self
            .probes
            .iter()
            .filter(|p| p.state == ProbeState::Fail)
            .map(|p| format!("probe `{}` ({}) failed: {}", p.name, p.kind, p.detail))
            .collect();
        if !failed.is_empty() {
            detail.insert(0, failed.join("; "));
        }
        let differences = self.differences();
        if !differences.is_empty() {
            detail.insert(0, format!("check failed: {}", differences.join("; ")));
        }
        detail.join("; ")
    }
}

/// Restores `snap` into `dir` (which must not exist; removed afterwards
/// whatever happens): the files, and with `svc` every database and stream
/// into a sandbox of its own, each checked.
pub fn sandbox(
    repo: &Repository,
    snap: &Snapshot,
    svc: Option<&crate::model::Service>,
    include: &[String],
    dir: &Path,
    ledger: &Ledger,
    reporter: &Reporter,
) -> Result<SandboxReport> {
    sandbox_probed(repo, snap, svc, include, dir, ledger, reporter, false)
}

/// [`sandbox`], and with `probe` the service's probes run against it
/// before it is torn down.
#[allow(clippy::too_many_arguments)]
pub fn sandbox_probed(
    repo: &Repository,
    snap: &Snapshot,
    svc: Option<&crate::model::Service>,
    include: &[String],
    dir: &Path,
    ledger: &Ledger,
    reporter: &Reporter,
    probe: bool,
) -> Result<SandboxReport> {
    let made = Made::Path {
        path: dir.to_path_buf(),
    };
    ledger.made(made.clone())?;
    let result = (|| -> Result<SandboxReport> {
        let _lock = repo.lock(crate::repo::lock::Mode::Read, "drill", &|w| {
            reporter.warn(w)
        })?;
        let (index, _) = repo.load_index()?;
        let nodes = repo.read_tree(&index, snap)?;
        let streamed = svc.filter(|_| !snap.sources.is_empty() && include.is_empty());
        let sel = Selection {
            include: include.to_vec(),
            skip: Vec::new(),
            // A sandbox belongs to whoever runs the drill; ownership is
            // checked by the live restore, not here.
            owners: false,
            skip_streams: streamed.is_some(),
        };
        let tree = restore_tree(
            repo,
            &index,
            &nodes,
            snap,
            &sel,
            &dir.join("restore"),
            reporter,
        )?;
        let mut sources = Vec::new();
        let probing = svc.filter(|s| probe && include.is_empty() && !s.probes.is_empty());
        let mut target = super::probe::Target {
            root: dir.join("restore"),
            no_app: Some(
                "needs the application running on the sandbox, and this drill starts none".into(),
            ),
            ..Default::default()
        };
        // Databases probes query are kept until the probes have run.
        let mut kept: Vec<crate::source::Staged> = Vec::new();
        if let Some(svc) = streamed {
            let streams = Streams::new(repo, &index, &nodes, reporter);
            for record in &snap.sources {
                reporter.check_cancelled()?;
                let src = svc.sources.iter().find(|s| s.name == record.name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "restore point {} has a {} source `{}` that service `{}` no longer configures; restore its files with `lifeboat restore {} .lifeboat/{} --target DIR`",
                        snap.short_id(), record.kind, record.name, svc.name, snap.short_id(), record.name
                    )
                })?;
                let to = probe_copy(src, dir, probing.is_some());
                let staged =
                    crate::source::stage(src, record, &streams, &to, ledger).with_context(|| {
                        format!(
                            "service `{}`, source `{}` ({})",
                            svc.name, record.name, record.kind
                        )
                    });
                let s = match staged {
                    Ok(s) => s,
                    Err(e) => {
                        discard(&kept, ledger);
                        return Err(e);
                    }
                };
                sources.push((
                    s.source.clone(),
                    s.kind.clone(),
                    s.detail.clone(),
                    s.differences.clone(),
                ));
                if let Some(r) = restored(src, &s, &to) {
                    target.databases.push((src.name.clone(), r));
                }
                kept.push(s);
            }
        }
        let probes = match probing {
            Some(svc) => {
                let mut app = None;
                if let Some(a) = &svc.sandbox {
                    target.port = super::probe::app::free_port();
                    match super::probe::app::start(a, &target, &dir.join("sandbox_start.log")) {
                        Ok(r) => {
                            target.no_app = None;
                            app = Some(r);
                        }
                        Err(e) => {
                            target.no_app =
                                Some(format!("the sandbox application did not start: {e}"))
                        }
                    }
                }
                let mut results = super::probe::run_all(&svc.probes, &target, reporter);
                if let Some(mut a) = app {
                    a.stop();
                }
                // An app that should have served the probes and did not is
                // a failure, not a skip.
                if svc.sandbox.is_some() {
                    for r in results
                        .iter_mut()
                        .filter(|r| r.state == ProbeState::Skipped)
                    {
                        r.state = ProbeState::Fail;
                    }
                }
                results
            }
            None => Vec::new(),
        };
        discard(&kept, ledger);
        Ok(SandboxReport {
            tree,
            sources,
            probes,
        })
    })();
    match crate::source::cleanup::remove(&made) {
        Ok(()) => ledger.unmade(&made),
        Err(e) => reporter.warn(format!(
            "could not remove the sandbox {}: {e:#}",
            dir.display()
        )),
    }
    result
}

/// Where a source is restored for a drill. With probes to run, databases
/// are kept until they have: PostgreSQL and MariaDB into a new database
/// beside the live one (the path a live restore stages through, never
/// swapped in), SQLite into the sandbox.
fn probe_copy(src: &crate::model::Source, dir: &Path, probing: bool) -> To {
    use crate::model::SourceKind as K;
    match &src.kind {
        K::Postgres(_) | K::Mysql(_) if probing => To::live(),
        K::Sqlite { .. } if probing => To::Live {
            file: Some(dir.join("sources").join(format!("{}.sqlite", src.name))),
        },
        _ => To::Sandbox(dir.join("sources")),
    }
}

fn restored(
    src: &crate::model::Source,
    s: &crate::source::Staged,
    to: &To,
) -> Option<super::probe::Restored> {
    use super::probe::Restored;
    use crate::source::Commit;
    match (&s.commit, to) {
        (Commit::Postgres { db, new }, _) => Some(Restored::Postgres {
            db: db.clone(),
            name: new.clone(),
        }),
        (Commit::Mysql { db, new }, _) => Some(Restored::Mysql {
            db: db.clone(),
            name: new.clone(),
        }),
        (_, To::Live { file: Some(f) })
            if matches!(src.kind, crate::model::SourceKind::Sqlite { .. }) =>
        {
            Some(Restored::Sqlite { path: f.clone() })
        }
        _ => None,
    }
}

fn discard(kept: &[crate::source::Staged], ledger: &Ledger) {
    for s in kept {
        crate::source::discard(s, ledger);
    }
}

pub fn drill(
    repo: &Repository,
    snap: &Snapshot,
    opts: &DrillOptions,
    reporter: &Reporter,
) -> Result<DrillReport> {
    if opts
        .service
        .as_ref()
        .is_some_and(|s| crate::source::pitr::restore_at::cluster_of(s).is_some())
    {
        // Without a way to fetch WAL (the CLI passes one), the base
        // backup is proven on its own.
        return drill_cluster(repo, snap, opts, None, reporter);
    }
    std::fs::create_dir_all(&opts.sandbox_root)
        .with_context(|| format!("creating {}", opts.sandbox_root.display()))?;
    let id = crate::source::ledger::new_id("drill");
    let dir = opts.sandbox_root.join(format!("lifeboat-drill-{id}"));
    let ledger = Ledger::new(
        opts.state_dir.as_deref(),
        &id,
        &snap.service,
        (&snap.id, &snap.time),
    )?;
    let started = Instant::now();
    let result = sandbox_probed(
        repo,
        snap,
        opts.service.as_ref(),
        &[],
        &dir,
        &ledger,
        reporter,
        true,
    );
    let took = started.elapsed();
    for p in crate::source::cleanup::finish(&ledger) {
        reporter.warn(p);
    }
    if let Err(e) = &result {
        if crate::error::is_cancelled(e) {
            return Err(result
                .err()
                .unwrap_or_else(|| crate::Error::Cancelled.into()));
        }
    }
    let rto_ms = opts.rto.as_millis() as u64;
    let duration_ms = took.as_millis() as u64;
    Ok(match result {
        Ok(r) => {
            let ok =
                r.differences().is_empty() && r.probes.iter().all(|p| p.state != ProbeState::Fail);
            DrillReport {
                snapshot: snap.id.clone(),
                point_time: snap.time.clone(),
                ok,
                duration_ms,
                rto_ms,
                within_rto: ok && took <= opts.rto,
                files: r.tree.files,
                bytes: r.tree.bytes,
                detail: r.detail(),
                probes: r.probes,
            }
        }
        Err(e) => DrillReport {
            snapshot: snap.id.clone(),
            point_time: snap.time.clone(),
            ok: false,
            duration_ms,
            rto_ms,
            within_rto: false,
            files: 0,
            bytes: 0,
            detail: format!("{e:#}"),
            probes: Vec::new(),
        },
    })
}

/// A drill of a postgres-cluster service: the base backup `snap` written
/// into the sandbox set to recover to the end of the archived WAL
/// (`restore --at latest`), fetched with `restore_command` (None: no WAL
/// beyond what the base backup holds), a private server started on it
/// until recovery finished and it promoted, the check run (databases,
/// tables, rows, the catalog, `pg_amcheck` when installed), the server
/// stopped and the sandbox removed. Timed against the RTO.
pub fn drill_cluster(
    repo: &Repository,
    snap: &Snapshot,
    opts: &DrillOptions,
    restore_command: Option<&str>,
    reporter: &Reporter,
) -> Result<DrillReport> {
    use crate::source::pitr::{recovery, restore_at, trial, window::Moment};
    let svc = opts
        .service
        .as_ref()
        .context("a drill of a cluster needs the service as configured")?;
    let (source, cluster) = restore_at::cluster_of(svc)
        .with_context(|| format!("service `{}` has no postgres-cluster source", svc.name))?;
    std::fs::create_dir_all(&opts.sandbox_root)
        .with_context(|| format!("creating {}", opts.sandbox_root.display()))?;
    let id = crate::source::ledger::new_id("drill");
    let dir = opts.sandbox_root.join(format!("lifeboat-drill-{id}"));
    let ledger = Ledger::new(
        opts.state_dir.as_deref(),
        &id,
        &snap.service,
        (&snap.id, &snap.time),
    )?;
    let made = Made::Path { path: dir.clone() };
    ledger.made(made.clone())?;
    let started = Instant::now();
    let result = (|| -> Result<trial::TrialReport> {
        let data = dir.join("data");
        {
            let _lock = repo.lock(crate::repo::lock::Mode::Read, "drill", &|w| {
                reporter.warn(w)
            })?;
            // `false` fails every fetch: recovery ends with the WAL the
            // base backup carries.
            let fetch = restore_command.unwrap_or("false");
            recovery::write(repo, snap, source, &data, &Moment::Latest, fetch, reporter)?;
        }
        reporter.check_cancelled()?;
        trial::trial(&trial::TrialOptions::new(&data, &cluster.user), reporter)
    })();
    let took = started.elapsed();
    match crate::source::cleanup::remove(&made) {
        Ok(()) => ledger.unmade(&made),
        Err(e) => reporter.warn(format!(
            "could not remove the sandbox {}: {e:#}",
            dir.display()
        )),
    }
    for p in crate::source::cleanup::finish(&ledger) {
        reporter.warn(p);
    }
    let rto_ms = opts.rto.as_millis() as u64;
    let duration_ms = took.as_millis() as u64;
    let (ok, detail) = match result {
        Ok(t) => (
            true,
            format!(
                "restored base backup {} into a sandbox and {}; {}",
                snap.short_id(),
                match restore_command {
                    Some(_) => "replayed the archived WAL to its end",
                    None => "recovered it with the WAL it holds (no archive fetched)",
                },
                t.line()
            ),
        ),
        Err(e) if crate::error::is_cancelled(&e) => return Err(e),
        Err(e) => (false, format!("{e:#}")),
    };
    Ok(DrillReport {
        snapshot: snap.id.clone(),
        point_time: snap.time.clone(),
        ok,
        duration_ms,
        rto_ms,
        within_rto: ok && took <= opts.rto,
        files: snap.stats.files,
        bytes: snap.stats.bytes,
        detail,
        probes: Vec::new(),
    })
}

/// Which restore point a drill restores.
#[derive(Debug, Clone, PartialEq)]
pub enum PointChoice {
    Latest,
    /// Any point the retention policy keeps, chosen at random (as AWS
    /// restore testing does), but never `avoid` (the point drilled last)
    /// while there is another: over time every kept point gets proven.
    Random {
        avoid: Option<String>,
    },
    /// An id (prefix) or `latest`.
    Id(String),
}

impl PointChoice {
    pub fn word(&self) -> &'static str {
        match self {
            PointChoice::Latest => "latest",
            PointChoice::Random { .. } => "random",
            PointChoice::Id(_) => "chosen",
        }
    }
}

/// The restore point of `service` in `repo` that `choice` names.
pub fn choose_point(
    repo: &Repository,
    service: &str,
    retention: &crate::model::Retention,
    choice: &PointChoice,
) -> Result<Snapshot> {
    match choice {
        PointChoice::Latest => repo.find_snapshot("latest", Some(service)),
        PointChoice::Id(id) => repo.find_snapshot(id, Some(service)),
        PointChoice::Random { avoid } => {
            use rand::seq::SliceRandom;
            let kept: Vec<Snapshot> = super::plan_forget(repo, service, retention)?
                .into_iter()
                .filter(|(_, d)| d.keep)
                .map(|(s, _)| s)
                .collect();
            let fresh: Vec<&Snapshot> = kept
                .iter()
                .filter(|s| Some(&s.id) != avoid.as_ref())
                .collect();
            let pool: Vec<&Snapshot> = if fresh.is_empty() {
                kept.iter().collect()
            } else {
                fresh
            };
            pool.choose(&mut rand::thread_rng())
                .map(|s| (*s).clone())
                .ok_or_else(|| {
                    crate::Error::NoSnapshot {
                        query: format!("{service}:random"),
                        suggest: String::new(),
                    }
                    .into()
                })
        }
    }
}
