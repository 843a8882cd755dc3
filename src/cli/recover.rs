//! `lifeboat recover`: follow a runbook to recover services. The run is a
//! job that survives the terminal; this command starts it detached and
//! follows its journal, so closing the terminal (or Ctrl-C) stops only the
//! follower. On a terminal it first shows the plan and asks for the
//! service name, as the console does.

use super::runbook::{config, load};
use super::{output, Ctx};
use anyhow::{bail, Result};
use clap::Args;
use lifeboat::config::Config;
use lifeboat::jobs::{self, JobView, Line, Outcome, Record};
use lifeboat::model::Service;
use lifeboat::runbook::engine_calls::Repos;
use lifeboat::runbook::request::{self, Pick};
use lifeboat::runbook::{self, Runbook};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Run without asking: the plan counts as confirmed, checkboxes too, and a failed step stops the run
    #[arg(long)]
    yes: bool,
    /// Start the job and return; follow it with `lifeboat jobs attach ID`
    #[arg(long)]
    detach: bool,
}

pub fn recover(ctx: &Ctx, a: RecoverArgs) -> Result<ExitCode> {
    let config = config(ctx)?;
    let (rbs, problems) = load(config)?;
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
    let pick = match (&a.host, a.all) {
        (_, true) => Pick::All,
        (Some(h), _) => Pick::Host(h),
        (None, false) => Pick::Services(&a.services),
    };
    let services = request::services(config, rb, pick)?;
    let inputs = request::inputs(rb, &a.inputs)?;
    start(
        ctx, config, rb, &services, &a.point, inputs, !a.yes, a.detach,
    )
}

/// Preflight, the plan and its confirmation, then the job, followed.
/// Shared by `recover` and `rollback`.
#[allow(clippy::too_many_arguments)]
pub fn start(
    ctx: &Ctx,
    config: &Config,
    rb: &Runbook,
    services: &[&Service],
    point: &str,
    inputs: BTreeMap<String, String>,
    interactive: bool,
    detach: bool,
) -> Result<ExitCode> {
    if interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("without a terminal to ask on, pass --yes (the plan and checkboxes then count as confirmed and a failed step stops the run)");
    }
    let repos = Repos {
        config,
        key: ctx.cli_key.clone(),
    };
    let mut ok = true;
    for (svc, c) in request::preflight(&repos, rb, services, point, &inputs) {
        ok &= c.ok;
        if !ctx.json && (!ctx.quiet || !c.ok) {
            println!(
                "preflight {svc}: {} {}: {}",
                if c.ok { "✓" } else { "✗" },
                c.name,
                output::clean(&c.detail)
            );
        }
    }
    if !ok {
        bail!("preflight failed; nothing was changed");
    }
    if interactive && !ctx.json {
        confirm(&repos, rb, services, point, &inputs)?;
    }
    let spec = request::spec(
        rb,
        services,
        point,
        inputs,
        interactive,
        ctx.cli_key.clone(),
    )?;
    let id = spec.id.clone();
    jobs::launch(config, &spec)?;
    if detach {
        if ctx.json {
            output::json(&serde_json::json!({"job": id}))?;
        } else if ctx.quiet {
            println!("{id}");
        } else {
            println!("started job {id}; follow it with `lifeboat jobs attach {id}`");
        }
        return Ok(ExitCode::SUCCESS);
    }
    follow(config, &id, interactive, ctx.quiet)
}

/// What the run will change, then the service name typed back: nothing
/// starts until it is.
fn confirm(
    repos: &Repos,
    rb: &Runbook,
    services: &[&Service],
    point: &str,
    inputs: &BTreeMap<String, String>,
) -> Result<()> {
    println!("{}:", rb.title);
    for svc in services {
        println!("  {}:", svc.name);
        for l in request::plan_lines(repos, rb, svc, point, inputs) {
            println!("    {}", output::clean(&l));
        }
    }
    let want = services
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    println!("Nothing is replaced until every copy is restored and checked.");
    print!("Type `{want}` to start: ");
    use std::io::Write;
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != want {
        bail!("not confirmed; nothing was started or changed");
    }
    Ok(())
}

/// Prints a job's journal as plain lines until it finishes; with a
/// terminal, answers its questions from stdin. Ctrl-C leaves the job
/// running and says how to get back to it.
/// With `quiet`, only a failure is printed (on stderr).
pub fn follow(config: &Config, id: &str, interactive: bool, quiet: bool) -> Result<ExitCode> {
    let job = id.to_string();
    lifeboat::runtime::on_signal(move |_| {
        eprintln!();
        eprintln!("the job {job} goes on without this terminal:");
        eprintln!("  follow it again: lifeboat jobs attach {job}");
        eprintln!("  stop it cleanly: lifeboat jobs cancel {job}");
        std::process::exit(130);
    })?;
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
            if !quiet {
                print_line(&view, l, &mut last_progress);
            }
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
            let line = format!(
                "job {id} {} in {}{}",
                match outcome {
                    Outcome::Success => "succeeded",
                    Outcome::Failed => "FAILED",
                    Outcome::Cancelled => "was cancelled",
                    Outcome::Aborted => "was stopped by you",
                },
                runbook::report::secs(*ms),
                report
                    .as_ref()
                    .map(|r| format!("; report: {}", r.display()))
                    .unwrap_or_default()
            );
            match (*outcome == Outcome::Success, quiet) {
                (true, true) => {}
                (true, false) => println!("{line}"),
                (false, _) => eprintln!("{line}"),
            }
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
    let c = output::clean;
    match &l.rec {
        Record::Started {
            job,
            title,
            services,
            point,
            ..
        } => {
            println!("job {job}: {}", c(title));
            println!(
                "  services: {}; restore point: {}",
                services.join(", "),
                c(point)
            );
        }
        Record::Service {
            service,
            point,
            point_time,
        } => {
            println!("== {service}: restore point {point} ({point_time} UTC)");
        }
        Record::Step {
            index,
            state,
            detail,
        } => {
            let title = view.steps.get(*index).map(|s| s.0.as_str()).unwrap_or("");
            match state {
                jobs::StepState::Running => println!("step {}/{n} {} …", index + 1, c(title)),
                _ => println!(
                    "step {}/{n} {} {}",
                    index + 1,
                    state.symbol(),
                    c(if detail.is_empty() { title } else { detail })
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
        Record::Log { line } => println!("  {}", c(line)),
        Record::Wait { prompt, kind, .. } => println!("  waiting ({kind}): {}", c(prompt)),
        Record::Check { ok, detail, .. } => {
            println!("  check: {} {}", if *ok { "✓" } else { "✗" }, c(detail))
        }
        Record::Replaced { .. } | Record::Finished { .. } => {}
    }
}

/// "restoring 42% 12 MiB of 28 MiB, 8.1 MiB/s, 2s left"
pub fn progress_text(v: &JobView) -> String {
    let Some(c) = v.counters else {
        return String::new();
    };
    let h = lifeboat::util::human_bytes;
    let mut s = match c.percent() {
        Some(p) => format!(
            "{} {p:.0}% {} of {}",
            c.phase.doing(),
            h(c.bytes_done),
            h(c.bytes_total)
        ),
        None => format!("{} {}", c.phase.doing(), h(c.bytes_done)),
    };
    if let Some(r) = v.rate() {
        s.push_str(&format!(", {}/s", h(r as u64)));
    }
    if let Some(e) = v.eta() {
        s.push_str(&format!(", {} left", lifeboat::health::short_duration(e)));
    }
    s
}
