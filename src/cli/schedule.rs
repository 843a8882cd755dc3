//! `lifeboat schedule`: systemd units or crontab lines for the [schedule] section.

use super::Ctx;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ScheduleArgs {
    /// systemd (service + timer units) or cron (crontab lines)
    #[arg(value_parser = ["systemd", "cron"])]
    format: String,
    /// Write the units into this directory (e.g. /etc/systemd/system) instead of printing them
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
    /// The lifeboat binary the jobs run [default: this one]
    #[arg(long, value_name = "PATH")]
    exe: Option<PathBuf>,
}

pub fn schedule(ctx: &Ctx, a: ScheduleArgs) -> Result<ExitCode> {
    let config = ctx
        .config
        .as_ref()
        .context("schedules come from the config's [schedule] section (pass --config FILE)")?;
    if config.schedule.jobs.is_empty() {
        bail!(
            "{} has no [schedule] section (docs/usage.md shows one)",
            config.path.display()
        );
    }
    let exe = match a.exe {
        Some(e) => e,
        None => std::env::current_exe().context("finding this program's path (pass --exe)")?,
    };
    let config_path = std::path::absolute(&config.path)?;
    let config = lifeboat::config::Config {
        path: config_path,
        ..config.clone()
    };
    if a.format == "cron" {
        let lines = lifeboat::schedule::cron_lines(&config, &exe);
        if ctx.json {
            super::output::json(&serde_json::json!({ "cron": lines.lines().collect::<Vec<_>>() }))?;
        } else {
            print!("{lines}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let units = lifeboat::schedule::systemd_units(&config, &exe);
    if ctx.json && a.write.is_none() {
        let list: Vec<_> = units
            .iter()
            .map(|(name, text)| serde_json::json!({ "name": name, "text": text }))
            .collect();
        super::output::json(&serde_json::json!({ "units": list }))?;
        return Ok(ExitCode::SUCCESS);
    }
    match a.write {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in &units {
                std::fs::write(dir.join(name), text)
                    .with_context(|| format!("writing {}", dir.join(name).display()))?;
            }
            let timers: Vec<&str> = units
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| n.ends_with(".timer"))
                .collect();
            ctx.say(format!("wrote {} units to {}; enable them with: systemctl daemon-reload && systemctl enable --now {}", units.len(), dir.display(), timers.join(" ")));
        }
        None => {
            for (name, text) in &units {
                println!("# {name}\n{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
