//! `lifeboat wal-push`, `wal-fetch` and `wal-flush`: PostgreSQL's
//! archive_command and restore_command (`restore SERVICE --at` is in
//! `wal_restore`).

use super::Ctx;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use lifeboat::model::{Cluster, Service, SourceKind};
use lifeboat::progress::Reporter;
use lifeboat::source::pitr::{self, spool::Spool, wal};
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
    #[arg(long, conflicts_with = "all")]
    service: Option<String>,
    /// Every postgres-cluster service whose spool is on this machine; a spool another flush is packing is left to it (the scheduled safety net)
    #[arg(long)]
    all: bool,
    /// Started by wal-push: pack while packing is due, then wait for the rest to be due (internal)
    #[arg(long, hide = true)]
    background: bool,
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
    // The segment is safe in the spool: PostgreSQL hears "archived" now.
    // Packing takes seconds, and the archiver must not wait for it: a
    // detached `wal-flush` does it, and a failure to start one is only a
    // warning (the next push or the scheduled flush tries again).
    if let Err(e) = start_flush_when_due(ctx, svc, &c.spool, &spool) {
        eprintln!(
            "warning: lifeboat wal-push: {} is spooled in {}, but starting a background flush failed: {e:#}; run `lifeboat wal-flush`",
            a.path.display(),
            c.spool.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the spool should be packed now: a group's worth of segments,
/// or the oldest has waited long enough. Some(ZERO) when packing is
/// due, Some(d) when it will be in `d`, None when the spool is empty.
fn due_in(listed: &[pitr::spool::Spooled]) -> Option<Duration> {
    let oldest = listed.iter().map(|s| s.pushed).min()?;
    let waited = SystemTime::now().duration_since(oldest).unwrap_or_default();
    if listed.len() >= GROUP_SEGMENTS || waited >= GROUP_WAIT {
        Some(Duration::ZERO)
    } else {
        Some(GROUP_WAIT - waited)
    }
}

fn start_flush_when_due(ctx: &Ctx, svc: &Service, dir: &Path, spool: &Spool) -> Result<()> {
    let listed = spool.list()?;
    if due_in(&listed) != Some(Duration::ZERO) {
        return Ok(());
    }
    // A flush under way packs the spool and looks again when it is done.
    if spool.try_flush_lock()?.is_none() {
        return Ok(());
    }
    spawn_flush(ctx, svc, dir)
}

/// Starts `lifeboat wal-flush --background` detached: its own session
/// (PostgreSQL's signals to the archiver do not reach it, and the
/// archiver's system() does not wait for it), stdin from /dev/null,
/// output appended to a log. Repository, key and config travel in the
/// environment, which only the same user can read, never in argv.
fn spawn_flush(ctx: &Ctx, svc: &Service, spool_dir: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("finding the lifeboat binary")?;
    let log = open_flush_log(ctx, svc, spool_dir);
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--quiet",
        "--retry-lock",
        "10m",
        "wal-flush",
        "--background",
        "--service",
    ])
    .arg(&svc.name)
    .current_dir("/")
    .stdin(std::process::Stdio::null())
    .env_remove("LIFEBOAT_TEST_WAL_PUSH_CRASH");
    match log {
        Some(f) => {
            let err = f.try_clone().context("duplicating the flush log")?;
            cmd.stdout(f).stderr(err);
        }
        None => {
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        }
    }
    if let Some(cfg) = &ctx.config {
        cmd.env(
            "LIFEBOAT_CONFIG",
            std::path::absolute(&cfg.path).unwrap_or_else(|_| cfg.path.clone()),
        );
    }
    match &ctx.cli_repo {
        Some(r) if super::looks_like_location(r) => {
            cmd.env(
                "LIFEBOAT_REPO",
                std::path::absolute(r).unwrap_or_else(|_| PathBuf::from(r)),
            );
        }
        Some(r) => {
            cmd.env("LIFEBOAT_REPO", r);
        }
        None => {
            cmd.env_remove("LIFEBOAT_REPO");
        }
    }
    match &ctx.cli_key {
        Some(k) => {
            cmd.env(
                "LIFEBOAT_KEY",
                std::path::absolute(k).unwrap_or_else(|_| k.clone()),
            );
        }
        None => {
            cmd.env_remove("LIFEBOAT_KEY");
        }
    }
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Not waited for: this process exits at once and init reaps the child.
    let child = cmd.spawn().context("starting `lifeboat wal-flush`")?;
    drop(child);
    Ok(())
}

/// The background flush's log: the state directory if the archiver's
/// user may write there, else the spool (which it always may).
fn open_flush_log(ctx: &Ctx, svc: &Service, spool_dir: &Path) -> Option<std::fs::File> {
    let open = |p: PathBuf| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    };
    let state = ctx.state_dir();
    std::fs::create_dir_all(&state)
        .ok()
        .and_then(|_| open(state.join(format!("wal-flush-{}.log", svc.name))))
        .or_else(|| open(spool_dir.join("flush.log")))
}

/// Packs what the spool holds into one WAL group. With `wait` it waits
/// for a flush under way to finish first; without, it leaves the spool
/// to that flush. Returns how many segments went.
fn flush(ctx: &Ctx, svc: &Service, spool: &Spool, wait: bool) -> Result<usize> {
    let lock = match wait {
        true => Some(spool.flush_lock()?),
        false => spool.try_flush_lock()?,
    };
    let Some(_lock) = lock else {
        return Ok(0);
    };
    let listed = spool.list()?;
    pack(ctx, svc, spool, &listed)
}

fn pack(ctx: &Ctx, svc: &Service, spool: &Spool, listed: &[pitr::spool::Spooled]) -> Result<usize> {
    if listed.is_empty() {
        return Ok(0);
    }
    let repo = ctx.open(Some(svc.repository.as_str()))?;
    let mut opts = lifeboat::engine::BackupOptions::new(&pitr::wal_service(&svc.name), Vec::new());
    opts.host = svc.host.clone();
    opts.cache_dir = ctx.cache_dir();
    let capture = Box::new(wal::GroupCapture::new(listed.to_vec()));
    lifeboat::engine::backup_with(&repo, &opts, vec![capture], &Reporter::silent())
        .context("storing WAL segments in the repository")?;
    spool.packed(listed)?;
    Ok(listed.len())
}

/// The background flush: packs while packing is due, and while segments
/// that are not due yet remain, waits until they are (holding no lock,
/// so an explicit `wal-flush` is never held up), so the spool drains
/// within GROUP_WAIT of the last push even when no more WAL comes.
fn background(ctx: &Ctx, svc: &Service, spool: &Spool) -> Result<usize> {
    let mut packed = 0;
    loop {
        let wait = {
            let Some(_lock) = spool.try_flush_lock()? else {
                // Another flush is at it, and it looks again when done.
                return Ok(packed);
            };
            let listed = spool.list()?;
            match due_in(&listed) {
                None => return Ok(packed),
                Some(d) if d.is_zero() => {
                    packed += pack(ctx, svc, spool, &listed)?;
                    continue;
                }
                Some(d) => d,
            }
        };
        // Woken early to see whether a group's worth arrived meanwhile.
        std::thread::sleep(wait.min(Duration::from_secs(1)));
    }
}

pub fn flush_cmd(ctx: &Ctx, a: WalFlushArgs) -> Result<ExitCode> {
    if a.all {
        return flush_all(ctx);
    }
    let (svc, _, c) = cluster(ctx, a.service.as_deref())?;
    let spool = Spool::new(&c.spool);
    let n = match a.background {
        true => background(ctx, svc, &spool),
        false => flush(ctx, svc, &spool, true),
    }
    .inspect_err(|e| {
        if a.background {
            // The log has no other context: say when and what.
            eprintln!(
                "{} wal-flush of {}: {e:#}",
                humantime::format_rfc3339_seconds(SystemTime::now()),
                svc.name
            );
        }
    })?;
    ctx.say(format!(
        "{} packed into the repository",
        lifeboat::util::plural(n as u64, "WAL file")
    ));
    Ok(ExitCode::SUCCESS)
}

/// `wal-flush --all`: every cluster whose spool exists here. A spool
/// being packed is skipped; one failing does not stop the others.
fn flush_all(ctx: &Ctx) -> Result<ExitCode> {
    let config = ctx
        .config
        .as_ref()
        .ok_or_else(|| anyhow!(lifeboat::Error::NoConfig))?;
    let mut failed = 0;
    for svc in &config.services {
        for src in &svc.sources {
            let SourceKind::PostgresCluster(c) = &src.kind else {
                continue;
            };
            // The spool lives on the database host; elsewhere there is none.
            if !c.spool.is_dir() {
                continue;
            }
            match flush(ctx, svc, &Spool::new(&c.spool), false) {
                Ok(n) => ctx.say(format!(
                    "{}: {} packed into the repository",
                    svc.name,
                    lifeboat::util::plural(n as u64, "WAL file")
                )),
                Err(e) => {
                    failed += 1;
                    eprintln!("error: wal-flush of {}: {e:#}", svc.name);
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} spool(s) could not be packed; the segments stay in the spool and the next flush tries again");
    }
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
    let cache = ctx.cache_dir();
    if wal::fetch(&repo, Some(&cache), &svc.name, &a.name, &a.dest)? {
        Ok(ExitCode::SUCCESS)
    } else {
        // Recovery asks for the file after the last one there is; saying
        // "no" quietly is how it learns the archive ends here.
        Ok(ExitCode::from(1))
    }
}

/// What WAL retention decided for one service's groups.
pub struct WalPlan {
    pub service: String,
    pub plan: Vec<(
        lifeboat::repo::Snapshot,
        lifeboat::engine::retention::Decision,
    )>,
}

/// The WAL groups of `service` decided from the base backups `kept`
/// says stay; None when the service has no WAL groups.
pub fn wal_plan(
    snaps: &[lifeboat::repo::Snapshot],
    service: &str,
    kept: &dyn Fn(&lifeboat::repo::Snapshot) -> bool,
) -> Option<WalPlan> {
    let plan = lifeboat::engine::wal_retention::plan(snaps, service, kept);
    (!plan.is_empty()).then(|| WalPlan {
        service: service.to_string(),
        plan,
    })
}

/// Every service with WAL groups in `snaps`, decided from the base
/// backups there are: what `prune` forgets before it reclaims space
/// (base backups forgotten by hand, or by an older lifeboat, leave
/// their WAL behind otherwise).
pub fn wal_plans(snaps: &[lifeboat::repo::Snapshot]) -> Vec<WalPlan> {
    let mut services: Vec<&str> = snaps
        .iter()
        .filter(|s| s.sources.iter().any(|r| r.kind == pitr::WAL_KIND))
        .filter_map(|s| s.service.strip_suffix("+wal"))
        .collect();
    services.sort();
    services.dedup();
    services
        .into_iter()
        .filter_map(|s| wal_plan(snaps, s, &|_| true))
        .collect()
}

impl WalPlan {
    pub fn going(&self) -> usize {
        self.plan.iter().filter(|(_, d)| !d.keep).count()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "service": self.service,
            "wal_groups": self.plan.iter().map(|(s, d)| serde_json::json!({
                "id": s.id, "time": s.time, "wal": lifeboat::engine::wal_retention::span(s),
                "keep": d.keep, "reasons": d.reasons,
            })).collect::<Vec<_>>(),
        })
    }

    /// For a person: the groups that go one by one (the first 20), the
    /// ones that stay in a line, and why the oldest of them stays.
    pub fn lines(&self, dry_run: bool) -> Vec<String> {
        let going: Vec<_> = self.plan.iter().filter(|(_, d)| !d.keep).collect();
        let kept: Vec<_> = self.plan.iter().filter(|(_, d)| d.keep).collect();
        let mut out = vec![format!(
            "{}: keep {} of {} WAL groups (the WAL the kept base backups replay)",
            self.service,
            kept.len(),
            self.plan.len()
        )];
        let verb = if dry_run { "would forget" } else { "forget" };
        for (s, _) in going.iter().rev().take(20) {
            let when = s.time.get(..19).unwrap_or(&s.time).replace('T', " ");
            out.push(format!(
                "  {verb}  {}  {when}  {}",
                s.short_id(),
                lifeboat::engine::wal_retention::span(s)
            ));
        }
        if going.len() > 20 {
            out.push(format!("  … and {} more", going.len() - 20));
        }
        if let Some((s, d)) = kept.last() {
            out.push(format!(
                "  keep    {} groups from {} {} on: {}",
                kept.len(),
                s.short_id(),
                lifeboat::engine::wal_retention::span(s),
                d.reasons.join(", ")
            ));
        }
        out
    }
}
