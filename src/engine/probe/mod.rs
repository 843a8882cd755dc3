//! Running probes ([`crate::model::Probe`]) against restored data: a
//! drill's sandbox, or (with `/` as the root) a restored live service.
//! Each probe has a deadline and ends as one pass/fail/skipped line.

pub mod app;
mod command;
mod file;
mod net;
mod sql;

use crate::model::{Database, Probe};
use crate::progress::Reporter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeState {
    Pass,
    Fail,
    /// Could not run here (an `http` probe in a drill with nothing serving
    /// the sandbox): neither proof nor failure, and said so.
    Skipped,
}

impl ProbeState {
    pub fn word(self) -> &'static str {
        match self {
            ProbeState::Pass => "passed",
            ProbeState::Fail => "FAILED",
            ProbeState::Skipped => "skipped",
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            ProbeState::Pass => "✓",
            ProbeState::Fail => "✗",
            ProbeState::Skipped => "-",
        }
    }
}

/// What one probe found: what drill records and reports keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub name: String,
    pub kind: String,
    /// What it looked at (a query, a path, a URL, a command).
    pub target: String,
    pub state: ProbeState,
    pub detail: String,
    pub duration_ms: u64,
}

impl ProbeResult {
    /// The report's line: `✗ probe `users exist` (sql): FAILED: …`.
    pub fn line(&self) -> String {
        format!(
            "{} probe `{}` ({}): {}: {}",
            self.state.symbol(),
            self.name,
            self.kind,
            self.state.word(),
            self.detail
        )
    }
}

/// A restored database a `sql` probe can query.
#[derive(Debug, Clone)]
pub enum Restored {
    Postgres { db: Database, name: String },
    Mysql { db: Database, name: String },
    Sqlite { path: PathBuf },
}

impl Restored {
    /// `{{sandbox.database}}`: a database name, or a SQLite file's path.
    fn value(&self) -> String {
        match self {
            Restored::Postgres { name, .. } | Restored::Mysql { name, .. } => name.clone(),
            Restored::Sqlite { path } => path.display().to_string(),
        }
    }
}

/// Where the restored service is.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Where the restored tree's `/` is (`/` itself after a live restore).
    pub root: PathBuf,
    /// The port the sandboxed application listens on, when one was started.
    pub port: Option<u16>,
    /// Restored databases by source name, in the service's order.
    pub databases: Vec<(String, Restored)>,
    /// Why probes that need the application cannot run (no `sandbox_start`).
    pub no_app: Option<String>,
}

impl Target {
    /// The sandbox variables that have a value.
    pub fn variables(&self) -> BTreeMap<&'static str, String> {
        let mut v = BTreeMap::new();
        v.insert("sandbox.dir", self.root.display().to_string());
        if let Some(p) = self.port {
            v.insert("sandbox.port", p.to_string());
        }
        if let Some((_, d)) = self.databases.first() {
            v.insert("sandbox.database", d.value());
        }
        v
    }

    /// The same, as environment variables (`LIFEBOAT_SANDBOX_DIR`, …).
    pub fn environment(&self) -> Vec<(String, String)> {
        self.variables()
            .into_iter()
            .map(|(k, v)| {
                let name = k.replace('.', "_").to_ascii_uppercase();
                (format!("LIFEBOAT_{name}"), v)
            })
            .collect()
    }

    /// `text` with its variables replaced (shell-quoted with `shell`); an
    /// error names a variable that has no value here.
    pub fn substitute(&self, text: &str, shell: bool) -> Result<String, String> {
        let vars = self.variables();
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else {
                out.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let name = after[..j].trim();
            let value = vars.get(name).ok_or_else(|| match name {
                "sandbox.port" => "{{sandbox.port}} has no value: nothing serves the restored data here (a drill starts the application with the service's `sandbox_start`)".to_string(),
                "sandbox.database" => "{{sandbox.database}} has no value: the service has no restored database".to_string(),
                other => format!("{{{{{other}}}}} is not a sandbox variable"),
            })?;
            out.push_str(&if shell {
                shell_quote(value)
            } else {
                value.clone()
            });
            rest = &after[j + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

/// Runs every probe in order against `target`.
pub fn run_all(probes: &[Probe], target: &Target, reporter: &Reporter) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    for p in probes {
        if reporter.cancelled() {
            break;
        }
        let started = Instant::now();
        let outcome = run_one(p, target);
        let (state, detail) = match outcome {
            Outcome::Pass(d) => (ProbeState::Pass, d),
            Outcome::Fail(d) => (ProbeState::Fail, d),
            Outcome::Skip(d) => (ProbeState::Skipped, d),
        };
        out.push(ProbeResult {
            name: p.name.clone(),
            kind: p.kind.name().to_string(),
            target: p.kind.target(),
            state,
            detail,
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    out
}

pub(crate) enum Outcome {
    Pass(String),
    Fail(String),
    Skip(String),
}

fn run_one(p: &Probe, target: &Target) -> Outcome {
    use crate::model::ProbeKind as K;
    if p.kind.needs_app() {
        if let Some(why) = &target.no_app {
            return Outcome::Skip(why.clone());
        }
    }
    // A text that needs a variable this target lacks cannot run here.
    for t in p.kind.texts() {
        if let Err(e) = target.substitute(t, false) {
            return Outcome::Skip(e);
        }
    }
    match &p.kind {
        K::Sql {
            source,
            query,
            expect,
        } => sql::run(source, query, expect, p.timeout, target),
        K::File {
            path,
            min_size,
            parse,
        } => file::run(path, *min_size, *parse, p.timeout, target),
        K::Http {
            url,
            status,
            contains,
        } => net::http(url, *status, contains.as_deref(), p.timeout, target),
        K::Tcp { address } => net::tcp(address, p.timeout, target),
        K::Command { command } => command::run(command, p.timeout, target),
    }
}

/// Runs `f` on a thread of its own and waits at most `timeout` for it;
/// a probe that hangs (a lock, a dead server) is a failure, not a hang.
pub(crate) fn within<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout).ok()
}

pub(crate) fn timed_out(timeout: Duration) -> Outcome {
    Outcome::Fail(format!(
        "no answer within its timeout of {} (raise `timeout` if that is normal)",
        humantime::format_duration(timeout)
    ))
}
