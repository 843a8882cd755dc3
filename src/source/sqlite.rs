//! SQLite: SQLite's online backup API copies a live database (WAL mode
//! included) page by page inside one read transaction, so the copy is
//! consistent while the application keeps writing. Restore writes a new
//! file beside the live one, checks it, and swaps it in atomically; the old
//! file (and its -wal/-shm, which would otherwise be replayed into the new
//! one) is kept beside it.

use super::capture::{Artifact, Capture};
use super::{beside, Restored, Streams, To};
use crate::repo::snapshot::{Facts, SourceRecord};
use anyhow::{anyhow, bail, Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct SqliteCapture {
    name: String,
    path: PathBuf,
    cache_dir: PathBuf,
    facts: Facts,
}

impl SqliteCapture {
    pub fn new(name: &str, path: &Path, cache_dir: &Path) -> Self {
        SqliteCapture {
            name: name.to_string(),
            path: path.to_path_buf(),
            cache_dir: cache_dir.to_path_buf(),
            facts: Facts::default(),
        }
    }
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> anyhow::Error + '_ {
    move |e| anyhow!("{}: {e}", path.display())
}

/// Integrity, rows per table and a schema hash of the database at `path`.
pub fn facts(path: &Path) -> Result<Facts> {
    let err = sql_err(path);
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(&err)?;
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(&err)?;
    if integrity != "ok" {
        bail!("{}: integrity_check failed: {integrity}", path.display());
    }
    let mut f = Facts {
        server: Some(format!("SQLite {}", rusqlite::version())),
        ..Facts::default()
    };
    let mut st = c
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
        .map_err(&err)?;
    let rows: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(&err)?
        .collect::<Result<_, _>>()
        .map_err(&err)?;
    let mut h = blake3::Hasher::new();
    for (kind, name, sql) in &rows {
        h.update(format!("{kind}\0{name}\0{sql}\n").as_bytes());
        if kind == "table" && !sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            let n: i64 = c
                .query_row(
                    &format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\"")),
                    [],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            f.counts.insert(name.clone(), n as u64);
        }
    }
    f.schema = Some(h.finalize().to_hex().to_string());
    Ok(f)
}

impl Capture for SqliteCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn start(&mut self) -> Result<Vec<Artifact>> {
        let err = sql_err(&self.path);
        if !self.path.is_file() {
            bail!("{} does not exist or is not a file", self.path.display());
        }
        let src = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(&err)?;
        src.busy_timeout(Duration::from_secs(30)).map_err(&err)?;
        fs::create_dir_all(&self.cache_dir)
            .with_context(|| format!("creating {}", self.cache_dir.display()))?;
        let copy = tempfile::Builder::new()
            .prefix(".lifeboat-sqlite-")
            .tempfile_in(&self.cache_dir)
            .with_context(|| format!("creating a copy in {}", self.cache_dir.display()))?;
        {
            let mut dst = Connection::open(copy.path()).map_err(sql_err(copy.path()))?;
            let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(&err)?;
            // All pages in one step: one read transaction, so the copy is a
            // single consistent state however busy the writers are.
            loop {
                match backup.step(-1).map_err(&err)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {}
                }
            }
        }
        self.facts = facts(copy.path())?;
        let file = copy.reopen().context("reading the database copy")?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database.sqlite".into());
        Ok(vec![Artifact {
            file: name,
            reader: Box::new(file),
            done: Box::new(move || {
                drop(copy);
                Ok(())
            }),
        }])
    }

    fn facts(mut self: Box<Self>) -> Result<Facts> {
        Ok(std::mem::take(&mut self.facts))
    }
}

pub fn restore(path: &Path, record: &SourceRecord, streams: &Streams, to: &To) -> Result<Restored> {
    let file = record.files.first().ok_or_else(|| {
        anyhow!(
            "the restore point holds no database file for `{}`",
            record.name
        )
    })?;
    let stamp = super::stamp();
    let new = match to {
        To::Live => beside(path, &format!("new-{stamp}")),
        To::Sandbox(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join(format!("{}.sqlite", record.name))
        }
    };
    let checked = (|| -> Result<Facts> {
        super::write_new_file(&new, &mut streams.open(file)?)?;
        facts(&new)
    })();
    let found = match checked {
        Ok(f) => f,
        Err(e) => {
            let _ = fs::remove_file(&new);
            return Err(e.context(format!("{} was not touched", path.display())));
        }
    };
    let differences = record.facts.differences(&found);
    let rows: u64 = found.counts.values().sum();
    let summary = format!(
        "{} tables, {rows} rows, integrity_check ok",
        found.counts.len()
    );
    match to {
        To::Sandbox(_) => {
            let _ = fs::remove_file(&new);
            Ok(Restored {
                detail: format!("restored into a sandbox copy: {summary}"),
                differences,
                kept: None,
            })
        }
        To::Live => {
            if !differences.is_empty() {
                let _ = fs::remove_file(&new);
                bail!(
                    "the restored database does not match the backup ({}); {} was not touched",
                    differences.join("; "),
                    path.display()
                );
            }
            // The application's user must still own it.
            super::same_owner_as(&new, path);
            let old = beside(path, &format!("old-{stamp}"));
            let mut kept = Vec::new();
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = path.as_os_str().to_os_string();
                p.push(suffix);
                let p = PathBuf::from(p);
                if p.exists() {
                    let mut o = old.as_os_str().to_os_string();
                    o.push(suffix);
                    fs::rename(&p, &o).with_context(|| format!("moving {} aside", p.display()))?;
                    kept.push(PathBuf::from(o).display().to_string());
                }
            }
            fs::rename(&new, path)
                .with_context(|| format!("moving the restored copy to {}", path.display()))?;
            if let Some(dir) = path.parent() {
                let _ = fs::File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(Restored {
                detail: format!("{} replaced: {summary}", path.display()),
                differences,
                kept: (!kept.is_empty())
                    .then(|| format!("the previous database is kept as {}", kept.join(", "))),
            })
        }
    }
}
