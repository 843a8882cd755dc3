//! `before_backup` / `after_backup`: the admin's commands around a backup
//! (flush an application, take it out of a load balancer). Run by `sh -c`
//! in a process group of their own, so a timeout stops what they started;
//! what they are told travels in the environment, never in argv.

use crate::progress::Reporter;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a hook may run for when the service does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Bytes of a hook's output kept for its error message.
const TAIL_BYTES: usize = 2048;

/// What `after_backup` is told.
pub(super) struct Outcome<'a> {
    pub ok: bool,
    pub snapshot: Option<&'a str>,
}

/// Runs `hook` (`which`: "before_backup" or "after_backup") to its end or
/// its timeout. Output goes to the log as warnings only when it fails.
pub(super) fn run(
    which: &str,
    hook: &str,
    service: &str,
    outcome: Option<Outcome<'_>>,
    timeout: Option<Duration>,
    reporter: &Reporter,
) -> Result<()> {
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let outcome_given = outcome.is_some();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(hook)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LIFEBOAT_SERVICE", service)
        .env("LIFEBOAT_HOOK", which);
    if let Some(o) = &outcome {
        cmd.env(
            "LIFEBOAT_BACKUP_STATUS",
            if o.ok { "success" } else { "failure" },
        );
        if let Some(id) = o.snapshot {
            cmd.env("LIFEBOAT_SNAPSHOT", id);
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("service `{service}`: cannot start its {which} hook with sh"))?;
    // Both pipes into one bounded tail; the threads end when the pipes close.
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut p| {
        let tail = tail.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = p.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..n]);
                    let over = t.len().saturating_sub(TAIL_BYTES);
                    t.drain(..over);
                }
            }
        })
    })
    .collect();
    let started = Instant::now();
    let pgid = child.id() as i32;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        // `after_backup` runs to its end even in a cancelled job: it may be
        // what undoes `before_backup`.
        let cancelled = !outcome_given && reporter.cancelled();
        if started.elapsed() >= timeout || cancelled {
            // SAFETY: signalling the process group we made for this hook.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A daemon the hook left behind may hold the pipes open: wait briefly.
    let until = Instant::now() + Duration::from_millis(500);
    for r in readers {
        while !r.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if r.is_finished() {
            let _ = r.join();
        }
    }
    let said = tail
        .lock()
        .map(|t| String::from_utf8_lossy(&t).trim().replace('\n', " / "))
        .unwrap_or_default();
    let said = if said.is_empty() {
        String::new()
    } else {
        format!("; it said: {said}")
    };
    match status {
        Some(st) if st.success() => Ok(()),
        Some(st) => bail!(
            "service `{service}`: its {which} hook failed ({st}){said}\n  check the command `{which}` in the service's config"
        ),
        None if !outcome_given && reporter.cancelled() => bail!("service `{service}`: its {which} hook was stopped: the job was cancelled"),
        None => bail!(
            "service `{service}`: its {which} hook did not finish within {} and was killed{said}\n  make it faster, or raise `hook_timeout` in the service's config",
            humantime::format_duration(timeout)
        ),
    }
}
