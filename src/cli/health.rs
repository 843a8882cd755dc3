//! `lifeboat health` and `lifeboat metrics`: the same figures for people and Prometheus.

use super::output::{self};
use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn health(ctx: &Ctx) -> Result<ExitCode> {
    let Some(config) = &ctx.config else {
        eprintln!("error: health needs a config (pass --config FILE)");
        return Ok(ExitCode::from(3));
    };
    // Staging of restores that were killed is gone for good: clean it
    // before judging, so it never hides behind a warning.
    for line in lifeboat::engine::leftovers::clean_stale(&config.state_dir) {
        eprintln!("{line}");
    }
    let inv = lifeboat::inventory::load(config);
    let report = lifeboat::health::evaluate(&inv, std::time::SystemTime::now(), &config.thresholds);
    if ctx.json {
        output::json(&report)?;
    } else if !ctx.quiet {
        output::print_health(&report);
    }
    Ok(ExitCode::from(report.state.exit_code()))
}

#[derive(Args)]
pub struct MetricsArgs {
    /// Where to write (atomically); prints to stdout without it
    #[arg(long, value_name = "PATH")]
    textfile: Option<PathBuf>,
}

pub fn metrics(ctx: &Ctx, a: MetricsArgs) -> Result<ExitCode> {
    let config = ctx
        .config
        .as_ref()
        .context("metrics need a config (pass --config FILE)")?;
    let inv = lifeboat::inventory::load(config);
    let report = lifeboat::health::evaluate(&inv, std::time::SystemTime::now(), &config.thresholds);
    let text = lifeboat::metrics::render(&inv, &report);
    match a.textfile {
        Some(p) => lifeboat::metrics::write_textfile(&p, &text)?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
