//! `command` probes: a shell command with the sandbox variables (in its
//! text, shell-quoted, and in its environment); exit 0 passes.

use super::{Outcome, Target};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

pub(super) fn run(command: &str, timeout: Duration, target: &Target) -> Outcome {
    let text = match target.substitute(command, true) {
        Ok(t) => t,
        Err(e) => return Outcome::Skip(e),
    };
    match run_shell(&text, timeout, target) {
        Ok(out) => Outcome::Pass(match last_line(&out) {
            Some(l) => format!("exit 0: {l}"),
            None => "exit 0".into(),
        }),
        Err(e) => Outcome::Fail(e),
    }
}

fn last_line(s: &str) -> Option<String> {
    s.lines().rev().find(|l| !l.trim().is_empty()).map(|l| {
        let l = crate::util::printable(l.trim()).into_owned();
        l.chars().take(200).collect()
    })
}

/// Runs `text` in its own process group with the sandbox environment;
/// past `timeout` the whole group is killed. Returns what it printed.
pub(crate) fn run_shell(text: &str, timeout: Duration, target: &Target) -> Result<String, String> {
    let mut cmd = crate::source::process::shell(text);
    cmd.envs(target.environment())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start it: {e}"))?;
    let pid = child.id() as i32;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.take(1 << 20).read_to_string(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.take(1 << 20).read_to_string(&mut s);
        }
        s
    });
    let status = super::within(timeout, move || child.wait());
    let Some(status) = status else {
        // SAFETY: a plain signal to the process group this probe made.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        return Err(format!(
            "still running after its timeout of {}; killed",
            humantime::format_duration(timeout)
        ));
    };
    let status = status.map_err(|e| format!("cannot wait for it: {e}"))?;
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        return Ok(stdout);
    }
    let said = last_line(&stderr)
        .or_else(|| last_line(&stdout))
        .map(|l| format!(": {l}"))
        .unwrap_or_default();
    Err(match status.code() {
        Some(c) => format!("exit {c}{said}"),
        None => format!("killed by a signal{said}"),
    })
}
