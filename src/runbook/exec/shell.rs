//! Shell steps, and engine calls whose progress goes into the journal.

use super::Run;
use crate::jobs::Record;
use crate::progress::{Event, Reporter};
use anyhow::{anyhow, bail, Context, Result};
use std::io::BufRead;
use std::time::{Duration, Instant};

impl Run<'_> {
    /// `sh -c`, its output line by line into the journal, killed at the
    /// timeout or when the job is cancelled.
    pub(super) fn shell(&self, cmd: &str, timeout: Duration) -> Result<()> {
        self.shell_with(cmd, timeout, true)
    }

    /// The service's start command after a cancel: it must run to the end
    /// even though the job is stopping.
    pub(super) fn run_shell_unstoppable(&self, cmd: &str) -> Result<()> {
        self.shell_with(cmd, crate::runbook::parse::DEFAULT_SHELL_TIMEOUT, false)
    }

    pub(super) fn shell_with(&self, cmd: &str, timeout: Duration, stoppable: bool) -> Result<()> {
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
    pub(super) fn with_reporter<T>(&self, f: impl FnOnce(&Reporter) -> Result<T>) -> Result<T> {
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
}
