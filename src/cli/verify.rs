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
    /// Instead: compare a sample of SERVICE's live files with its latest restore point (content hashes)
    #[arg(long, value_name = "SERVICE", conflicts_with = "read_data")]
    spot: Option<String>,
    /// How many live files --spot compares
    #[arg(long, value_name = "N", default_value_t = 100, requires = "spot")]
    sample: usize,
}

pub fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<ExitCode> {
    if let Some(service) = &a.spot {
        return spot(ctx, service, a.sample);
    }
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

/// `verify --spot SERVICE`: live files against the latest restore point.
fn spot(ctx: &Ctx, service: &str, sample: usize) -> Result<ExitCode> {
    let config = ctx
        .config
        .as_ref()
        .context("--spot compares a configured service's files: pass --config FILE")?;
    let svc = config.select_services(&[&service.to_string()], false, "spot-check")?;
    let svc = svc.first().context("no such service")?;
    let mut opts = engine::spot::SpotOptions {
        service: svc.name.clone(),
        paths: Vec::new(),
        excludes: Vec::new(),
        sample,
    };
    for s in &svc.sources {
        match &s.kind {
            lifeboat::model::SourceKind::Files { paths, exclude, .. } => {
                opts.paths.extend(paths.iter().cloned());
                opts.excludes.extend(exclude.iter().cloned());
            }
            lifeboat::model::SourceKind::Secrets { paths } => {
                opts.paths.extend(paths.iter().cloned())
            }
            _ => {}
        }
    }
    let repo = ctx.open(Some(&svc.repository))?;
    let report = engine::spot::spot(&repo, &opts)?;
    tracing::info!(job = "verify", service = %report.service, spot = true, sampled = report.sampled, differences = report.differences.len(), "spot check finished");
    if ctx.json {
        output::json(&report)?;
    } else {
        if !ctx.quiet {
            println!(
                "{}: {} of {} live files compared with restore point {}: {} the same, {} changed since the backup, {} different",
                output::clean(&report.service),
                report.sampled,
                report.live_files,
                &report.snapshot[..8.min(report.snapshot.len())],
                report.same,
                report.changed_since.len(),
                report.differences.len()
            );
        }
        for d in &report.differences {
            println!("  ✗ {}: {}", output::clean(&d.path), output::clean(&d.why));
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
