//! `restore SERVICE --at MOMENT`: a postgres-cluster service's data
//! directory as of a moment, into `--target DIR`, or (`--live`) in place
//! of the cluster's data directory after the plan and a typed
//! confirmation, as every live restore goes.

use super::output::{self, Progress};
use super::Ctx;
use anyhow::{anyhow, bail, Context, Result};
use lifeboat::engine::restore::at::{self, LiveAtOptions};
use lifeboat::progress::Reporter;
use lifeboat::source::ledger::Ledger;
use lifeboat::source::pitr::restore_at::{self as pitr_at, AtOptions};
use lifeboat::source::pitr::window::Moment;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// The `restore_command` for this invocation: the running binary with
/// the same config, repository and key (paths, never a key's content).
pub(super) fn restore_command(ctx: &Ctx, service: &str) -> Result<String> {
    let exe = std::env::current_exe().context("finding the lifeboat binary for restore_command")?;
    let repo = ctx
        .cli_repo
        .as_ref()
        .map(|r| match super::looks_like_location(r) {
            true => std::path::absolute(r)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| r.clone()),
            false => r.clone(),
        });
    Ok(pitr_at::fetch_command(
        &exe,
        ctx.config.as_ref().map(|c| c.path.as_path()),
        repo.as_deref(),
        ctx.cli_key.as_deref(),
        service,
    ))
}

fn service<'a>(ctx: &'a Ctx, name: &str) -> Result<&'a lifeboat::model::Service> {
    let config = ctx
        .config
        .as_ref()
        .ok_or_else(|| anyhow!(lifeboat::Error::NoConfig))?;
    config.service(name)
}

/// `restore SERVICE --at MOMENT --target DIR`.
pub fn restore_at(ctx: &Ctx, service_name: &str, at: &str, target: &Path) -> Result<ExitCode> {
    let moment = Moment::parse(at)?;
    let svc = service(ctx, service_name)?;
    let (source, c) = pitr_at::cluster_of(svc).with_context(|| {
        format!(
            "service `{}` has no postgres-cluster source; `--at` restores a cluster to a moment (restore other services by restore point)",
            svc.name
        )
    })?;
    let repo = ctx.open(Some(svc.repository.as_str()))?;
    let opts = AtOptions {
        service: svc.name.clone(),
        source: source.to_string(),
        moment,
        target: target.to_path_buf(),
        restore_command: restore_command(ctx, &svc.name)?,
        spooled: pitr_at::spooled(c),
    };
    let report = pitr_at::restore_at(&repo, &opts, &Reporter::silent())?;
    if ctx.json {
        output::json(&report)?;
    } else {
        for l in report.lines() {
            ctx.say(l);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `restore SERVICE --at MOMENT --live`. `on_ctrl_c` installs the
/// handler that turns Ctrl-C into a cancel at the next safe point, once
/// the restore is confirmed.
pub fn restore_at_live(
    ctx: &Ctx,
    service_name: &str,
    at: &str,
    yes: bool,
    on_ctrl_c: fn() -> Result<lifeboat::progress::Cancel>,
) -> Result<ExitCode> {
    let config = ctx.config.as_ref().context(
        "--live needs the config that says where the cluster's data directory is (pass --config FILE)",
    )?;
    let moment = Moment::parse(at)?;
    let svc = config.service(service_name)?;
    let id = lifeboat::source::ledger::new_id(&format!("restore-{}", svc.name));
    let repo = ctx.open(Some(svc.repository.as_str()))?;
    let opts = LiveAtOptions {
        service: svc.clone(),
        config: config.path.clone(),
        moment,
        restore_command: restore_command(ctx, &svc.name)?,
        spooled: pitr_at::cluster_of(svc).and_then(|(_, c)| pitr_at::spooled(c)),
        id: id.clone(),
        timeout: Duration::from_secs(3600),
    };
    let plan = at::plan_at(&repo, &opts)?;
    if !yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!(
                "a live restore replaces {}'s data directory; pass --yes to confirm without a terminal",
                svc.name
            );
        }
        eprintln!("This puts `{}` back at {}:", svc.name, plan.recovers_to);
        for l in plan.lines() {
            eprintln!("  {l}");
        }
        eprintln!(
            "Nothing is replaced until the new data directory has recovered and passed its check."
        );
        eprintln!("Type the service name to go on:");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != svc.name {
            bail!("not confirmed; nothing was changed");
        }
    }
    // One restore of a service at a time, recovery jobs included.
    let _lock = lifeboat::jobs::ServiceLock::acquire(&config.state_dir, &svc.name, &id)?;
    let ledger = Ledger::new(
        Some(&config.state_dir),
        &id,
        &svc.name,
        (&plan.base.id, &plan.base.time),
    )?;
    let progress = Progress::start(ctx.quiet || ctx.json, &format!("restore {}", svc.name));
    let reporter = progress.reporter().with_cancel(on_ctrl_c()?);
    let report = at::execute_at(&repo, &plan, &ledger, &reporter);
    drop(reporter);
    progress.finish();
    for p in lifeboat::source::cleanup::finish(&ledger) {
        eprintln!("warning: {p}");
    }
    let report = report?;
    tracing::info!(job = "restore", restore = %id, snapshot = %report.base_backup, service = %svc.name, live = true, recovers_to = %report.recovers_to, duration_ms = report.duration_ms, "restore to a moment finished");
    if ctx.json {
        output::json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for l in report.lines() {
        ctx.say(l);
    }
    for p in &report.problems {
        eprintln!("warning: {p}");
    }
    ctx.say(format!(
        "`lifeboat rollback {id}` puts the previous data directory back; `lifeboat leftovers` lists the kept copy"
    ));
    ctx.say(format!(
        "start PostgreSQL: pg_ctl -D {} start / systemctl start postgresql; then take a base backup (`lifeboat backup {}`)",
        report.data_dir.display(),
        svc.name
    ));
    Ok(ExitCode::SUCCESS)
}
