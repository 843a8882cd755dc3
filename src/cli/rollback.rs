//! `lifeboat rollback ID`: put back what a restore (or every restore of a
//! recovery job) replaced. For a service in the config it runs as a job
//! through the `rollback` runbook: the service is stopped, the data swapped
//! back, the service started, with the same plan, confirmation, journal and
//! report as any recovery.

use super::recover;
use super::runbook::load;
use super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use lifeboat::engine;
use lifeboat::runbook;
use lifeboat::source::ledger::{self, Ledger};
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Args)]
pub struct RollbackArgs {
    /// The restore or recovery job to undo (see `lifeboat leftovers` and `lifeboat jobs`)
    id: String,
    /// Do not ask for confirmation
    #[arg(long)]
    yes: bool,
    /// Start the job and return
    #[arg(long)]
    detach: bool,
}

pub fn rollback(ctx: &Ctx, a: RollbackArgs) -> Result<ExitCode> {
    let state_dir = ctx.state_dir();
    let targets = engine::restore::rollback::targets(&state_dir, &a.id);
    if targets.is_empty() {
        if let Ok(rec) = ledger::load(&state_dir, &a.id) {
            if let Some(by) = rec.undone_by {
                bail!("restore {} was already rolled back by {by}", a.id);
            }
        }
        bail!(
            "nothing to roll back for `{}`: no restore or job of that id kept what it replaced (`lifeboat leftovers` lists what is kept)",
            a.id
        );
    }
    let mut services: Vec<String> = targets.iter().map(|r| r.service.clone()).collect();
    services.sort();
    services.dedup();
    if let Some(config) = &ctx.config {
        if services.iter().all(|s| config.service(s).is_ok()) {
            let (rbs, _) = load(config)?;
            let rb = runbook::find(&rbs, "rollback")?;
            let svcs: Vec<_> = services
                .iter()
                .filter_map(|s| config.service(s).ok())
                .collect();
            let inputs = BTreeMap::from([("restore".to_string(), a.id.clone())]);
            return recover::start(ctx, config, rb, &svcs, "latest", inputs, !a.yes, a.detach);
        }
    }
    // A restore into a directory, or of a service no config names: put the
    // paths back here and now.
    if !a.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!("pass --yes to roll back without a terminal");
        }
        for rec in &targets {
            for r in rec.replaced.iter().rev() {
                eprintln!(
                    "put back {}{}",
                    r.what(),
                    r.kept_text()
                        .map(|k| format!(" from {k}"))
                        .unwrap_or_default()
                );
            }
        }
        eprintln!("Type `{}` to go on:", a.id);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != a.id {
            bail!("not confirmed; nothing was changed");
        }
    }
    for rec in targets {
        let id = ledger::new_id("rollback");
        let _lock = lifeboat::jobs::ServiceLock::acquire(&state_dir, &rec.service, &id)?;
        let l = Ledger::new(
            Some(&state_dir),
            &id,
            &rec.service,
            (&rec.point, &rec.point_time),
        )?;
        let r = engine::rollback(&state_dir, &rec.id, &l);
        lifeboat::source::cleanup::finish(&l);
        let r = r?;
        ctx.say(format!(
            "restore {} rolled back: {} put back",
            rec.id,
            r.done.join(", ")
        ));
        for s in &r.skipped {
            eprintln!("warning: {s}");
        }
        for k in &r.kept {
            ctx.say(format!("  what it had written is kept as {k} (`lifeboat rollback {id}` undoes this rollback)"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
