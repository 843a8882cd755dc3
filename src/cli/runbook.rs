//! `lifeboat runbook check|list`: the runbooks, validated against the config.

use super::{output, Ctx};
use anyhow::{Context, Result};
use clap::Subcommand;
use lifeboat::config::Config;
use lifeboat::runbook::{self, request, Runbook};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum RunbookCommand {
    /// Validate every runbook against the config: file:line: problem
    Check,
    /// List the runbooks and the services each applies to
    List,
}

pub fn config(ctx: &Ctx) -> Result<&Config> {
    ctx.config
        .as_ref()
        .context("runbooks need a config (pass --config FILE)")
}

/// The runbooks: built-in ones, and the admin's (`--runbooks` sets the
/// config's `runbooks_dir`).
pub fn load(config: &Config) -> Result<(Vec<Runbook>, Vec<runbook::Problem>)> {
    let (rbs, mut problems) = runbook::load_all(config, None)?;
    problems.extend(runbook::check(&rbs, config));
    problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    Ok((rbs, problems))
}

pub fn runbook_cmd(ctx: &Ctx, cmd: RunbookCommand) -> Result<ExitCode> {
    let config = config(ctx)?;
    match cmd {
        RunbookCommand::Check => {
            let (rbs, problems) = load(config)?;
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                ctx.say(format!("{} runbooks: ok", rbs.len()));
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problems in {} runbooks", problems.len(), rbs.len());
                Ok(ExitCode::from(1))
            }
        }
        RunbookCommand::List => {
            let (rbs, _) = load(config)?;
            if ctx.json {
                let list: Vec<_> = rbs
                    .iter()
                    .map(|r| {
                        serde_json::json!({"id": r.id, "title": r.title, "file": r.file, "from": r.source_text(), "scope": r.scope,
                            "services": request::applicable(config, r).iter().map(|s| &s.name).collect::<Vec<_>>()})
                    })
                    .collect();
                output::json(&list)?;
            } else {
                for r in &rbs {
                    let svcs: Vec<&str> = request::applicable(config, r)
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect();
                    println!("{:<16} {}", r.id, r.title);
                    println!("{:<16} applies to: {}", "", svcs.join(", "));
                    println!("{:<16} from: {}", "", r.source_text());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
