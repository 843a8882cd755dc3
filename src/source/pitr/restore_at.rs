//! Restoring a cluster to a moment, as the engine does it for every front
//! end: the window read from the repository (and the local spool), the
//! base backup picked for the moment, its data directory written with
//! the recovery settings. Plain options in, a report out: the CLI's
//! `restore --at` and a console job (a runbook's `restore to=DIR` on a
//! postgres-cluster service) call the same function.

use super::spool::Spool;
use super::window::{self, Moment, Window};
use super::{recovery, wal_service};
use crate::model::{Cluster, Service, SourceKind};
use crate::progress::Reporter;
use crate::repo::{Repository, Snapshot};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What to restore where.
#[derive(Debug, Clone)]
pub struct AtOptions {
    pub service: String,
    /// The postgres-cluster source's name (the base backup's artifact).
    pub source: String,
    pub moment: Moment,
    /// A missing or empty directory: the new data directory.
    pub target: PathBuf,
    /// What PostgreSQL runs to fetch a WAL file during recovery
    /// (`lifeboat … wal-fetch --service NAME %f %p`, see
    /// [`fetch_command`]).
    pub restore_command: String,
    /// When the newest segment still in the local spool arrived, if any:
    /// it is restorable from here too.
    pub spooled: Option<SystemTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AtReport {
    pub service: String,
    pub base_backup: String,
    #[serde(serialize_with = "rfc3339")]
    pub base_backup_end: SystemTime,
    pub target: PathBuf,
    /// In words: `the end of the archived WAL` or `TIME (UTC)`.
    pub recovers_to: String,
    pub window: Window,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_micros(*t).to_string())
}

impl AtReport {
    /// Two lines for a person: what was written, and how it comes up.
    pub fn lines(&self) -> Vec<String> {
        // A gap after this base backup's start: no later one bridges it.
        let gap = self
            .window
            .gaps
            .iter()
            .find(|g| g.resumes.is_none_or(|r| r > self.base_backup_end));
        let mut lines = vec![
            format!(
                "restored base backup {} of {} (complete at {}) into {}",
                self.base_backup.get(..8).unwrap_or(&self.base_backup),
                self.service,
                humantime::format_rfc3339_seconds(self.base_backup_end),
                self.target.display()
            ),
            format!(
                "`pg_ctl -D {} start` replays the archived WAL up to {} and opens the database",
                self.target.display(),
                self.recovers_to
            ),
        ];
        // `latest` across a gap: replay stops before it, and the admin
        // must hear where (a moment past it is refused in `pick`).
        if let Some(g) = gap.filter(|_| self.recovers_to.starts_with("the end")) {
            lines.push(format!(
                "warning: WAL segment {} is missing from the archive: replay stops before it, at about {}",
                g.missing,
                g.reachable_until
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_else(|| "the end of the base backup".into())
            ));
        }
        lines
    }
}

/// The service's postgres-cluster source: its name and settings.
pub fn cluster_of(svc: &Service) -> Option<(&str, &Cluster)> {
    svc.sources.iter().find_map(|s| match &s.kind {
        SourceKind::PostgresCluster(c) => Some((s.name.as_str(), c)),
        _ => None,
    })
}

/// A word for a shell command line.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The `restore_command` that fetches WAL through `exe` (the lifeboat
/// binary) with this config, repository and key (paths, never a key's
/// content), for `service`.
pub fn fetch_command(
    exe: &Path,
    config: Option<&Path>,
    repo: Option<&str>,
    key: Option<&Path>,
    service: &str,
) -> String {
    let mut cmd = sh_quote(&exe.display().to_string());
    if let Some(p) = config {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        cmd.push_str(&format!(" --config {}", sh_quote(&p.display().to_string())));
    }
    if let Some(r) = repo {
        cmd.push_str(&format!(" --repo {}", sh_quote(r)));
    }
    if let Some(k) = key {
        let k = std::path::absolute(k).unwrap_or_else(|_| k.to_path_buf());
        cmd.push_str(&format!(" --key {}", sh_quote(&k.display().to_string())));
    }
    cmd.push_str(&format!(" wal-fetch --service {} %f %p", sh_quote(service)));
    cmd
}

/// When the newest segment waiting in `cluster`'s spool arrived (None
/// when the spool is empty or unreadable here, e.g. on another host).
pub fn spooled(cluster: &Cluster) -> Option<SystemTime> {
    Spool::new(&cluster.spool)
        .list()
        .ok()
        .and_then(|l| l.iter().map(|s| s.pushed).max())
}

/// The base backups and WAL groups of `service` in `repo`.
fn snapshots(repo: &Repository, service: &str) -> Result<Vec<Snapshot>> {
    let (snaps, _) = repo.list_snapshots()?;
    let wal = wal_service(service);
    Ok(snaps
        .into_iter()
        .filter(|s| s.service == service || s.service == wal)
        .collect())
}

/// The window a restore of `service` can reach.
pub fn window_of(repo: &Repository, service: &str, spooled: Option<SystemTime>) -> Result<Window> {
    Ok(window::window(&snapshots(repo, service)?, service, spooled))
}

/// The moment a job's restore point stands for: `latest`, `TIME` or
/// `before:TIME` as written; a restore point's id means the moment its
/// base backup was complete.
pub fn moment_of(point: &str, base: &Snapshot, service: &str) -> Result<Moment> {
    if let Ok(m) = Moment::parse(point) {
        return Ok(m);
    }
    let snaps = [base.clone()];
    let b = window::bases(&snaps, service);
    let stop = b.first().map(|b| b.stop).with_context(|| {
        format!(
            "restore point {} of {service} is not a base backup of its cluster; choose a moment (`latest`, a time, `before:TIME`)",
            base.short_id()
        )
    })?;
    Ok(Moment::At(stop))
}

/// Writes the data directory of `opts.service` as of `opts.moment` into
/// `opts.target`. Refuses a moment outside the window, and a target that
/// is not missing or empty.
pub fn restore_at(repo: &Repository, opts: &AtOptions, reporter: &Reporter) -> Result<AtReport> {
    let snaps = snapshots(repo, &opts.service)?;
    let w = window::window(&snaps, &opts.service, opts.spooled);
    let base = window::pick(&snaps, &opts.service, &opts.moment, &w)?;
    recovery::write(
        repo,
        &base.snap,
        &opts.source,
        &opts.target,
        &opts.moment,
        &opts.restore_command,
        reporter,
    )?;
    let recovers_to = match &opts.moment {
        Moment::Latest => "the end of the archived WAL".to_string(),
        Moment::At(t) => format!("{} (UTC)", humantime::format_rfc3339_micros(*t)),
    };
    Ok(AtReport {
        service: opts.service.clone(),
        base_backup: base.snap.id.clone(),
        base_backup_end: base.stop,
        target: opts.target.clone(),
        recovers_to,
        window: w,
    })
}

/// A runbook's `restore` in a job, on a service with a postgres-cluster
/// source: the data directory as of the job's point (`latest`, a time,
/// `before:TIME`, or a base backup's id) written into `dir`. None when
/// the service has no cluster source (the ordinary restore applies).
/// `dir` None is a sandbox restore, which a cluster does not have (a
/// live one goes through `engine::restore::at`).
pub fn for_job(
    repo: &Repository,
    svc: &Service,
    base: &Snapshot,
    point: &str,
    dir: Option<&Path>,
    (config, key): (&Path, Option<&Path>),
    reporter: &Reporter,
) -> Result<Option<AtReport>> {
    let Some((source, cluster)) = cluster_of(svc) else {
        return Ok(None);
    };
    let Some(dir) = dir else {
        anyhow::bail!(
            "{} is a PostgreSQL cluster: a runbook restores it to a moment live or into a new data directory (`restore to={{{{input.target}}}}`, as the point-in-time runbook does), not into a sandbox (a drill tries a moment out)",
            svc.name
        );
    };
    let exe = std::env::current_exe().context("finding the lifeboat binary for restore_command")?;
    let opts = AtOptions {
        service: svc.name.clone(),
        source: source.to_string(),
        moment: moment_of(point, base, &svc.name)?,
        target: dir.to_path_buf(),
        restore_command: fetch_command(&exe, Some(config), None, key, &svc.name),
        spooled: spooled(cluster),
    };
    restore_at(repo, &opts, reporter).map(Some)
}
