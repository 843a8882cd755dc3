//! What a restore made and what it replaced, written down as it happens.
//!
//! Every restore has an id. Before it creates anything (a staging
//! directory, a new database, a new file beside a live one) it writes that
//! down, and when it replaces live data it writes down where the old data
//! is kept. The record is `<state_dir>/restores/ID.json`, rewritten
//! atomically on every change, so after a crash the next run knows what
//! to clean up, `lifeboat rollback ID` knows what to put back, and
//! `lifeboat leftovers` knows what takes space.

use crate::model::{Database, Redis};
use crate::util::Holder;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Something a restore created that is not live data: removed when the
/// restore ends, however it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Made {
    /// A staging directory or a new file beside a live one.
    Path {
        path: PathBuf,
    },
    /// A database restored into before it is checked and swapped in.
    Postgres {
        db: Database,
        name: String,
    },
    Mysql {
        db: Database,
        name: String,
    },
    /// A swap of `staged` in for `live` under way: written down before
    /// its first rename, so a crash in the middle is put right (the swap
    /// finished is kept, one half done is undone) rather than its staging,
    /// which may hold entries carried over from the live copy, removed.
    Swap {
        source: String,
        staged: PathBuf,
        live: PathBuf,
        kept: PathBuf,
        carried: Vec<PathBuf>,
    },
}

impl Made {
    pub fn describe(&self) -> String {
        match self {
            Made::Path { path } => path.display().to_string(),
            Made::Postgres { db, name } => {
                format!("PostgreSQL database `{name}` on {}:{}", db.host, db.port)
            }
            Made::Mysql { db, name } => {
                format!("MariaDB database `{name}` on {}:{}", db.host, db.port)
            }
            Made::Swap { live, .. } => format!("an unfinished swap of {}", live.display()),
        }
    }
}

/// Live data a restore replaced, and where the old data is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Replaced {
    /// A live directory or file swapped for its restored copy. `kept` is
    /// None when nothing was there before. `carried` entries (relative to
    /// `live`) belong to other sources or were excluded from the backup:
    /// they stayed where they were. `suffixes` are companion files moved
    /// with it (a SQLite database's `-wal` and `-shm`).
    Path {
        source: String,
        live: PathBuf,
        kept: Option<PathBuf>,
        #[serde(default)]
        carried: Vec<PathBuf>,
        #[serde(default)]
        suffixes: Vec<String>,
        /// The kept copy of secrets is made private (0700/0600) while it
        /// waits; this is the mode it goes back with.
        #[serde(default)]
        mode: Option<u32>,
    },
    Postgres {
        source: String,
        db: Database,
        kept: Option<String>,
    },
    Mysql {
        source: String,
        db: Database,
        kept: Option<String>,
    },
    Redis {
        source: String,
        spec: Redis,
        rdb: PathBuf,
        kept: Option<PathBuf>,
    },
    /// A stream piped into its restore command: nothing to put back.
    Command { source: String, command: String },
}

impl Replaced {
    pub fn source(&self) -> &str {
        match self {
            Replaced::Path { source, .. }
            | Replaced::Postgres { source, .. }
            | Replaced::Mysql { source, .. }
            | Replaced::Redis { source, .. }
            | Replaced::Command { source, .. } => source,
        }
    }

    /// What was replaced, for people.
    pub fn what(&self) -> String {
        match self {
            Replaced::Path { live, .. } => live.display().to_string(),
            Replaced::Postgres { db, .. } => format!("PostgreSQL database `{}`", db.database),
            Replaced::Mysql { db, .. } => format!("MariaDB database `{}`", db.database),
            Replaced::Redis { rdb, .. } => format!("Redis data {}", rdb.display()),
            Replaced::Command { command, .. } => format!("the stream piped into `{command}`"),
        }
    }

    /// Where the previous data is, for people; None when there was none
    /// (or it cannot be kept).
    pub fn kept_text(&self) -> Option<String> {
        match self {
            Replaced::Path { kept, .. } | Replaced::Redis { kept, .. } => {
                kept.as_ref().map(|k| k.display().to_string())
            }
            Replaced::Postgres { kept, .. } | Replaced::Mysql { kept, .. } => {
                kept.as_ref().map(|k| format!("database `{k}`"))
            }
            Replaced::Command { .. } => None,
        }
    }
}

/// A restore's record, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub service: String,
    /// The restore point's id and time.
    pub point: String,
    pub point_time: String,
    pub started: String,
    pub holder: Holder,
    /// Made and not removed yet: after a crash, what to clean up.
    #[serde(default)]
    pub made: Vec<Made>,
    /// In the order it happened; a rollback undoes the last first.
    #[serde(default)]
    pub replaced: Vec<Replaced>,
    /// The job it ran in, if any (`lifeboat rollback JOB` undoes them all).
    #[serde(default)]
    pub job: Option<String>,
    /// The restore this one undid, when it is a rollback.
    #[serde(default)]
    pub undoes: Option<String>,
    /// The rollback that undid this restore.
    #[serde(default)]
    pub undone_by: Option<String>,
    #[serde(default)]
    pub finished: bool,
}

/// The live record of one restore. Without a directory (library use, tests)
/// it is kept in memory only.
pub struct Ledger {
    path: Option<PathBuf>,
    rec: Mutex<Record>,
}

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("restores")
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        anyhow::bail!("`{id}` is not a restore id (see `lifeboat leftovers`)");
    }
    Ok(())
}

impl Ledger {
    pub fn new(
        state_dir: Option<&Path>,
        id: &str,
        service: &str,
        point: (&str, &str),
    ) -> Result<Ledger> {
        check_id(id)?;
        let rec = Record {
            id: id.to_string(),
            service: service.to_string(),
            point: point.0.to_string(),
            point_time: point.1.to_string(),
            started: crate::repo::snapshot::now_rfc3339(),
            holder: Holder::me(),
            made: Vec::new(),
            replaced: Vec::new(),
            job: None,
            undoes: None,
            undone_by: None,
            finished: false,
        };
        let path = match state_dir {
            Some(d) => {
                let d = dir(d);
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                Some(d.join(format!("{id}.json")))
            }
            None => None,
        };
        Ok(Ledger {
            path,
            rec: Mutex::new(rec),
        })
    }

    /// The same ledger, recorded as part of job `job`.
    pub fn in_job(self, job: &str) -> Ledger {
        self.with(|r| r.job = Some(job.to_string()));
        self
    }

    pub fn id(&self) -> String {
        self.with(|r| r.id.clone())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        match self.rec.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn save(&self, rec: &Record) -> Result<()> {
        let Some(p) = &self.path else { return Ok(()) };
        write_atomic(p, &serde_json::to_vec_pretty(rec)?)
    }

    fn change(&self, f: impl FnOnce(&mut Record)) -> Result<()> {
        let rec = self.with(|r| {
            f(r);
            r.clone()
        });
        self.save(&rec)
    }

    /// Written down before it is created, so a crash in between leaves a
    /// name to clean up rather than an unnamed copy of production data.
    pub fn made(&self, m: Made) -> Result<()> {
        self.change(|r| r.made.push(m))
    }

    /// It is gone (removed, or swapped in and now live).
    pub fn unmade(&self, m: &Made) {
        let _ = self.change(|r| r.made.retain(|x| x != m));
    }

    /// Written down as soon as the swap happened.
    pub fn replaced(&self, what: Replaced) -> Result<()> {
        self.change(|r| r.replaced.push(what))
    }

    pub fn set_undoes(&self, id: &str) -> Result<()> {
        self.change(|r| r.undoes = Some(id.to_string()))
    }

    pub fn record(&self) -> Record {
        self.with(|r| r.clone())
    }

    /// The restore is over (its made list is empty, or what is left in it
    /// could not be removed): a record that holds nothing to roll back or
    /// clean up is removed. See `source::cleanup::finish`.
    pub fn close(&self) -> Result<()> {
        let rec = self.with(|r| {
            r.finished = true;
            r.clone()
        });
        if rec.replaced.is_empty() && rec.made.is_empty() && rec.undoes.is_none() {
            if let Some(p) = &self.path {
                let _ = std::fs::remove_file(p);
            }
            return Ok(());
        }
        self.save(&rec)
            .context("could not write the restore record")
    }
}

/// Writes `bytes` to `path` so a reader sees the old or the new content,
/// never half of one: a temporary file beside it, synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow!("writing {}: {}", path.display(), e.error))?;
    Ok(())
}

pub fn load(state_dir: &Path, id: &str) -> Result<Record> {
    check_id(id)?;
    let p = dir(state_dir).join(format!("{id}.json"));
    let raw = std::fs::read(&p).with_context(|| {
        format!(
            "no restore `{id}` is recorded in {}",
            dir(state_dir).display()
        )
    })?;
    serde_json::from_slice(&raw)
        .with_context(|| format!("the restore record {} is damaged", p.display()))
}

pub fn save(state_dir: &Path, rec: &Record) -> Result<()> {
    check_id(&rec.id)?;
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    write_atomic(
        &d.join(format!("{}.json", rec.id)),
        &serde_json::to_vec_pretty(rec)?,
    )
}

pub fn remove(state_dir: &Path, id: &str) -> Result<()> {
    check_id(id)?;
    let p = dir(state_dir).join(format!("{id}.json"));
    std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))
}

/// Every restore record, oldest first. Damaged ones are returned by name.
pub fn list(state_dir: &Path) -> (Vec<Record>, Vec<(PathBuf, String)>) {
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir(state_dir)) else {
        return (out, damaged);
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match std::fs::read(&p)
            .map_err(anyhow::Error::from)
            .and_then(|raw| Ok(serde_json::from_slice::<Record>(&raw)?))
        {
            Ok(r) => out.push(r),
            Err(e) => damaged.push((p, format!("{e:#}"))),
        }
    }
    out.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    (out, damaged)
}

/// A new restore id: sortable, unique, safe as a file name.
pub fn new_id(what: &str) -> String {
    let t = crate::repo::snapshot::now_rfc3339();
    let digits: String = t.chars().filter(|c| c.is_ascii_digit()).take(14).collect();
    let safe: String = what
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect();
    format!("{digits}-{safe}-{:04x}", rand::random::<u16>())
}
