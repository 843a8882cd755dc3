//! The coverage audit: what is outside every backup, and what silently
//! stopped being backed up. It looks at the servers the config already
//! names (databases no source captures), Docker (volumes and compose
//! stacks no files source covers), `.env` files under the roots it is
//! given, and each service's last two restore points (one that captured
//! nothing, or less than half of the one before, is "silently empty").
//! It takes plain options and opened repositories, and only reads.

use crate::model::{Database, Service, SourceKind};
use crate::repo::tree::NodeKind;
use crate::repo::{Repository, Snapshot};
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    pub services: Vec<Service>,
    /// Where to look for `.env` files.
    pub roots: Vec<PathBuf>,
    /// Ask Docker about volumes and compose stacks (when it answers).
    pub docker: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    UnprotectedDatabase,
    DockerVolume,
    ComposeStack,
    EnvFile,
    SilentlyEmpty,
    NoRestorePoint,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The service it concerns, when it concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The source it concerns (silently empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What: `postgres 127.0.0.1:5432/shop`, a path, a volume's name.
    pub what: String,
    /// One line for the admin, with what to do.
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditReport {
    pub findings: Vec<Finding>,
    /// What could not be looked at, one line each (Docker absent, a
    /// server that did not answer): not findings, but not checked either.
    pub notes: Vec<String>,
}

/// Databases every server has that are not the admin's data.
const PG_SYSTEM: &[&str] = &["postgres", "template0", "template1"];
const MYSQL_SYSTEM: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// How deep the `.env` search goes under a root, and how many entries it
/// reads at most: a root of `/` must not take the audit all day.
const ENV_DEPTH: usize = 6;
const ENV_MAX_ENTRIES: usize = 200_000;

/// A latest restore point holding less than this share of the previous
/// one is "silently empty".
const SHRINK: f64 = 0.5;

/// `repos`: each service's repository by name, opened, or why not.
pub fn audit(
    opts: &AuditOptions,
    repos: &BTreeMap<String, Result<Repository, String>>,
) -> AuditReport {
    let mut r = AuditReport::default();
    databases(opts, &mut r);
    if opts.docker {
        docker(opts, &mut r);
    }
    env_files(opts, &mut r);
    points(opts, repos, &mut r);
    r.findings
        .sort_by(|a, b| (a.kind, &a.service, &a.what).cmp(&(b.kind, &b.service, &b.what)));
    r
}

/// Every path a files or secrets source covers, with its excludes.
fn covered(opts: &AuditOptions) -> Vec<(PathBuf, crate::source::files::Excludes)> {
    let mut out = Vec::new();
    for s in opts.services.iter().flat_map(|s| &s.sources) {
        let (paths, exclude): (&[PathBuf], &[String]) = match &s.kind {
            SourceKind::Files { paths, exclude, .. } => (paths, exclude),
            SourceKind::Secrets { paths } => (paths, &[]),
            _ => continue,
        };
        for p in paths {
            let ex = crate::source::files::Excludes::new(exclude).unwrap_or_default();
            out.push((p.clone(), ex));
        }
    }
    out
}

fn is_covered(path: &Path, cover: &[(PathBuf, crate::source::files::Excludes)]) -> bool {
    cover.iter().any(|(root, ex)| {
        path.starts_with(root)
            && !path
                .ancestors()
                .take_while(|a| a.starts_with(root))
                .any(|a| ex.matches(a))
    })
}

/// A database server as sources name it: kind, host, port, user.
type Server<'a> = (&'a str, String, u16, String);

fn databases(opts: &AuditOptions, r: &mut AuditReport) {
    // One connection per server (kind, host, port, user); what every
    // service backs up from it.
    let mut servers: BTreeMap<Server<'_>, (Database, BTreeSet<String>)> = BTreeMap::new();
    for s in opts.services.iter().flat_map(|s| &s.sources) {
        let (kind, db) = match &s.kind {
            SourceKind::Postgres(d) => ("postgres", d),
            SourceKind::Mysql(d) => ("mysql", d),
            _ => continue,
        };
        servers
            .entry((kind, db.host.clone(), db.port, db.user.clone()))
            .or_insert_with(|| (db.clone(), BTreeSet::new()))
            .1
            .insert(db.database.clone());
    }
    // A postgres-cluster source keeps every database of its server.
    let clusters: BTreeSet<(String, u16)> = opts
        .services
        .iter()
        .flat_map(|s| &s.sources)
        .filter_map(|s| match &s.kind {
            SourceKind::PostgresCluster(c) => Some((c.host.clone(), c.port)),
            _ => None,
        })
        .collect();
    for ((kind, host, port, user), (db, backed)) in servers {
        if kind == "postgres" && clusters.contains(&(host.clone(), port)) {
            continue;
        }
        let listed = match kind {
            "postgres" => list_postgres(&db),
            _ => list_mysql(&db),
        };
        let names = match listed {
            Ok(n) => n,
            Err(e) => {
                r.notes.push(format!(
                    "{kind} on {host}:{port} as `{user}`: could not list its databases ({e:#})"
                ));
                continue;
            }
        };
        let system = if kind == "postgres" {
            PG_SYSTEM
        } else {
            MYSQL_SYSTEM
        };
        for name in names {
            if system.contains(&name.as_str()) || backed.contains(&name) || is_own(&name) {
                continue;
            }
            r.findings.push(Finding {
                kind: FindingKind::UnprotectedDatabase,
                service: None,
                source: None,
                what: format!("{kind} {host}:{port}/{name}"),
                message: format!(
                    "database `{name}` on {kind} {host}:{port} is in no service's sources: add a {{ kind = \"{kind}\", database = \"{name}\" }} source to the service that owns it"
                ),
            });
        }
    }
}

/// Databases Lifeboat itself makes while restoring or drilling.
fn is_own(name: &str) -> bool {
    name.contains("lifeboat_") || name.contains("_lb_")
}

fn list_postgres(db: &Database) -> Result<Vec<String>> {
    let mut c = postgres::Config::new();
    c.host(&db.host)
        .port(db.port)
        .user(&db.user)
        .dbname(&db.database)
        .application_name("lifeboat audit")
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = &db.password_file {
        c.password(crate::source::process::read_password(p)?);
    }
    let mut client = c.connect(postgres::NoTls).map_err(|e| {
        anyhow!(
            "{}",
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        )
    })?;
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1",
            &[],
        )
        .map_err(|e| anyhow!("{e}"))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

fn list_mysql(db: &Database) -> Result<Vec<String>> {
    let rows = crate::source::mysql_client::query(db, None, "SHOW DATABASES")?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect())
}

/// Runs `docker ARGS` for at most 15 s; `None` with why when it cannot.
fn docker_out(args: &[&str]) -> Result<String, String> {
    let mut child = std::process::Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("docker cannot be run ({e})"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("docker did not answer within 15 s".into());
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "docker is not responding ({})",
            why.lines().next().unwrap_or("").trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn docker(opts: &AuditOptions, r: &mut AuditReport) {
    let volumes = match docker_out(&["volume", "ls", "-q"]) {
        Ok(v) => v,
        Err(why) => {
            r.notes.push(format!(
                "Docker volumes and compose stacks not checked: {why}"
            ));
            return;
        }
    };
    let cover = covered(opts);
    for name in volumes.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let Ok(mount) = docker_out(&["volume", "inspect", "-f", "{{.Mountpoint}}", name]) else {
            continue;
        };
        let mount = PathBuf::from(mount.trim());
        if !is_covered(&mount, &cover) {
            r.findings.push(Finding {
                kind: FindingKind::DockerVolume,
                service: None,
                source: None,
                what: name.to_string(),
                message: format!(
                    "Docker volume `{name}` ({}) is in no files source: add its mountpoint to the paths of the service that uses it",
                    mount.display()
                ),
            });
        }
    }
    let stacks = docker_out(&[
        "ps",
        "-a",
        "--format",
        "{{.Label \"com.docker.compose.project\"}}\t{{.Label \"com.docker.compose.project.working_dir\"}}",
    ])
    .unwrap_or_default();
    let mut seen = BTreeSet::new();
    for line in stacks.lines() {
        let (project, dir) = line.split_once('\t').unwrap_or((line, ""));
        if project.is_empty() || !seen.insert(project.to_string()) {
            continue;
        }
        if dir.is_empty() || !is_covered(Path::new(dir), &cover) {
            r.findings.push(Finding {
                kind: FindingKind::ComposeStack,
                service: None,
                source: None,
                what: project.to_string(),
                message: format!(
                    "compose stack `{project}` ({}) has its compose file in no files source: add its directory to a service's paths",
                    if dir.is_empty() { "directory unknown" } else { dir }
                ),
            });
        }
    }
}

fn env_files(opts: &AuditOptions, r: &mut AuditReport) {
    let cover = covered(opts);
    let mut budget = ENV_MAX_ENTRIES;
    for root in &opts.roots {
        let mut stack = vec![(root.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                if depth == 0 {
                    r.notes
                        .push(format!("audit root {} cannot be read", dir.display()));
                }
                continue;
            };
            for e in rd.flatten() {
                if budget == 0 {
                    r.notes.push(format!(
                        "stopped looking for .env files after {ENV_MAX_ENTRIES} entries; give narrower `audit.roots`"
                    ));
                    return;
                }
                budget -= 1;
                let Ok(ft) = e.file_type() else { continue };
                let name = e.file_name();
                let name = name.to_string_lossy();
                let path = e.path();
                if ft.is_dir() {
                    let skip = matches!(name.as_ref(), ".git" | "node_modules" | "proc" | "sys")
                        || crate::source::swap::is_own_name(&e.file_name());
                    if depth + 1 < ENV_DEPTH && !skip {
                        stack.push((path, depth + 1));
                    }
                } else if ft.is_file()
                    && (name == ".env" || name.starts_with(".env.") && name != ".env.example")
                    && !is_covered(&path, &cover)
                {
                    r.findings.push(Finding {
                        kind: FindingKind::EnvFile,
                        service: None,
                        source: None,
                        what: path.display().to_string(),
                        message: format!(
                            "{} is in no source: add it to a {{ kind = \"secrets\" }} source of the service it configures",
                            path.display()
                        ),
                    });
                }
            }
        }
    }
}

/// What a source captured in one restore point: files under its paths,
/// or rows of its database; `None` when the point does not say.
fn captured(
    src: &crate::model::Source,
    snap: &Snapshot,
    tree: Option<&[crate::repo::tree::Node]>,
) -> Option<(u64, &'static str)> {
    match &src.kind {
        SourceKind::Files { paths, .. } | SourceKind::Secrets { paths } => {
            let tree = tree?;
            let n = tree
                .iter()
                .filter(|n| n.kind == NodeKind::File)
                .filter(|n| {
                    let p = Path::new("/").join(&n.path);
                    paths.iter().any(|r| p.starts_with(r))
                })
                .count() as u64;
            Some((n, "file"))
        }
        SourceKind::Postgres(_) | SourceKind::Mysql(_) => {
            let rec = snap.sources.iter().find(|r| r.name == src.name)?;
            Some((rec.facts.counts.values().sum(), "row"))
        }
        _ => None,
    }
}

fn points(
    opts: &AuditOptions,
    repos: &BTreeMap<String, Result<Repository, String>>,
    r: &mut AuditReport,
) {
    for svc in &opts.services {
        let repo = match repos.get(&svc.repository) {
            Some(Ok(repo)) => repo,
            Some(Err(e)) => {
                r.notes.push(format!(
                    "service `{}`: repository {} could not be read ({e})",
                    svc.name, svc.repository
                ));
                continue;
            }
            None => continue,
        };
        let mut snaps: Vec<Snapshot> = match repo.list_snapshots() {
            Ok((list, _)) => list.into_iter().filter(|s| s.service == svc.name).collect(),
            Err(e) => {
                r.notes.push(format!("service `{}`: {e:#}", svc.name));
                continue;
            }
        };
        snaps.sort_by(|a, b| a.time.cmp(&b.time));
        let Some(latest) = snaps.last() else {
            r.findings.push(Finding {
                kind: FindingKind::NoRestorePoint,
                service: Some(svc.name.clone()),
                source: None,
                what: svc.name.clone(),
                message: format!(
                    "service `{}` has no restore point at all: run `lifeboat backup {}` and schedule it",
                    svc.name, svc.name
                ),
            });
            continue;
        };
        let previous = snaps.len().checked_sub(2).map(|i| &snaps[i]);
        // Trees only when a files source needs them, and when the key can
        // read them (a write-only key cannot: then files are not judged).
        let wants_tree = svc.sources.iter().any(|s| s.kind.is_tree());
        let index = if wants_tree {
            repo.load_index().ok().map(|(i, _)| i)
        } else {
            None
        };
        let tree_of = |s: &Snapshot| index.as_ref().and_then(|i| repo.read_tree(i, s).ok());
        let (latest_tree, previous_tree) = (tree_of(latest), previous.and_then(tree_of));
        if wants_tree && latest_tree.is_none() {
            r.notes.push(format!(
                "service `{}`: files not judged for emptiness (the key cannot read restore points)",
                svc.name
            ));
        }
        for src in &svc.sources {
            let Some((now, unit)) = captured(src, latest, latest_tree.as_deref()) else {
                continue;
            };
            let before = previous.and_then(|p| captured(src, p, previous_tree.as_deref()));
            let empty = now == 0;
            let shrunk = before.is_some_and(|(b, _)| b > 0 && (now as f64) < b as f64 * SHRINK);
            if !empty && !shrunk {
                continue;
            }
            let was = before
                .map(|(b, _)| format!(", the one before {}", crate::util::plural(b, unit)))
                .unwrap_or_default();
            r.findings.push(Finding {
                kind: FindingKind::SilentlyEmpty,
                service: Some(svc.name.clone()),
                source: Some(src.name.clone()),
                what: format!("{}/{}", svc.name, src.name),
                message: format!(
                    "service `{}`, source `{}`: the latest restore point ({}) captured {}{was}; check that the source still points at the live data",
                    svc.name,
                    src.name,
                    latest.short_id(),
                    crate::util::plural(now, unit),
                ),
            });
        }
    }
}
