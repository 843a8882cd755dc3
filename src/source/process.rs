//! Running the tools sources depend on (`pg_dump`, `mariadb-dump`,
//! `redis-cli`, `qemu-img`, a configured command): found or explained,
//! stdin/stdout streamed, the tail of stderr kept for the error message.
//! Passwords travel in files or the environment, never in argv.

use super::capture::Artifact;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// How to install a missing tool, by its name.
fn install_hint(tool: &str) -> &'static str {
    match tool {
        "pg_dump" | "pg_restore" | "pg_dumpall" | "psql" => {
            "install the PostgreSQL client tools (Debian: apt install postgresql-client), the same major version as the server or newer"
        }
        "mariadb-dump" | "mysqldump" | "mariadb" | "mysql" => {
            "install the MariaDB client (Debian: apt install mariadb-client)"
        }
        "redis-cli" | "redis-server" | "redis-check-rdb" => {
            "install Redis (Debian: apt install redis-server redis-tools)"
        }
        "qemu-img" => "install qemu-img (Debian: apt install qemu-utils)",
        _ => "check the command in the source's configuration",
    }
}

/// The first of `names` found on PATH.
pub fn find_tool(names: &[&str]) -> Result<String> {
    for n in names {
        if which(n) {
            return Ok((*n).to_string());
        }
    }
    let first = names.first().copied().unwrap_or_default();
    bail!(
        "`{}` is not installed or not on PATH; {}",
        names.join("` or `"),
        install_hint(first)
    )
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name)).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

/// What a tool wrote to stderr, for an error message: its first line
/// that says "error" or "fatal" (the cause; `pg_dump` follows it with
/// detail, hint and query lines) and its last lines, in bounded memory.
#[derive(Default)]
struct Said {
    first_error: Option<(usize, String)>,
    last: std::collections::VecDeque<String>,
    seen: usize,
    partial: Vec<u8>,
}

const SAID_LINES: usize = 3;
const SAID_LINE_BYTES: usize = 2048;

impl Said {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.line(&String::from_utf8_lossy(&line));
            } else if self.partial.len() < SAID_LINE_BYTES {
                self.partial.push(b);
            }
        }
    }

    fn line(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let lower = line.to_ascii_lowercase();
        if self.first_error.is_none() && (lower.contains("error") || lower.contains("fatal")) {
            self.first_error = Some((self.seen, line.to_string()));
        }
        self.seen += 1;
        if self.last.len() == SAID_LINES {
            self.last.pop_front();
        }
        self.last.push_back(line.to_string());
    }

    fn finish(mut self) -> String {
        let rest = std::mem::take(&mut self.partial);
        self.line(&String::from_utf8_lossy(&rest));
        let mut out: Vec<String> = Vec::new();
        let tail_starts = self.seen - self.last.len();
        if let Some((at, first)) = self.first_error.take() {
            if at < tail_starts {
                out.push(first);
            }
            if at + 1 < tail_starts {
                out.push("…".into());
            }
        }
        out.extend(self.last);
        out.join(" / ")
    }
}

fn said(bytes: &[u8]) -> String {
    let mut s = Said::default();
    s.feed(bytes);
    s.finish()
}

/// Keeps what a child wrote to stderr, for error messages.
struct StderrTail {
    said: Arc<Mutex<String>>,
    thread: Option<JoinHandle<()>>,
}

impl StderrTail {
    fn start(child: &mut Child) -> StderrTail {
        let said = Arc::new(Mutex::new(String::new()));
        let thread = child.stderr.take().map(|mut err| {
            let out = Arc::clone(&said);
            std::thread::spawn(move || {
                let mut s = Said::default();
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    s.feed(&buf[..n]);
                }
                if let Ok(mut o) = out.lock() {
                    *o = s.finish();
                }
            })
        });
        StderrTail { said, thread }
    }

    fn finish(mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.said.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn failure(tool: &str, status: ExitStatus, stderr: String) -> anyhow::Error {
    let how = match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "was killed by a signal".to_string(),
    };
    if stderr.is_empty() {
        anyhow!("`{tool}` {how}")
    } else {
        anyhow!("`{tool}` {how}: {stderr}")
    }
}

fn spawn(tool: &str, mut cmd: Command) -> Result<Child> {
    cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "`{tool}` is not installed or not on PATH; {}",
                install_hint(tool)
            )
        } else {
            anyhow!("cannot start `{tool}`: {e}")
        }
    })
}

/// A child that is killed and reaped if its artifact is dropped unread
/// (a backup that failed before reaching it): no stray dumps, no zombies.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs `cmd` and makes its standard output an artifact. The artifact's
/// `done` fails unless the command exits 0. `keep` is dropped only after
/// the command has finished (temporary credential files, a transaction).
pub fn produce(
    tool: &str,
    mut cmd: Command,
    file: &str,
    keep: Box<dyn std::any::Any + Send>,
) -> Result<Artifact> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Reaped(spawn(tool, cmd)?);
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow!("`{tool}`: no output pipe"))?;
    let tail = StderrTail::start(&mut child.0);
    let tool = tool.to_string();
    Ok(Artifact {
        file: file.to_string(),
        reader: Box::new(stdout),
        done: Box::new(move || {
            let status = child
                .0
                .wait()
                .with_context(|| format!("waiting for `{tool}`"))?;
            let stderr = tail.finish();
            drop(keep);
            if status.success() {
                Ok(())
            } else {
                Err(failure(&tool, status, stderr))
            }
        }),
    })
}

/// Runs `cmd` with `input` on its standard input; fails unless it exits 0.
/// Returns what it printed. When `cancelled` turns true the tool is
/// killed and the result is [`crate::Error::Cancelled`].
pub fn consume(
    tool: &str,
    mut cmd: Command,
    input: &mut (dyn Read + Send),
    cancelled: &dyn Fn() -> bool,
) -> Result<String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(tool, cmd)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("`{tool}`: no input pipe"))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("`{tool}`: no output pipe"))?;
    let tail = StderrTail::start(&mut child);
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    // The process exits on SIGPIPE (so `lifeboat ls | head` behaves), but
    // a tool that stops reading must be an error, not our death: feed it
    // from a thread that blocks SIGPIPE, whose pending signal dies with it.
    let mut was_cancelled = false;
    let (fed, status) = std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            block_sigpipe();
            let r = std::io::copy(input, &mut stdin).and_then(|_| stdin.flush());
            drop(stdin);
            r
        });
        // Wait for the tool, killing it on a cancel: a tool blocked on its
        // work would otherwise keep the feeder (and the job) waiting.
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Ok(st),
                Ok(None) if cancelled() && !was_cancelled => {
                    was_cancelled = true;
                    let _ = child.kill();
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
                Err(e) => break Err(e),
            }
        };
        let fed = feeder
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the input thread crashed")));
        (fed, status)
    });
    let status = status.with_context(|| format!("waiting for `{tool}`"))?;
    if was_cancelled {
        let _ = tail.finish();
        return Err(crate::Error::Cancelled.into());
    }
    let stderr = tail.finish();
    let printed = out.join().unwrap_or_default();
    if !status.success() {
        return Err(failure(tool, status, stderr));
    }
    match fed {
        Ok(()) => Ok(printed),
        // A broken pipe with a clean exit: the tool stopped reading early.
        Err(e) => Err(anyhow!("`{tool}` stopped reading its input: {e}")),
    }
}

fn block_sigpipe() {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Runs `cmd` to completion and returns its standard output.
pub fn output(tool: &str, mut cmd: Command) -> Result<String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = spawn(tool, cmd)?;
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{tool}`"))?;
    if !out.status.success() {
        return Err(failure(tool, out.status, said(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A configured shell command (`vzdump 100 --stdout | zstd`). With bash,
/// `pipefail` makes a pipeline fail when any part of it fails, so a dump
/// that dies halfway is never hidden by the compressor after it.
pub fn shell(command: &str) -> Command {
    if which("bash") {
        let mut c = Command::new("bash");
        c.args(["-o", "pipefail", "-c"]).arg(command);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(command);
        c
    }
}

/// Runs a configured shell command to completion.
pub fn run_shell(what: &str, command: &str) -> Result<()> {
    output(what, shell(command)).map(|_| ())
}

/// The first line of a password file.
pub fn read_password(file: &crate::util::SecretRef) -> Result<String> {
    let path = file.path()?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    Ok(text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cause_is_kept_ahead_of_the_last_lines() {
        let stderr = b"pg_dump: warning: x\npg_dump: error: query failed: ERROR:  permission denied for table secrets\npg_dump: detail: Query was: LOCK TABLE public.secrets\npg_dump: hint: a\npg_dump: hint: b\n";
        assert_eq!(
            super::said(stderr),
            "pg_dump: error: query failed: ERROR:  permission denied for table secrets / pg_dump: detail: Query was: LOCK TABLE public.secrets / pg_dump: hint: a / pg_dump: hint: b"
        );
        assert_eq!(super::said(b"one\n\ntwo"), "one / two");
        assert_eq!(
            super::said(b"fatal: x\n1\n2\n3\n4\n"),
            "fatal: x / … / 2 / 3 / 4"
        );
        assert_eq!(
            super::said(b"pg_dump: error: lost\n"),
            "pg_dump: error: lost"
        );
    }
}
