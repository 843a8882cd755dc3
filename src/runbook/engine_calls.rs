//! Every restore, check, verify and drill a runbook performs goes through
//! this module: the one seam between runbooks and the engine. A restore is
//! planned (what it writes, what it replaces, per path and per database),
//! staged, checked and swapped in by the engine's restore, which keeps
//! what it replaced and writes it down for `lifeboat rollback`.

use crate::config::Config;
use crate::engine::restore::plan::Scope;
use crate::engine::{self, DrillOptions, DrillReport, RestoreOptions, RestorePlan};
use crate::model::{Service, Source};
use crate::progress::Reporter;
use crate::repo::{Repository, Snapshot};
use crate::source::ledger::{Ledger, Replaced};
use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name runbooks use for a source's kind in `applies_to.kinds`.
pub fn kind_of(src: &Source) -> &'static str {
    src.kind.name()
}

/// Where a restore writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Over the live data: staged beside it, checked, swapped in; what it
    /// replaces is kept as a rollback copy.
    Live,
    /// A throwaway sandbox under the state directory, removed afterwards.
    Sandbox,
    /// A directory that mirrors the original paths (left for the admin).
    Dir(PathBuf),
}

impl Target {
    pub fn parse(s: &str) -> Target {
        match s {
            "live" => Target::Live,
            "sandbox" => Target::Sandbox,
            dir => Target::Dir(PathBuf::from(dir)),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    /// The restore's id (`lifeboat rollback ID`).
    pub id: String,
    pub files: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    /// Where data landed (live paths, databases, or the directory).
    pub restored: Vec<String>,
    /// What a live restore replaced, kept until the admin discards it.
    #[serde(skip)]
    pub replaced: Vec<Replaced>,
    pub detail: String,
}

/// The repositories a job may read, with the key override from the
/// command line (a path, never the key itself).
pub struct Repos<'a> {
    pub config: &'a Config,
    pub key: Option<PathBuf>,
}

impl Repos<'_> {
    pub fn open(&self, name: &str) -> Result<Repository> {
        let r = self
            .config
            .repositories
            .get(name)
            .ok_or_else(|| anyhow!("no repository named `{name}` in the config"))?;
        // `latest` and id prefixes are found through the config's cache,
        // the one the CLI and the console keep.
        Ok(r.open(self.key.as_deref())?
            .with_cache_dir(self.config.cache_dir.clone()))
    }
}

/// `latest`, an id (or unique prefix), or `before:TIME` — the newest
/// restore point taken before TIME (RFC 3339, or `2026-11-20 14:00`).
///
/// An id chosen in one repository also finds its copy in another (copies
/// remember the id they were made from), so a point picked from the
/// on-site list restores from the off-site repository.
pub fn resolve_point(repo: &Repository, service: &str, spec: &str) -> Result<Snapshot> {
    let Some(when) = spec.strip_prefix("before:") else {
        return repo.find_snapshot(spec, Some(service)).or_else(|e| {
            let (snaps, _) = repo.list_snapshots_cached()?;
            let copies: Vec<Snapshot> = snaps
                .into_iter()
                .filter(|s| s.service == service)
                .filter(|s| {
                    s.origin
                        .as_deref()
                        .is_some_and(|o| !spec.is_empty() && o.starts_with(spec))
                })
                .collect();
            match <[Snapshot; 1]>::try_from(copies) {
                Ok([one]) => Ok(one),
                Err(_) => Err(e),
            }
        });
    };
    let limit = humantime::parse_rfc3339_weak(when.trim())
        .with_context(|| format!("before:{when}: expected a time like 2026-11-20T14:00:00Z"))?;
    let (snaps, _) = repo.list_snapshots_cached()?;
    snaps
        .into_iter()
        .filter(|s| s.service == service)
        .filter(|s| s.system_time().is_some_and(|t| t < limit))
        .max_by(|a, b| a.time.cmp(&b.time))
        .ok_or_else(|| anyhow!("{service} has no restore point taken before {when}"))
}

/// The plan of a live restore of `scope` of `svc` from `snap`: what it
/// writes and what it replaces, before anything is touched.
pub fn plan(
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    scope: &Scope,
    id: &str,
) -> Result<RestorePlan> {
    let (index, _) = repo.load_index()?;
    let tree = Arc::new(repo.read_tree(&index, snap)?);
    engine::plan_service(svc, snap, tree, scope, id)
}

/// Restores `scope` of a service from `snap` to `target`, as restore `id`
/// of job `job`.
#[allow(clippy::too_many_arguments)]
pub fn restore_service(
    repos: &Repos,
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    scope: &Scope,
    target: &Target,
    (id, job): (&str, &str),
    reporter: &Reporter,
) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let state_dir = &repos.config.state_dir;
    let mut out = Outcome {
        id: id.to_string(),
        ..Outcome::default()
    };
    let recorded: Vec<String> = snap.sources.iter().map(|r| r.name.clone()).collect();
    let roots: Vec<String> = engine::restore::plan::tree_selections(svc, scope, &recorded)?
        .iter()
        .map(|s| s.live.to_string_lossy().trim_matches('/').to_string())
        .collect();
    match target {
        Target::Dir(dir) => {
            let mut opts = RestoreOptions::new(dir);
            opts.include = roots;
            opts.state_dir = Some(state_dir.clone());
            opts.id = Some(id.to_string());
            let r = engine::restore(repo, snap, &opts, reporter)?;
            out.files = r.files;
            out.bytes = r.bytes;
            out.restored.push(dir.display().to_string());
            out.detail = format!(
                "restored {} files ({}) from {} into {}; every file matched its recorded hash",
                r.files,
                crate::util::human_bytes(r.bytes),
                snap.short_id(),
                dir.display()
            );
        }
        Target::Sandbox => {
            let ledger =
                Ledger::new(Some(state_dir), id, &svc.name, (&snap.id, &snap.time))?.in_job(job);
            let dir = state_dir.join("sandboxes").join(format!("restore-{id}"));
            let include = if scope.path.is_some() {
                roots
            } else {
                Vec::new()
            };
            let r =
                engine::drill::sandbox(repo, snap, Some(svc), &include, &dir, &ledger, reporter);
            let problems = crate::source::cleanup::finish(&ledger);
            let r = r?;
            for p in problems {
                reporter.warn(p);
            }
            out.files = r.tree.files;
            out.bytes = r.tree.bytes;
            let differences = r.differences();
            if !differences.is_empty() {
                anyhow::bail!(
                    "the restored copy differs from the backup: {}",
                    differences.join("; ")
                );
            }
            out.detail = r.detail();
        }
        Target::Live => {
            let plan = plan(svc, repo, snap, scope, id)?;
            let ledger =
                Ledger::new(Some(state_dir), id, &svc.name, (&snap.id, &snap.time))?.in_job(job);
            let r = engine::execute(repo, snap, &plan, &ledger, reporter);
            let problems = crate::source::cleanup::finish(&ledger);
            let r = r?;
            for p in problems.iter().chain(&r.problems) {
                reporter.warn(p.clone());
            }
            out.files = r.files;
            out.bytes = r.bytes;
            out.restored = plan.items.iter().map(|i| i.target.clone()).collect();
            out.replaced = r.replaced.clone();
            out.detail = r
                .done
                .iter()
                .map(|d| format!("{} {}: {}", d.kind, d.source, d.detail))
                .collect::<Vec<_>>()
                .join("; ");
            let differences = r.differences();
            if !differences.is_empty() {
                anyhow::bail!(
                    "restored, but the check found differences: {}; `lifeboat rollback {id}` puts back what was there",
                    differences.join("; ")
                );
            }
        }
    }
    out.duration_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// A live restore of a PostgreSQL cluster to the job's point (`latest`,
/// `before:TIME`, or a base backup's id), as `restore SERVICE --at
/// MOMENT --live` does it: planned, a new data directory written beside
/// the live one, recovered and checked by a private server, swapped in,
/// the old one kept for `lifeboat rollback ID`. `said` gets each line of
/// the plan before anything is touched.
#[allow(clippy::too_many_arguments)]
pub fn restore_cluster_live(
    (config, key): (&Config, Option<&Path>),
    svc: &Service,
    repo: &Repository,
    base: &Snapshot,
    point: &str,
    (id, job): (&str, &str),
    said: &dyn Fn(String),
    reporter: &Reporter,
) -> Result<Outcome> {
    use crate::engine::restore::at;
    use crate::source::pitr::restore_at as pitr_at;
    let started = std::time::Instant::now();
    let exe = std::env::current_exe().context("finding the lifeboat binary for restore_command")?;
    let opts = at::LiveAtOptions {
        service: svc.clone(),
        config: config.path.clone(),
        moment: pitr_at::moment_of(point, base, &svc.name)?,
        restore_command: pitr_at::fetch_command(&exe, Some(&config.path), None, key, &svc.name),
        spooled: pitr_at::cluster_of(svc).and_then(|(_, c)| pitr_at::spooled(c)),
        id: id.to_string(),
        timeout: std::time::Duration::from_secs(3600),
    };
    let plan = at::plan_at(repo, &opts)?;
    for l in plan.lines() {
        said(l);
    }
    let ledger = Ledger::new(
        Some(&config.state_dir),
        id,
        &svc.name,
        (&plan.base.id, &plan.base.time),
    )?
    .in_job(job);
    let r = at::execute_at(repo, &plan, &ledger, reporter);
    let problems = crate::source::cleanup::finish(&ledger);
    let r = r?;
    for p in problems.iter().chain(&r.problems) {
        reporter.warn(p.clone());
    }
    Ok(Outcome {
        id: id.to_string(),
        restored: vec![r.data_dir.display().to_string()],
        detail: r.lines().join("; "),
        duration_ms: started.elapsed().as_millis() as u64,
        ..Outcome::default()
    })
}

/// The application-level check after a restore: every file of the scope,
/// read back from `root` (`/` for live data) and hashed, matches the
/// restore point; live databases and streams in scope match what the
/// backup recorded.
pub fn check_service(
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    scope: &Scope,
    root: &Path,
) -> Result<String> {
    engine::restore::check::check(svc, repo, snap, scope, root)
}

/// Reads back every byte of a restore point in a sandbox (hashes checked)
/// before anyone trusts it; nothing is recorded for health.
pub fn verify_point(
    repos: &Repos,
    repo: &Repository,
    snap: &Snapshot,
    reporter: &Reporter,
) -> Result<String> {
    let state_dir = &repos.config.state_dir;
    let id = crate::source::ledger::new_id("verify");
    let ledger = Ledger::new(Some(state_dir), &id, &snap.service, (&snap.id, &snap.time))?;
    let dir = state_dir.join("sandboxes").join(format!("verify-{id}"));
    let r = engine::drill::sandbox(repo, snap, None, &[], &dir, &ledger, reporter);
    crate::source::cleanup::finish(&ledger);
    let r = r.with_context(|| format!("restore point {} does not restore", snap.short_id()))?;
    Ok(format!(
        "restore point {} reads back whole: {} files, {}",
        snap.short_id(),
        r.tree.files,
        crate::util::human_bytes(r.tree.bytes)
    ))
}

/// A backup of the service into its own repository, its databases and
/// streams included: what `lifeboat backup SERVICE` does.
pub fn backup_service(repos: &Repos, svc: &Service, reporter: &Reporter) -> Result<Snapshot> {
    let repo = repos.open(&svc.repository)?;
    let cache_dir = &repos.config.cache_dir;
    let mut opts = engine::BackupOptions::for_service(svc, cache_dir);
    opts.skip_paths.push(cache_dir.clone());
    if let Some(r) = repos.config.repositories.get(&svc.repository) {
        opts.skip_paths.push(r.path.clone());
    }
    let captures = crate::source::captures(svc, cache_dir);
    engine::backup_with(&repo, &opts, captures, reporter)
}

/// A drill: sandbox restore, check, time against the RTO, recorded for
/// health. The live service is never touched.
pub fn drill_service(
    repos: &Repos,
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    reporter: &Reporter,
) -> Result<DrillReport> {
    let report = engine::drill(
        repo,
        snap,
        &DrillOptions {
            sandbox_root: repos.config.state_dir.join("sandboxes"),
            rto: svc.policy.rto,
            service: Some(svc.clone()),
            state_dir: Some(repos.config.state_dir.clone()),
        },
        reporter,
    )?;
    crate::records::Records::new(&repos.config.state_dir)
        .add_drill(&crate::records::DrillRecord::new(&svc.name, &report))?;
    Ok(report)
}

/// A restore point as an admin choosing it needs to see it: when it was
/// taken, how old it is, whether a verify has vouched for it since, and
/// how many newer points the choice skips.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PointInfo {
    pub id: String,
    pub time: String,
    pub age_secs: u64,
    /// Newer restore points of the same service.
    pub newer: usize,
    /// The verify that ran since it was taken, if any: (time, ok, read data).
    pub verified: Option<(String, bool, bool)>,
}

impl PointInfo {
    pub fn of(
        repo: &Repository,
        snap: &Snapshot,
        state_dir: &Path,
        now: std::time::SystemTime,
    ) -> PointInfo {
        let newer = repo
            .list_snapshots_cached()
            .map(|(all, _)| {
                all.iter()
                    .filter(|s| s.service == snap.service && s.time > snap.time)
                    .count()
            })
            .unwrap_or(0);
        let verified = crate::records::Records::new(state_dir)
            .verifies(&repo.config().id)
            .into_iter()
            .rfind(|v| v.time > snap.time)
            .map(|v| {
                let ok = v.ok || !v.affected_services.contains(&snap.service);
                (v.time, ok, v.read_data_percent > 0.0)
            });
        PointInfo {
            id: snap.short_id(),
            time: snap.time.get(..19).unwrap_or(&snap.time).replace('T', " "),
            age_secs: snap
                .system_time()
                .and_then(|t| now.duration_since(t).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0),
            newer,
            verified,
        }
    }

    /// "a1b2c3d4 from 2026-12-01 02:00 UTC, 1d 3h ago; verified 12-01 05:00"
    pub fn text(&self) -> String {
        let age = crate::health::short_duration(std::time::Duration::from_secs(self.age_secs));
        let short = |t: &str| t.get(5..16).unwrap_or(t).replace('T', " ");
        let verified = match &self.verified {
            None => "not verified yet".to_string(),
            Some((t, true, true)) => format!("read back {}", short(t)),
            Some((t, true, false)) => format!("verified {}", short(t)),
            Some((t, false, _)) => format!("DAMAGED (verify {})", short(t)),
        };
        format!(
            "{} from {} UTC, {age} ago; {verified}",
            self.id,
            self.time.get(..16).unwrap_or(&self.time)
        )
    }

    /// The warning to show when a newer point exists.
    pub fn warning(&self) -> Option<String> {
        (self.newer > 0).then(|| {
            format!(
                "{} newer restore point{} exist{}: anything written after this one is lost",
                self.newer,
                if self.newer == 1 { "" } else { "s" },
                if self.newer == 1 { "s" } else { "" }
            )
        })
    }
}
