//! `lifeboat restore`: into a directory, or (`--live`) where the service
//! lives, after showing the plan and a typed confirmation.

use super::output::{self, human_bytes, Progress};
use super::Ctx;
use anyhow::{bail, Context, Result};
use clap::Args;
use lifeboat::engine::{self, RestoreOptions, Scope};
use lifeboat::runbook::engine_calls::{self as calls, PointInfo};
use lifeboat::source::ledger::Ledger;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct RestoreArgs {
    /// Snapshot id (or unique prefix), `latest`, `SERVICE:latest`, or a service name (its latest)
    snapshot: String,
    /// Restore only these paths (as shown by `lifeboat ls`)
    paths: Vec<String>,
    /// Directory to restore into (created if missing); database dumps land as files under .lifeboat/
    #[arg(
        long,
        short,
        value_name = "DIR",
        required_unless_present = "live",
        conflicts_with = "live"
    )]
    target: Option<PathBuf>,
    /// Put the service back where it lives: its paths (old content kept beside them) and its databases and streams (restored into a new copy, checked, then swapped in)
    #[arg(long, conflicts_with = "paths")]
    live: bool,
    /// With --live: only sources of these kinds (e.g. postgres,sqlite)
    #[arg(long, value_delimiter = ',', requires = "live", value_name = "KINDS")]
    kinds: Vec<String>,
    /// With --live: do not ask for confirmation
    #[arg(long)]
    yes: bool,
    /// Restore into a non-empty target: the entries the restore writes replace what is there, which is kept aside; nothing else is touched
    #[arg(long)]
    force: bool,
    /// Rescue a damaged restore point: restore every intact file, name on stderr each one whose data is lost or damaged (none of them is written), exit 3
    // Not with --force: a unit replaced from staging that lacks its damaged
    // files would take the target's good copies of them with it.
    #[arg(long, conflicts_with_all = ["live", "force"])]
    skip_damaged: bool,
    /// A postgres-cluster service: recover to this moment (UTC, e.g. "2026-12-01 14:03:00"), `before:TIME`, or `latest` (all archived WAL); with --target DIR, or --live to replace the cluster's data_dir (checked by a private server first, the old one kept for rollback)
    #[arg(long, value_name = "TIME", conflicts_with_all = ["paths", "force", "skip_damaged", "kinds"])]
    at: Option<String>,
}

/// Exit code of a restore that left damaged files out (`--skip-damaged`).
const EXIT_INCOMPLETE: u8 = 3;

pub fn restore(ctx: &Ctx, mut a: RestoreArgs) -> Result<ExitCode> {
    if let Some(at) = &a.at {
        return match &a.target {
            Some(target) => super::wal_restore::restore_at(ctx, &a.snapshot, at, target),
            None => super::wal_restore::restore_at_live(ctx, &a.snapshot, at, a.yes, on_ctrl_c),
        };
    }
    if let Some(config) = &ctx.config {
        if config.services.iter().any(|s| s.name == a.snapshot) {
            a.snapshot = format!("{}:latest", a.snapshot);
        }
    }
    let repo = ctx.open(super::snapshot_repo(ctx, &a.snapshot))?;
    let snap = super::snapshots::find_in(ctx, &repo, &a.snapshot)?;
    let state_dir = ctx.state_dir();
    for line in engine::leftovers::clean_stale(&state_dir) {
        eprintln!("{line}");
    }
    let Some(target) = a.target.clone() else {
        return restore_live(ctx, &repo, &snap, &a);
    };
    let mut opts = RestoreOptions::new(&target);
    opts.include = a.paths;
    opts.force = a.force;
    opts.state_dir = Some(state_dir);
    opts.skip_damaged = a.skip_damaged;
    let progress = Progress::start(
        ctx.quiet || ctx.json,
        &format!("restore {}", snap.short_id()),
    );
    let reporter = progress.reporter().with_cancel(on_ctrl_c()?);
    let report = engine::restore(&repo, &snap, &opts, &reporter);
    drop(reporter);
    progress.finish();
    let report = report?;
    tracing::info!(job = "restore", restore = %report.id, snapshot = %snap.id, service = %snap.service, files = report.files, bytes = report.bytes, duration_ms = report.duration_ms, damaged = report.damaged.len(), "restore finished");
    let code = if report.damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INCOMPLETE)
    };
    for d in &report.damaged {
        eprintln!(
            "not restored: /{}: {}",
            output::clean(&d.path),
            output::clean(&d.why)
        );
    }
    if ctx.json {
        output::json(&report)?;
        return Ok(code);
    }
    let secs = report.duration_ms as f64 / 1000.0;
    use lifeboat::util::plural;
    if !report.damaged.is_empty() {
        eprintln!(
            "warning: {} of restore point {} could not be restored (listed above); everything else was",
            plural(report.damaged.len() as u64, "file"),
            snap.short_id()
        );
    }
    // Two lines when one does not fit: what went where, then what it holds.
    let parts = [
        format!(
            "restored {} of {} into",
            snap.short_id(),
            output::clean(&snap.service)
        ),
        format!("{}:", report.target.display()),
        format!(
            "{}, {}, {}, {} in {secs:.1} s;",
            plural(report.files, "file"),
            plural(report.dirs, "dir"),
            plural(report.symlinks, "symlink"),
            human_bytes(report.bytes),
        ),
        format!(
            "every file {}matches its recorded hash",
            if report.damaged.is_empty() {
                ""
            } else {
                "restored "
            }
        ),
    ];
    for line in super::width::clauses(&parts, " ", super::width::line_width()) {
        ctx.say(line);
    }
    if let Some(r) = &report.rollback {
        let parts = [
            format!(
                "{} it replaced {} kept in {}:",
                plural(report.replaced.len() as u64, "entry"),
                if report.replaced.len() == 1 {
                    "is"
                } else {
                    "are"
                },
                r.display()
            ),
            format!("`lifeboat rollback {}` puts them back,", report.id),
            format!("`lifeboat leftovers remove {}` discards them", report.id),
        ];
        for line in super::width::clauses(&parts, " ", super::width::line_width()) {
            ctx.say(line);
        }
    }
    Ok(code)
}

/// `restore --live`: the service goes back where it lives, after showing
/// exactly what will be written and replaced, and a typed confirmation.
fn restore_live(
    ctx: &Ctx,
    repo: &lifeboat::repo::Repository,
    snap: &lifeboat::repo::Snapshot,
    a: &RestoreArgs,
) -> Result<ExitCode> {
    let config = ctx.config.as_ref().context(
        "--live needs the config that says where the service lives (pass --config FILE)",
    )?;
    let svc = config.service(&snap.service)?;
    let scope = Scope {
        kinds: a.kinds.clone(),
        path: None,
    };
    let id = lifeboat::source::ledger::new_id(&format!("restore-{}", svc.name));
    let plan = calls::plan(svc, repo, snap, &scope, &id)?;
    let point = PointInfo::of(repo, snap, &config.state_dir, std::time::SystemTime::now());
    if !a.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!(
                "a live restore replaces {}'s data; pass --yes to confirm without a terminal",
                svc.name
            );
        }
        eprintln!(
            "This puts `{}` back at restore point {}:",
            svc.name,
            point.text()
        );
        if let Some(w) = point.warning() {
            eprintln!("  warning: {w}");
        }
        for l in plan.lines() {
            eprintln!("  {l}");
        }
        eprintln!("Nothing is replaced until every copy is restored and checked.");
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
        (&snap.id, &snap.time),
    )?;
    let progress = Progress::start(ctx.quiet || ctx.json, &format!("restore {}", svc.name));
    let reporter = progress.reporter().with_cancel(on_ctrl_c()?);
    let report = engine::execute(repo, snap, &plan, &ledger, &reporter);
    drop(reporter);
    progress.finish();
    for p in lifeboat::source::cleanup::finish(&ledger) {
        eprintln!("warning: {p}");
    }
    let report = report?;
    tracing::info!(job = "restore", restore = %id, snapshot = %snap.id, service = %snap.service, files = report.files, bytes = report.bytes, live = true, "restore finished");
    let differences = report.differences();
    if ctx.json {
        output::json(&report)?;
        return Ok(if differences.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    for d in &report.done {
        ctx.say(format!(
            "{}: {}",
            output::source_label(&d.kind, &d.source),
            d.detail
        ));
        if let Some(k) = &d.kept {
            ctx.say(format!("  what was there is kept as {k}"));
        }
    }
    for p in &report.problems {
        eprintln!("warning: {p}");
    }
    if !report.replaced.is_empty() {
        ctx.say(format!(
            "`lifeboat rollback {id}` puts back what was replaced; `lifeboat leftovers` lists the kept copies"
        ));
    }
    if !differences.is_empty() {
        eprintln!(
            "error: {} was restored, but its check found differences: {}",
            svc.name,
            differences.join("; ")
        );
        return Ok(ExitCode::from(1));
    }
    ctx.say(format!(
        "{} is back at restore point {}; start it and check it",
        svc.name,
        snap.short_id()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C (or SIGTERM) asks the restore to stop at the next safe point:
/// while it stages, what it made is removed; once it swaps, it finishes.
fn on_ctrl_c() -> Result<lifeboat::progress::Cancel> {
    let cancel = lifeboat::progress::Cancel::default();
    let c = cancel.clone();
    lifeboat::runtime::on_signal(move |_| {
        eprintln!("\nstopping at the next safe point: nothing live is replaced half-way");
        c.cancel();
    })?;
    Ok(cancel)
}
