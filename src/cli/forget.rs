//! `lifeboat forget` and `lifeboat prune`: retention and reclaiming space.

use super::output::{self, human_bytes, Progress};
use super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use lifeboat::engine;
use lifeboat::progress::Reporter;
use std::process::ExitCode;

#[derive(Args)]
pub struct ForgetArgs {
    /// Services whose restore points to thin out
    services: Vec<String>,
    /// Every service in the config
    #[arg(long, conflicts_with = "services")]
    all: bool,
    /// Show what would go and why each survivor stays, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Run prune afterwards
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    keep: KeepArgs,
}

/// A policy on the command line, instead of (or overriding) the config's.
#[derive(Args, Default)]
pub struct KeepArgs {
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
}

impl KeepArgs {
    fn given(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(Option::is_some)
    }
    fn policy(&self) -> lifeboat::engine::retention::Policy {
        lifeboat::engine::retention::Policy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
        }
    }
}

#[derive(Args)]
pub struct PruneArgs {
    /// Say what would be reclaimed, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<ExitCode> {
    // (service, repository in the config, policy)
    let mut jobs: Vec<(String, Option<String>, lifeboat::engine::retention::Policy)> = Vec::new();
    match &ctx.config {
        Some(config) if ctx.cli_repo.is_none() => {
            let chosen = config.select_services(&a.services, a.all, "thin out")?;
            for svc in chosen {
                let policy = if a.keep.given() {
                    a.keep.policy()
                } else {
                    svc.retention
                };
                jobs.push((svc.name.clone(), Some(svc.repository.clone()), policy));
            }
        }
        _ => {
            if !a.keep.given() {
                bail!("without a config, say what to keep: --keep-last, --keep-daily, --keep-weekly, …");
            }
            if a.services.is_empty() {
                bail!("name the services (as `lifeboat snapshots` shows them) to thin out");
            }
            for s in &a.services {
                if let Some(owner) = s.strip_suffix("+wal") {
                    bail!("{s} holds the WAL archive of {owner}; it is kept or forgotten with {owner}'s base backups: run `lifeboat forget {owner}`");
                }
                jobs.push((s.clone(), None, a.keep.policy()));
            }
        }
    }
    let mut repos_touched: Vec<Option<String>> = Vec::new();
    for (service, repo_name, policy) in jobs {
        let repo = ctx.open(repo_name.as_deref())?;
        let mut plan = engine::plan_forget(&repo, &service, &policy)?;
        // A cluster's WAL groups go with the base backups that need them.
        let wal = {
            let (snaps, damaged) = repo.list_snapshots()?;
            let snaps = wal_safe(snaps, &damaged);
            let kept =
                |s: &lifeboat::repo::Snapshot| plan.iter().any(|(p, d)| p.id == s.id && d.keep);
            super::wal::wal_plan(&snaps, &service, &kept)
        };
        let going = plan.iter().filter(|(_, d)| !d.keep).count();
        if ctx.json {
            output::json(&serde_json::json!({
                "service": service, "policy": policy, "dry_run": a.dry_run,
                "restore_points": plan.iter().map(|(s, d)| serde_json::json!({"id": s.id, "time": s.time, "keep": d.keep, "reasons": d.reasons})).collect::<Vec<_>>(),
                "wal": wal.as_ref().map(|w| w.json()),
            }))?;
        } else {
            println!(
                "{service}: keep {} of {} restore points ({})",
                plan.len() - going,
                plan.len(),
                policy.describe()
            );
            for (s, d) in &plan {
                let when = s.time.get(..16).unwrap_or(&s.time).replace('T', " ");
                if d.keep {
                    println!(
                        "  keep    {}  {when}  {}",
                        s.short_id(),
                        d.reasons.join(", ")
                    );
                } else {
                    println!("  forget  {}  {when}", s.short_id());
                }
            }
            for line in wal.iter().flat_map(|w| w.lines(a.dry_run)) {
                println!("{line}");
            }
        }
        let going = going + wal.as_ref().map_or(0, |w| w.going());
        plan.extend(wal.into_iter().flat_map(|w| w.plan));
        if !a.dry_run && going > 0 {
            let progress = Progress::start(ctx.quiet || ctx.json, "forget");
            let removed = engine::forget(&repo, &plan, &progress.reporter());
            progress.finish();
            let r = removed?;
            ctx.say(format!(
                "{service}: forgot {} restore point(s); `lifeboat prune` reclaims their space",
                r.removed
            ));
            for (id, until) in &r.locked {
                let until = humantime::format_rfc3339_seconds(*until);
                if ctx.json {
                    output::json(
                        &serde_json::json!({"service": service, "id": id, "locked_until": until.to_string()}),
                    )?;
                } else {
                    ctx.say(format!("  locked until {until}  {}  (Object Lock: it stays, and forget drops it after that)", id.get(..8).unwrap_or(id)));
                }
            }
            if !repos_touched.contains(&repo_name) {
                repos_touched.push(repo_name);
            }
        }
    }
    if a.prune && !a.dry_run {
        for repo_name in repos_touched {
            prune_one(ctx, repo_name.as_deref(), false)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn prune(ctx: &Ctx, a: &PruneArgs) -> Result<ExitCode> {
    for name in ctx.every_repository() {
        prune_one(ctx, name.as_deref(), a.dry_run)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn prune_one(ctx: &Ctx, repo_name: Option<&str>, dry_run: bool) -> Result<()> {
    let repo = ctx.open(repo_name)?;
    // WAL groups no base backup replays any more go first, so their
    // space is reclaimed in the same run.
    let (snaps, damaged) = repo.list_snapshots()?;
    let wal = super::wal::wal_plans(&wal_safe(snaps, &damaged));
    let wal_going: Vec<_> = wal
        .iter()
        .flat_map(|w| w.plan.iter().filter(|(_, d)| !d.keep).cloned())
        .collect();
    if !ctx.json {
        for line in wal
            .iter()
            .filter(|w| w.going() > 0)
            .flat_map(|w| w.lines(dry_run))
        {
            ctx.say(line);
        }
    }
    if !dry_run && !wal_going.is_empty() {
        engine::forget(&repo, &wal_going, &Reporter::silent())?;
    }
    let progress = Progress::start(ctx.quiet || ctx.json, "prune");
    let r = engine::prune(
        &repo,
        &engine::PruneOptions {
            dry_run,
            ..Default::default()
        },
        &progress.reporter(),
    );
    progress.finish();
    let r = r?;
    // The nightly `forget --all --prune` keeps kept restore points locked.
    if !dry_run && repo.backend().object_lock().is_some() {
        super::locks::extend_one(ctx, repo_name)?;
    }
    if !dry_run {
        tracing::info!(job = "prune", repository = %repo.config().id, reclaimed = r.reclaimed(), packs_deleted = r.packs_deleted, packs_repacked = r.packs_repacked, "prune finished");
    }
    if ctx.json {
        output::json(
            &serde_json::json!({"report": r, "reclaimed": r.reclaimed(), "wal": wal.iter().map(|w| w.json()).collect::<Vec<_>>()}),
        )?;
    } else {
        let parts = [
            format!(
                "{} {}:",
                if dry_run { "would prune" } else { "pruned" },
                lifeboat::util::plural(r.packs_before as u64, "pack")
            ),
            format!("{} deleted,", r.packs_deleted),
            format!(
                "{} rewritten into {},",
                r.packs_repacked,
                if dry_run {
                    "new ones".to_string()
                } else {
                    r.packs_written.to_string()
                }
            ),
            format!(
                "{} left by interrupted backups removed;",
                r.packs_unreferenced
            ),
            format!(
                "{} reclaimed ({} -> {})",
                human_bytes(r.reclaimed()),
                human_bytes(r.bytes_before),
                human_bytes(r.bytes_after)
            ),
        ];
        for line in super::width::clauses(&parts, " ", super::width::line_width()) {
            ctx.say(line);
        }
        if r.packs_locked > 0 {
            let at = |t: Option<std::time::SystemTime>| {
                t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_default()
            };
            ctx.say(format!(
                "{} ({}) still under Object Lock, kept: reclaimable from {} (the last at {})",
                lifeboat::util::plural(r.packs_locked as u64, "pack"),
                human_bytes(r.bytes_locked),
                at(r.reclaimable_from),
                at(r.locked_until)
            ));
        }
        if let Some(v) = r
            .versions
            .as_ref()
            .filter(|v| v.versions_deleted + v.versions_locked > 0)
        {
            ctx.say(format!(
                "old versions: {} deleted ({}), {} still locked ({}, the last until {})",
                v.versions_deleted,
                human_bytes(v.bytes_freed),
                v.versions_locked,
                human_bytes(v.bytes_locked),
                v.locked_until
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_else(|| "-".into())
            ));
        }
    }
    Ok(())
}

/// The restore points WAL retention may judge from: none while some
/// summary cannot be read, since it may be the oldest base backup, and
/// the WAL it needs would go.
fn wal_safe(
    snaps: Vec<lifeboat::repo::Snapshot>,
    damaged: &lifeboat::repo::Damaged,
) -> Vec<lifeboat::repo::Snapshot> {
    if damaged.is_empty() {
        return snaps;
    }
    eprintln!(
        "warning: {} restore point summaries cannot be read; WAL groups are left alone until `lifeboat repair` or `lifeboat verify` has dealt with them",
        damaged.len()
    );
    Vec::new()
}
