//! Runs a runbook as a job: for each chosen service (most critical tier
//! first) take its lock, resolve the restore point, then run the steps in
//! order, writing everything to the job's journal. A failed step stops
//! the run; an interactive job then waits for retry / skip / abort.
//! At the end a report (markdown and JSON) goes to `<state_dir>/reports`.

mod actions;
mod shell;

use super::engine_calls::{self as calls, Repos};
use super::report::{secs, write_report, JobReport, ServiceReport, StepReport};
use super::vars::{self, Vars};
use super::{Item, Runbook};
use crate::config::Config;
use crate::engine::restore::plan::Scope;
use crate::jobs::{Control, JobSpec, Journal, Outcome, Record, ServiceLock, StepState};
use crate::model::Service;
use crate::progress::Cancel;
use crate::repo::{Repository, Snapshot};
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;

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
    /// The repository the run reads from and the chosen restore point;
    /// None for a runbook that needs neither (a rollback), when they
    /// cannot be had.
    point: Option<(Repository, Snapshot)>,
    /// The repository the run reads from (see `Runbook::source_repository`).
    repo_name: String,
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

impl SvcCtx<'_> {
    /// The repository and restore point, for a step that needs them.
    fn point(&self) -> Result<(&Repository, &Snapshot)> {
        self.point.as_ref().map(|(r, s)| (r, s)).ok_or_else(|| {
            anyhow!("this step needs the repository and a restore point, which could not be opened")
        })
    }
}

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
            let point = repos.open(&repo_name).and_then(|repo| {
                let snap = calls::resolve_point(&repo, &svc.name, &self.spec.point)
                    .with_context(|| format!("in repository {repo_name}"))?;
                Ok((repo, snap))
            });
            // A rollback puts back what a restore kept: it needs neither the
            // repository nor a restore point, which may be out of reach.
            let point = match point {
                Ok(p) => Some(p),
                Err(_) if !self.runbook.needs_point() => None,
                Err(e) => return Err(e),
            };
            let vars = self.vars(svc, point.as_ref().map(|(_, s)| s))?;
            Ok((
                lock,
                SvcCtx {
                    svc,
                    point,
                    repo_name,
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
        let (point_id, point_full, point_time) = match &cx.point {
            Some((_, s)) => (
                s.short_id(),
                s.id.clone(),
                s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
            ),
            None => ("-".to_string(), String::new(), String::new()),
        };
        self.journal.write(Record::Service {
            service: svc.name.clone(),
            point: point_id,
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
                snapshot: point_full.clone(),
                ok: true,
                duration_ms: duration_ms.saturating_sub(waited_ms),
                rto_ms,
                detail: format!("live restore (job {})", self.spec.id),
                kind: "restore".into(),
                waited_ms,
                evidence: Default::default(),
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
                point: point_full,
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

    fn vars(&self, svc: &Service, snap: Option<&Snapshot>) -> Result<Vars> {
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
            (
                "point.id",
                snap.map(|s| s.short_id()).unwrap_or_else(|| "-".into()),
            ),
            (
                "point.time",
                snap.map(|s| {
                    format!(
                        "{} UTC",
                        s.time.get(..19).unwrap_or(&s.time).replace('T', " ")
                    )
                })
                .unwrap_or_else(|| "-".into()),
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
}
