//! Source adapters: how each kind of thing is backed up, restored (to its
//! live place or into a sandbox) and checked. Trees (files, secrets) are
//! walked by the backup engine; everything else is a [`Capture`] that
//! streams artifacts into the snapshot under `.lifeboat/SOURCE/`, with
//! facts recorded for the check after a restore.

pub mod capture;
pub mod cleanup;
pub mod command;
pub mod credentials;
pub mod files;
pub mod files_cache;
pub mod fs_snapshot;
pub mod ledger;
pub mod mysql;
pub mod mysql_client;
pub mod mysql_rows;
pub mod pg_amcheck;
pub mod pg_checksums;
pub mod pitr;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod sqlite;
pub mod swap;
pub mod vm_image;

use crate::model::{Database, Redis, Service, Source, SourceKind};
use crate::progress::Reporter;
use crate::repo::reader::FileReader;
use crate::repo::snapshot::SourceRecord;
use crate::repo::tree::Node;
use crate::repo::{Index, Repository, Snapshot};
use anyhow::{anyhow, Context, Result};
use capture::Capture;
use ledger::{Ledger, Made, Replaced};
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
                SourceKind::PostgresCluster(c) => Box::new(pitr::base::BaseCapture::new(n, c)),
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
    /// A file-based source (SQLite, VM image) writes its new copy at
    /// `file` when given (inside a staged directory that is swapped in as
    /// a whole), else beside the live file.
    Live { file: Option<PathBuf> },
    /// A throwaway place (a temporary database, a private server, files in
    /// this directory), torn down afterwards. Drills use this.
    Sandbox(PathBuf),
}

impl To {
    pub fn live() -> To {
        To::Live { file: None }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, To::Live { .. })
    }
}

/// A streamed source restored into a new copy and checked, not yet live
/// (a sandbox copy is already gone again).
#[derive(Debug)]
pub struct Staged {
    pub source: String,
    pub kind: String,
    pub detail: String,
    /// How the restored copy differs from what the backup recorded; empty
    /// when the check passed.
    pub differences: Vec<String>,
    pub commit: Commit,
}

/// What is left to make a staged copy live.
#[derive(Debug)]
pub enum Commit {
    /// Nothing: a sandbox copy, or a file written into a staged directory
    /// that goes live with it.
    None,
    /// A checked file renamed over the live one; `suffixes` are the live
    /// file's companions that move aside with it.
    File {
        new: PathBuf,
        live: PathBuf,
        suffixes: &'static [&'static str],
    },
    Postgres {
        db: Database,
        new: String,
    },
    Mysql {
        db: Database,
        new: String,
    },
    Redis {
        spec: Redis,
        new: PathBuf,
        recorded: crate::repo::snapshot::Facts,
    },
    /// A stream cannot be staged: it is piped into its restore command
    /// when everything else is in place, and cannot be undone.
    Command {
        spec: crate::model::Command,
        file: String,
    },
}

/// What making one staged copy live did.
#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    pub source: String,
    pub kind: String,
    pub detail: String,
    /// Checks that can only run once the data is live (a restarted Redis,
    /// a `check_command`) and failed.
    pub differences: Vec<String>,
    #[serde(skip)]
    pub replaced: Option<Replaced>,
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
        tree: &[Node],
        reporter: &'a Reporter,
    ) -> Self {
        Streams {
            repo,
            index,
            nodes: tree
                .iter()
                .filter(|n| crate::repo::tree::is_at_or_under(&n.path, capture::DIR))
                .map(|n| (n.path.clone(), n.clone()))
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

    /// The job was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.reporter.cancelled()
    }

    pub fn size(&self, path: &str) -> u64 {
        self.nodes.get(path).map(|n| n.size).unwrap_or(0)
    }
}

/// Restores one streamed source of `record` into a new copy (`to`) and
/// checks it against what the backup recorded. Nothing live changes: a
/// live restore's copy waits in [`Staged::commit`], a sandbox's is gone.
/// A live copy that fails its check is removed and is an error.
pub fn stage(
    src: &Source,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
    ledger: &Ledger,
) -> Result<Staged> {
    if src.kind.name() != record.kind {
        anyhow::bail!(
            "source `{}` was backed up as {} but is now configured as {}; restore its files with --target instead",
            record.name, record.kind, src.kind.name()
        );
    }
    let (detail, differences, commit) = match &src.kind {
        SourceKind::Postgres(db) => postgres::stage(db, record, streams, to, ledger)?,
        SourceKind::Mysql(db) => mysql::stage(db, record, streams, to, ledger)?,
        SourceKind::PostgresCluster(_) => pitr::stage_refused()?,
        SourceKind::Sqlite { path } => sqlite::stage(path, record, streams, to, ledger)?,
        SourceKind::Redis(r) => redis::stage(r, record, streams, to, ledger)?,
        SourceKind::Command(c) => command::stage(c, record, streams, to)?,
        SourceKind::VmImage { path } => vm_image::stage(path, record, streams, to, ledger)?,
        SourceKind::Files { .. } | SourceKind::Secrets { .. } => {
            return Err(anyhow!("internal: a tree source has no stream"))
        }
    };
    Ok(Staged {
        source: record.name.clone(),
        kind: record.kind.clone(),
        detail,
        differences,
        commit,
    })
}

/// The end of staging a file-based source (a SQLite database, a VM
/// image), checked into `new`: a sandbox copy is removed; a live copy that
/// does not match the backup is removed and refused; a good one takes the
/// live file's owner and mode and waits to be renamed over it, unless it
/// was written into a staged directory that goes live whole.
#[allow(clippy::too_many_arguments)]
fn finish_file(
    what: &str,
    live: &Path,
    new: PathBuf,
    to: &To,
    summary: String,
    differences: Vec<String>,
    suffixes: &'static [&'static str],
    forget: impl Fn(),
) -> Result<(String, Vec<String>, Commit)> {
    match to {
        To::Sandbox(_) => {
            forget();
            Ok((
                format!("restored into a sandbox copy: {summary}"),
                differences,
                Commit::None,
            ))
        }
        To::Live { file } => {
            if !differences.is_empty() {
                forget();
                anyhow::bail!(
                    "the restored {what} does not match the backup ({}); {} was not touched",
                    differences.join("; "),
                    live.display()
                );
            }
            // The application's user must still be able to open it.
            same_owner_as(&new, live);
            let commit = match file {
                Some(_) => Commit::None,
                None => Commit::File {
                    new,
                    live: live.to_path_buf(),
                    suffixes,
                },
            };
            Ok((summary, differences, commit))
        }
    }
}

/// Makes a staged copy live. What it replaces is written down the moment
/// it is replaced, before anything that may still fail (starting Redis,
/// dropping an emptied copy), so a failure there never leaves a swap that
/// `lifeboat rollback` cannot see.
pub fn commit(staged: Staged, streams: &Streams, ledger: &Ledger) -> Result<Committed> {
    let id = ledger.id();
    let source = staged.source.clone();
    let mut replaced = None;
    let mut record = |r: Replaced| -> Result<()> {
        ledger.replaced(r.clone())?;
        replaced = Some(r);
        Ok(())
    };
    let (detail, differences) = match staged.commit {
        Commit::None => (staged.detail, Vec::new()),
        Commit::File {
            new,
            live,
            suffixes,
        } => {
            let kept = swap::kept_path(&live, &id);
            let had = swap::swap_file(&new, &live, &kept, suffixes)?;
            ledger.unmade(&Made::Path { path: new });
            record(Replaced::Path {
                source: source.clone(),
                live: live.clone(),
                kept: had.then_some(kept),
                carried: Vec::new(),
                suffixes: suffixes.iter().map(|s| s.to_string()).collect(),
                mode: None,
            })?;
            (
                format!("{} replaced: {}", live.display(), staged.detail),
                Vec::new(),
            )
        }
        Commit::Postgres { db, new } => {
            let kept = postgres::commit(&db, &new)?;
            ledger.unmade(&Made::Postgres {
                db: db.clone(),
                name: new,
            });
            let done = if kept.is_some() {
                "replaced"
            } else {
                "created (there was none)"
            };
            record(Replaced::Postgres {
                source: source.clone(),
                db: db.clone(),
                kept,
            })?;
            (
                format!("database `{}` {done}: {}", db.database, staged.detail),
                Vec::new(),
            )
        }
        Commit::Mysql { db, new } => {
            let kept = mysql::commit(&db, &new)?;
            record(Replaced::Mysql {
                source: source.clone(),
                db: db.clone(),
                kept,
            })?;
            // Its tables moved live; the empty database goes.
            let made = Made::Mysql {
                db: db.clone(),
                name: new,
            };
            if cleanup::remove(&made).is_ok() {
                ledger.unmade(&made);
            }
            (
                format!("database `{}` replaced: {}", db.database, staged.detail),
                Vec::new(),
            )
        }
        Commit::Redis {
            spec,
            new,
            recorded,
        } => {
            let rdb = spec.rdb_path.clone().unwrap_or_default();
            let kept = swap::kept_path(&rdb, &id);
            let had = redis::stop_and_swap(&spec, &new, &kept)?;
            ledger.unmade(&Made::Path { path: new });
            record(Replaced::Redis {
                source: source.clone(),
                spec: spec.clone(),
                rdb,
                kept: had.then(|| kept.clone()),
            })?;
            redis::start_and_check(&spec, &recorded, &kept)?
        }
        Commit::Command { spec, file } => {
            // Written down first: once the command has read part of the
            // stream, the live data has changed.
            record(Replaced::Command {
                source: source.clone(),
                command: spec.restore.clone().unwrap_or_default(),
            })?;
            command::commit(&spec, &file, streams)?
        }
    };
    Ok(Committed {
        source,
        kind: staged.kind,
        detail,
        differences,
        replaced,
    })
}

/// Removes a staged copy that will not go live (a failure or a cancel
/// elsewhere in the restore).
pub fn discard(staged: &Staged, ledger: &Ledger) {
    let made = match &staged.commit {
        Commit::File { new, .. } | Commit::Redis { new, .. } => Made::Path { path: new.clone() },
        Commit::Postgres { db, new } => Made::Postgres {
            db: db.clone(),
            name: new.clone(),
        },
        Commit::Mysql { db, new } => Made::Mysql {
            db: db.clone(),
            name: new.clone(),
        },
        Commit::None | Commit::Command { .. } => return,
    };
    if cleanup::remove(&made).is_ok() {
        ledger.unmade(&made);
    }
}

/// Puts back what a restore replaced. What the rollback takes out again is
/// itself kept, and returned for the rollback's own record.
pub fn undo(what: &Replaced, rollback_id: &str) -> Result<Replaced> {
    match what {
        Replaced::Path {
            source,
            live,
            kept,
            carried,
            suffixes,
            mode,
        } => {
            let undone = swap::undone_path(live, rollback_id);
            let sfx: Vec<&str> = suffixes.iter().map(String::as_str).collect();
            if let (Some(k), Some(m)) = (kept, mode) {
                swap::set_mode(k, *m)?;
            }
            let moved = swap::swap_back(live, kept.as_deref(), &undone, carried, &sfx)?;
            let mode = match (moved, mode) {
                (true, Some(_)) => swap::make_private(&undone)?,
                _ => None,
            };
            Ok(Replaced::Path {
                source: source.clone(),
                live: live.clone(),
                kept: moved.then_some(undone),
                carried: carried.clone(),
                suffixes: suffixes.clone(),
                mode,
            })
        }
        Replaced::Postgres { source, db, kept } => Ok(Replaced::Postgres {
            source: source.clone(),
            db: db.clone(),
            kept: postgres::undo(db, kept.as_deref())?,
        }),
        Replaced::Mysql { source, db, kept } => Ok(Replaced::Mysql {
            source: source.clone(),
            db: db.clone(),
            kept: mysql::undo(db, kept.as_deref())?,
        }),
        Replaced::Redis {
            source,
            spec,
            rdb,
            kept,
        } => Ok(Replaced::Redis {
            source: source.clone(),
            spec: spec.clone(),
            rdb: rdb.clone(),
            kept: redis::undo(spec, rdb, kept.as_deref(), rollback_id)?,
        }),
        Replaced::Command { source, command } => anyhow::bail!(
            "source `{source}` was piped into `{command}`; a stream cannot be taken back out: restore an older point of it instead"
        ),
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
/// `kinds` limits it to sources of those kinds (empty: all).
pub fn check_live(svc: &Service, snap: &Snapshot, kinds: &[String]) -> Result<Vec<LiveCheck>> {
    let mut out = Vec::new();
    for record in &snap.sources {
        let Some(src) = svc.sources.iter().find(|s| s.name == record.name) else {
            continue;
        };
        if !kinds.is_empty() && !kinds.iter().any(|k| k == src.kind.name()) {
            continue;
        }
        let what = || format!("checking {} {}", record.kind, record.name);
        let (detail, differences) = match &src.kind {
            SourceKind::Postgres(db) => summarize(
                &record.facts,
                postgres::live_facts(db, &record.facts).with_context(what)?,
            ),
            SourceKind::Mysql(db) => summarize(
                &record.facts,
                mysql::live_facts(db, &record.facts).with_context(what)?,
            ),
            SourceKind::Sqlite { path } => {
                summarize(&record.facts, sqlite::facts(path).with_context(what)?)
            }
            SourceKind::Redis(r) => redis::check_live(r, &record.facts).with_context(what)?,
            // Recovery decides what a cluster holds; its log says how far it got.
            SourceKind::PostgresCluster(_) => continue,
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

/// Logs in where the source lives, as a backup will: a PostgreSQL or
/// MariaDB session, a Redis INFO. Other kinds have nothing to log in to.
pub fn login(src: &Source) -> Result<()> {
    match &src.kind {
        SourceKind::Postgres(db) => postgres::ping(db),
        SourceKind::Mysql(db) => mysql::ping(db),
        SourceKind::Redis(r) => redis::ping(r),
        _ => Ok(()),
    }
}

/// Preflight for restoring a streamed source live: credentials readable,
/// the server or the place reachable, the restore configured.
pub fn preflight(src: &crate::model::Source) -> Vec<(&'static str, bool, String)> {
    let mut out = Vec::new();
    let mut password = |f: &Option<crate::util::SecretRef>| {
        if let Some(f) = f {
            let read = process::read_password(f);
            out.push((
                "credentials readable",
                read.is_ok(),
                match read {
                    Ok(_) => format!("the password file {} is readable", f.text()),
                    Err(e) => format!("{e:#}"),
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
        SourceKind::PostgresCluster(c) => {
            password(&c.password_file);
            out.extend(reach(&c.host, c.port, false));
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
