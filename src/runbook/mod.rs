//! Runbooks: markdown procedures in `runbooks/` that people can read and
//! Lifeboat can run. [`parse`] reads one, [`load_dir`] every one, [`check`]
//! validates them against a config, [`exec`] runs one as a job. The syntax
//! is documented in `docs/runbooks.md`.

pub mod builtin;
pub mod engine_calls;
pub mod exec;
pub mod parse;
pub mod preflight;
pub mod report;
pub mod request;
pub mod vars;

use crate::config::Config;
use crate::model::{Service, Tier};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Source kinds a runbook may name in `applies_to.kinds`.
pub const KINDS: [&str; 9] = [
    "files",
    "postgres",
    "mysql",
    "sqlite",
    "redis",
    "secrets",
    "command",
    "vm-image",
    "postgres-cluster",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The admin picks the affected services.
    Service,
    /// Every service of one host, most critical tier first.
    Host,
    /// Every service the runbook applies to.
    All,
}

#[derive(Debug, Clone, Default)]
pub struct AppliesTo {
    pub kinds: Vec<String>,
    pub services: Vec<String>,
    pub tiers: Vec<Tier>,
}

#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub prompt: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Runbook {
    pub file: PathBuf,
    pub id: String,
    pub title: String,
    pub summary: String,
    pub applies_to: AppliesTo,
    pub scope: Scope,
    /// Preflight refuses to go on while the service still answers.
    pub requires_stopped: bool,
    pub inputs: Vec<Input>,
    pub front_matter_line: usize,
    pub front_lines: FrontLines,
    pub steps: Vec<Step>,
}

/// Lines of front-matter values, for problems found once the config is
/// known: `kinds` and `services` run parallel to [`AppliesTo`]'s lists.
#[derive(Debug, Clone, Default)]
pub struct FrontLines {
    pub id: usize,
    pub kinds: Vec<usize>,
    pub services: Vec<usize>,
}

impl Runbook {
    /// Where the runbook came from, for a job to read it again.
    pub fn origin(&self) -> PathBuf {
        if builtin::text_of(&self.file).is_some() {
            return self.file.clone();
        }
        std::path::absolute(&self.file).unwrap_or_else(|_| self.file.clone())
    }

    /// "built in", or the file it was read from.
    pub fn source_text(&self) -> String {
        match builtin::text_of(&self.file) {
            Some(_) => "built in".into(),
            None => self.file.display().to_string(),
        }
    }

    /// The repository this runbook restores from for `svc`: its restore's
    /// `from=` (inputs filled in), else the service's own. The whole run —
    /// preflight, restore point, check — reads from it, so a runbook for a
    /// lost site never touches the storage that was lost with it.
    pub fn source_repository(
        &self,
        svc: &Service,
        inputs: &std::collections::BTreeMap<String, String>,
    ) -> String {
        let from = self
            .steps
            .iter()
            .flat_map(|s| &s.items)
            .find_map(|i| match i {
                Item::Lifeboat {
                    action: Action::Restore { from: Some(f), .. },
                    ..
                } => Some(f.clone()),
                _ => None,
            });
        let Some(from) = from else {
            return svc.repository.clone();
        };
        let mut v = vars::Vars::new();
        for i in &self.inputs {
            if let Some(val) = inputs.get(&i.name).or(i.default.as_ref()) {
                v.insert(format!("input.{}", i.name), val.clone());
            }
        }
        v.insert("service.repository".into(), svc.repository.clone());
        match vars::fill(&from, &v, false) {
            Ok(name) if !name.trim().is_empty() => name.trim().to_string(),
            _ => svc.repository.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub title: String,
    pub line: usize,
    /// `(optional)` after the heading: a failure may be skipped.
    pub optional: bool,
    /// The first paragraph under the heading, shown while it runs.
    pub text: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Shell {
        line: usize,
        command: String,
        timeout: Duration,
        /// Ask before running it.
        confirm: bool,
        /// A non-zero exit is logged, not a failure.
        may_fail: bool,
    },
    Lifeboat {
        line: usize,
        action: Action,
    },
    /// A `- [ ]` checkbox: a person does it and confirms.
    Manual {
        line: usize,
        text: String,
    },
}

impl Item {
    pub fn line(&self) -> usize {
        match self {
            Item::Shell { line, .. } | Item::Lifeboat { line, .. } | Item::Manual { line, .. } => {
                *line
            }
        }
    }

    /// Every piece of text that variables are filled into.
    fn texts(&self) -> Vec<&str> {
        match self {
            Item::Shell { command, .. } => vec![command],
            Item::Manual { text, .. } => vec![text],
            Item::Lifeboat { action, .. } => match action {
                Action::Restore { path, to, from, .. } => {
                    let mut v = vec![to.as_str()];
                    v.extend(path.as_deref());
                    v.extend(from.as_deref());
                    v
                }
                Action::Check { path } => path.as_deref().into_iter().collect(),
                Action::Rollback { restore } => vec![restore],
                Action::WaitTcp { addr, .. } => vec![addr],
                Action::WaitHttp { url, .. } => vec![url],
                _ => vec![],
            },
        }
    }
}

/// What a `lifeboat` block line asks the engine to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Restore the chosen point: `to` is live, sandbox or a directory;
    /// `path` limits it to one path; `from` names another repository.
    Restore {
        path: Option<String>,
        to: String,
        from: Option<String>,
        /// Only sources of these kinds (`kinds=postgres,sqlite`); empty:
        /// the runbook's `applies_to.kinds`, else every source.
        kinds: Vec<String>,
    },
    /// The application-level check of what was restored.
    Check {
        path: Option<String>,
    },
    /// Read back every byte of the chosen point before trusting it.
    Verify,
    /// A sandbox restore measured against the RTO and recorded.
    Drill,
    /// A new backup of the service, now (before an upgrade, after a fix).
    Backup,
    /// Put back what a restore (or every restore of a job) replaced.
    Rollback {
        restore: String,
    },
    Stop,
    Start,
    WaitTcp {
        addr: String,
        timeout: Duration,
    },
    WaitHttp {
        url: String,
        timeout: Duration,
    },
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Action::Restore {
                path,
                to,
                from,
                kinds,
            } => format!(
                "restore{}{}{}{}",
                path.as_ref().map(|p| format!(" {p}")).unwrap_or_default(),
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", kinds.join(", "))
                },
                if to == "live" {
                    String::new()
                } else {
                    format!(" to {to}")
                },
                from.as_ref()
                    .map(|f| format!(" from {f}"))
                    .unwrap_or_default()
            ),
            Action::Check { .. } => "check".into(),
            Action::Verify => "verify the restore point".into(),
            Action::Drill => "drill".into(),
            Action::Backup => "backup".into(),
            Action::Rollback { restore } => format!("roll back restore {restore}"),
            Action::Stop => "stop the service".into(),
            Action::Start => "start the service".into(),
            Action::WaitTcp { addr, .. } => format!("wait for tcp {addr}"),
            Action::WaitHttp { url, .. } => format!("wait for {url}"),
        }
    }
}

impl Runbook {
    /// Does this runbook apply to the service? Empty lists match anything.
    pub fn applies(&self, svc: &Service) -> bool {
        let a = &self.applies_to;
        (a.services.is_empty() || a.services.contains(&svc.name))
            && (a.tiers.is_empty() || a.tiers.contains(&svc.tier))
            && (a.kinds.is_empty()
                || svc
                    .sources
                    .iter()
                    .any(|s| a.kinds.iter().any(|k| k == engine_calls::kind_of(s))))
    }

    /// What a `restore` action of this runbook covers: one path, else the
    /// action's kinds, else the runbook's `applies_to.kinds` (so a database
    /// runbook never touches the service's files), else everything.
    pub fn restore_scope(&self, kinds: &[String], path: Option<&str>) -> crate::engine::Scope {
        crate::engine::Scope {
            kinds: if path.is_some() {
                Vec::new()
            } else if kinds.is_empty() {
                self.applies_to.kinds.clone()
            } else {
                kinds.to_vec()
            },
            path: path.map(PathBuf::from),
        }
    }

    /// The kind of job a run of it is, for monitors' `jobs = [...]` and
    /// log lines: a restore (or rollback) unless it only drills, backs up
    /// or verifies.
    pub fn job_kind(&self) -> &'static str {
        if self.has(|a| matches!(a, Action::Restore { .. } | Action::Rollback { .. })) {
            "restore"
        } else if self.has(|a| matches!(a, Action::Drill)) {
            "drill"
        } else if self.has(|a| matches!(a, Action::Backup)) {
            "backup"
        } else if self.has(|a| matches!(a, Action::Verify)) {
            "verify"
        } else {
            "restore"
        }
    }

    /// Does a run need the repository and a restore point? A rollback
    /// needs neither: it puts back what a restore kept.
    pub fn needs_point(&self) -> bool {
        self.has(|a| {
            matches!(
                a,
                Action::Restore { .. } | Action::Check { .. } | Action::Verify | Action::Drill
            )
        })
    }

    pub fn needs_stop(&self) -> bool {
        self.requires_stopped || self.has(|a| matches!(a, Action::Stop))
    }

    /// Does it write over live data (rather than only into sandboxes or
    /// a directory)?
    pub fn writes_live(&self) -> bool {
        self.has(|a| matches!(a, Action::Restore { to, .. } if to == "live"))
    }

    fn has(&self, f: impl Fn(&Action) -> bool) -> bool {
        self.steps.iter().flat_map(|s| &s.items).any(|i| match i {
            Item::Lifeboat { action, .. } => f(action),
            _ => false,
        })
    }
}

/// The directory of the admin's own runbooks, if there is one: `dir`
/// (`--runbooks`), else the config's `runbooks_dir`, else `runbooks/`
/// beside the config.
pub fn own_dir(config: &Config, dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(d) = dir {
        return Some(d.to_path_buf());
    }
    if let Some(d) = &config.runbooks_dir {
        return Some(d.clone());
    }
    config
        .path
        .parent()
        .map(|p| p.join("runbooks"))
        .filter(|p| p.is_dir())
}

/// Every runbook: the built-in ones, then those of the admin's directory
/// (see [`own_dir`]), which add to them and replace a built-in one with
/// the same id. Problems found while reading come back with them; a
/// directory that was asked for but cannot be read is an error.
pub fn load_all(
    config: &Config,
    dir: Option<&Path>,
) -> anyhow::Result<(Vec<Runbook>, Vec<Problem>)> {
    let mut runbooks = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in builtin::RUNBOOKS {
        let (rb, p) = parse::parse(&builtin::path_of(name), text);
        problems.extend(p);
        runbooks.extend(rb);
    }
    if let Some(d) = own_dir(config, dir) {
        let (own, p) = load_dir(&d)?;
        problems.extend(p);
        for rb in own {
            runbooks.retain(|r: &Runbook| r.id != rb.id);
            runbooks.push(rb);
        }
    }
    runbooks.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((runbooks, problems))
}

/// The text of a runbook by where it came from (a file, or a built-in).
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    match builtin::text_of(path) {
        Some(t) => Ok(t.to_string()),
        None => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the runbook {}: {e}", path.display())),
    }
}

/// Every `*.md` in `dir` with front matter (README.md is a plain page),
/// sorted by file name, with the problems found while reading them.
pub fn load_dir(dir: &Path) -> anyhow::Result<(Vec<Runbook>, Vec<Problem>)> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot read runbooks from {}: {e} (check --runbooks or runbooks_dir)",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.eq_ignore_ascii_case("README.md"))
        })
        .collect();
    files.sort();
    let mut runbooks = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                let (rb, p) = parse::parse(&f, &text);
                problems.extend(p);
                runbooks.extend(rb);
            }
            Err(e) => problems.push(Problem {
                file: f.clone(),
                line: 1,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    Ok((runbooks, problems))
}

/// Finds a runbook by id (or file stem).
pub fn find<'a>(runbooks: &'a [Runbook], id: &str) -> anyhow::Result<&'a Runbook> {
    runbooks
        .iter()
        .find(|r| r.id == id || r.file.file_stem().is_some_and(|s| s == id))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no runbook `{id}`{} (runbooks: {})",
                crate::util::suggestion(id, runbooks.iter().map(|r| r.id.as_str())),
                runbooks
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Problems that need the config (and the other runbooks) to see:
/// undefined variables, unknown kinds and services, duplicate ids,
/// options that name a repository the config does not have.
/// The first `{{name}}` written inside a double-quoted shell string.
fn variable_in_double_quotes(command: &str) -> Option<String> {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let b = command.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' if !single => escaped = true,
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'{' if double && b.get(i + 1) == Some(&b'{') => {
                return vars::names(&command[i..]).into_iter().next();
            }
            _ => {}
        }
    }
    None
}

pub fn check(runbooks: &[Runbook], config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for rb in runbooks {
        let mut p = |line: usize, message: String| {
            problems.push(Problem {
                file: rb.file.clone(),
                line,
                message,
            })
        };
        if let Some(other) = ids.insert(rb.id.clone(), rb.file.clone()) {
            p(
                rb.front_lines.id,
                format!("id `{}` is also used by {}", rb.id, other.display()),
            );
        }
        let line =
            |lines: &[usize], i: usize| lines.get(i).copied().unwrap_or(rb.front_matter_line);
        for (i, k) in rb.applies_to.kinds.iter().enumerate() {
            if !KINDS.contains(&k.as_str()) {
                p(
                    line(&rb.front_lines.kinds, i),
                    format!("unknown source kind `{k}` (kinds: {})", KINDS.join(", ")),
                );
            }
        }
        for (i, s) in rb.applies_to.services.iter().enumerate() {
            if config.service(s).is_err() {
                p(
                    line(&rb.front_lines.services, i),
                    format!(
                        "applies to service `{s}`, which is not in {}",
                        config.path.display()
                    ),
                );
            }
        }
        let inputs: Vec<&str> = rb.inputs.iter().map(|i| i.name.as_str()).collect();
        for step in &rb.steps {
            for item in &step.items {
                for text in item.texts() {
                    for name in vars::names(text) {
                        if !vars::is_known(&name, &inputs) {
                            p(
                                item.line(),
                                format!(
                                    "undefined variable `{{{{{name}}}}}` (known: {}{})",
                                    vars::KNOWN.join(", "),
                                    inputs
                                        .iter()
                                        .map(|i| format!(", input.{i}"))
                                        .collect::<String>()
                                ),
                            );
                        }
                    }
                    if text.contains("{{") && vars::names(text).is_empty() {
                        p(item.line(), "an unclosed `{{`".into());
                    }
                }
                if let Item::Shell { command, line, .. } = item {
                    if let Some(name) = variable_in_double_quotes(command) {
                        p(
                            *line,
                            format!("`{{{{{name}}}}}` inside double quotes: Lifeboat quotes every value itself, and inside \"…\" its quotes do not protect against $(…); write it unquoted"),
                        );
                    }
                }
                if let Item::Lifeboat {
                    action: Action::Restore { to, from, .. },
                    line,
                } = item
                {
                    if let Some(f) = from.as_deref().filter(|f| !f.contains("{{")) {
                        if !config.repositories.contains_key(f) {
                            p(
                                *line,
                                format!("from={f}: no repository `{f}` in the config"),
                            );
                        }
                    }
                    if !(to == "live"
                        || to == "sandbox"
                        || to.starts_with('/')
                        || to.contains("{{"))
                    {
                        p(
                            *line,
                            format!("to={to}: expected live, sandbox or an absolute directory"),
                        );
                    }
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod quoting_tests {
    #[test]
    fn variables_inside_double_quotes_are_found() {
        use super::variable_in_double_quotes as f;
        assert_eq!(f(r#"echo "{{input.path}}""#).as_deref(), Some("input.path"));
        assert_eq!(f("rm -rf {{input.path}}"), None);
        assert_eq!(f(r#"echo '"{{x}}"'"#), None);
        assert_eq!(f(r#"echo "a" {{input.path}}"#), None);
    }
}
