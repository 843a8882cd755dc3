//! Probes: checks that the *service* would come back, not only its bytes.
//! A drill runs them against its sandbox, a live restore against the
//! restored service. Plain data; `engine::probe` runs them.

use std::path::PathBuf;
use std::time::Duration;

/// The variables a probe (and a sandbox start command) may use.
pub const VARIABLES: [&str; 3] = ["sandbox.dir", "sandbox.port", "sandbox.database"];

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Unique within the service; the report's pass/fail line names it.
    pub name: String,
    /// How long it may take before it counts as failed.
    pub timeout: Duration,
    pub kind: ProbeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    /// A query against a restored database source (PostgreSQL, MariaDB
    /// or SQLite).
    Sql {
        source: String,
        query: String,
        expect: Expect,
    },
    /// A path of the restored tree (as it is live: `/srv/app/config.json`).
    File {
        path: PathBuf,
        min_size: Option<u64>,
        parse: Option<FileFormat>,
    },
    /// A GET that must answer (2xx/3xx, or `status`), optionally with
    /// `contains` in the body.
    Http {
        url: String,
        status: Option<u16>,
        contains: Option<String>,
    },
    /// An address (`host:port`) that must accept a connection.
    Tcp { address: String },
    /// A shell command with the sandbox variables; exit 0 passes.
    Command { command: String },
}

impl ProbeKind {
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKind::Sql { .. } => "sql",
            ProbeKind::File { .. } => "file",
            ProbeKind::Http { .. } => "http",
            ProbeKind::Tcp { .. } => "tcp",
            ProbeKind::Command { .. } => "command",
        }
    }

    /// What it looks at, for the report.
    pub fn target(&self) -> String {
        match self {
            ProbeKind::Sql { source, query, .. } => format!("{source}: {query}"),
            ProbeKind::File { path, .. } => path.display().to_string(),
            ProbeKind::Http { url, .. } => url.clone(),
            ProbeKind::Tcp { address } => address.clone(),
            ProbeKind::Command { command } => command.clone(),
        }
    }

    /// Needs the application running (a drill can only run it with a
    /// `sandbox_start`).
    pub fn needs_app(&self) -> bool {
        matches!(self, ProbeKind::Http { .. } | ProbeKind::Tcp { .. })
    }

    /// Every text of the probe that variables are substituted into.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            ProbeKind::Sql { .. } | ProbeKind::File { .. } => Vec::new(),
            ProbeKind::Http { url, .. } => vec![url],
            ProbeKind::Tcp { address } => vec![address],
            ProbeKind::Command { command } => vec![command],
        }
    }
}

/// What a `sql` probe's query must return.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// At least one row.
    AnyRow,
    /// The first column of the first row compares so (`>= 1`, `= alice`).
    Value(Compare),
    /// Some row is exactly these values (as text).
    Row(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `OP VALUE`: numbers compare as numbers, anything else as text (`=` and
/// `!=` only).
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    pub op: Op,
    pub value: String,
}

impl Compare {
    /// `">= 1"`, `"= 42"`, `"!= 0"`, `"alice"` (equality).
    pub fn parse(s: &str) -> Result<Compare, String> {
        let t = s.trim();
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("<>", Op::Ne),
            ("==", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ];
        let (op, value) = ops
            .iter()
            .find_map(|(p, op)| t.strip_prefix(p).map(|rest| (*op, rest.trim())))
            .unwrap_or((Op::Eq, t));
        if value.is_empty() {
            return Err(format!(
                "{s:?} compares with nothing: write it like \">= 1\" or \"= alice\""
            ));
        }
        let ordered = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
        if ordered && value.parse::<f64>().is_err() {
            return Err(format!(
                "{s:?}: `<`, `<=`, `>` and `>=` compare numbers, and {value:?} is not one"
            ));
        }
        Ok(Compare {
            op,
            value: value.to_string(),
        })
    }

    pub fn matches(&self, got: &str) -> bool {
        let got = got.trim();
        match (got.parse::<f64>(), self.value.parse::<f64>()) {
            (Ok(g), Ok(w)) => match self.op {
                Op::Eq => g == w,
                Op::Ne => g != w,
                Op::Lt => g < w,
                Op::Le => g <= w,
                Op::Gt => g > w,
                Op::Ge => g >= w,
            },
            _ => match self.op {
                Op::Eq => got == self.value,
                Op::Ne => got != self.value,
                _ => false,
            },
        }
    }

    pub fn describe(&self) -> String {
        let op = match self.op {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        };
        format!("{op} {}", self.value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Json,
    Toml,
    Sqlite,
}

impl FileFormat {
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Json => "JSON",
            FileFormat::Toml => "TOML",
            FileFormat::Sqlite => "SQLite",
        }
    }
}

/// How a drill runs the application on its sandbox data.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxApp {
    /// Starts it (in the foreground or detaching), with the variables.
    pub start: String,
    /// Stops it, when killing what `start` left running is not enough
    /// (`docker rm -f …`).
    pub stop: Option<String>,
    /// How long it may take to accept connections on `{{sandbox.port}}`.
    pub timeout: Duration,
}

/// The `{{…}}` variables used in `text`, in order, without their braces.
pub fn variables_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        out.push(after[..j].trim().to_string());
        rest = &after[j + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_read_as_written() {
        let c = |s| Compare::parse(s).unwrap();
        assert!(c(">= 1").matches("3"));
        assert!(!c(">= 1").matches("0"));
        assert!(c("= 2").matches("2.0"));
        assert!(c("alice").matches("alice"));
        assert!(c("!= bob").matches("alice"));
        assert!(!c("> 1").matches("many"));
        assert!(Compare::parse(">= lots").is_err());
        assert!(Compare::parse(">=").is_err());
    }

    #[test]
    fn variables_are_found() {
        assert_eq!(
            variables_in("curl http://127.0.0.1:{{sandbox.port}}/ -d {{ sandbox.dir }}"),
            vec!["sandbox.port", "sandbox.dir"]
        );
    }
}
