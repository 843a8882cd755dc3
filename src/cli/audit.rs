//! `lifeboat audit`: what no backup covers, and what silently went empty.
//! The result is also kept in the state directory, for `lifeboat health`.

use super::output;
use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use lifeboat::engine::audit::{audit as run, AuditOptions};
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Args)]
pub struct AuditArgs {
    /// Do not ask Docker about volumes and compose stacks
    #[arg(long)]
    no_docker: bool,
}

pub fn audit(ctx: &Ctx, a: AuditArgs) -> Result<ExitCode> {
    let config = ctx
        .config
        .as_ref()
        .context("the audit compares the config with what is out there: pass --config FILE")?;
    let mut repos = BTreeMap::new();
    for name in config.services.iter().map(|s| &s.repository) {
        if !repos.contains_key(name) {
            let opened = ctx.open(Some(name)).map_err(|e| format!("{e:#}"));
            repos.insert(name.clone(), opened);
        }
    }
    let opts = AuditOptions {
        services: config.services.clone(),
        roots: config.audit_roots.clone(),
        docker: !a.no_docker,
    };
    let report = run(&opts, &repos);
    let record = lifeboat::records::AuditRecord {
        time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        report,
    };
    if let Err(e) = lifeboat::records::Records::new(&config.state_dir).save_audit(&record) {
        eprintln!("warning: could not keep the audit's result for `lifeboat health`: {e:#}");
    }
    let report = &record.report;
    if ctx.json {
        output::json(report)?;
    } else {
        for n in &report.notes {
            eprintln!("note: {}", output::clean(n));
        }
        if report.findings.is_empty() {
            ctx.say("✓ nothing found outside the backups");
        }
        for f in &report.findings {
            println!("! {}", output::clean(&f.message));
        }
    }
    // 1, like a health warning: something needs a look.
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
