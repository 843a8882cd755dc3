//! `lifeboat config check`: the config, and the world it describes, with
//! every problem at once — not only whether the file parses, but whether
//! the key files are there and open their repositories, the backed-up
//! paths exist, the databases let Lifeboat in, the tools are installed and
//! the commands the runbooks will run exist. Found now rather than at
//! 3 a.m. in a preflight.

use crate::config::{Config, Repository};
use crate::model::{Service, Source, SourceKind};
use crate::runbook::{Action, Item, Problem, Runbook};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// `file:line:col`, a repository, a service, or a runbook's `file:line`.
    pub at: String,
    pub problem: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl Finding {
    /// A problem parsing found: at its `file:line:col`, else at the file.
    pub fn of_parse_error(file: &Path, e: &crate::Error) -> Finding {
        match e {
            crate::Error::Config {
                path,
                line,
                col,
                message,
            } => finding(
                format!("{}:{line}:{col}", path.display()),
                message.clone(),
                None,
            ),
            other => finding(file.display().to_string(), other.to_string(), other.hint()),
        }
    }
}

fn finding(at: impl Into<String>, problem: impl Into<String>, hint: Option<String>) -> Finding {
    Finding {
        at: at.into(),
        problem: problem.into(),
        hint,
    }
}

/// Everything wrong with `config` and what it points at. `parsed` are the
/// problems parsing found; `runbooks` the runbooks the config will use,
/// with the problems loading them found.
pub fn check(
    config: &Config,
    parsed: &[crate::Error],
    runbooks: &[Runbook],
    runbook_problems: &[Problem],
) -> Vec<Finding> {
    let mut out: Vec<Finding> = parsed
        .iter()
        .map(|e| Finding::of_parse_error(&config.path, e))
        .collect();
    for r in config.repositories.values() {
        out.extend(repository(r));
    }
    for svc in &config.services {
        for src in &svc.sources {
            out.extend(source(svc, src));
        }
        out.extend(commands(config, svc, runbooks));
    }
    out.extend(runbook_problems.iter().map(|p| {
        finding(
            format!("{}:{}", p.file.display(), p.line),
            p.message.clone(),
            None,
        )
    }));
    for m in &config.monitors {
        if let Err(e) = m.url.value() {
            out.push(finding(
                "monitor",
                format!("{e:#}"),
                Some("set the variable in the environment of every timer that runs jobs".into()),
            ));
        }
    }
    out
}

/// Its key file is there and readable, and it opens the repository.
fn repository(r: &Repository) -> Vec<Finding> {
    let at = format!("repository `{}`", r.name);
    if let Some(k) = &r.key_file {
        match k.path() {
            Err(e) => return vec![finding(at, format!("key_file: {e:#}"), None)],
            Ok(p) if !p.exists() => {
                return vec![finding(
                    at,
                    format!("the key file {} does not exist", p.display()),
                    Some(format!(
                        "`lifeboat init --repo {}` creates the repository and writes its key there; for an existing repository, put its key there",
                        r.name
                    )),
                )]
            }
            Ok(p) => {
                if let Err(e) = std::fs::File::open(&p) {
                    return vec![finding(
                        at,
                        format!("cannot read the key file {}: {e}", p.display()),
                        None,
                    )];
                }
            }
        }
    }
    // A store that is down should not hold the check for the whole
    // retry deadline of a nightly job.
    let mut quick = r.clone();
    if let Some(s) = &mut quick.s3 {
        s.deadline = Some(Duration::from_secs(15));
        s.request_timeout = Some(Duration::from_secs(10));
    }
    match quick.open(None) {
        Ok(_) => Vec::new(),
        Err(e) => vec![finding(
            format!("{at} at {}", r.location()),
            format!("{e:#}"),
            crate::error::hint_for(&e),
        )],
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Its paths exist, its password file reads, its server lets Lifeboat in,
/// and the tools it needs are installed.
fn source(svc: &Service, src: &Source) -> Vec<Finding> {
    let at = format!("service `{}`, source `{}`", svc.name, src.name);
    let mut out = Vec::new();
    let mut missing = |p: &Path, what: &str| {
        if !exists(p) {
            out.push(finding(
                at.clone(),
                format!("{what} {} does not exist", p.display()),
                None,
            ));
        }
    };
    match &src.kind {
        SourceKind::Files { paths, .. } | SourceKind::Secrets { paths } => {
            for p in paths {
                missing(p, "the path");
            }
        }
        SourceKind::Sqlite { path } => missing(path, "the database"),
        SourceKind::VmImage { path } => missing(path, "the image"),
        SourceKind::Redis(r) => {
            if let Some(p) = r.rdb_path.as_deref().and_then(Path::parent) {
                missing(p, "the RDB directory");
            }
        }
        SourceKind::PostgresCluster(c) => {
            if let Some(d) = &c.data_dir {
                missing(d, "the data directory");
            }
        }
        SourceKind::Postgres(_) | SourceKind::Mysql(_) | SourceKind::Command(_) => {}
    }
    let tools: &[&[&str]] = match &src.kind {
        SourceKind::Postgres(_) => &[&["pg_dump"], &["pg_restore"]],
        SourceKind::PostgresCluster(_) => &[&["pg_basebackup"]],
        SourceKind::Mysql(_) => &[&["mariadb-dump", "mysqldump"], &["mariadb", "mysql"]],
        SourceKind::Redis(_) => &[&["redis-cli"], &["redis-server"]],
        SourceKind::VmImage { path }
            if !path.extension().is_some_and(|x| x == "raw" || x == "img") =>
        {
            &[&["qemu-img"]]
        }
        _ => &[],
    };
    for t in tools {
        if let Err(e) = crate::source::process::find_tool(t) {
            out.push(finding(at.clone(), format!("{e:#}"), None));
        }
    }
    for (what, ok, detail) in crate::source::preflight(src) {
        if !ok && what == "credentials readable" {
            out.push(finding(at.clone(), detail, None));
        }
    }
    if let Err(e) = crate::source::login(src) {
        out.push(finding(
            at,
            format!("{e:#}"),
            Some(
                "check host, port, user and password_file; the server must accept Lifeboat's login"
                    .into(),
            ),
        ));
    }
    out
}

/// Shell words that are not programs on PATH.
const BUILTINS: &[&str] = &[
    "cd", "test", "[", "true", "false", "exit", ":", "export", "set", "if", "for", "exec", "sleep",
    "echo", "env", "sh", "bash",
];

/// The stop and start commands the service's runbooks will run: there,
/// and their program installed.
fn commands(config: &Config, svc: &Service, runbooks: &[Runbook]) -> Vec<Finding> {
    let at = format!("service `{}`", svc.name);
    let mut out = Vec::new();
    for (action, key, cmd) in [
        (Action::Stop, "stop", &svc.stop),
        (Action::Start, "start", &svc.start),
    ] {
        if cmd.is_some() {
            continue;
        }
        let mut users = Vec::new();
        for rb in runbooks.iter().filter(|r| r.applies(svc)) {
            let needed = rb
                .steps
                .iter()
                .filter(|s| !s.optional)
                .flat_map(|s| &s.items)
                .any(|i| matches!(i, Item::Lifeboat { action: a, .. } if *a == action))
                || (action == Action::Stop && rb.requires_stopped);
            if needed {
                users.push(format!("`{}`", rb.id));
            }
        }
        if !users.is_empty() {
            out.push(finding(
                at.clone(),
                format!(
                    "{} {} its `{key}` command, but it has none",
                    if users.len() == 1 {
                        "runbook"
                    } else {
                        "runbooks"
                    },
                    if users.len() == 1 {
                        format!("{} runs", users[0])
                    } else {
                        format!("{} run", users.join(", "))
                    },
                ),
                Some(format!(
                    "add {key} = \"…\" (e.g. \"systemctl {key} {}\") to [services.{}] in {}",
                    svc.name,
                    svc.name,
                    config.path.display()
                )),
            ));
        }
    }
    for (key, cmd) in [("stop", &svc.stop), ("start", &svc.start)] {
        let Some(program) = cmd.as_deref().and_then(|c| c.split_whitespace().next()) else {
            continue;
        };
        let found = if program.contains('/') {
            Path::new(program).exists()
        } else {
            BUILTINS.contains(&program) || crate::source::process::find_tool(&[program]).is_ok()
        };
        if !found {
            out.push(finding(
                at.clone(),
                format!(
                    "its {key} command runs `{program}`, which is not installed or not on PATH"
                ),
                None,
            ));
        }
    }
    out
}
