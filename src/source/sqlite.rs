//! SQLite: SQLite's online backup API copies a live database (WAL mode
//! included) page by page inside one read transaction, so the copy is
//! consistent while the application keeps writing. Restore writes a new
//! file beside the live one, checks it, and swaps it in atomically; the old
//! file (and its -wal/-shm, which would otherwise be replayed into the new
//! one) is kept beside it.

use super::capture::{Artifact, Capture};
use super::ledger::{Ledger, Made};
use super::{Commit, Streams, To};
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
    /// Chunks of whole pages for the copy, once its header was read.
    chunk_size: Option<u32>,
}

impl SqliteCapture {
    pub fn new(name: &str, path: &Path, cache_dir: &Path) -> Self {
        SqliteCapture {
            name: name.to_string(),
            path: path.to_path_buf(),
            cache_dir: cache_dir.to_path_buf(),
            facts: Facts::default(),
            chunk_size: None,
        }
    }
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> anyhow::Error + '_ {
    move |e| anyhow!("{}: {e}", path.display())
}

/// Opens a database file that nothing else writes (a copy or a restored
/// file) without creating `-wal` or `-shm` beside it.
fn open_immutable(path: &Path) -> rusqlite::Result<Connection> {
    let mut uri = url_escape(path);
    uri.insert_str(0, "file:");
    uri.push_str("?immutable=1");
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
}

fn url_escape(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| match b {
            b'?' | b'#' | b'%' | 0x80.. => format!("%{b:02X}"),
            _ => (b as char).to_string(),
        })
        .collect()
}

/// Integrity, rows per table and a schema hash of the live database at
/// `path`, read as any other reader would.
pub fn facts(path: &Path) -> Result<Facts> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql_err(path))?;
    facts_of(&c, path)
}

/// The same for a copy nothing else writes (a backup's copy, a restored
/// file): opened immutable, so checking it leaves no `-wal`/`-shm` behind.
pub fn facts_of_copy(path: &Path) -> Result<Facts> {
    let c = open_immutable(path).map_err(sql_err(path))?;
    facts_of(&c, path)
}

fn facts_of(c: &Connection, path: &Path) -> Result<Facts> {
    let err = sql_err(path);
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
        self.facts = facts_of_copy(copy.path())?;
        let file = copy.reopen().context("reading the database copy")?;
        self.chunk_size = page_size(&file).and_then(|page| {
            let len = file.metadata().ok()?.len();
            crate::repo::chunker::page_chunk_size(page, len)
        });
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

    fn chunk_size(&self, _file: &str) -> Option<u32> {
        self.chunk_size
    }

    fn facts(mut self: Box<Self>) -> Result<Facts> {
        Ok(std::mem::take(&mut self.facts))
    }
}

/// The page size a database file's header gives (two bytes at offset 16,
/// big-endian; 1 means 65536), or None when it is no SQLite header.
fn page_size(f: &fs::File) -> Option<u32> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 18];
    f.read_exact_at(&mut head, 0).ok()?;
    if &head[..16] != b"SQLite format 3\0" {
        return None;
    }
    match u16::from_be_bytes([head[16], head[17]]) {
        1 => Some(65536),
        n => Some(n as u32),
    }
}

/// The companions of a live SQLite database: moved aside with it, never
/// left beside a restored copy (a stale WAL would be replayed into it).
pub const COMPANIONS: &[&str] = &["-wal", "-shm", "-journal"];

/// Writes the database of `record` to a new file and checks it: the
/// integrity check, and its tables and rows against the backup's.
pub fn stage(
    path: &Path,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
    ledger: &Ledger,
) -> Result<(String, Vec<String>, Commit)> {
    let file = record.file("", "database file")?;
    let new = match to {
        To::Live { file: Some(f) } => f.clone(),
        To::Live { file: None } => super::swap::staging_path(path, &ledger.id()),
        To::Sandbox(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join(format!("{}.sqlite", record.name))
        }
    };
    let made = Made::Path { path: new.clone() };
    ledger.made(made.clone())?;
    let checked = (|| -> Result<Facts> {
        if let Some(parent) = new.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        super::write_new_file(&new, &mut streams.open(file)?)?;
        facts_of_copy(&new)
    })();
    let found = match checked {
        Ok(f) => f,
        Err(e) => {
            let _ = fs::remove_file(&new);
            ledger.unmade(&made);
            return Err(e.context(format!("{} was not touched", path.display())));
        }
    };
    let differences = record.facts.differences(&found);
    let rows: u64 = found.counts.values().sum();
    let summary = format!(
        "{} tables, {rows} rows, integrity_check ok",
        found.counts.len()
    );
    let forget = || {
        let _ = fs::remove_file(&new);
        ledger.unmade(&made);
    };
    super::finish_file(
        "database",
        path,
        new.clone(),
        to,
        summary,
        differences,
        COMPANIONS,
        forget,
    )
}
