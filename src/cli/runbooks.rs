//! `runbook check|list`, `recover`, `jobs` and the hidden `job-run` that
//! a detached job runs as. `recover` starts the job detached and follows
//! its journal, so closing the terminal stops only the follower.

use super::{output, Ctx};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use lifeboat::config::{Config, Service};
use lifeboat::jobs::{self, JobSpec, JobView, Line, Outcome, Record};
use lifeboat::runbook::{self, engine_calls::Repos, Runbook, Scope};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Subcommand)]
pub enum RunbookCommand {
    /// Validate every runbook against the config: file:line: problem
    Check(RunbookDir),
    /// List the runbooks and the services each applies to
    List(RunbookDir),
}

#[derive(Args)]
pub struct RunbookDir {
    /// Where the runbooks are [default: runbooks/ beside the config, else ./runbooks]
    #[arg(long, value_name = "DIR")]
    runbooks: Option<PathBuf>,
}

#[derive(Args)]
pub struct RecoverArgs {
    /// The runbook (scenario) id, e.g. files-deleted; see `lifeboat runbook list`
    scenario: String,
    /// The affected service (repeatable)
    #[arg(long = "service", value_name = "SERVICE")]
    services: Vec<String>,
    /// Every service of this host the runbook applies to, most critical first
    #[arg(long, value_name = "HOST", conflicts_with = "services")]
    host: Option<String>,
    /// Every service the runbook applies to
    #[arg(long, conflicts_with_all = ["services", "host"])]
    all: bool,
    /// latest, a restore point id, or before:TIME (the newest taken before it)
    #[arg(long, default_value = "latest", value_name = "POINT")]
    point: String,
    /// A value the runbook asks for (repeatable), e.g. --input path=/srv/a/b.pdf
    #[arg(long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// Run without asking: checkboxes count as confirmed, a failed step stops the run
    #[arg(long)]
    yes: bool,
    /// Start the job and return; follow it with `lifeboat jobs attach ID`
    #[arg(long)]
    detach: bool,
    #[command(flatten)]
    dir: RunbookDir,
}

#[derive(Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: Option<JobsCommand>,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Follow a job's progress (from the start of its journal)
    Attach { id: String },
    /// Stop a running job cleanly (its staging is removed)
    Cancel { id: String },
    /// Answer a waiting job: continue, retry, skip or abort
    Answer { id: String, answer: String },
}

fn config(ctx: &Ctx) -> Result<&Config> {
    ctx.config
        .as_ref()
        .context("runbooks need a config (pass --config FILE)")
}

fn load(config: &Config, dir: &RunbookDir) -> Result<(Vec<Runbook>, Vec<runbook::Problem>)> {
    let d = dir
        .runbooks
        .clone()
        .unwrap_or_else(|| runbook::default_dir(config));
    let (rbs, mut problems) = runbook::load_dir(&d)?;
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
                        serde_json::json!({"id": r.id, "title": r.title, "file": r.file, "scope": r.scope,
                            "services": applicable(config, r).iter().map(|s| &s.name).collect::<Vec<_>>()})
                    })
                    .collect();
                output::json(&list)?;
            } else {
                for r in &rbs {
                    let svcs: Vec<&str> = applicable(config, r)
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect();
                    println!(
                        "{:<16} {}\n{:<16} applies to: {}",
                        r.id,
                        r.title,
                        "",
                        svcs.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn applicable<'a>(config: &'a Config, rb: &Runbook) -> Vec<&'a Service> {
    config.services.iter().filter(|s| rb.applies(s)).collect()
}

pub fn recover(ctx: &Ctx, a: RecoverArgs) -> Result<ExitCode> {
    let config = config(ctx)?;
    let (rbs, problems) = load(config, &a.dir)?;
    let rb = runbook::find(&rbs, &a.scenario)?;
    let mine: Vec<_> = problems.iter().filter(|p| p.file == rb.file).collect();
    if !mine.is_empty() {
        for p in mine {
            eprintln!("{p}");
        }
        bail!(
            "runbook {} has problems; fix them first (`lifeboat runbook check`)",
            rb.id
        );
    }
    let fits = applicable(config, rb);
    let services: Vec<&Service> =
        if a.all || (a.services.is_empty() && a.host.is_none() && rb.scope == Scope::All) {
            fits.clone()
        } else if let Some(h) = &a.host {
            fits.iter().copied().filter(|s| &s.host == h).collect()
        } else {
            if a.services.is_empty() {
                bail!(
                    "name the affected service with --service (this runbook applies to: {})",
                    fits.iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let mut v = Vec::new();
            for n in &a.services {
                let s = config.service(n)?;
                if !rb.applies(s) {
                    bail!(
                        "runbook {} does not apply to {n} (it applies to: {})",
                        rb.id,
                        fits.iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                v.push(s);
            }
            v
        };
    if services.is_empty() {
        bail!("no service to run {} for", rb.id);
    }
    let mut inputs = BTreeMap::new();
    for i in &a.inputs {
        let (k, v) = i
            .split_once('=')
            .with_context(|| format!("--input {i}: expected NAME=VALUE"))?;
        if !rb.inputs.iter().any(|x| x.name == k) {
            bail!("runbook {} has no input `{k}`", rb.id);
        }
        inputs.insert(k.to_string(), v.to_string());
    }
    for i in &rb.inputs {
        if i.default.is_none() && !inputs.contains_key(&i.name) {
            bail!(
                "runbook {} needs --input {}=… ({})",
                rb.id,
                i.name,
                i.prompt
            );
        }
    }
    let interactive = !a.yes;
    if interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("without a terminal to ask on, pass --yes (checkboxes then count as confirmed and a failed step stops the run)");
    }
    // Preflight, before anything is started.
    let repos = Repos {
        config,
        key: ctx.cli_key.clone(),
        staging: Default::default(),
    };
    let mut ok = true;
    for s in &services {
        for c in runbook::preflight::run(&repos, rb, s, &a.point, &inputs) {
            ok &= c.ok;
            if !ctx.json {
                println!(
                    "preflight {}: {} {}: {}",
                    s.name,
                    if c.ok { "✓" } else { "✗" },
                    c.name,
                    c.detail
                );
            }
        }
    }
    if !ok {
        bail!("preflight failed; nothing was changed");
    }
    let id = jobs::new_id(&rb.id);
    let spec = JobSpec {
        id: id.clone(),
        runbook: std::path::absolute(&rb.file)?,
        services: services.iter().map(|s| s.name.clone()).collect(),
        point: a.point.clone(),
        inputs,
        interactive,
        key: ctx.cli_key.clone().map(std::path::absolute).transpose()?,
    };
    jobs::launch(config, &spec)?;
    if a.detach {
        if ctx.json {
            output::json(&serde_json::json!({"job": id}))?;
        } else {
            println!("started job {id}; follow it with `lifeboat jobs attach {id}`");
        }
        return Ok(ExitCode::SUCCESS);
    }
    follow(config, &id, interactive)
}

/// Prints a job's journal as plain lines until it finishes; with a
/// terminal, answers its questions from stdin.
fn follow(config: &Config, id: &str, interactive: bool) -> Result<ExitCode> {
    let journal = jobs::journal_path(&config.state_dir, id);
    let mut view = JobView {
        id: id.to_string(),
        ..Default::default()
    };
    let mut offset = 0;
    let mut last_progress = 0u64;
    let mut answered: Option<u64> = None;
    let started = std::time::Instant::now();
    loop {
        let (lines, off) = match jobs::read_from(&journal, offset) {
            Ok(x) => x,
            Err(_) if started.elapsed() < Duration::from_secs(10) => (Vec::new(), offset),
            Err(e) => {
                return Err(
                    e.context("the job did not start (see its .out file in the jobs directory)")
                )
            }
        };
        offset = off;
        for l in &lines {
            view.apply(l);
            print_line(&view, l, &mut last_progress);
        }
        // Only the question still open, once everything written so far is
        // read: replaying an old journal never answers old questions.
        if let (true, None, Some(w)) = (interactive, &view.finished, &view.waiting) {
            if answered != Some(w.ask) {
                let ans = prompt(&w.kind, w.skippable)?;
                jobs::answer(&config.state_dir, id, w.ask, &ans)?;
                answered = Some(w.ask);
            }
        }
        if let Some((outcome, ms, report)) = &view.finished {
            println!(
                "job {id} {} in {}{}",
                match outcome {
                    Outcome::Success => "succeeded",
                    Outcome::Failed => "FAILED",
                    Outcome::Cancelled => "was cancelled",
                },
                runbook::report::secs(*ms),
                report
                    .as_ref()
                    .map(|r| format!("; report: {}", r.display()))
                    .unwrap_or_default()
            );
            return Ok(if *outcome == Outcome::Success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        if lines.is_empty() && view.pid != 0 && !jobs::alive(view.pid, id) {
            // One more read: it may have finished between the two looks.
            let (more, _) = jobs::read_from(&journal, offset)?;
            if more.is_empty() {
                bail!(
                    "job {id} stopped without finishing (its process is gone); see `lifeboat jobs`"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn prompt(kind: &str, skippable: bool) -> Result<String> {
    use std::io::Write;
    let choices = match kind {
        "failed" if skippable => "r retry, s skip, a abort",
        "failed" => "r retry, a abort",
        "confirm" => "Enter run it, s skip, a abort",
        _ => "Enter done, a abort",
    };
    print!("  [{choices}] > ");
    std::io::stdout().flush()?;
    let mut l = String::new();
    std::io::stdin().read_line(&mut l)?;
    Ok(match (kind, l.trim()) {
        (_, "a") => "abort",
        ("failed", "s") | ("confirm", "s") => "skip",
        ("failed", _) => "retry",
        _ => "continue",
    }
    .to_string())
}

fn print_line(view: &JobView, l: &Line, last_progress: &mut u64) {
    let n = view.steps.len();
    match &l.rec {
        Record::Started {
            job,
            title,
            services,
            point,
            ..
        } => {
            println!("job {job}: {title}");
            println!(
                "  services: {}; restore point: {point}",
                services.join(", ")
            );
        }
        Record::Service {
            service,
            point,
            point_time,
        } => {
            println!("== {service}: restore point {point} ({point_time})");
        }
        Record::Step {
            index,
            state,
            detail,
        } => {
            let title = view.steps.get(*index).map(|s| s.0.as_str()).unwrap_or("");
            match state {
                jobs::StepState::Running => println!("step {}/{n} {title} …", index + 1),
                _ => println!(
                    "step {}/{n} {} {}",
                    index + 1,
                    state.symbol(),
                    if detail.is_empty() { title } else { detail }
                ),
            }
        }
        Record::Progress { counters } => {
            // A line every two seconds is plenty for a log or a script.
            if l.t.saturating_sub(*last_progress) >= 2000
                || counters.phase == lifeboat::progress::Phase::Done
            {
                *last_progress = l.t;
                println!("  {}", progress_text(view));
            }
        }
        Record::Log { line } => println!("  {line}"),
        Record::Wait { prompt, kind, .. } => println!("  waiting ({kind}): {prompt}"),
        Record::Check { ok, detail, .. } => {
            println!("  check: {} {detail}", if *ok { "✓" } else { "✗" })
        }
        Record::Finished { .. } => {}
    }
}

/// "42% 12 MiB of 28 MiB, 8.1 MiB/s, 2s left"
pub fn progress_text(v: &JobView) -> String {
    let Some(c) = v.counters else {
        return String::new();
    };
    let h = lifeboat::util::human_bytes;
    let mut s = match c.percent() {
        Some(p) => format!("{p:.0}% {} of {}", h(c.bytes_done), h(c.bytes_total)),
        None => h(c.bytes_done),
    };
    if let Some(r) = v.rate() {
        s.push_str(&format!(", {}/s", h(r as u64)));
    }
    if let Some(e) = v.eta() {
        s.push_str(&format!(", {} left", lifeboat::health::short_duration(e)));
    }
    s
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
            let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
            follow(config, &id, interactive)
        }
        Some(JobsCommand::Cancel { id }) => {
            jobs::cancel(&config.state_dir, &id)?;
            ctx.say(format!(
                "asked job {id} to stop; it removes its staging and records `cancelled`"
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

/// The detached job itself.
pub fn job_run(ctx: &Ctx, id: &str) -> Result<ExitCode> {
    let config = config(ctx)?;
    let spec = jobs::read_spec(&config.state_dir, id)?;
    let journal = jobs::Journal::create(&config.state_dir, id)?;
    let text = std::fs::read_to_string(&spec.runbook)
        .with_context(|| format!("reading {}", spec.runbook.display()))?;
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
    let cancel = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let staging = runbook::engine_calls::Staging::default();
    let journal = Arc::new(journal);
    watch_signals(
        Arc::clone(&cancel),
        Arc::clone(&done),
        staging.clone(),
        Arc::clone(&journal),
    );
    let run = runbook::exec::Run {
        config,
        spec: &spec,
        runbook: &rb,
        journal: &journal,
        cancel: &cancel,
        staging,
    };
    let report = run.run();
    done.store(true, Ordering::SeqCst);
    Ok(if report.outcome == Outcome::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// SIGTERM or SIGINT: ask the run to stop; if the engine is mid-restore
/// and does not come back within half a second, remove the staging here,
/// record the cancel and exit.
fn watch_signals(
    cancel: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    staging: runbook::engine_calls::Staging,
    journal: Arc<jobs::Journal>,
) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        journal.log("cancel requested: stopping");
        cancel.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            if done.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Held until the process exits: a swap into place waits on this
        // lock, so it either finished before or never happens.
        let guard = staging.lock();
        let dirs = guard.as_ref().map(|s| s.to_vec()).unwrap_or_default();
        for d in dirs {
            for _ in 0..5 {
                if std::fs::remove_dir_all(&d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            journal.log(format!("removed staging {}", d.display()));
        }
        journal.write(Record::Finished {
            outcome: Outcome::Cancelled,
            duration_ms: 0,
            report: None,
        });
        std::process::exit(130);
    });
}
