//! MariaDB/MySQL: `mariadb-dump --single-transaction` (or `mysqldump`)
//! streamed into the repository. The dump's own consistent view cannot be
//! shared, so the rows per table (and checksums) recorded for checks are
//! read from the dump itself as it streams past (see mysql_rows). Restore loads into a new database,
//! checks it, then swaps the tables in with one atomic RENAME TABLE; the
//! old tables are kept in another database.

use super::capture::{Artifact, Capture};
use super::ledger::{Ledger, Made};
use super::mysql_client::{client, ident, literal, options, query};
use super::mysql_rows::{self as rows, RowCounter, Shared};
use super::process::{self, produce};
use super::{Commit, Streams, To};
use crate::model::Database;
use crate::repo::snapshot::{Facts, SourceRecord};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;

pub struct MysqlCapture {
    name: String,
    db: Database,
    facts: Facts,
    counted: Shared,
}

impl MysqlCapture {
    pub fn new(name: &str, db: &Database) -> Self {
        MysqlCapture {
            name: name.to_string(),
            db: db.clone(),
            facts: Facts::default(),
            counted: Shared::default(),
        }
    }
}

/// Version, schema hash and (zeroed) base tables of `database`.
fn describe(db: &Database, database: &str) -> Result<Facts> {
    let mut f = Facts {
        server: query(db, None, "SELECT VERSION()")?
            .first()
            .and_then(|r| r.first().cloned()),
        ..Facts::default()
    };
    let lit = literal(database);
    let Some((charset, collation)) = defaults(db, database)? else {
        bail!(
            "database `{database}` does not exist on {}:{}",
            db.host,
            db.port
        );
    };
    f.objects
        .insert(DEFAULTS.into(), format!("{charset} {collation}"));
    // A view's stored definition names its own database; a copy under
    // another name (a drill's) must still compare equal.
    for (what, sql) in [
        ("view", format!("SELECT table_name, MD5(REPLACE(view_definition, CONCAT('`', table_schema, '`.'), '')) FROM information_schema.views WHERE table_schema = {lit}")),
        ("trigger", format!("SELECT CONCAT(event_object_table, '.', trigger_name), MD5(CONCAT_WS(' ', action_timing, event_manipulation, action_statement)) FROM information_schema.triggers WHERE trigger_schema = {lit}")),
        ("routine", format!("SELECT CONCAT(LOWER(routine_type), ' ', routine_name), MD5(CONCAT_WS(' ', routine_definition, dtd_identifier)) FROM information_schema.routines WHERE routine_schema = {lit}")),
    ] {
        for r in query(db, None, &sql)? {
            if let [name, hash] = r.as_slice() {
                let name = match what {
                    "routine" => name.clone(),
                    _ => format!("{what} {name}"),
                };
                f.objects.insert(name, short_hash(hash));
            }
        }
    }
    for t in query(db, None, &format!("SELECT table_name FROM information_schema.tables WHERE table_schema = {lit} AND table_type = 'BASE TABLE'"))? {
        if let Some(name) = t.first() {
            f.counts.insert(name.clone(), 0);
        }
    }
    let cols = query(db, None, &format!("SELECT table_name, column_name, column_type FROM information_schema.columns WHERE table_schema = {lit} ORDER BY table_name, ordinal_position"))?;
    let mut h = blake3::Hasher::new();
    for c in cols {
        h.update(c.join("\0").as_bytes());
        h.update(b"\n");
    }
    f.schema = Some(h.finalize().to_hex().to_string());
    Ok(f)
}

/// The `facts.objects` entry holding a database's default character set
/// and collation ("utf8mb4 utf8mb4_unicode_ci"), which a restore keeps.
const DEFAULTS: &str = "database default character set and collation";

fn short_hash(h: &str) -> String {
    h.chars().take(12).collect()
}

/// The default character set and collation of `database`; None when it
/// does not exist.
fn defaults(db: &Database, database: &str) -> Result<Option<(String, String)>> {
    let rows = query(
        db,
        None,
        &format!(
            "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata WHERE schema_name = {}",
            literal(database)
        ),
    )?;
    Ok(rows.into_iter().next().and_then(|r| match r.as_slice() {
        [cs, co] => Some((cs.clone(), co.clone())),
        _ => None,
    }))
}

/// ` CHARACTER SET cs COLLATE co` for a CREATE or ALTER DATABASE, from a
/// recorded "cs co" (empty when nothing usable was recorded: the
/// server's default then).
fn charset_clause(recorded: Option<&String>) -> String {
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match recorded.and_then(|r| r.split_once(' ')) {
        Some((cs, co)) if valid(cs) && valid(co) => {
            format!(" CHARACTER SET {cs} COLLATE {co}")
        }
        _ => String::new(),
    }
}

/// A session on the database, as a backup opens it.
pub fn ping(db: &Database) -> Result<()> {
    query(db, Some(&db.database), "SELECT 1").map(|_| ())
}

/// Rows, schema and version of the live database (and checksums of the
/// tables `recorded` has them for), for a check after restore.
pub fn live_facts(db: &Database, recorded: &Facts) -> Result<Facts> {
    let mut f = describe(db, &db.database)?;
    let tables: Vec<String> = f.counts.keys().cloned().collect();
    f.counts = count_rows(db, &db.database, tables.into_iter())?;
    rows::add_as(db, &db.database, recorded, &mut f)?;
    Ok(f)
}

/// Rows per table of a restored database, counted by the server.
fn count_rows(
    db: &Database,
    database: &str,
    tables: impl Iterator<Item = String>,
) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for t in tables {
        let r = query(
            db,
            Some(database),
            &format!("SELECT COUNT(*) FROM {}", ident(&t)),
        )?;
        let n = r
            .first()
            .and_then(|r| r.first())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| anyhow!("counting rows of {t}: no answer"))?;
        out.insert(t, n);
    }
    Ok(out)
}

impl Capture for MysqlCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn start(&mut self) -> Result<Vec<Artifact>> {
        self.facts = describe(&self.db, &self.db.database)?;
        let opts = options(&self.db)?;
        let (name, mut c) = client(&["mariadb-dump", "mysqldump"], &opts)?;
        c.args([
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--hex-blob",
        ])
        .arg(&self.db.database);
        let mut a = produce(
            &name,
            c,
            &format!("{}.sql", self.db.database),
            Box::new(opts),
        )?;
        a.reader = Box::new(RowCounter::new(
            a.reader,
            std::sync::Arc::clone(&self.counted),
            self.db.checksums,
        ));
        Ok(vec![a])
    }

    fn facts(mut self: Box<Self>) -> Result<Facts> {
        let counted = self
            .counted
            .lock()
            .map_err(|_| anyhow!("row counter poisoned"))?
            .clone();
        for (t, n) in &counted.rows {
            *self.facts.counts.entry(t.clone()).or_default() += n;
        }
        if self.db.checksums {
            rows::record(&counted, &mut self.facts);
        }
        Ok(std::mem::take(&mut self.facts))
    }
}

/// A database name with a suffix, within MariaDB/MySQL's 64-byte limit.
fn with_suffix(base: &str, suffix: &str) -> String {
    super::name_with_suffix(base, suffix, 64)
}

/// Loads the dump of `record` into a new database and checks its tables,
/// rows and schema against the backup's. The new database is written down
/// in `ledger` before it exists.
pub fn stage(
    db: &Database,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
    ledger: &Ledger,
) -> Result<(String, Vec<String>, Commit)> {
    let dump = record.file(".sql", "SQL dump")?;
    let stamp = super::stamp();
    let new = match to {
        To::Live { .. } => with_suffix(&db.database, &format!("_lifeboat_new_{stamp}")),
        To::Sandbox(_) => format!("lifeboat_drill_{stamp}_{:04x}", rand::random::<u16>()),
    };
    let made = Made::Mysql {
        db: db.clone(),
        name: new.clone(),
    };
    ledger.made(made.clone())?;
    // With the recorded defaults: tables and routines created later in
    // the database, and the check, depend on them.
    let create = format!(
        "CREATE DATABASE {}{}",
        ident(&new),
        charset_clause(record.facts.objects.get(DEFAULTS))
    );
    if let Err(e) = query(db, None, &create) {
        ledger.unmade(&made);
        return Err(e);
    }
    let forget = || {
        if drop_named(db, &new).is_ok() {
            ledger.unmade(&made);
        }
    };
    let loaded = (|| -> Result<Facts> {
        let opts = options(db)?;
        let (name, mut c) = client(&["mariadb", "mysql"], &opts)?;
        c.arg(&new);
        process::consume(&name, c, &mut streams.open(dump)?, &|| streams.cancelled())?;
        let mut f = describe(db, &new)?;
        let tables: Vec<String> = f.counts.keys().cloned().collect();
        f.counts = count_rows(db, &new, tables.into_iter())?;
        rows::add_as(db, &new, &record.facts, &mut f)?;
        Ok(f)
    })();
    let found = match loaded {
        Ok(f) => f,
        Err(e) => {
            forget();
            return Err(e.context(format!(
                "loading into the new database `{new}` failed; `{}` was not touched",
                db.database
            )));
        }
    };
    let differences = record.facts.differences(&found);
    let rows: u64 = found.counts.values().sum();
    let summary = format!("{} tables, {rows} rows", found.counts.len());
    match to {
        To::Sandbox(_) => {
            forget();
            Ok((
                format!(
                    "loaded into the throwaway database `{new}`: {summary} (dropped afterwards)"
                ),
                differences,
                Commit::None,
            ))
        }
        To::Live { .. } => {
            if !differences.is_empty() {
                forget();
                bail!(
                    "the restored database does not match the backup ({}); `{}` was not touched",
                    differences.join("; "),
                    db.database
                );
            }
            // RENAME TABLE cannot move views, triggers or routines between
            // databases: say so before anything is swapped.
            if has_objects_beyond_tables(db, &new)? {
                bail!("the database has views, triggers or routines, which cannot be swapped in table by table; nothing was changed. Restore it by hand: `lifeboat restore POINT .lifeboat/{} --target DIR` gives the dump to load with `mariadb`", record.name);
            }
            Ok((
                format!("{summary}, checked against the backup"),
                differences,
                Commit::Mysql {
                    db: db.clone(),
                    new,
                },
            ))
        }
    }
}

fn has_objects_beyond_tables(db: &Database, database: &str) -> Result<bool> {
    let n = literal(database);
    let extras = query(db, None, &format!(
        "SELECT (SELECT COUNT(*) FROM information_schema.views WHERE table_schema = {n}) + (SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = {n}) + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = {n})"
    ))?;
    Ok(extras.first().and_then(|r| r.first()).map(String::as_str) != Some("0"))
}

fn tables_of(db: &Database, database: &str) -> Result<Vec<String>> {
    Ok(query(
        db,
        None,
        &format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = {}",
            literal(database)
        ),
    )?
    .into_iter()
    .filter_map(|r| r.into_iter().next())
    .collect())
}

/// Swaps the checked copy `new` in (its tables move; the emptied database
/// is the caller's to drop); returns the database the previous tables are
/// kept in (None when the live database had none).
pub fn commit(db: &Database, new: &str) -> Result<Option<String>> {
    let old = with_suffix(&db.database, &format!("_lifeboat_old_{}", super::stamp()));
    let moved = swap(db, &db.database, new, &old)?;
    Ok(moved.then_some(old))
}

/// Puts the tables kept in `kept` back; the restored ones move to another
/// database, which is returned.
pub fn undo(db: &Database, kept: Option<&str>) -> Result<Option<String>> {
    let undone = with_suffix(
        &db.database,
        &format!("_lifeboat_undone_{}", super::stamp()),
    );
    match kept {
        Some(k) => {
            if tables_of(db, k)?.is_empty() {
                bail!(
                    "the kept database `{k}` is gone or empty; `{}` was left as it is",
                    db.database
                );
            }
            let moved = swap(db, &db.database, k, &undone)?;
            query(db, None, &format!("DROP DATABASE IF EXISTS {}", ident(k)))?;
            Ok(moved.then_some(undone))
        }
        None => {
            let live = tables_of(db, &db.database)?;
            if live.is_empty() {
                return Ok(None);
            }
            query(db, None, &format!("CREATE DATABASE {}", ident(&undone)))?;
            rename_tables(db, &renames(&db.database, &undone, &live))?;
            Ok(Some(undone))
        }
    }
}

/// Drops a database a restore made.
pub fn drop_named(db: &Database, name: &str) -> Result<()> {
    query(
        db,
        None,
        &format!("DROP DATABASE IF EXISTS {}", ident(name)),
    )
    .map(|_| ())
}

fn renames(from: &str, to: &str, tables: &[String]) -> Vec<String> {
    tables
        .iter()
        .map(|t| format!("{}.{} TO {}.{}", ident(from), ident(t), ident(to), ident(t)))
        .collect()
}

fn rename_tables(db: &Database, renames: &[String]) -> Result<()> {
    if renames.is_empty() {
        return Ok(());
    }
    // Waiting behind an application's open transaction for the default
    // year would hang the restore: give up after `lock_timeout` instead.
    query(
        db,
        None,
        &format!(
            "SET SESSION lock_wait_timeout = {}; RENAME TABLE {}",
            db.lock_timeout.as_secs().max(1),
            renames.join(", ")
        ),
    )
    .map(|_| ())
    .with_context(|| {
        format!(
            "the tables were still in use after lock_timeout ({}s)",
            db.lock_timeout.as_secs().max(1)
        )
    })
}

/// Moves the tables of `live` into `old` and those of `new` into `live`,
/// in one atomic RENAME TABLE. Returns whether any live table moved; when
/// the rename fails, the `old` database it made is dropped again.
fn swap(db: &Database, live: &str, new: &str, old: &str) -> Result<bool> {
    let live_tables = tables_of(db, live)?;
    let new_tables = tables_of(db, new)?;
    let joined = |d: Option<(String, String)>| d.map(|(cs, co)| format!("{cs} {co}"));
    let had = joined(defaults(db, live)?);
    let wanted = joined(defaults(db, new)?);
    query(
        db,
        None,
        &format!(
            "CREATE DATABASE IF NOT EXISTS {}{}",
            ident(live),
            charset_clause(wanted.as_ref())
        ),
    )?;
    if !live_tables.is_empty() {
        query(
            db,
            None,
            &format!(
                "CREATE DATABASE {}{}",
                ident(old),
                charset_clause(had.as_ref())
            ),
        )?;
    }
    let mut all = renames(live, old, &live_tables);
    all.extend(renames(new, live, &new_tables));
    if let Err(e) = rename_tables(db, &all) {
        if !live_tables.is_empty() {
            let _ = query(db, None, &format!("DROP DATABASE IF EXISTS {}", ident(old)));
        }
        return Err(e.context(format!("`{live}` was left as it was")));
    }
    // The live database takes the copy's defaults (the recorded ones), as
    // a database restored under its own name would have them.
    if had.is_some() && wanted.is_some() && had != wanted {
        query(
            db,
            None,
            &format!(
                "ALTER DATABASE {}{}",
                ident(live),
                charset_clause(wanted.as_ref())
            ),
        )
        .context(
            "the tables were swapped in, but setting the database's default character set failed",
        )?;
    }
    Ok(!live_tables.is_empty())
}
