//! `lifeboat runbook check|list`: the runbooks, validated against the config.

use super::{output, Ctx};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lifeboat::config::Config;
use lifeboat::runbook::{self, request, Runbook};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum RunbookCommand {
    /// Validate every runbook against the config: file:line: problem
    Check(RunbookDir),
    /// List the runbooks and the services each applies to
    List(RunbookDir),
}

#[derive(Args)]
pub struct RunbookDir {
    /// A directory of your own runbooks, added to the built-in ones (an id they share replaces the built-in one) [default: the config's runbooks_dir, else runbooks/ beside the config]
    #[arg(long, value_name = "DIR")]
    pub runbooks: Option<PathBuf>,
}

pub fn config(ctx: &Ctx) -> Result<&Config> {
    ctx.config
        .as_ref()
        .context("runbooks need a config (pass --config FILE)")
}

pub fn load(config: &Config, dir: &RunbookDir) -> Result<(Vec<Runbook>, Vec<runbook::Problem>)> {
    let (rbs, mut problems) = runbook::load_all(config, dir.runbooks.as_deref())?;
    problems.extend(runbook::check(&rbs, config));
    problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    Ok((rbs, problems))
}

pub fn runbook_cmd(ctx: &Ctx, cmd: RunbookCommand) -> Result<ExitCode> {
    let config = config(ctx)?;
    match cmd {
        RunbookCommand::Check(dir) => {
            let (rbs, problems) = load(config, &dir)?;
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
        RunbookCommand::List(dir) => {
            let (rbs, _) = load(config, &dir)?;
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
