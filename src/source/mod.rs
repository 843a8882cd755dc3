//! Source adapters: how each kind of thing is backed up, restored (to its
//! live place or into a sandbox) and checked. Trees (files, secrets) are
//! walked by the backup engine; everything else is a [`Capture`] that
//! streams artifacts into the snapshot under `.lifeboat/SOURCE/`, with
//! facts recorded for the check after a restore.

pub mod capture;
pub mod command;
pub mod files;
pub mod files_cache;
pub mod mysql;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod sqlite;
pub mod vm_image;

use crate::config::{Service, SourceKind};
use crate::engine::restore::FileReader;
use crate::progress::Reporter;
use crate::repo::snapshot::SourceRecord;
use crate::repo::tree::Node;
use crate::repo::{Index, Repository, Snapshot};
use anyhow::{anyhow, Context, Result};
use capture::Capture;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The streamed sources of a service, ready for [`crate::engine::backup_with`].
pub fn captures(svc: &Service, cache_dir: &Path) -> Vec<Box<dyn Capture>> {
    svc.sources
        .iter()
        .filter_map(|s| -> Option<Box<dyn Capture>> {
            let n = s.name.as_str();
            Some(match &s.kind {
                SourceKind::Files { .. } | SourceKind::Secrets { .. } => return None,
                SourceKind::Postgres(db) => Box::new(postgres::PgCapture::new(n, db)),
                SourceKind::Mysql(db) => Box::new(mysql::MysqlCapture::new(n, db)),
                SourceKind::Sqlite { path } => {
                    Box::new(sqlite::SqliteCapture::new(n, path, cache_dir))
                }
                SourceKind::Redis(r) => Box::new(redis::RedisCapture::new(n, r)),
                SourceKind::Command(c) => Box::new(command::CommandCapture::new(n, c)),
                SourceKind::VmImage { path } => {
                    Box::new(vm_image::ImageCapture::new(n, path, cache_dir))
                }
            })
        })
        .collect()
}

/// Where a restore goes.
#[derive(Debug, Clone)]
pub enum To {
    /// Where the source lives: the configured database, file or command.
    Live,
    /// A throwaway place (a temporary database, a private server, files in
    /// this directory), torn down afterwards. Drills use this.
    Sandbox(PathBuf),
}

/// What restoring one source did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub detail: String,
    /// How the restored copy differs from what the backup recorded; empty
    /// when the check passed.
    pub differences: Vec<String>,
    /// What was kept of the replaced live data, and how to discard it.
    pub kept: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceOutcome {
    pub source: String,
    pub kind: String,
    #[serde(flatten)]
    pub restored: Restored,
}

/// The streamed files of one restore point, read straight from the repository.
pub struct Streams<'a> {
    repo: &'a Repository,
    index: &'a Index,
    nodes: HashMap<String, Node>,
    reporter: &'a Reporter,
}

impl<'a> Streams<'a> {
    pub fn new(
        repo: &'a Repository,
        index: &'a Index,
        tree: Vec<Node>,
        reporter: &'a Reporter,
    ) -> Self {
        Streams {
            repo,
            index,
            nodes: tree
                .into_iter()
                .filter(|n| n.path.starts_with(capture::DIR))
                .map(|n| (n.path.clone(), n))
                .collect(),
            reporter,
        }
    }

    pub fn open(&self, path: &str) -> Result<FileReader<'_>> {
        let node = self
            .nodes
            .get(path)
            .ok_or_else(|| anyhow!("{path} is missing from the restore point's file list"))?;
        Ok(FileReader::new(self.repo, self.index, node, self.reporter))
    }

    pub fn size(&self, path: &str) -> u64 {
        self.nodes.get(path).map(|n| n.size).unwrap_or(0)
    }
}

/// Restores every streamed source recorded in `snap` that `svc` still
/// configures, in the order they were backed up.
pub fn restore_streamed(
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    to: &To,
    reporter: &Reporter,
) -> Result<Vec<SourceOutcome>> {
    if snap.sources.is_empty() {
        return Ok(Vec::new());
    }
    let (index, _) = repo.load_index()?;
    let tree = repo.read_tree(&index, snap)?;
    let streams = Streams::new(repo, &index, tree, reporter);
    let mut out = Vec::new();
    for record in &snap.sources {
        let src = svc.sources.iter().find(|s| s.name == record.name).ok_or_else(|| {
            anyhow!(
                "restore point {} has a {} source `{}` that service `{}` no longer configures; restore its files with `lifeboat restore {} .lifeboat/{} --target DIR`",
                snap.short_id(), record.kind, record.name, svc.name, snap.short_id(), record.name
            )
        })?;
        if src.kind.name() != record.kind {
            anyhow::bail!(
                "source `{}` of `{}` was backed up as {} but is now configured as {}; restore its files with --target instead",
                record.name, svc.name, record.kind, src.kind.name()
            );
        }
        let what = || {
            format!(
                "service `{}`, source `{}` ({})",
                svc.name, record.name, record.kind
            )
        };
        let restored = match restore_one(&src.kind, record, &streams, to).with_context(what) {
            Ok(r) => r,
            Err(e) if matches!(to, To::Live) && !out.is_empty() => {
                let done: Vec<String> = out
                    .iter()
                    .map(|o: &SourceOutcome| o.source.clone())
                    .collect();
                return Err(e.context(format!(
                    "already restored before this failure: {} (their previous data is kept beside them)",
                    done.join(", ")
                )));
            }
            Err(e) => return Err(e),
        };
        out.push(SourceOutcome {
            source: record.name.clone(),
            kind: record.kind.clone(),
            restored,
        });
    }
    Ok(out)
}

fn restore_one(
    kind: &SourceKind,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
) -> Result<Restored> {
    match kind {
        SourceKind::Postgres(db) => postgres::restore(db, record, streams, to),
        SourceKind::Mysql(db) => mysql::restore(db, record, streams, to),
        SourceKind::Sqlite { path } => sqlite::restore(path, record, streams, to),
        SourceKind::Redis(r) => redis::restore(r, record, streams, to),
        SourceKind::Command(c) => command::restore(c, record, streams, to),
        SourceKind::VmImage { path } => vm_image::restore(path, record, streams, to),
        SourceKind::Files { .. } | SourceKind::Secrets { .. } => {
            Err(anyhow!("internal: a tree source has no stream"))
        }
    }
}

/// A UTC timestamp for names of kept and throwaway copies.
pub fn stamp() -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    t.chars().filter(|c| c.is_ascii_digit()).take(14).collect()
}

/// `base` + `suffix`, `base` shortened (by whole characters) to fit a
/// server's limit on name length in bytes.
pub fn name_with_suffix(base: &str, suffix: &str, max_bytes: usize) -> String {
    let mut b = base.to_string();
    while !b.is_empty() && b.len() + suffix.len() > max_bytes {
        b.pop();
    }
    format!("{b}{suffix}")
}

/// Writes a restored stream to a new file (mode 0600), synced.
pub fn write_new_file(path: &Path, input: &mut dyn std::io::Read) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::copy(input, &mut f).with_context(|| format!("writing {}", path.display()))?;
    f.flush()?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

/// Gives a restored file the owner and mode of the live one it replaces,
/// so the application's user can still open it. Best effort: without a
/// live file, or without the right to chown, the restored file stays
/// owner-only.
pub fn same_owner_as(new: &Path, live: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(live) {
        let _ = std::os::unix::fs::chown(new, Some(m.uid()), Some(m.gid()));
        let _ = std::fs::set_permissions(new, m.permissions());
    }
}

/// `path` with `.lifeboat-SUFFIX` appended to its file name.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".lifeboat-{suffix}"));
    path.with_file_name(name)
}

/// What a live restore of a whole service did.
#[derive(Debug, Clone, Serialize)]
pub struct LiveRestore {
    /// Each configured path put back, and where its previous content went.
    pub paths: Vec<(PathBuf, Option<PathBuf>)>,
    pub files: u64,
    pub bytes: u64,
    pub sources: Vec<SourceOutcome>,
    /// Configured sources this restore point does not hold (added since).
    pub not_in_point: Vec<String>,
}

impl LiveRestore {
    /// Every check that failed after data was put back.
    pub fn differences(&self) -> Vec<String> {
        self.sources
            .iter()
            .flat_map(|s| {
                s.restored
                    .differences
                    .iter()
                    .map(move |d| format!("{}: {d}", s.source))
            })
            .collect()
    }
}

/// A path restored beside itself, not yet swapped in.
struct Staged {
    path: PathBuf,
    staging: PathBuf,
    restored: PathBuf,
}

/// Puts a restore point back where the service lives, in an order that
/// changes nothing live until everything that can be checked is:
/// 1. every configured path is restored beside itself (hashes checked);
/// 2. every database or stream goes through its adapter (new copy, check,
///    swap; a failure leaves that one untouched and says which earlier
///    ones were already replaced);
/// 3. the paths are swapped in, the old content kept as
///    `PATH.lifeboat-old-TIME`.
///
/// `staging`, when given, is a job's registry of staging directories: each
/// one is registered while it exists, and the swaps happen under its lock,
/// so a job cancelled from outside (which removes what is registered, under
/// the same lock) never leaves half the paths swapped.
pub fn restore_live(
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    reporter: &Reporter,
    staging: Option<&std::sync::Mutex<Vec<PathBuf>>>,
) -> Result<LiveRestore> {
    use crate::engine::restore::{restore, RestoreOptions};
    let stamp = stamp();
    let mut out = LiveRestore {
        paths: Vec::new(),
        files: 0,
        bytes: 0,
        sources: Vec::new(),
        not_in_point: svc
            .sources
            .iter()
            .filter(|s| !s.kind.is_tree() && !snap.sources.iter().any(|r| r.name == s.name))
            .map(|s| format!("{} {}", s.kind.name(), s.name))
            .collect(),
    };
    for record in &snap.sources {
        if !svc.sources.iter().any(|s| s.name == record.name) {
            anyhow::bail!(
                "restore point {} has a {} source `{}` that `{}` no longer configures; nothing was changed. Restore its files with `lifeboat restore {} .lifeboat/{} --target DIR`",
                snap.short_id(), record.kind, record.name, svc.name, snap.short_id(), record.name
            );
        }
    }
    let tree_paths: Vec<PathBuf> = svc
        .sources
        .iter()
        .flat_map(|s| match &s.kind {
            SourceKind::Files { paths, .. } | SourceKind::Secrets { paths } => paths.clone(),
            _ => Vec::new(),
        })
        .collect();
    let mut staged: Vec<Staged> = Vec::new();
    let register = |p: &Path, add: bool| {
        if let Some(Ok(mut r)) = staging.map(|m| m.lock()) {
            if add {
                r.push(p.to_path_buf());
            } else {
                r.retain(|x| x != p);
            }
        }
    };
    let cleanup = |staged: &[Staged]| {
        for s in staged {
            let _ = std::fs::remove_dir_all(&s.staging);
            register(&s.staging, false);
        }
    };
    for path in tree_paths {
        let rel = path.to_string_lossy().trim_matches('/').to_string();
        let parent = path
            .parent()
            .ok_or_else(|| anyhow!("cannot restore {} in place", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stage_dir = parent.join(format!(".{name}.lifeboat-restore-{stamp}"));
        let mut opts = RestoreOptions::new(&stage_dir);
        opts.include = vec![rel.clone()];
        opts.skip_streams = true;
        register(&stage_dir, true);
        match restore(repo, snap, &opts, reporter) {
            Ok(r) => {
                out.files += r.files;
                out.bytes += r.bytes;
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&stage_dir);
                register(&stage_dir, false);
                cleanup(&staged);
                return Err(e.context(format!("restoring {}; nothing was changed", path.display())));
            }
        }
        staged.push(Staged {
            restored: stage_dir.join(&rel),
            path,
            staging: stage_dir,
        });
    }
    out.sources = match restore_streamed(svc, repo, snap, &To::Live, reporter) {
        Ok(s) => s,
        Err(e) => {
            cleanup(&staged);
            return Err(e.context("no configured path was changed"));
        }
    };
    // All swaps under the registry's lock: a cancel waits for them, or
    // has already removed what was staged and nothing is swapped.
    let guard = staging.map(|m| m.lock());
    if let Some(Ok(g)) = &guard {
        if staged.iter().any(|s| !g.contains(&s.staging)) {
            drop(guard);
            cleanup(&staged);
            anyhow::bail!("cancelled before any path was replaced");
        }
    }
    for (i, s) in staged.iter().enumerate() {
        let swapped = (|| -> Result<Option<PathBuf>> {
            let kept = if std::fs::symlink_metadata(&s.path).is_ok() {
                let old = beside(&s.path, &format!("old-{stamp}"));
                std::fs::rename(&s.path, &old)
                    .with_context(|| format!("moving {} aside", s.path.display()))?;
                Some(old)
            } else {
                None
            };
            if let Err(e) = std::fs::rename(&s.restored, &s.path) {
                if let Some(old) = &kept {
                    let _ = std::fs::rename(old, &s.path);
                }
                return Err(anyhow::Error::new(e).context(format!(
                    "moving the restored {} into place",
                    s.path.display()
                )));
            }
            if let Some(parent) = s.path.parent() {
                let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
            }
            Ok(kept)
        })();
        match swapped {
            Ok(kept) => out.paths.push((s.path.clone(), kept)),
            Err(e) => {
                for rest in &staged[i..] {
                    let _ = std::fs::remove_dir_all(&rest.staging);
                }
                let done: Vec<String> = out
                    .paths
                    .iter()
                    .map(|(p, k)| match k {
                        Some(k) => format!("{} (old kept as {})", p.display(), k.display()),
                        None => p.display().to_string(),
                    })
                    .chain(out.sources.iter().map(|o| o.source.clone()))
                    .collect();
                return Err(e.context(format!(
                    "{} was left as it was; already restored: {}",
                    s.path.display(),
                    if done.is_empty() {
                        "nothing".into()
                    } else {
                        done.join(", ")
                    }
                )));
            }
        }
        let _ = std::fs::remove_dir_all(&s.staging);
    }
    if let Some(Ok(mut g)) = guard {
        g.retain(|x| !staged.iter().any(|s| &s.staging == x));
    }
    Ok(out)
}

/// What a database, stream or image looks like live, against a restore point.
#[derive(Debug, Clone, Serialize)]
pub struct LiveCheck {
    pub source: String,
    pub kind: String,
    pub detail: String,
    pub differences: Vec<String>,
}

/// Reads every streamed source of `svc` where it lives and compares it with
/// what `snap` recorded: the application-level check after a live restore.
pub fn check_live(svc: &Service, snap: &Snapshot) -> Result<Vec<LiveCheck>> {
    let mut out = Vec::new();
    for record in &snap.sources {
        let Some(src) = svc.sources.iter().find(|s| s.name == record.name) else {
            continue;
        };
        let what = || format!("checking {} {}", record.kind, record.name);
        let (detail, differences) = match &src.kind {
            SourceKind::Postgres(db) => {
                summarize(&record.facts, postgres::live_facts(db).with_context(what)?)
            }
            SourceKind::Mysql(db) => {
                summarize(&record.facts, mysql::live_facts(db).with_context(what)?)
            }
            SourceKind::Sqlite { path } => {
                summarize(&record.facts, sqlite::facts(path).with_context(what)?)
            }
            SourceKind::Redis(r) => redis::check_live(r, &record.facts).with_context(what)?,
            SourceKind::VmImage { path } => {
                vm_image::check_live(path, &record.facts).with_context(what)?
            }
            SourceKind::Command(c) => match &c.check {
                Some(check) => match process::output(check, process::shell(check)) {
                    Ok(_) => (format!("`{check}` passed"), Vec::new()),
                    Err(e) => (String::new(), vec![format!("{e:#}")]),
                },
                None => (
                    "no check_command configured; nothing to compare".into(),
                    Vec::new(),
                ),
            },
            SourceKind::Files { .. } | SourceKind::Secrets { .. } => continue,
        };
        out.push(LiveCheck {
            source: record.name.clone(),
            kind: record.kind.clone(),
            detail,
            differences,
        });
    }
    Ok(out)
}

fn summarize(
    recorded: &crate::repo::snapshot::Facts,
    found: crate::repo::snapshot::Facts,
) -> (String, Vec<String>) {
    let rows: u64 = found.counts.values().sum();
    (
        format!(
            "{} tables, {rows} rows, schema as recorded",
            found.counts.len()
        ),
        recorded.differences(&found),
    )
}

/// Preflight for restoring a streamed source live: credentials readable,
/// the server or the place reachable, the restore configured.
pub fn preflight(src: &crate::config::Source) -> Vec<(&'static str, bool, String)> {
    let mut out = Vec::new();
    let mut password = |f: &Option<PathBuf>| {
        if let Some(f) = f {
            let ok = std::fs::File::open(f).is_ok();
            out.push((
                "credentials readable",
                ok,
                if ok {
                    format!("{} is readable", f.display())
                } else {
                    format!("cannot read the password file {}", f.display())
                },
            ));
        }
    };
    let reach =
        |host: &str, port: u16, socket_default: bool| -> Option<(&'static str, bool, String)> {
            if host.starts_with('/') || (socket_default && host == "localhost") {
                return None;
            }
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                .ok()
                .and_then(|mut a| a.next());
            let ok = addr.is_some_and(|a| {
                std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)).is_ok()
            });
            Some((
                "target reachable",
                ok,
                if ok {
                    format!("{host}:{port} answers")
                } else {
                    format!("nothing answers at {host}:{port}")
                },
            ))
        };
    match &src.kind {
        SourceKind::Postgres(db) => {
            password(&db.password_file);
            out.extend(reach(&db.host, db.port, false));
        }
        SourceKind::Mysql(db) => {
            password(&db.password_file);
            out.extend(reach(&db.host, db.port, true));
        }
        SourceKind::Redis(r) => {
            password(&r.password_file);
            out.extend(reach(&r.host, r.port, false));
            let ok = r.rdb_path.is_some() && r.stop.is_some() && r.start.is_some();
            out.push((
                "restore configured",
                ok,
                if ok {
                    "rdb_path, stop and start are set".into()
                } else {
                    format!(
                        "source `{}` needs rdb_path, stop and start for a live restore",
                        src.name
                    )
                },
            ));
        }
        SourceKind::Sqlite { path } | SourceKind::VmImage { path } => {
            let dir = path.parent().unwrap_or(Path::new("/"));
            let ok = dir.is_dir();
            out.push((
                "target reachable",
                ok,
                if ok {
                    format!("{} exists", dir.display())
                } else {
                    format!("{} does not exist", dir.display())
                },
            ));
        }
        SourceKind::Command(c) => out.push((
            "restore configured",
            c.restore.is_some(),
            match &c.restore {
                Some(r) => format!("the stream is piped into `{r}`"),
                None => format!("source `{}` has no restore_command", src.name),
            },
        )),
        SourceKind::Files { .. } | SourceKind::Secrets { .. } => {}
    }
    out
}
