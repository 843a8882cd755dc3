//! A live restore of a PostgreSQL cluster to a moment, the way every live
//! restore goes: a plan (what is written, what it replaces, where the old
//! data directory is kept), then a new data directory written beside the
//! live one (same filesystem, so the swap is a rename), recovered and
//! checked by a private server, and swapped in with the old one kept for
//! `lifeboat rollback ID`. A cancel or a failure before the swap removes
//! what was made and leaves the live directory as it was.

use super::plan::Size;
use crate::model::{Cluster, Service, SourceKind};
use crate::progress::Reporter;
use crate::repo::{Repository, Snapshot};
use crate::source::ledger::{Ledger, Made};
use crate::source::pitr::trial::{self, TrialOptions, TrialReport};
use crate::source::pitr::window::{self, Moment, Window};
use crate::source::pitr::{recovery, wal_service};
use crate::source::{cleanup, swap};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What a live restore to a moment needs.
#[derive(Debug, Clone)]
pub struct LiveAtOptions {
    pub service: Service,
    /// The config file the service is in: named when it lacks what a
    /// live restore needs.
    pub config: PathBuf,
    pub moment: Moment,
    /// What recovery runs to fetch WAL (`lifeboat … wal-fetch --service
    /// NAME %f %p`, see `pitr::restore_at::fetch_command`).
    pub restore_command: String,
    /// When the newest segment still in the local spool arrived, if any.
    pub spooled: Option<SystemTime>,
    /// The restore's id (`lifeboat rollback ID`).
    pub id: String,
    /// How long the private server may take to recover.
    pub timeout: Duration,
}

/// What the restore will do, shown before anything is touched.
#[derive(Debug, Clone, Serialize)]
pub struct AtPlan {
    pub id: String,
    pub service: String,
    pub source: String,
    /// The live data directory it replaces.
    pub data_dir: PathBuf,
    /// Where the new one is written and checked.
    pub staging: PathBuf,
    /// Where the current one is kept.
    pub kept: PathBuf,
    pub base_backup: String,
    #[serde(skip)]
    pub base: Snapshot,
    /// The base backup's size.
    pub writes: Size,
    /// What the live directory holds now (None: there is none).
    pub replaces: Option<Size>,
    pub recovers_to: String,
    pub window: Window,
    #[serde(skip)]
    pub moment: Moment,
    #[serde(skip)]
    pub restore_command: String,
    #[serde(skip)]
    pub user: String,
    #[serde(skip)]
    pub timeout: Duration,
}

impl AtPlan {
    /// The plan for people, as `RestorePlan::lines` words it.
    pub fn lines(&self) -> Vec<String> {
        let size = |s: &Size| {
            format!(
                "{}, {}",
                crate::util::plural(s.files, "file"),
                crate::util::human_bytes(s.bytes)
            )
        };
        let mut out = vec![
            format!(
                "postgres-cluster `{}`: data directory {}",
                self.source,
                self.data_dir.display()
            ),
            format!(
                "  writes base backup {} ({}) and replays the archived WAL up to {}",
                self.base.short_id(),
                crate::util::human_bytes(self.writes.bytes),
                self.recovers_to
            ),
            format!(
                "  into {}, checked by a private server before anything is replaced",
                self.staging.display()
            ),
        ];
        match &self.replaces {
            None => out.push("  nothing is there now".into()),
            Some(r) => {
                out.push(format!("  replaces {}", size(r)));
                out.push(format!(
                    "  what is there is kept as {}",
                    self.kept.display()
                ));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AtLiveReport {
    pub id: String,
    pub service: String,
    pub data_dir: PathBuf,
    pub base_backup: String,
    pub recovers_to: String,
    /// Where the previous data directory is kept (None: there was none).
    pub kept: Option<PathBuf>,
    pub check: TrialReport,
    pub duration_ms: u64,
    /// What could not be cleaned up.
    pub problems: Vec<String>,
}

impl AtLiveReport {
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "{} restored from base backup {} to {}",
                self.data_dir.display(),
                self.base_backup.get(..8).unwrap_or(&self.base_backup),
                self.recovers_to
            ),
            format!("checked: {}", self.check.line()),
        ];
        if let Some(k) = &self.kept {
            out.push(format!(
                "the previous data directory is kept as {}",
                k.display()
            ));
        }
        out
    }
}

/// The service's postgres-cluster source, with its live data directory.
fn cluster<'a>(svc: &'a Service, config: &Path) -> Result<(&'a str, &'a Cluster, PathBuf)> {
    let (name, c) = svc
        .sources
        .iter()
        .find_map(|s| match &s.kind {
            SourceKind::PostgresCluster(c) => Some((s.name.as_str(), c)),
            _ => None,
        })
        .with_context(|| {
            format!(
                "service `{}` in {} has no postgres-cluster source; `restore --at` restores a cluster to a moment",
                svc.name,
                config.display()
            )
        })?;
    let dir = c.data_dir.as_ref().with_context(|| {
        format!(
            "service `{}` in {}: the postgres-cluster source `{name}` has no `path` (its live data directory), so a live restore does not know what to replace; add `path = \"/var/lib/postgresql/15/main\"` (the cluster's PGDATA) to the source, or restore with --target DIR",
            svc.name,
            config.display()
        )
    })?;
    let dir = std::path::absolute(dir).with_context(|| format!("data_dir {}", dir.display()))?;
    Ok((name, c, dir))
}

/// Refuses while a server runs on `dir`.
pub fn refuse_running(dir: &Path) -> Result<()> {
    if let Some(pid) = trial::running_pid(dir) {
        bail!(
            "PostgreSQL is running on {} (pid {pid}); stop PostgreSQL first: pg_ctl -D {} stop / systemctl stop postgresql",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

fn size_of(dir: &Path) -> Result<Option<Size>> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("looking at {}", dir.display())),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        bail!(
            "{} is not a directory; data_dir must name the cluster's data directory",
            dir.display()
        );
    }
    let mut size = Size::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                size.files += 1;
                size.bytes += m.len();
            }
        }
    }
    Ok(Some(size))
}

fn in_words(moment: &Moment) -> String {
    match moment {
        Moment::Latest => "the end of the archived WAL".to_string(),
        Moment::At(t) => format!("{} (UTC)", humantime::format_rfc3339_micros(*t)),
    }
}

/// Plans the live restore of `opts.service` to `opts.moment`: refuses
/// (before anything is made) a service without a data directory, a
/// moment outside the window, a running server, a data directory that is
/// a mount point.
pub fn plan_at(repo: &Repository, opts: &LiveAtOptions) -> Result<AtPlan> {
    let svc = &opts.service;
    let (source, c, data_dir) = cluster(svc, &opts.config)?;
    let (snaps, _) = repo.list_snapshots()?;
    let wal = wal_service(&svc.name);
    let snaps: Vec<Snapshot> = snaps
        .into_iter()
        .filter(|s| s.service == svc.name || s.service == wal)
        .collect();
    let w = window::window(&snaps, &svc.name, opts.spooled);
    let base = window::pick(&snaps, &svc.name, &opts.moment, &w)?;
    refuse_running(&data_dir)?;
    if super::plan::mount_points().contains(&data_dir) {
        bail!(
            "{} is a mount point; a live restore swaps the new data directory in with a rename, which cannot replace a mount point: make data_dir a directory inside the mount, or restore with --target DIR and move it",
            data_dir.display()
        );
    }
    let replaces = size_of(&data_dir)?;
    Ok(AtPlan {
        id: opts.id.clone(),
        service: svc.name.clone(),
        source: source.to_string(),
        staging: swap::staging_path(&data_dir, &opts.id),
        kept: swap::kept_path(&data_dir, &opts.id),
        data_dir,
        base_backup: base.snap.id.clone(),
        writes: Size {
            files: 1,
            bytes: base.snap.stats.bytes,
        },
        base: base.snap,
        replaces,
        recovers_to: in_words(&opts.moment),
        window: w,
        moment: opts.moment.clone(),
        restore_command: opts.restore_command.clone(),
        user: c.user.clone(),
        timeout: opts.timeout,
    })
}

/// Carries out `plan`. `ledger` is the restore's record (its id must be
/// the plan's): the new directory is written down before it is made, the
/// swap as it happens, so `lifeboat rollback ID` puts the old one back.
pub fn execute_at(
    repo: &Repository,
    plan: &AtPlan,
    ledger: &Ledger,
    reporter: &Reporter,
) -> Result<AtLiveReport> {
    let started = Instant::now();
    let made = Made::Path {
        path: plan.staging.clone(),
    };
    ledger.made(made.clone())?;
    let staged = (|| -> Result<TrialReport> {
        let _lock = repo.lock(crate::repo::lock::Mode::Read, "restore", &|w| {
            reporter.warn(w)
        })?;
        recovery::write(
            repo,
            &plan.base,
            &plan.source,
            &plan.staging,
            &plan.moment,
            &plan.restore_command,
            reporter,
        )?;
        reporter.check_cancelled()?;
        let mut t = TrialOptions::new(&plan.staging, &plan.user);
        t.timeout = plan.timeout;
        let check = trial::trial(&t, reporter)?;
        reporter.check_cancelled()?;
        recovery::settle_live(
            &plan.staging,
            &format!(
                "restored by `lifeboat restore --at` ({}) to {}",
                plan.id, plan.recovers_to
            ),
        )?;
        // Looked at again: the server may have been started meanwhile.
        refuse_running(&plan.data_dir)?;
        Ok(check)
    })();
    let check = match staged {
        Ok(c) => c,
        Err(e) => {
            let problems = cleanup::clean_up(ledger);
            let what = match crate::error::is_cancelled(&e) {
                true => "was cancelled",
                false => "failed",
            };
            let mut e = e.context(format!(
                "the restore of {} to {} {what}; {} was not changed and the new data directory was removed",
                plan.service,
                plan.recovers_to,
                plan.data_dir.display()
            ));
            if !problems.is_empty() {
                e = e.context(problems.join("; "));
            }
            return Err(e);
        }
    };
    let had = cleanup::swap_in_recorded(
        ledger,
        &plan.source,
        &plan.staging,
        &plan.data_dir,
        &plan.kept,
        &[],
        false,
    );
    let had = match had {
        Ok(h) => {
            ledger.unmade(&made);
            h
        }
        Err(e) => {
            let problems = cleanup::clean_up(ledger);
            let mut e = e.context(format!(
                "swapping the checked data directory into {} failed; it was not changed",
                plan.data_dir.display()
            ));
            if !problems.is_empty() {
                e = e.context(problems.join("; "));
            }
            return Err(e);
        }
    };
    Ok(AtLiveReport {
        id: plan.id.clone(),
        service: plan.service.clone(),
        data_dir: plan.data_dir.clone(),
        base_backup: plan.base_backup.clone(),
        recovers_to: plan.recovers_to.clone(),
        kept: had.then(|| plan.kept.clone()),
        check,
        duration_ms: started.elapsed().as_millis() as u64,
        problems: cleanup::clean_up(ledger),
    })
}
