//! `lifeboat verify`: every restore point restorable, data read back.

use super::output::{self, Progress};
use super::Ctx;
use anyhow::{bail, Context, Result};
use clap::Args;
use lifeboat::engine::{self, VerifyOptions};
use std::process::ExitCode;

#[derive(Args)]
pub struct VerifyArgs {
    /// Also decrypt and hash stored data: all of it, or N% of the packs per run, rotating so every pack is read within 100/N runs
    #[arg(long, value_name = "PERCENT", num_args = 0..=1, default_missing_value = "100%", require_equals = true)]
    read_data: Option<String>,
}

pub fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<ExitCode> {
    let percent = match a.read_data.as_deref() {
        None => 0.0,
        Some(p) => {
            let n: f64 = p
                .trim_end_matches('%')
                .parse()
                .with_context(|| format!("--read-data={p}: expected a percentage like 10%"))?;
            if !(n > 0.0 && n <= 100.0) {
                bail!("--read-data={p}: the percentage must be above 0 and at most 100");
            }
            n
        }
    };
    let mut ok = true;
    for name in ctx.every_repository() {
        if name.is_some() && !ctx.json && !ctx.quiet {
            println!("repository {}:", name.as_deref().unwrap_or_default());
        }
        ok &= verify_one(ctx, name.as_deref(), percent)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn verify_one(ctx: &Ctx, repo_name: Option<&str>, percent: f64) -> Result<bool> {
    let repo = ctx.open(repo_name)?;
    let state_dir = ctx
        .config
        .as_ref()
        .map(|c| c.state_dir.clone())
        .unwrap_or_else(lifeboat::paths::state_dir);
    let records = lifeboat::records::Records::new(&state_dir);
    let rotation = records.partial_reads(&repo.config().id);
    let progress = Progress::start(ctx.quiet || ctx.json, "verify");
    let report = engine::verify(
        &repo,
        &VerifyOptions {
            read_data_percent: percent,
            rotation,
        },
        &progress.reporter(),
    );
    progress.finish();
    let report = report?;
    tracing::info!(job = "verify", repository = %repo.config().id, ok = report.ok(), problems = report.problems.len(), snapshots = report.snapshots, packs_read = report.packs_read, bytes_read = report.bytes_read, "verify finished");
    let record = lifeboat::records::VerifyRecord::new(&repo.config().id, percent, &report);
    if let Err(e) = records.add_verify(&record) {
        eprintln!("warning: could not record the result for health: {e:#}");
    }
    if ctx.json {
        output::json(&report)?;
    } else if !ctx.quiet || !report.ok() {
        output::print_verify(&report, percent);
    }
    Ok(report.ok())
}
