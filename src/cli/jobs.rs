//! `lifeboat jobs`: running and recent recovery jobs; attach, answer,
//! cancel. And the hidden `job-run` that a detached job runs as.

use super::recover::follow;
use super::runbook::config;
use super::{output, Ctx};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use lifeboat::jobs::{self, JobView, Outcome, Record};
use lifeboat::progress::Cancel;
use lifeboat::runbook;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: Option<JobsCommand>,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Follow a job's progress (from the start of its journal)
    Attach { id: String },
    /// Stop a running job cleanly: what it made is removed, a service it stopped is started again when nothing was replaced
    Cancel { id: String },
    /// Answer a waiting job: continue, retry, skip or abort
    Answer { id: String, answer: String },
}

pub fn jobs_cmd(ctx: &Ctx, a: JobsArgs) -> Result<ExitCode> {
    let config = config(ctx)?;
    match a.command {
        None => {
            let list = jobs::list(&config.state_dir);
            if ctx.json {
                output::json(&list)?;
            } else if list.is_empty() {
                println!("(no jobs)");
            } else {
                println!("{:<36} {:<10} {:<20} STEP", "JOB", "STATE", "SERVICES");
                for j in &list {
                    let step = j
                        .current
                        .and_then(|i| j.steps.get(i))
                        .map(|s| {
                            format!("{}/{} {}", j.current.unwrap_or(0) + 1, j.steps.len(), s.0)
                        })
                        .unwrap_or_default();
                    println!(
                        "{:<36} {:<10} {:<20} {}",
                        j.id,
                        j.state_text(),
                        j.services.join(","),
                        step
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(JobsCommand::Attach { id }) => {
            if !jobs::journal_path(&config.state_dir, &id).exists() {
                let known = jobs::list(&config.state_dir);
                bail!(
                    "no job `{}`{}; `lifeboat jobs` lists them",
                    output::clean(&id),
                    lifeboat::util::suggestion(&id, known.iter().map(|j| j.id.as_str()))
                );
            }
            let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
            follow(config, &id, interactive, ctx.quiet)
        }
        Some(JobsCommand::Cancel { id }) => {
            jobs::cancel(&config.state_dir, &id)?;
            ctx.say(format!(
                "asked job {id} to stop; it stops at the next safe point, removes what it made and records `cancelled`"
            ));
            Ok(ExitCode::SUCCESS)
        }
        Some(JobsCommand::Answer { id, answer }) => {
            let view = JobView::load(&config.state_dir, &id)?;
            let running = view.running();
            let Some(w) = view.waiting.as_ref().filter(|_| running) else {
                bail!(
                    "job {id} is not waiting for an answer ({})",
                    view.state_text()
                );
            };
            jobs::answer(&config.state_dir, &id, w.ask, &answer)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What kind of job a detached job is, for its monitors and log lines
/// (`restore`, `drill`, `backup`, `verify`): what its runbook does.
pub fn kind_of(ctx: &Ctx, id: &str) -> Option<String> {
    let config = ctx.config.as_ref()?;
    let spec = jobs::read_spec(&config.state_dir, id).ok()?;
    let text = runbook::read_text(&spec.runbook).ok()?;
    let (rb, _) = runbook::parse::parse(&spec.runbook, &text);
    Some(rb.map_or("restore", |r| r.job_kind()).to_string())
}

/// The detached job itself.
pub fn job_run(ctx: &Ctx, id: &str) -> Result<ExitCode> {
    let config = config(ctx)?;
    let spec = jobs::read_spec(&config.state_dir, id)?;
    let journal = Arc::new(jobs::Journal::create(&config.state_dir, id)?);
    let text = runbook::read_text(&spec.runbook)?;
    let (rb, problems) = runbook::parse::parse(&spec.runbook, &text);
    let Some(rb) = rb.filter(|_| problems.is_empty()) else {
        for p in &problems {
            journal.log(format!("error: {p}"));
        }
        journal.write(Record::Finished {
            outcome: Outcome::Failed,
            duration_ms: 0,
            report: None,
        });
        return Ok(ExitCode::from(1));
    };
    // SIGTERM (`jobs cancel`, the console's C) or SIGINT: the run stops at
    // the next safe point, cleans up what it made and writes its report.
    let cancel = Cancel::default();
    {
        let cancel = cancel.clone();
        let journal = Arc::clone(&journal);
        lifeboat::runtime::on_signal(move |which| {
            journal.log(format!(
                "cancel requested ({which}): stopping at the next safe point"
            ));
            cancel.cancel();
        })?;
    }
    let run = runbook::exec::Run::new(config, &spec, &rb, &journal, cancel);
    let report = run.run();
    // What the job said last, for a failure ping.
    if let Ok(view) = JobView::load(&config.state_dir, id) {
        let tail = view.log.len().saturating_sub(20);
        ctx.log
            .borrow_mut()
            .extend(view.log[tail..].iter().cloned());
    }
    ctx.log.borrow_mut().push(format!(
        "job {} ({}) for {}: {:?}",
        report.job,
        report.runbook,
        spec.services.join(", "),
        report.outcome
    ));
    Ok(if report.outcome == Outcome::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
