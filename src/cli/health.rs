//! `lifeboat health` and `lifeboat metrics`: the same figures for people and Prometheus.

use super::output::{self};
use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn health(ctx: &Ctx) -> Result<ExitCode> {
    let Some(config) = &ctx.config else {
        let err = lifeboat::Error::NoConfig;
        if ctx.json {
            // A monitor reads stdout: it gets a state to act on.
            output::json(&serde_json::json!({ "state": "unknown", "error": err.to_string() }))?;
        }
        output::error_in(&err.into(), ctx.json);
        return Ok(ExitCode::from(3));
    };
    // Staging of restores that were killed is gone for good: clean it
    // before judging, so it never hides behind a warning.
    for line in lifeboat::engine::leftovers::clean_stale(&config.state_dir) {
        eprintln!("{line}");
    }
    let config = &scoped(ctx, config)?;
    let inv = lifeboat::inventory::load_with_key(config, ctx.cli_key.as_deref());
    let now = std::time::SystemTime::now();
    let mut report = lifeboat::health::evaluate(&inv, now, &config.thresholds);
    // Only repositories that answered: a store that is down has had its
    // deadline already.
    let here = lifeboat::paths::hostname();
    for r in inv.repositories.iter().filter(|r| r.error.is_none()) {
        let Some(repo) = config.repositories.get(&r.name) else {
            continue;
        };
        if let Ok(locks) = repo
            .backend()
            .and_then(|b| lifeboat::repo::lock::list(b.as_ref()))
        {
            let locks: Vec<_> = locks.into_iter().map(|(_, l)| l).collect();
            report.add_foreign_locks(&r.name, &locks, &here, now);
        }
    }
    if ctx.json {
        output::json(&report)?;
    } else if !ctx.quiet {
        output::print_health(&report);
    } else {
        // Quiet: only what is wrong.
        for a in &report.alerts {
            println!("{} {}", a.state.symbol(), output::clean(&a.message));
        }
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
    let config = &scoped(ctx, config)?;
    let inv = lifeboat::inventory::load_with_key(config, ctx.cli_key.as_deref());
    let report = lifeboat::health::evaluate(&inv, std::time::SystemTime::now(), &config.thresholds);
    for w in lifeboat::metrics::warnings(&inv) {
        eprintln!("warning: {}", output::clean(&w));
    }
    if ctx.json && a.textfile.is_none() {
        output::json(&lifeboat::metrics::families(&inv, &report))?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = lifeboat::metrics::render(&inv, &report);
    match a.textfile {
        Some(p) => lifeboat::metrics::write_textfile(&p, &text)?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The config narrowed to the repository `--repo` names (and its
/// services); a mistyped name is an error with a suggestion.
fn scoped(ctx: &Ctx, config: &lifeboat::config::Config) -> Result<lifeboat::config::Config> {
    let mut config = config.clone();
    if ctx.cli_repo.is_some() {
        let Some(repo) = ctx.configured(None)? else {
            anyhow::bail!("health and metrics judge the repositories of the config: pass a repository's name with --repo, not a location");
        };
        let name = repo.name.clone();
        config.repositories.retain(|n, _| *n == name);
        config.services.retain(|s| s.repository == name);
    }
    Ok(config)
}
