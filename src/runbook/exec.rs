//! Runs a runbook as a job: for each chosen service (most critical tier
//! first) take its lock, resolve the restore point, then run the steps in
//! order, writing everything to the job's journal. A failed step stops
//! the run; an interactive job then waits for retry / skip / abort.
//! At the end a report (markdown and JSON) goes to `<state_dir>/reports`.

use super::engine_calls::{self as calls, Repos, Staging, Target};
use super::report::{secs, write_report, JobReport, ServiceReport, StepReport};
use super::vars::{self, Vars};
use super::{Action, Item, Runbook};
use crate::config::{Config, Service};
use crate::jobs::{Control, JobSpec, Journal, Outcome, Record, ServiceLock, StepState};
use crate::progress::{Event, Reporter};
use crate::repo::{Repository, Snapshot};
use anyhow::{anyhow, bail, Context, Result};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Everything one run needs.
pub struct Run<'a> {
    pub config: &'a Config,
    pub spec: &'a JobSpec,
    pub runbook: &'a Runbook,
    pub journal: &'a Journal,
    pub cancel: &'a AtomicBool,
    pub staging: Staging,
}

/// What the previous restore left, for `check` to look at.
struct Restored {
    root: PathBuf,
    path: Option<String>,
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
}

enum Answer {
    Continue,
    Retry,
    Skip,
    Abort,
}

impl Run<'_> {
    fn repos(&self) -> Repos<'_> {
        Repos {
            config: self.config,
            key: self.spec.key.clone(),
            staging: self.staging.clone(),
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
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
        self.journal.write(Record::Wait {
            ask,
            index,
            kind: kind.into(),
            prompt: prompt.into(),
            skippable,
        });
        match control.answer_to(ask, &|| self.cancelled()).as_deref() {
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
                match result {
                    Ok(detail) => {
                        self.journal.write(Record::Step {
                            index,
                            state: StepState::Done,
                            detail: format!("{} ({})", step.title, secs(ms)),
                        });
                        steps.push(StepReport {
                            title: step.title.clone(),
                            state: StepState::Done,
                            duration_ms: ms,
                            detail,
                        });
                        break;
                    }
                    Err(e) if self.cancelled() => {
                        let _ = e;
                        outcome = Outcome::Cancelled;
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
                                steps.push(StepReport {
                                    title: step.title.clone(),
                                    state: StepState::Skipped,
                                    duration_ms: ms,
                                    detail,
                                });
                                break;
                            }
                            Answer::Abort => {
                                steps.push(StepReport {
                                    title: step.title.clone(),
                                    state: StepState::Failed,
                                    duration_ms: ms,
                                    detail,
                                });
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
        let duration_ms = started.elapsed().as_millis() as u64;
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
        }
        (
            Some(ServiceReport {
                service: svc.name.clone(),
                point: cx.snap.id.clone(),
                point_time,
                steps,
                check: cx.check.clone(),
                duration_ms,
                rto_ms,
            }),
            outcome,
        )
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
                            _ => bail!("stopped at: {text}"),
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
                            Answer::Abort => bail!("not confirmed: {cmd}"),
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
            if self.cancelled() || started.elapsed() > timeout {
                // SAFETY: signals the process group created above.
                unsafe {
                    libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                if self.cancelled() {
                    bail!("cancelled");
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
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let reporter = Reporter::new(tx);
        std::thread::scope(|s| {
            s.spawn(|| {
                while let Some(ev) = rx.blocking_recv() {
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
            Action::Restore { path, to, from } => {
                let path = path.as_deref().map(fill).transpose()?;
                let target = Target::parse(&fill(to)?);
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
                let out = self.with_reporter(|r| {
                    calls::restore_service(&repos, cx.svc, repo, &snap, path.as_deref(), &target, r)
                })?;
                for rb in &out.rollback {
                    self.journal.log(format!(
                        "what was there is kept in {} (delete it once you are happy)",
                        rb.display()
                    ));
                }
                cx.restored = match &target {
                    Target::Live => Some(Restored {
                        root: PathBuf::from("/"),
                        path,
                    }),
                    Target::Dir(d) => Some(Restored {
                        root: d.clone(),
                        path,
                    }),
                    Target::Sandbox => None,
                };
                out.detail
            }
            Action::Check { path } => {
                let path = path.as_deref().map(fill).transpose()?;
                let (root, scope) = match &cx.restored {
                    Some(r) => (r.root.clone(), path.or_else(|| r.path.clone())),
                    None => (PathBuf::from("/"), path),
                };
                let r = calls::check_service(cx.svc, &cx.repo, &cx.snap, scope.as_deref(), &root);
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
                format!("{what}ped {}", cx.svc.name)
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
