//! Runs a runbook as a job: for each chosen service (most critical tier
//! first) take its lock, resolve the restore point, then run the steps in
//! order, writing everything to the job's journal. A failed step stops
//! the run; an interactive job then waits for retry / skip / abort.
//! At the end a report (markdown and JSON) goes to `<state_dir>/reports`.

use super::engine_calls::{self as calls, Repos, Target};
use super::report::{secs, write_report, JobReport, ServiceReport, StepReport};
use super::vars::{self, Vars};
use super::{Action, Item, Runbook};
use crate::config::Config;
use crate::engine::restore::plan::Scope;
use crate::jobs::{Control, JobSpec, Journal, Outcome, Record, ServiceLock, StepState};
use crate::model::Service;
use crate::progress::{Cancel, Event, Reporter};
use crate::repo::{Repository, Snapshot};
use anyhow::{anyhow, bail, Context, Result};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Everything one run needs.
pub struct Run<'a> {
    pub config: &'a Config,
    pub spec: &'a JobSpec,
    pub runbook: &'a Runbook,
    pub journal: &'a Journal,
    pub cancel: Cancel,
    /// Time spent waiting for a person so far, in milliseconds.
    waited: std::cell::Cell<u64>,
    /// Restores this job made, to give each its own id.
    restores: std::cell::Cell<usize>,
}

/// What the previous restore left, for `check` to look at.
struct Restored {
    root: PathBuf,
    scope: Scope,
}

struct SvcCtx<'a> {
    svc: &'a Service,
    repo: Repository,
    /// The repository the run reads from (see `Runbook::source_repository`).
    repo_name: String,
    snap: Snapshot,
    vars: Vars,
    restored: Option<Restored>,
    check: Option<(bool, String)>,
    /// The job ran the service's stop command and not yet its start.
    stopped: bool,
    /// Something live was replaced (a rollback is then possible, and the
    /// service is not restarted behind the admin's back).
    replaced: Vec<String>,
}

enum Answer {
    Continue,
    Retry,
    Skip,
    Abort,
}

/// The admin stopped the run at a question.
#[derive(Debug)]
struct Aborted(String);

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Aborted {}

impl<'a> Run<'a> {
    pub fn new(
        config: &'a Config,
        spec: &'a JobSpec,
        runbook: &'a Runbook,
        journal: &'a Journal,
        cancel: Cancel,
    ) -> Run<'a> {
        Run {
            config,
            spec,
            runbook,
            journal,
            cancel,
            waited: Default::default(),
            restores: Default::default(),
        }
    }

    fn repos(&self) -> Repos<'_> {
        Repos {
            config: self.config,
            key: self.spec.key.clone(),
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn ask(
        &self,
        control: &mut Control,
        index: usize,
        kind: &str,
        prompt: &str,
        skippable: bool,
    ) -> Answer {
        let ask = control.next_ask();
        let asked = Instant::now();
        self.journal.write(Record::Wait {
            ask,
            index,
            kind: kind.into(),
            prompt: prompt.into(),
            skippable,
        });
        let answer = control.answer_to(ask, &|| self.cancelled());
        self.waited
            .set(self.waited.get() + asked.elapsed().as_millis() as u64);
        match answer.as_deref() {
            Some("continue") => Answer::Continue,
            Some("retry") => Answer::Retry,
            Some("skip") if skippable => Answer::Skip,
            Some("skip") => {
                self.journal.log("this step cannot be skipped; stopping");
                Answer::Abort
            }
            _ => Answer::Abort,
        }
    }

    /// Runs the whole job and returns its report (also written to disk).
    pub fn run(&self) -> JobReport {
        let started = Instant::now();
        let started_text = crate::repo::snapshot::now_rfc3339();
        self.journal.write(Record::Started {
            job: self.spec.id.clone(),
            pid: std::process::id(),
            runbook: self.runbook.id.clone(),
            title: self.runbook.title.clone(),
            services: self.spec.services.clone(),
            point: self.spec.point.clone(),
            steps: self.runbook.steps.iter().map(|s| s.title.clone()).collect(),
        });
        let mut reports = Vec::new();
        let mut outcome = Outcome::Success;
        let mut control = Control::new(&self.config.state_dir, &self.spec.id);
        let mut services: Vec<&Service> = Vec::new();
        for name in &self.spec.services {
            match self.config.service(name) {
                Ok(s) => services.push(s),
                Err(e) => {
                    self.journal.log(format!("error: {e:#}"));
                    outcome = Outcome::Failed;
                }
            }
        }
        services.sort_by_key(|s| s.tier);
        if outcome == Outcome::Success {
            for svc in services {
                let (report, o) = self.run_service(svc, &mut control);
                reports.extend(report);
                if o != Outcome::Success {
                    outcome = o;
                    break;
                }
            }
        }
        if self.cancelled() {
            outcome = Outcome::Cancelled;
        }
        let report = JobReport {
            job: self.spec.id.clone(),
            runbook: self.runbook.id.clone(),
            title: self.runbook.title.clone(),
            started: started_text,
            outcome,
            duration_ms: started.elapsed().as_millis() as u64,
            services: reports,
        };
        let path = match write_report(&self.config.state_dir, &report) {
            Ok(p) => Some(p),
            Err(e) => {
                self.journal
                    .log(format!("warning: could not write the report: {e:#}"));
                None
            }
        };
        self.journal.write(Record::Finished {
            outcome,
            duration_ms: report.duration_ms,
            report: path,
        });
        report
    }

    fn run_service(
        &self,
        svc: &Service,
        control: &mut Control,
    ) -> (Option<ServiceReport>, Outcome) {
        let setup = (|| -> Result<(ServiceLock, SvcCtx)> {
            let lock = ServiceLock::acquire(&self.config.state_dir, &svc.name, &self.spec.id)?;
            let repos = self.repos();
            let repo_name = self.runbook.source_repository(svc, &self.spec.inputs);
            let repo = repos.open(&repo_name)?;
            let snap = calls::resolve_point(&repo, &svc.name, &self.spec.point)
                .with_context(|| format!("in repository {repo_name}"))?;
            let vars = self.vars(svc, &snap)?;
            Ok((
                lock,
                SvcCtx {
                    svc,
                    repo,
                    repo_name,
                    snap,
                    vars,
                    restored: None,
                    check: None,
                    stopped: false,
                    replaced: Vec::new(),
                },
            ))
        })();
        let (_lock, mut cx) = match setup {
            Ok(x) => x,
            Err(e) => {
                self.journal.log(format!("error: {}: {e:#}", svc.name));
                return (None, Outcome::Failed);
            }
        };
        let point_time = cx
            .snap
            .time
            .get(..19)
            .unwrap_or(&cx.snap.time)
            .replace('T', " ");
        self.journal.write(Record::Service {
            service: svc.name.clone(),
            point: cx.snap.short_id(),
            point_time: point_time.clone(),
        });
        let started = Instant::now();
        let waited_before = self.waited.get();
        let mut steps = Vec::new();
        let mut outcome = Outcome::Success;
        'steps: for (index, step) in self.runbook.steps.iter().enumerate() {
            loop {
                if self.cancelled() {
                    outcome = Outcome::Cancelled;
                    break 'steps;
                }
                let t = Instant::now();
                self.journal.write(Record::Step {
                    index,
                    state: StepState::Running,
                    detail: String::new(),
                });
                let result = self.run_step(&mut cx, index, &step.items, control);
                let ms = t.elapsed().as_millis() as u64;
                let mut report = |state: StepState, detail: String| {
                    steps.push(StepReport {
                        title: step.title.clone(),
                        state,
                        duration_ms: ms,
                        detail,
                    })
                };
                match result {
                    Ok(detail) => {
                        self.journal.write(Record::Step {
                            index,
                            state: StepState::Done,
                            detail: format!("{} ({})", step.title, secs(ms)),
                        });
                        report(StepState::Done, detail);
                        break;
                    }
                    Err(e) if self.cancelled() || crate::error::is_cancelled(&e) => {
                        let detail = format!("{}: interrupted by a cancel: {e:#}", step.title);
                        self.journal.write(Record::Step {
                            index,
                            state: StepState::Interrupted,
                            detail: detail.clone(),
                        });
                        report(StepState::Interrupted, detail);
                        outcome = Outcome::Cancelled;
                        break 'steps;
                    }
                    Err(e) if e.downcast_ref::<Aborted>().is_some() => {
                        let detail = format!("{}: {e:#}", step.title);
                        self.journal.write(Record::Step {
                            index,
                            state: StepState::Interrupted,
                            detail: detail.clone(),
                        });
                        report(StepState::Interrupted, detail);
                        outcome = Outcome::Aborted;
                        break 'steps;
                    }
                    Err(e) => {
                        let detail = format!("{}: {e:#}", step.title);
                        self.journal.write(Record::Step {
                            index,
                            state: StepState::Failed,
                            detail: detail.clone(),
                        });
                        if let Some(h) = crate::error::hint_for(&e) {
                            self.journal.log(format!("  hint: {h}"));
                        }
                        let answer = if self.spec.interactive {
                            self.ask(control, index, "failed", &detail, step.optional)
                        } else if step.optional {
                            self.journal.log("optional step failed; going on (--yes)");
                            Answer::Skip
                        } else {
                            Answer::Abort
                        };
                        match answer {
                            Answer::Retry | Answer::Continue => continue,
                            Answer::Skip => {
                                self.journal.write(Record::Step {
                                    index,
                                    state: StepState::Skipped,
                                    detail: format!("{} skipped", step.title),
                                });
                                report(StepState::Skipped, detail);
                                break;
                            }
                            Answer::Abort => {
                                report(StepState::Failed, detail);
                                outcome = if self.cancelled() {
                                    Outcome::Cancelled
                                } else {
                                    Outcome::Failed
                                };
                                break 'steps;
                            }
                        }
                    }
                }
            }
        }
        if outcome != Outcome::Success {
            self.after_stop(&mut cx);
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        let waited_ms = self.waited.get().saturating_sub(waited_before);
        let rto_ms = svc.policy.rto.as_millis() as u64;
        if outcome == Outcome::Success {
            self.journal.log(format!(
                "{}: recovered in {} (RTO {}){}",
                svc.name,
                secs(duration_ms),
                crate::health::short_duration(svc.policy.rto),
                if duration_ms > rto_ms {
                    " — over the RTO"
                } else {
                    ""
                }
            ));
            if waited_ms > 0 {
                self.journal.log(format!(
                    "  of which {} the restore worked and {} it waited for a person",
                    secs(duration_ms.saturating_sub(waited_ms)),
                    secs(waited_ms)
                ));
            }
        }
        let proven = cx.check.as_ref().is_some_and(|(ok, _)| *ok) && !cx.replaced.is_empty();
        if proven {
            // A checked live restore proves the service restores, as a
            // drill does: health counts it.
            let rec = crate::records::DrillRecord {
                time: crate::repo::snapshot::now_rfc3339(),
                service: svc.name.clone(),
                snapshot: cx.snap.id.clone(),
                ok: true,
                duration_ms: duration_ms.saturating_sub(waited_ms),
                rto_ms,
                detail: format!("live restore (job {})", self.spec.id),
                kind: "restore".into(),
                waited_ms,
            };
            if let Err(e) = crate::records::Records::new(&self.config.state_dir).add_drill(&rec) {
                self.journal.log(format!(
                    "warning: could not record the restore for health: {e:#}"
                ));
            }
        }
        (
            Some(ServiceReport {
                service: svc.name.clone(),
                point: cx.snap.id.clone(),
                point_time,
                steps,
                check: cx.check.clone(),
                duration_ms,
                waited_ms,
                rto_ms,
                replaced: cx.replaced.clone(),
            }),
            outcome,
        )
    }

    /// Puts back what restore (or job) `of` replaced of this service, as
    /// rollbacks that keep what they take out.
    fn rollback(&self, cx: &mut SvcCtx, of: &str) -> Result<String> {
        let state_dir = &self.config.state_dir;
        let targets: Vec<_> = crate::engine::restore::rollback::targets(state_dir, of)
            .into_iter()
            .filter(|r| r.service == cx.svc.name)
            .collect();
        if targets.is_empty() {
            bail!(
                "nothing of {} to roll back in `{of}` (`lifeboat leftovers` lists what restores kept)",
                cx.svc.name
            );
        }
        let mut said = Vec::new();
        for rec in targets {
            let n = self.restores.get() + 1;
            self.restores.set(n);
            let id = format!("{}-{n}", self.spec.id);
            let ledger = crate::source::ledger::Ledger::new(
                Some(state_dir),
                &id,
                &cx.svc.name,
                (&rec.point, &rec.point_time),
            )?
            .in_job(&self.spec.id);
            let r = crate::engine::rollback(state_dir, &rec.id, &ledger);
            ledger.finish();
            let r = r?;
            for d in &r.done {
                self.journal.log(format!("put back {d}"));
                cx.replaced.push(d.clone());
            }
            for k in &r.kept {
                self.journal.log(format!(
                    "what restore {} had written is kept as {k}",
                    rec.id
                ));
            }
            said.push(format!(
                "restore {} rolled back: {} put back",
                rec.id,
                r.done.join(", ")
            ));
        }
        Ok(said.join("; "))
    }

    /// After a failure, a cancel or an abort: a service this job stopped
    /// is started again when nothing of it was replaced (it is as it
    /// was); otherwise the admin is told, loudly, that it is still stopped.
    fn after_stop(&self, cx: &mut SvcCtx) {
        if !cx.stopped {
            return;
        }
        let start = cx.svc.start.as_deref();
        if cx.replaced.is_empty() {
            if let Some(cmd) = start {
                self.journal.log(format!(
                    "nothing of {} was replaced: starting it again",
                    cx.svc.name
                ));
                match self.run_shell_unstoppable(cmd) {
                    Ok(()) => {
                        cx.stopped = false;
                        self.journal.log(format!("started {} again", cx.svc.name));
                    }
                    Err(e) => self.journal.log(format!(
                        "WARNING: {} is STILL STOPPED: `{cmd}` failed: {e:#}",
                        cx.svc.name
                    )),
                }
                return;
            }
        }
        self.journal.log(format!(
            "WARNING: {} is STILL STOPPED{}. Start it with {}, or put back what was replaced with `lifeboat rollback {}` first",
            cx.svc.name,
            if cx.replaced.is_empty() {
                String::new()
            } else {
                format!(" and these were already replaced: {}", cx.replaced.join(", "))
            },
            start.map(|c| format!("`{c}`")).unwrap_or_else(|| "its usual start command".into()),
            self.spec.id
        ));
    }

    fn vars(&self, svc: &Service, snap: &Snapshot) -> Result<Vars> {
        let mut v = Vars::new();
        let repo = self.config.repositories.get(&svc.repository);
        let paths: Vec<String> = svc
            .sources
            .iter()
            .flat_map(|s| match &s.kind {
                crate::config::SourceKind::Files { paths, .. }
                | crate::config::SourceKind::Secrets { paths } => paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        for (k, val) in [
            ("service.name", svc.name.clone()),
            ("service.host", svc.host.clone()),
            ("service.tier", svc.tier.name().to_string()),
            ("service.description", svc.description.clone()),
            ("service.repository", svc.repository.clone()),
            ("service.paths", paths.join(" ")),
            ("point.id", snap.short_id()),
            (
                "point.time",
                format!(
                    "{} UTC",
                    snap.time.get(..19).unwrap_or(&snap.time).replace('T', " ")
                ),
            ),
            ("repository.name", svc.repository.clone()),
            (
                "repository.path",
                repo.map(|r| r.path.display().to_string())
                    .unwrap_or_default(),
            ),
            ("state_dir", self.config.state_dir.display().to_string()),
            ("job.id", self.spec.id.clone()),
        ] {
            v.insert(k.to_string(), val);
        }
        for i in &self.runbook.inputs {
            let val = self
                .spec
                .inputs
                .get(&i.name)
                .cloned()
                .or_else(|| i.default.clone())
                .ok_or_else(|| {
                    anyhow!(
                        "runbook {} needs input `{}` ({}): pass --input {}=VALUE",
                        self.runbook.id,
                        i.name,
                        i.prompt,
                        i.name
                    )
                })?;
            v.insert(format!("input.{}", i.name), val);
        }
        Ok(v)
    }

    fn run_step(
        &self,
        cx: &mut SvcCtx,
        index: usize,
        items: &[Item],
        control: &mut Control,
    ) -> Result<String> {
        let mut details = Vec::new();
        for item in items {
            if self.cancelled() {
                bail!("cancelled");
            }
            match item {
                Item::Manual { text, .. } => {
                    let text = vars::fill(text, &cx.vars, false).map_err(|e| anyhow!(e))?;
                    if self.spec.interactive {
                        match self.ask(control, index, "manual", &text, false) {
                            Answer::Continue | Answer::Retry => {
                                self.journal.log(format!("confirmed: {text}"))
                            }
                            _ => {
                                return Err(Aborted(format!(
                                    "stopped by the admin at: {text}{}",
                                    if cx.replaced.is_empty() {
                                        String::new()
                                    } else {
                                        "; what was restored stays restored".to_string()
                                    }
                                ))
                                .into())
                            }
                        }
                    } else {
                        self.journal.log(format!("confirmed by --yes: {text}"));
                    }
                }
                Item::Shell {
                    command,
                    timeout,
                    confirm,
                    may_fail,
                    ..
                } => {
                    let cmd = vars::fill(command, &cx.vars, true).map_err(|e| anyhow!(e))?;
                    if *confirm && self.spec.interactive {
                        match self.ask(control, index, "confirm", &format!("run: {cmd}"), true) {
                            Answer::Continue | Answer::Retry => {}
                            Answer::Skip => {
                                self.journal.log(format!("not run: {cmd}"));
                                continue;
                            }
                            Answer::Abort => {
                                return Err(Aborted(format!("not confirmed: {cmd}")).into())
                            }
                        }
                    }
                    match self.shell(&cmd, *timeout) {
                        Err(e) if *may_fail => self.journal.log(format!("(allowed to fail) {e:#}")),
                        r => r?,
                    }
                }
                Item::Lifeboat { action, .. } => details.push(self.action(cx, action)?),
            }
        }
        Ok(details.join("; "))
    }

    /// `sh -c`, its output line by line into the journal, killed at the
    /// timeout or when the job is cancelled.
    fn shell(&self, cmd: &str, timeout: Duration) -> Result<()> {
        self.shell_with(cmd, timeout, true)
    }

    /// The service's start command after a cancel: it must run to the end
    /// even though the job is stopping.
    fn run_shell_unstoppable(&self, cmd: &str) -> Result<()> {
        self.shell_with(cmd, super::parse::DEFAULT_SHELL_TIMEOUT, false)
    }

    fn shell_with(&self, cmd: &str, timeout: Duration, stoppable: bool) -> Result<()> {
        self.journal.log(format!("$ {cmd}"));
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            // Its own process group, so a timeout or cancel stops whatever
            // the command started too.
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting sh")?;
        let pipes: Vec<Box<dyn std::io::Read + Send>> = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        let started = Instant::now();
        // Readers are not joined: a daemon the command started may hold its
        // output open forever (`pg_ctl start` without -l), and the step
        // ends when the command does.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for p in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(p).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let log_lines = |wait: Duration| {
            let until = Instant::now() + wait;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => self.journal.log(format!("  {line}")),
                    Err(_) => break,
                }
            }
        };
        loop {
            log_lines(Duration::ZERO);
            if let Some(status) = child.try_wait()? {
                // What it printed last, if its pipes close soon.
                log_lines(Duration::from_millis(500));
                return if status.success() {
                    Ok(())
                } else {
                    Err(anyhow!("`{cmd}` failed ({status})"))
                };
            }
            let cancelled = stoppable && self.cancelled();
            if cancelled || started.elapsed() > timeout {
                // SAFETY: signals the process group created above.
                unsafe {
                    libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                if cancelled {
                    return Err(crate::Error::Cancelled.into());
                }
                bail!(
                    "`{cmd}` was still running after {} and was stopped",
                    crate::health::short_duration(timeout)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Progress from the engine goes into the journal while `f` runs.
    fn with_reporter<T>(&self, f: impl FnOnce(&Reporter) -> Result<T>) -> Result<T> {
        let (tx, rx) = crate::progress::channel();
        let reporter = tx.reporter().with_cancel(self.cancel.clone());
        drop(tx);
        std::thread::scope(|s| {
            s.spawn(|| {
                while let Some(ev) = rx.recv() {
                    match ev {
                        Event::Progress { counters, .. } => {
                            self.journal.write(Record::Progress { counters })
                        }
                        Event::Warning { message } => {
                            self.journal.log(format!("warning: {message}"))
                        }
                    }
                }
            });
            let r = f(&reporter);
            drop(reporter);
            r
        })
    }

    fn action(&self, cx: &mut SvcCtx, action: &Action) -> Result<String> {
        let fill = |t: &str| vars::fill(t, &cx.vars, false).map_err(|e| anyhow!(e));
        let repos = self.repos();
        let shown = action.describe();
        self.journal
            .log(format!("lifeboat: {}", fill(&shown).unwrap_or(shown)));
        let detail = match action {
            Action::Restore {
                path,
                to,
                from,
                kinds,
            } => {
                let path = path.as_deref().map(fill).transpose()?;
                let target = Target::parse(&fill(to)?);
                let scope = self.runbook.restore_scope(kinds, path.as_deref());
                let other;
                let (repo, snap) = match from.as_deref().map(fill).transpose()? {
                    Some(name) if name != cx.repo_name => {
                        other = repos.open(&name)?;
                        let snap = calls::resolve_point(&other, &cx.svc.name, &self.spec.point)
                            .with_context(|| format!("in repository {name}"))?;
                        self.journal.log(format!(
                            "restoring from repository {name}: restore point {}",
                            snap.short_id()
                        ));
                        (&other, snap)
                    }
                    _ => (&cx.repo, cx.snap.clone()),
                };
                let n = self.restores.get() + 1;
                self.restores.set(n);
                let id = format!("{}-{n}", self.spec.id);
                if target == Target::Live {
                    if let Ok(plan) = calls::plan(cx.svc, repo, &snap, &scope, &id) {
                        for l in plan.lines() {
                            self.journal.log(format!("  plan: {l}"));
                        }
                    }
                }
                let out = self.with_reporter(|r| {
                    calls::restore_service(
                        &repos,
                        cx.svc,
                        repo,
                        &snap,
                        &scope,
                        &target,
                        (&id, &self.spec.id),
                        r,
                    )
                });
                // What was replaced, even by a restore that failed halfway.
                let replaced = crate::source::ledger::load(&self.config.state_dir, &id)
                    .map(|r| r.replaced)
                    .unwrap_or_default();
                for r in &replaced {
                    cx.replaced.push(r.what());
                    self.journal.write(Record::Replaced {
                        service: cx.svc.name.clone(),
                        what: r.what(),
                        kept: r.kept_text(),
                    });
                    if let Some(k) = r.kept_text() {
                        self.journal.log(format!(
                            "the previous {} is kept as {k} (`lifeboat rollback {}` puts it back; `lifeboat leftovers` lists kept copies)",
                            r.what(),
                            self.spec.id
                        ));
                    }
                }
                let out = out?;
                cx.restored = match &target {
                    Target::Live => Some(Restored {
                        root: PathBuf::from("/"),
                        scope,
                    }),
                    Target::Dir(d) => Some(Restored {
                        root: d.clone(),
                        scope,
                    }),
                    Target::Sandbox => None,
                };
                out.detail
            }
            Action::Check { path } => {
                let path = path.as_deref().map(fill).transpose()?;
                let (root, scope) = match (&cx.restored, path) {
                    (Some(r), None) => (r.root.clone(), r.scope.clone()),
                    (Some(r), Some(p)) => (
                        r.root.clone(),
                        Scope {
                            kinds: Vec::new(),
                            path: Some(PathBuf::from(p)),
                        },
                    ),
                    (None, p) => (
                        PathBuf::from("/"),
                        self.runbook.restore_scope(&[], p.as_deref()),
                    ),
                };
                let r = calls::check_service(cx.svc, &cx.repo, &cx.snap, &scope, &root);
                let (ok, detail) = match &r {
                    Ok(d) => (true, d.clone()),
                    Err(e) => (false, format!("{e:#}")),
                };
                self.journal.write(Record::Check {
                    service: cx.svc.name.clone(),
                    ok,
                    detail: detail.clone(),
                });
                cx.check = Some((ok, detail));
                r?
            }
            Action::Verify => {
                self.with_reporter(|r| calls::verify_point(&repos, &cx.repo, &cx.snap, r))?
            }
            Action::Rollback { restore } => self.rollback(cx, &fill(restore)?)?,
            Action::Drill => {
                let report = self.with_reporter(|r| {
                    calls::drill_service(&repos, cx.svc, &cx.repo, &cx.snap, r)
                })?;
                let line = format!(
                    "drill of {}: {} in {} (RTO {}){}",
                    cx.svc.name,
                    if report.ok {
                        "restored and checked"
                    } else {
                        "FAILED"
                    },
                    secs(report.duration_ms),
                    crate::health::short_duration(cx.svc.policy.rto),
                    if report.ok && !report.within_rto {
                        ", over the RTO"
                    } else {
                        ""
                    }
                );
                self.journal.write(Record::Check {
                    service: cx.svc.name.clone(),
                    ok: report.ok && report.within_rto,
                    detail: line.clone(),
                });
                cx.check = Some((report.ok && report.within_rto, line.clone()));
                if !report.ok {
                    bail!("{}", report.detail);
                }
                line
            }
            Action::Backup => {
                let snap = self.with_reporter(|r| calls::backup_service(&repos, cx.svc, r))?;
                format!(
                    "backed up {}: restore point {}, {} files, {} ({} new)",
                    cx.svc.name,
                    snap.short_id(),
                    snap.stats.files,
                    crate::util::human_bytes(snap.stats.bytes),
                    crate::util::human_bytes(snap.stats.bytes_added)
                )
            }
            Action::Stop | Action::Start => {
                let (cmd, what) = if *action == Action::Stop {
                    (&cx.svc.stop, "stop")
                } else {
                    (&cx.svc.start, "start")
                };
                let cmd = cmd.as_deref().ok_or_else(|| {
                    anyhow!(
                        "{} has no `{what}` command: add {what} = \"…\" to [services.{}] in {}",
                        cx.svc.name,
                        cx.svc.name,
                        self.config.path.display()
                    )
                })?;
                self.shell(cmd, super::parse::DEFAULT_SHELL_TIMEOUT)?;
                cx.stopped = *action == Action::Stop;
                let done = if *action == Action::Stop {
                    "stopped"
                } else {
                    "started"
                };
                format!("{done} {}", cx.svc.name)
            }
            Action::WaitTcp { addr, timeout } => {
                let addr = fill(addr)?;
                wait_until(*timeout, &|| self.cancelled(), || {
                    use std::net::ToSocketAddrs;
                    addr.to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .is_some_and(|a| {
                            std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok()
                        })
                })
                .with_context(|| format!("nothing answered on {addr}"))?;
                format!("{addr} answers")
            }
            Action::WaitHttp { url, timeout } => {
                let url = fill(url)?;
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()?;
                wait_until(*timeout, &|| self.cancelled(), || {
                    client
                        .get(&url)
                        .send()
                        .is_ok_and(|r| r.status().is_success() || r.status().is_redirection())
                })
                .with_context(|| format!("{url} did not answer with success"))?;
                format!("{url} answers")
            }
        };
        // Checks and drills are already in the journal as check records.
        if !matches!(action, Action::Check { .. } | Action::Drill) {
            self.journal.log(format!("  {detail}"));
        }
        Ok(detail)
    }
}

fn wait_until(
    timeout: Duration,
    cancelled: &dyn Fn() -> bool,
    ok: impl Fn() -> bool,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if ok() {
            return Ok(());
        }
        if cancelled() {
            bail!("cancelled");
        }
        if start.elapsed() > timeout {
            bail!("gave up after {}", crate::health::short_duration(timeout));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
