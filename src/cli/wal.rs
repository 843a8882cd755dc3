//! `lifeboat wal-push`, `wal-fetch` and `wal-flush`: PostgreSQL's
//! archive_command and restore_command, and `restore SERVICE --at`.

use super::Ctx;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use lifeboat::model::{Cluster, Service, SourceKind};
use lifeboat::progress::Reporter;
use lifeboat::source::pitr::{self, recovery, spool::Spool, wal, window};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// A flush packs the spool once it holds this many segments…
const GROUP_SEGMENTS: usize = 16;
/// …or once its oldest segment has waited this long, so the archive in
/// the repository trails the database by seconds, not by 16 segments.
const GROUP_WAIT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct WalPushArgs {
    /// The service whose cluster this is [default: the one service with a postgres-cluster source]
    #[arg(long)]
    service: Option<String>,
    /// The segment to archive: archive_command's %p
    path: PathBuf,
}

#[derive(Args)]
pub struct WalFetchArgs {
    /// The service whose cluster this is [default: the one service with a postgres-cluster source]
    #[arg(long)]
    service: Option<String>,
    /// The file PostgreSQL wants: restore_command's %f
    name: String,
    /// Where to write it: restore_command's %p
    dest: PathBuf,
}

#[derive(Args)]
pub struct WalFlushArgs {
    /// The service whose spool to pack [default: the one service with a postgres-cluster source]
    #[arg(long)]
    service: Option<String>,
}

/// The service and its cluster source.
fn cluster<'a>(ctx: &'a Ctx, service: Option<&str>) -> Result<(&'a Service, &'a str, &'a Cluster)> {
    let config = ctx
        .config
        .as_ref()
        .ok_or_else(|| anyhow!(lifeboat::Error::NoConfig))?;
    let found: Vec<(&Service, &str, &Cluster)> = config
        .services
        .iter()
        .filter(|s| service.is_none_or(|n| s.name == n))
        .flat_map(|s| {
            s.sources.iter().filter_map(move |src| match &src.kind {
                SourceKind::PostgresCluster(c) => Some((s, src.name.as_str(), c)),
                _ => None,
            })
        })
        .collect();
    match (found.as_slice(), service) {
        ([one], _) => Ok(*one),
        ([], Some(n)) => bail!(
            "service `{n}` has no postgres-cluster source in {}; add one (kind = \"postgres-cluster\") or name another with --service",
            config.path.display()
        ),
        ([], None) => bail!(
            "no service in {} has a postgres-cluster source; add one (kind = \"postgres-cluster\")",
            config.path.display()
        ),
        (_, _) => bail!(
            "several postgres-cluster sources match; name the service with --service (and give each cluster its own service)"
        ),
    }
}

pub fn push(ctx: &Ctx, a: WalPushArgs) -> Result<ExitCode> {
    let (svc, _, c) = cluster(ctx, a.service.as_deref())?;
    let spool = Spool::new(&c.spool);
    spool.push(&a.path)?;
    // The segment is safe in the spool: a flush that fails now is retried
    // by the next push, and PostgreSQL must not resend what it has.
    if let Err(e) = flush_when_due(ctx, svc, &spool) {
        eprintln!(
            "warning: lifeboat wal-push: {} is spooled in {}, but packing the spool into the repository failed: {e:#}",
            a.path.display(),
            c.spool.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn flush_when_due(ctx: &Ctx, svc: &Service, spool: &Spool) -> Result<()> {
    let listed = spool.list()?;
    let waited = listed
        .iter()
        .map(|s| s.pushed)
        .min()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default();
    if listed.len() < GROUP_SEGMENTS && waited < GROUP_WAIT {
        return Ok(());
    }
    flush(ctx, svc, spool).map(|_| ())
}

/// Packs what the spool holds into one WAL group, unless another flush
/// is at it. Returns how many segments went.
fn flush(ctx: &Ctx, svc: &Service, spool: &Spool) -> Result<usize> {
    let Some(_lock) = spool.try_flush_lock()? else {
        return Ok(0);
    };
    let listed = spool.list()?;
    if listed.is_empty() {
        return Ok(0);
    }
    let repo = ctx.open(Some(svc.repository.as_str()))?;
    let mut opts = lifeboat::engine::BackupOptions::new(&pitr::wal_service(&svc.name), Vec::new());
    opts.host = svc.host.clone();
    opts.cache_dir = ctx.cache_dir();
    let capture = Box::new(wal::GroupCapture::new(listed.clone()));
    lifeboat::engine::backup_with(&repo, &opts, vec![capture], &Reporter::silent())
        .context("storing WAL segments in the repository")?;
    spool.packed(&listed)?;
    Ok(listed.len())
}

pub fn flush_cmd(ctx: &Ctx, a: WalFlushArgs) -> Result<ExitCode> {
    let (svc, _, c) = cluster(ctx, a.service.as_deref())?;
    let n = flush(ctx, svc, &Spool::new(&c.spool))?;
    ctx.say(format!(
        "{} packed into the repository",
        lifeboat::util::plural(n as u64, "WAL file")
    ));
    Ok(ExitCode::SUCCESS)
}

pub fn fetch(ctx: &Ctx, a: WalFetchArgs) -> Result<ExitCode> {
    let (svc, _, c) = cluster(ctx, a.service.as_deref())?;
    if let Some(p) = Spool::new(&c.spool).find(&a.name)? {
        let dir = a.dest.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a file in {}", dir.display()))?;
        std::fs::copy(&p, tmp.path()).with_context(|| format!("copying {}", p.display()))?;
        tmp.persist(&a.dest)
            .with_context(|| format!("writing {}", a.dest.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let repo = ctx.open(Some(svc.repository.as_str()))?;
    if wal::fetch(&repo, &svc.name, &a.name, &a.dest)? {
        Ok(ExitCode::SUCCESS)
    } else {
        // Recovery asks for the file after the last one there is; saying
        // "no" quietly is how it learns the archive ends here.
        Ok(ExitCode::from(1))
    }
}

/// A word for a shell command line.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `restore SERVICE --at MOMENT --target DIR`.
pub fn restore_at(ctx: &Ctx, service: &str, at: &str, target: &Path) -> Result<ExitCode> {
    let moment = window::Moment::parse(at)?;
    let (svc, source, c) = cluster(ctx, Some(service))?;
    let repo = ctx.open(Some(svc.repository.as_str()))?;
    let (snaps, _) = repo.list_snapshots()?;
    let spooled = Spool::new(&c.spool)
        .list()
        .ok()
        .and_then(|l| l.iter().map(|s| s.pushed).max());
    let w = window::window(&snaps, &svc.name, spooled);
    let base = window::pick(&snaps, &svc.name, &moment, &w)?;
    let exe = std::env::current_exe().context("finding the lifeboat binary for restore_command")?;
    let mut cmd = sh_quote(&exe.display().to_string());
    if let Some(cfg) = &ctx.config {
        let p = std::path::absolute(&cfg.path).unwrap_or_else(|_| cfg.path.clone());
        cmd.push_str(&format!(" --config {}", sh_quote(&p.display().to_string())));
    }
    if let Some(r) = &ctx.cli_repo {
        let r = match super::looks_like_location(r) {
            true => std::path::absolute(r)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| r.clone()),
            false => r.clone(),
        };
        cmd.push_str(&format!(" --repo {}", sh_quote(&r)));
    }
    if let Some(k) = &ctx.cli_key {
        let k = std::path::absolute(k).unwrap_or_else(|_| k.clone());
        cmd.push_str(&format!(" --key {}", sh_quote(&k.display().to_string())));
    }
    cmd.push_str(&format!(
        " wal-fetch --service {} %f %p",
        sh_quote(&svc.name)
    ));
    recovery::write(
        &repo,
        &base.snap,
        source,
        target,
        &moment,
        &cmd,
        &Reporter::silent(),
    )?;
    let when = match &moment {
        window::Moment::Latest => "the end of the archived WAL".to_string(),
        window::Moment::At(t) => format!("{} (UTC)", humantime::format_rfc3339_micros(*t)),
    };
    if ctx.json {
        super::output::json(&serde_json::json!({
            "service": svc.name,
            "base_backup": base.snap.id,
            "base_backup_end": humantime::format_rfc3339_micros(base.stop).to_string(),
            "target": target,
            "recovers_to": when,
            "window": w,
        }))?;
    } else {
        ctx.say(format!(
            "restored base backup {} of {} (complete at {}) into {}",
            base.snap.short_id(),
            svc.name,
            humantime::format_rfc3339_seconds(base.stop),
            target.display()
        ));
        ctx.say(format!(
            "`pg_ctl -D {} start` replays the archived WAL up to {when} and opens the database",
            target.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
