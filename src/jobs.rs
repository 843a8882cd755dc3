//! Jobs that outlive the terminal that started them. A job is the
//! `lifeboat job-run ID` process, started in its own session with no
//! terminal, so a dropped SSH connection or a killed tmux never reaches it.
//! It appends what happens to a journal (JSON lines in
//! `<state_dir>/jobs/ID.jsonl`), which is all a console or `recover` needs
//! to show it, then or later. Answers to its questions (a manual step, a
//! failed step) come back through `ID.control`, one line each. A flock
//! per service keeps two jobs off the same service.

use crate::progress::Counters;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the launcher decided; the job reads it from `ID.spec.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: String,
    pub runbook: PathBuf,
    pub services: Vec<String>,
    /// `latest`, an id, or `before:TIME`.
    pub point: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Manual steps and failures wait for an answer; otherwise manual
    /// steps count as confirmed (`--yes`) and a failure stops the job.
    pub interactive: bool,
    /// A key file path from the command line, if one was given.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Pending,
    Running,
    Waiting,
    Done,
    Failed,
    Skipped,
    /// Stopped in the middle: by a cancel, or by the admin at a question.
    Interrupted,
}

impl StepState {
    /// A symbol, so the state reads without colour.
    pub fn symbol(self) -> &'static str {
        match self {
            StepState::Pending => "·",
            StepState::Running => "▶",
            StepState::Waiting => "?",
            StepState::Done => "✓",
            StepState::Failed => "✗",
            StepState::Skipped => "-",
            StepState::Interrupted => "!",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    Failed,
    Cancelled,
    /// The admin stopped it at a question (what was done stays done).
    Aborted,
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Record {
    Started {
        job: String,
        pid: u32,
        runbook: String,
        title: String,
        services: Vec<String>,
        point: String,
        steps: Vec<String>,
    },
    /// The runbook starts over for the next service.
    Service {
        service: String,
        point: String,
        point_time: String,
    },
    Step {
        index: usize,
        state: StepState,
        #[serde(default)]
        detail: String,
    },
    Progress {
        counters: Counters,
    },
    Log {
        line: String,
    },
    /// The job waits for an answer in `ID.control`. `ask` numbers the
    /// question; only an answer carrying the same number counts.
    Wait {
        #[serde(default)]
        ask: u64,
        index: usize,
        kind: String,
        prompt: String,
        skippable: bool,
    },
    Check {
        service: String,
        ok: bool,
        detail: String,
    },
    /// Live data the job replaced; `kept` is where the old data is.
    Replaced {
        service: String,
        what: String,
        #[serde(default)]
        kept: Option<String>,
    },
    Finished {
        outcome: Outcome,
        duration_ms: u64,
        #[serde(default)]
        report: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    /// Milliseconds since the epoch.
    pub t: u64,
    #[serde(flatten)]
    pub rec: Record,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("jobs")
}

pub fn journal_path(state_dir: &Path, id: &str) -> PathBuf {
    dir(state_dir).join(format!("{id}.jsonl"))
}

fn control_path(state_dir: &Path, id: &str) -> PathBuf {
    dir(state_dir).join(format!("{id}.control"))
}

fn spec_path(state_dir: &Path, id: &str) -> PathBuf {
    dir(state_dir).join(format!("{id}.spec.json"))
}

/// Sortable, unique enough, and safe as a file name.
pub fn new_id(runbook: &str) -> String {
    let t = crate::repo::snapshot::now_rfc3339();
    let digits: String = t.chars().filter(|c| c.is_ascii_digit()).take(14).collect();
    let safe: String = runbook
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("{digits}-{safe}-{:04x}", rand::random::<u16>())
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("`{id}` is not a job id (see `lifeboat jobs`)");
    }
    Ok(())
}

/// Appends records, one write per line, so a reader never sees half of
/// one (a torn last line after a crash is skipped by readers).
pub struct Journal {
    /// The file, and whether `Finished` has been written: a journal ends
    /// once, even when a cancel races the job's own ending.
    file: Mutex<(std::fs::File, bool)>,
    pub path: PathBuf,
}

impl Journal {
    pub fn create(state_dir: &Path, id: &str) -> Result<Journal> {
        check_id(id)?;
        let d = dir(state_dir);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        let path = journal_path(state_dir, id);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Journal {
            file: Mutex::new((file, false)),
            path,
        })
    }

    pub fn write(&self, rec: Record) {
        let finishes = matches!(rec, Record::Finished { .. });
        let Ok(mut line) = serde_json::to_vec(&Line { t: now_ms(), rec }) else {
            return;
        };
        line.push(b'\n');
        if let Ok(mut g) = self.file.lock() {
            let (f, finished) = &mut *g;
            if *finished {
                return;
            }
            *finished = finishes;
            // A full disk must not kill the restore; the job's exit code
            // and the report still tell the outcome.
            let _ = f.write_all(&line);
        }
    }

    pub fn log(&self, line: impl Into<String>) {
        self.write(Record::Log { line: line.into() });
    }
}

/// Reads a journal from `offset`, returning complete lines and the offset
/// after the last complete one (so a half-written line is read next time).
pub fn read_from(path: &Path, offset: u64) -> Result<(Vec<Line>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let lines = buf[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    Ok((lines, offset + complete as u64))
}

/// A job as its journal tells it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobView {
    pub id: String,
    pub runbook: String,
    pub title: String,
    pub services: Vec<String>,
    pub point: String,
    pub pid: u32,
    pub started_ms: u64,
    /// The service the steps below belong to.
    pub service: String,
    pub steps: Vec<(String, StepState)>,
    pub current: Option<usize>,
    /// When the current step started, and its latest progress.
    pub step_started_ms: u64,
    pub counters: Option<Counters>,
    pub progress_ms: u64,
    #[serde(skip)]
    pub log: Vec<String>,
    pub waiting: Option<Waiting>,
    pub checks: Vec<(String, bool, String)>,
    /// What the job replaced (so it can be rolled back).
    pub replaced: Vec<String>,
    pub finished: Option<(Outcome, u64, Option<PathBuf>)>,
    /// The process is gone without finishing (killed, or the host rebooted).
    pub lost: bool,
    /// How far the journal has been read.
    #[serde(skip)]
    pub offset: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Waiting {
    pub ask: u64,
    pub index: usize,
    pub kind: String,
    pub prompt: String,
    pub skippable: bool,
}

const LOG_KEPT: usize = 500;

impl JobView {
    pub fn apply(&mut self, line: &Line) {
        match &line.rec {
            Record::Started {
                job,
                pid,
                runbook,
                title,
                services,
                point,
                steps,
            } => {
                self.id = job.clone();
                self.pid = *pid;
                self.runbook = runbook.clone();
                self.title = title.clone();
                self.services = services.clone();
                self.point = point.clone();
                self.started_ms = line.t;
                self.steps = steps
                    .iter()
                    .map(|s| (s.clone(), StepState::Pending))
                    .collect();
            }
            Record::Service { service, point, .. } => {
                self.service = service.clone();
                self.point = point.clone();
                for s in &mut self.steps {
                    s.1 = StepState::Pending;
                }
                self.current = None;
            }
            Record::Step {
                index,
                state,
                detail,
            } => {
                if let Some(s) = self.steps.get_mut(*index) {
                    s.1 = *state;
                }
                if *state == StepState::Running {
                    if self.current != Some(*index) {
                        self.step_started_ms = line.t;
                        self.counters = None;
                    }
                    self.current = Some(*index);
                    self.waiting = None;
                }
                if matches!(
                    state,
                    StepState::Done | StepState::Skipped | StepState::Running
                ) {
                    self.waiting = None;
                }
                if !detail.is_empty() {
                    self.push_log(format!("{} {}", state.symbol(), detail));
                }
            }
            Record::Progress { counters } => {
                self.counters = Some(*counters);
                self.progress_ms = line.t;
            }
            Record::Log { line } => self.push_log(line.clone()),
            Record::Wait {
                ask,
                index,
                kind,
                prompt,
                skippable,
            } => {
                self.waiting = Some(Waiting {
                    ask: *ask,
                    index: *index,
                    kind: kind.clone(),
                    prompt: prompt.clone(),
                    skippable: *skippable,
                });
                if let Some(s) = self.steps.get_mut(*index) {
                    if s.1 != StepState::Failed {
                        s.1 = StepState::Waiting;
                    }
                }
            }
            Record::Check {
                service,
                ok,
                detail,
            } => self.checks.push((service.clone(), *ok, detail.clone())),
            Record::Replaced { service, what, .. } => {
                self.replaced.push(format!("{service}: {what}"))
            }
            Record::Finished {
                outcome,
                duration_ms,
                report,
            } => {
                self.finished = Some((*outcome, *duration_ms, report.clone()));
                self.waiting = None;
            }
        }
    }

    fn push_log(&mut self, l: String) {
        self.log.push(l);
        if self.log.len() > LOG_KEPT {
            self.log.drain(..self.log.len() - LOG_KEPT);
        }
    }

    /// Reads whatever the journal gained since last time.
    pub fn refresh(&mut self, state_dir: &Path) -> Result<bool> {
        let (lines, off) = read_from(&journal_path(state_dir, &self.id), self.offset)?;
        for l in &lines {
            self.apply(l);
        }
        self.offset = off;
        self.lost = self.finished.is_none() && self.pid != 0 && !alive(self.pid, &self.id);
        Ok(!lines.is_empty())
    }

    pub fn load(state_dir: &Path, id: &str) -> Result<JobView> {
        check_id(id)?;
        let mut v = JobView {
            id: id.to_string(),
            ..Default::default()
        };
        v.refresh(state_dir)?;
        if v.started_ms == 0 {
            v.id = id.to_string();
        }
        Ok(v)
    }

    pub fn running(&self) -> bool {
        self.finished.is_none() && !self.lost
    }

    pub fn state_text(&self) -> &'static str {
        match (&self.finished, self.lost, &self.waiting) {
            (Some((Outcome::Success, ..)), ..) => "succeeded",
            (Some((Outcome::Failed, ..)), ..) => "failed",
            (Some((Outcome::Cancelled, ..)), ..) => "cancelled",
            (Some((Outcome::Aborted, ..)), ..) => "stopped",
            (None, true, _) => "lost",
            (None, false, Some(_)) => "waiting",
            (None, false, None) => "running",
        }
    }

    /// Bytes per second of the current step, from its start.
    pub fn rate(&self) -> Option<f64> {
        let c = self.counters?;
        let secs = (self.progress_ms.saturating_sub(self.step_started_ms)) as f64 / 1000.0;
        (secs > 0.2 && c.bytes_done > 0).then(|| c.bytes_done as f64 / secs)
    }

    pub fn eta(&self) -> Option<Duration> {
        let c = self.counters?;
        let rate = self.rate()?;
        (c.bytes_total > c.bytes_done)
            .then(|| Duration::from_secs_f64((c.bytes_total - c.bytes_done) as f64 / rate))
    }
}

/// Is the job's process still there? The command line must name the job,
/// so a recycled pid is not mistaken for it.
pub fn alive(pid: u32, id: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => {
            let running = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false);
            running && cmd.split(|b| *b == 0).any(|a| a == id.as_bytes())
        }
        Err(_) => false,
    }
}

/// Every job with a journal, newest first.
pub fn list(state_dir: &Path) -> Vec<JobView> {
    let mut ids: Vec<String> = std::fs::read_dir(dir(state_dir))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".jsonl"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.reverse();
    ids.iter()
        .filter_map(|id| JobView::load(state_dir, id).ok())
        .collect()
}

pub fn write_spec(state_dir: &Path, spec: &JobSpec) -> Result<()> {
    check_id(&spec.id)?;
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let p = spec_path(state_dir, &spec.id);
    std::fs::write(&p, serde_json::to_vec_pretty(spec)?)
        .with_context(|| format!("writing {}", p.display()))
}

pub fn read_spec(state_dir: &Path, id: &str) -> Result<JobSpec> {
    check_id(id)?;
    let p = spec_path(state_dir, id);
    let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("reading {}", p.display()))
}

/// Starts `lifeboat --config CONFIG job-run ID` detached: a new session
/// (no controlling terminal, so no SIGHUP when it goes), SIGHUP ignored
/// anyway, output to `ID.out`. Returns its pid.
pub fn spawn(state_dir: &Path, config: &Path, id: &str) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    check_id(id)?;
    let exe = std::env::current_exe().context("finding the lifeboat binary")?;
    let out_path = dir(state_dir).join(format!("{id}.out"));
    let out = std::fs::File::create(&out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    let err = out.try_clone()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--config")
        .arg(config)
        .arg("job-run")
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the job")?;
    let pid = child.id();
    // Reap it when it ends, so a long-lived console leaves no zombie.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}

/// Writes the spec and starts the job detached; returns its pid.
pub fn launch(config: &crate::config::Config, spec: &JobSpec) -> Result<u32> {
    write_spec(&config.state_dir, spec)?;
    let cfg = std::path::absolute(&config.path)?;
    spawn(&config.state_dir, &cfg, &spec.id)
}

/// Sends an answer (continue, retry, skip, abort) to question `ask` of a
/// waiting job. An answer to a question no longer asked is ignored by the
/// job, so a stray keypress or a second follower can never confirm a later
/// step unseen.
pub fn answer(state_dir: &Path, id: &str, ask: u64, answer: &str) -> Result<()> {
    check_id(id)?;
    if !["continue", "retry", "skip", "abort"].contains(&answer) {
        bail!("answer `{answer}`: expected continue, retry, skip or abort");
    }
    let p = control_path(state_dir, id);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .with_context(|| format!("opening {}", p.display()))?;
    f.write_all(format!("{ask} {answer}\n").as_bytes())?;
    Ok(())
}

/// The job's side of `ID.control`: questions are numbered, and each takes
/// the first answer that carries its number.
pub struct Control {
    path: PathBuf,
    asked: u64,
}

impl Control {
    pub fn new(state_dir: &Path, id: &str) -> Control {
        Control {
            path: control_path(state_dir, id),
            asked: 0,
        }
    }

    /// The number of the next question.
    pub fn next_ask(&mut self) -> u64 {
        self.asked += 1;
        self.asked
    }

    /// The answer to question `ask`, or None when `stop` turns true first.
    pub fn answer_to(&mut self, ask: u64, stop: &dyn Fn() -> bool) -> Option<String> {
        let prefix = format!("{ask} ");
        loop {
            if let Ok(f) = std::fs::File::open(&self.path) {
                let found = std::io::BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .find_map(|l| l.strip_prefix(&prefix).map(|a| a.trim().to_string()));
                if found.is_some() {
                    return found;
                }
            }
            if stop() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

/// Asks a running job to stop: SIGTERM; it removes its staging and writes
/// `cancelled` to its journal.
pub fn cancel(state_dir: &Path, id: &str) -> Result<()> {
    let v = JobView::load(state_dir, id)?;
    if !v.running() {
        bail!("job {id} is not running ({})", v.state_text());
    }
    // SAFETY: kill with a pid read from our own journal and confirmed above
    // to be this job's process.
    if unsafe { libc::kill(v.pid as libc::pid_t, libc::SIGTERM) } != 0 {
        return Err(anyhow!(
            "could not signal job {id} (pid {}): {}",
            v.pid,
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// An exclusive hold on a service for one job, released when dropped (or
/// when the process dies: the kernel drops flocks with the descriptor).
pub struct ServiceLock {
    _file: std::fs::File,
}

impl ServiceLock {
    pub fn acquire(state_dir: &Path, service: &str, job: &str) -> Result<ServiceLock> {
        let d = state_dir.join("locks");
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        let safe: String = service
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let p = d.join(format!("{safe}.lock"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        // SAFETY: flock on a descriptor we own for the life of the lock.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = std::fs::read_to_string(&p).unwrap_or_default();
            bail!(
                "another job ({}) is already working on {service}; watch it with `lifeboat jobs`",
                holder.trim()
            );
        }
        f.set_len(0)?;
        f.write_all(job.as_bytes())?;
        Ok(ServiceLock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_only_counts_for_its_own_question() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(super::dir(dir.path())).unwrap();
        let mut c = Control::new(dir.path(), "job1");
        let first = c.next_ask();
        // Enter pressed twice, and a second follower answering too.
        answer(dir.path(), "job1", first, "continue").unwrap();
        answer(dir.path(), "job1", first, "continue").unwrap();
        assert_eq!(c.answer_to(first, &|| true).as_deref(), Some("continue"));
        let second = c.next_ask();
        assert_eq!(
            c.answer_to(second, &|| true),
            None,
            "stray answers confirm nothing"
        );
        answer(dir.path(), "job1", second, "abort").unwrap();
        assert_eq!(c.answer_to(second, &|| true).as_deref(), Some("abort"));
    }
}
