//! PostgreSQL: `pg_dump --format=custom` streamed into the repository from
//! a snapshot exported by our own REPEATABLE READ transaction, so the row
//! counts recorded for checks are exactly what the dump holds, even under
//! a write load. Restore goes into a new database, is checked, and only
//! then swapped in; the old database is kept under another name.

use super::capture::{Artifact, Capture};
use super::ledger::{Ledger, Made};
use super::pg_checksums::Checksums;
use super::process::{self, produce};
use super::{Commit, Streams, To};
use crate::model::Database;
use crate::repo::snapshot::{Facts, SourceRecord};
use anyhow::{anyhow, bail, Result};
use postgres::{Client, NoTls};
use std::process::Command;
use std::time::Duration;

pub struct PgCapture {
    name: String,
    db: Database,
    client: Option<Client>,
    facts: Facts,
}

impl PgCapture {
    pub fn new(name: &str, db: &Database) -> Self {
        PgCapture {
            name: name.to_string(),
            db: db.clone(),
            client: None,
            facts: Facts::default(),
        }
    }
}

/// The configured password file's, else the one libpq would find in
/// PGPASSFILE or ~/.pgpass (so our own connection agrees with pg_dump's).
fn password(db: &Database, dbname: &str) -> Result<Option<String>> {
    if let Some(f) = &db.password_file {
        return process::read_password(f).map(Some);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")));
    let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) else {
        return Ok(None);
    };
    Ok(pgpass_lookup(&text, &db.host, db.port, dbname, &db.user))
}

/// The password of the first matching `host:port:db:user:password` line.
fn pgpass_lookup(text: &str, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let port = port.to_string();
        let host_ok = fields[0] == "*"
            || fields[0] == host
            || (fields[0] == "localhost" && host.starts_with('/'));
        if host_ok
            && (fields[1] == "*" || fields[1] == port)
            && (fields[2] == "*" || fields[2] == dbname)
            && (fields[3] == "*" || fields[3] == user)
        {
            return fields.pop();
        }
    }
    None
}

fn connect(db: &Database, dbname: &str) -> Result<Client> {
    let mut c = postgres::Config::new();
    c.host(&db.host)
        .port(db.port)
        .user(&db.user)
        .dbname(dbname)
        .application_name("lifeboat")
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = password(db, dbname)? {
        c.password(p);
    }
    c.connect(NoTls).map_err(|e| {
        anyhow!(
            "cannot connect to PostgreSQL database `{dbname}` at {}:{} as `{}`: {}",
            db.host,
            db.port,
            db.user,
            pg_error(&e)
        )
    })
}

/// The server's own message, without the driver's wrapping.
fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s = format!("{s}: {inner}");
                src = inner.source();
            }
            s
        }
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Server version, rows per table and a schema hash (and the tables'
/// checksums `which` asks for), as seen by `client`'s current transaction.
fn facts(client: &mut Client, which: Checksums<'_>) -> Result<Facts> {
    let q = |client: &mut Client, sql: &str| {
        client
            .query(sql, &[])
            .map_err(|e| anyhow!("PostgreSQL: {}", pg_error(&e)))
    };
    let mut f = Facts::default();
    let v = q(client, "SHOW server_version")?;
    f.server = v
        .first()
        .map(|r| format!("PostgreSQL {}", r.get::<_, String>(0)));
    let tables = q(
        client,
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
    )?;
    for t in tables {
        let (ns, rel): (String, String) = (t.get(0), t.get(1));
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {}.{}", quote(&ns), quote(&rel)),
                &[],
            )
            .map_err(|e| anyhow!("PostgreSQL: counting {ns}.{rel}: {}", pg_error(&e)))?
            .get(0);
        f.counts.insert(format!("{ns}.{rel}"), n as u64);
    }
    let cols = q(
        client,
        "SELECT table_schema::text, table_name::text, column_name::text, data_type::text \
         FROM information_schema.columns \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY table_schema, table_name, ordinal_position",
    )?;
    let mut h = blake3::Hasher::new();
    for c in cols {
        for i in 0..4 {
            h.update(c.get::<_, String>(i).as_bytes());
            h.update(b"\0");
        }
        h.update(b"\n");
    }
    f.schema = Some(h.finalize().to_hex().to_string());
    objects(client, &mut f)?;
    super::pg_checksums::add(client, which, &mut f, pg_error)?;
    Ok(f)
}

/// What a restore must bring back beyond tables and rows: functions and
/// procedures (by signature, with a hash of their body), triggers (with
/// whether they fire), materialized views' populated state, sequences,
/// and the large objects' count and size. The large-objects entry is
/// always there, so an empty `objects` means an older restore point.
fn objects(client: &mut Client, f: &mut Facts) -> Result<()> {
    let mut q = |sql: &str| {
        client
            .query(sql, &[])
            .map_err(|e| anyhow!("PostgreSQL: {}", pg_error(&e)))
    };
    const USER_SCHEMAS: &str =
        "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
    for r in q(&format!(
        "SELECT n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid)::text, \
         p.prokind::text, left(md5(coalesce(p.prosrc, '')), 12) FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMAS} \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
         AND d.objid = p.oid AND d.deptype = 'e')"
    ))? {
        let kind = match r.get::<_, String>(3).as_str() {
            "p" => "procedure",
            "a" => "aggregate",
            "w" => "window function",
            _ => "function",
        };
        let (ns, name, args): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        f.objects
            .insert(format!("{kind} {ns}.{name}({args})"), r.get(4));
    }
    for r in q(&format!(
        "SELECT n.nspname::text, c.relname::text, t.tgname::text, t.tgenabled::text, \
         left(md5(pg_get_triggerdef(t.oid)), 12) FROM pg_trigger t \
         JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT t.tgisinternal AND {USER_SCHEMAS}"
    ))? {
        let state = match r.get::<_, String>(3).as_str() {
            "D" => "disabled",
            "R" => "replica only",
            "A" => "always",
            _ => "enabled",
        };
        let (ns, table, name): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        f.objects.insert(
            format!("trigger {name} on {ns}.{table}"),
            format!("{state} {}", r.get::<_, String>(4)),
        );
    }
    for r in q(&format!(
        "SELECT n.nspname::text, c.relname::text, c.relispopulated FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm' AND {USER_SCHEMAS}"
    ))? {
        let (ns, name, populated): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        f.objects.insert(
            format!("materialized view {ns}.{name}"),
            if populated {
                "populated"
            } else {
                "not populated"
            }
            .into(),
        );
    }
    // Sequences are not transactional: read before pg_dump reads them,
    // a value can only have grown by the time it is dumped.
    for r in q(
        "SELECT schemaname::text, sequencename::text, data_type::text, last_value FROM pg_sequences \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )? {
        let (ns, name, ty): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let key = format!("sequence {ns}.{name}");
        if let Some(v) = r.get::<_, Option<i64>>(3) {
            f.minimums.insert(key.clone(), v);
        }
        f.objects.insert(key, ty);
    }
    // An extension's functions are its own (and change with its version):
    // what a restore must bring back is the extension.
    for r in q("SELECT extname::text FROM pg_extension WHERE extname <> 'plpgsql'")? {
        f.objects.insert(
            format!("extension {}", r.get::<_, String>(0)),
            "installed".into(),
        );
    }
    // lo_lseek64 to the end gives a size without reading the data; the
    // objects are read as of this transaction's snapshot (INV_READ).
    let lo = q(
        "SELECT count(*), coalesce(sum(lo_lseek64(lo_open(oid, 262144), 0, 2)), 0)::bigint \
         FROM pg_largeobject_metadata",
    )?;
    let (n, bytes): (i64, i64) = lo.first().map(|r| (r.get(0), r.get(1))).unwrap_or((0, 0));
    f.objects.insert(
        "large objects".into(),
        format!("{n} object{}, {bytes} bytes", if n == 1 { "" } else { "s" }),
    );
    Ok(())
}

fn tool(db: &Database, tool: &str) -> Result<(Command, Option<tempfile::NamedTempFile>)> {
    client_tool(tool, &db.host, db.port, &db.user, db.password_file.as_ref())
}

/// A PostgreSQL client tool with connection options; the password goes in
/// a private pgpass file named by PGPASSFILE, never on the command line.
/// The file lives as long as the returned guard.
pub(crate) fn client_tool(
    tool: &str,
    host: &str,
    port: u16,
    user: &str,
    password_file: Option<&crate::util::SecretRef>,
) -> Result<(Command, Option<tempfile::NamedTempFile>)> {
    let mut cmd = Command::new(tool);
    cmd.arg("--host")
        .arg(host)
        .arg("--port")
        .arg(port.to_string())
        .arg("--username")
        .arg(user)
        .arg("--no-password");
    let pass = match password_file.map(process::read_password).transpose()? {
        Some(p) => {
            let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
            let f = super::credentials::secret_file(&format!("*:*:*:*:{}\n", esc(&p)))?;
            cmd.env("PGPASSFILE", f.path());
            Some(f)
        }
        None => None,
    };
    Ok((cmd, pass))
}

impl Capture for PgCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn start(&mut self) -> Result<Vec<Artifact>> {
        process::find_tool(&["pg_dump"])?;
        let mut client = connect(&self.db, &self.db.database)?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| anyhow!("PostgreSQL: {}", pg_error(&e)))?;
        let snapshot: String = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .map_err(|e| anyhow!("PostgreSQL: exporting a snapshot: {}", pg_error(&e)))?
            .get(0);
        let which = match self.db.checksums {
            true => Checksums::All,
            false => Checksums::Off,
        };
        self.facts = facts(&mut client, which)?;
        let mut artifacts = Vec::new();
        if self.db.globals {
            let (mut cmd, pass) = tool(&self.db, "pg_dumpall")?;
            cmd.arg("--globals-only");
            // Password hashes live in pg_authid, which only a superuser
            // may read: anyone else gets roles, memberships and settings.
            if !is_superuser(&mut client)? {
                cmd.arg("--no-role-passwords");
                self.facts.notes.insert(
                    "globals".into(),
                    "without role passwords (the login is not a superuser)".into(),
                );
            }
            artifacts.push(produce("pg_dumpall", cmd, "globals.sql", Box::new(pass))?);
        }
        let (mut cmd, pass) = tool(&self.db, "pg_dump")?;
        // Uncompressed: a compressed dump changes from the first changed row
        // on, so nothing after it deduplicates; chunks are compressed anyway.
        // pg_restore reads the compressed dumps of older restore points.
        cmd.arg("--format=custom")
            .arg("--compress=0")
            .arg("--snapshot")
            .arg(&snapshot)
            .arg("--dbname")
            .arg(&self.db.database);
        artifacts.push(produce(
            "pg_dump",
            cmd,
            &format!("{}.pgdump", self.db.database),
            Box::new(pass),
        )?);
        // Our transaction holds the exported snapshot until pg_dump is done.
        self.client = Some(client);
        Ok(artifacts)
    }

    fn facts(mut self: Box<Self>) -> Result<Facts> {
        if let Some(mut c) = self.client.take() {
            let _ = c.batch_execute("COMMIT");
        }
        Ok(std::mem::take(&mut self.facts))
    }
}

fn is_superuser(client: &mut Client) -> Result<bool> {
    let r = client
        .query_one("SELECT current_setting('is_superuser')", &[])
        .map_err(|e| anyhow!("PostgreSQL: {}", pg_error(&e)))?;
    Ok(r.get::<_, String>(0) == "on")
}

/// A session on the database, as a backup opens it.
pub fn ping(db: &Database) -> Result<()> {
    connect(db, &db.database)?
        .simple_query("SELECT 1")
        .map(|_| ())
        .map_err(|e| anyhow!("PostgreSQL: {}", pg_error(&e)))
}

/// Rows, schema and version of the live database (and checksums of the
/// tables `recorded` has them for), for a check after restore.
pub fn live_facts(db: &Database, recorded: &Facts) -> Result<Facts> {
    facts(&mut connect(db, &db.database)?, Checksums::As(recorded))
}

/// A database name with a suffix, within PostgreSQL's 63-byte limit.
fn with_suffix(base: &str, suffix: &str) -> String {
    super::name_with_suffix(base, suffix, 63)
}

fn exec(client: &mut Client, sql: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .map_err(|e| anyhow!("PostgreSQL: {}", pg_error(&e)))
}

fn admin(db: &Database) -> Result<Client> {
    connect(db, "postgres").or_else(|_| connect(db, "template1"))
}

/// Restores the dump of `record` into a new database and checks its
/// tables, rows and schema against the backup's. The new database is
/// written down in `ledger` before it exists.
pub fn stage(
    db: &Database,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
    ledger: &Ledger,
) -> Result<(String, Vec<String>, Commit)> {
    process::find_tool(&["pg_restore"])?;
    let dump = record.file(".pgdump", "PostgreSQL dump")?;
    let stamp = super::stamp();
    let new = match to {
        To::Live { .. } => with_suffix(&db.database, &format!("_lifeboat_new_{stamp}")),
        To::Sandbox(_) => format!("lifeboat_drill_{stamp}_{:04x}", rand::random::<u16>()),
    };
    let mut admin = admin(db)?;
    // The copy gets the live database's owner, encoding and locale, so the
    // application's role still owns what it owned.
    let like = admin
        .query(
            "SELECT pg_get_userbyid(datdba)::text, pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text FROM pg_database WHERE datname = $1",
            &[&db.database],
        )
        .map_err(|e| anyhow!("PostgreSQL: {}", pg_error(&e)))?;
    let mut create = format!("CREATE DATABASE {} TEMPLATE template0", quote(&new));
    if let Some(r) = like.first() {
        let lit = |s: String| format!("'{}'", s.replace('\'', "''"));
        create.push_str(&format!(
            " OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote(&r.get::<_, String>(0)),
            lit(r.get(1)),
            lit(r.get(2)),
            lit(r.get(3))
        ));
    }
    let made = Made::Postgres {
        db: db.clone(),
        name: new.clone(),
    };
    ledger.made(made.clone())?;
    let forget = |admin: &mut Client| -> Option<String> {
        let problem = drop_database(admin, &new);
        if problem.is_none() {
            ledger.unmade(&made);
        }
        problem
    };
    if let Err(e) = exec(&mut admin, &create) {
        ledger.unmade(&made);
        return Err(e);
    }
    let loaded = (|| -> Result<(Facts, super::pg_amcheck::Verdict)> {
        let (mut cmd, _pass) = tool(db, "pg_restore")?;
        cmd.arg("--exit-on-error").arg("--dbname").arg(&new);
        let mut input = streams.open(dump)?;
        process::consume("pg_restore", cmd, &mut input, &|| streams.cancelled())?;
        let mut c = connect(db, &new)?;
        let f = facts(&mut c, Checksums::As(&record.facts))?;
        let amcheck = || tool(db, "pg_amcheck");
        Ok((f, super::pg_amcheck::run(amcheck, &new, &mut c, pg_error)))
    })();
    let (found, amcheck) = match loaded {
        Ok(f) => f,
        Err(e) => {
            let left = forget(&mut admin);
            return Err(e.context(format!(
                "restoring into the new database `{new}` failed; `{}` was not touched{}",
                db.database,
                left.map(|l| format!(" ({l})")).unwrap_or_default()
            )));
        }
    };
    let mut differences = record.facts.differences(&found);
    differences.extend(amcheck.corrupt);
    let tables = found.counts.len();
    let rows: u64 = found.counts.values().sum();
    let amcheck = amcheck.line.map(|l| format!("; {l}")).unwrap_or_default();
    match to {
        To::Sandbox(_) => {
            differences.extend(forget(&mut admin));
            Ok((
                format!(
                    "restored into the throwaway database `{new}`: {tables} tables, {rows} rows (dropped afterwards){amcheck}"
                ),
                differences,
                Commit::None,
            ))
        }
        To::Live { .. } => {
            if !differences.is_empty() {
                let left = forget(&mut admin);
                bail!(
                    "the restored database does not match the backup ({}); `{}` was not touched{}",
                    differences.join("; "),
                    db.database,
                    left.map(|l| format!(" ({l})")).unwrap_or_default()
                );
            }
            Ok((
                format!("{tables} tables, {rows} rows, checked against the backup{amcheck}"),
                differences,
                Commit::Postgres {
                    db: db.clone(),
                    new,
                },
            ))
        }
    }
}

/// Swaps the checked copy `new` in for the live database; returns the name
/// the previous database is kept under (None when there was none).
pub fn commit(db: &Database, new: &str) -> Result<Option<String>> {
    let mut admin = admin(db)?;
    let old = with_suffix(&db.database, &format!("_lifeboat_old_{}", super::stamp()));
    let had = swap(&mut admin, &db.database, new, &old, db.lock_timeout)?;
    Ok(had.then_some(old))
}

/// Puts `kept` back as the live database; the restored one is kept under
/// another name, which is returned.
pub fn undo(db: &Database, kept: Option<&str>) -> Result<Option<String>> {
    let mut admin = admin(db)?;
    let undone = with_suffix(
        &db.database,
        &format!("_lifeboat_undone_{}", super::stamp()),
    );
    match kept {
        Some(k) => {
            if !exists(&mut admin, k)? {
                bail!(
                    "the kept database `{k}` is gone; `{}` was left as it is",
                    db.database
                );
            }
            exec(
                &mut admin,
                &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", quote(k)),
            )?;
            let had = swap(&mut admin, &db.database, k, &undone, db.lock_timeout)?;
            Ok(had.then_some(undone))
        }
        None => {
            // The restore created the database: set it aside.
            if !exists(&mut admin, &db.database)? {
                return Ok(None);
            }
            rename_aside(&mut admin, &db.database, &undone, db.lock_timeout)?;
            Ok(Some(undone))
        }
    }
}

/// Drops a database a restore made (a leftover copy, after a crash).
pub fn drop_named(db: &Database, name: &str) -> Result<()> {
    let mut admin = admin(db)?;
    match drop_database(&mut admin, name) {
        None => Ok(()),
        Some(problem) => Err(anyhow!(problem)),
    }
}

fn exists(admin: &mut Client, name: &str) -> Result<bool> {
    Ok(!admin
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .map_err(|e| anyhow!("PostgreSQL: {}", pg_error(&e)))?
        .is_empty())
}

/// For a live restore's plan: what happens to what is there now, and its
/// size, None when there is no such database (the restore creates it and
/// keeps nothing aside). A server that cannot be asked is said to be.
pub fn plan_keeps(db: &Database) -> (String, Option<u64>) {
    let kept = format!(
        "the previous database is kept as `{}_lifeboat_old_…`",
        db.database
    );
    let found = admin(db).and_then(|mut a| exists(&mut a, &db.database));
    match found {
        Ok(true) => (kept, Some(size(db, &db.database).unwrap_or(0))),
        Ok(false) => (
            format!(
                "there is no database `{}` now: the restore creates it",
                db.database
            ),
            None,
        ),
        Err(_) => (
            format!("{kept}, if there is one (the server did not answer)"),
            Some(0),
        ),
    }
}

/// Total size of a database, for the plan and the leftovers list.
pub fn size(db: &Database, name: &str) -> Option<u64> {
    let mut admin = admin(db).ok()?;
    let row = admin
        .query_opt(
            "SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .ok()??;
    row.get::<_, i64>(0).try_into().ok()
}

/// Ends every other session on database `name`.
fn end_sessions(admin: &mut Client, name: &str) {
    let _ = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&name],
    );
}

/// Drops a database we made, ending its sessions first (`WITH (FORCE)`
/// needs PostgreSQL 13). Failing to is reported: a forgotten copy of
/// production data on the server is not a detail.
fn drop_database(admin: &mut Client, name: &str) -> Option<String> {
    let mut last = String::new();
    for _ in 0..5 {
        end_sessions(admin, name);
        match admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote(name))) {
            Ok(()) => return None,
            Err(e) => last = pg_error(&e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Some(format!(
        "could not drop the temporary database `{name}` ({last}); drop it by hand"
    ))
}

/// Renames `live` to `old`, refusing connections first, so an application
/// cannot reconnect between being disconnected and the rename.
fn rename_aside(admin: &mut Client, live: &str, old: &str, wait: Duration) -> Result<()> {
    exec(
        admin,
        &format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            quote(live)
        ),
    )?;
    let mut last = None;
    let deadline = std::time::Instant::now() + wait.max(Duration::from_secs(1));
    while std::time::Instant::now() < deadline {
        end_sessions(admin, live);
        match exec(
            admin,
            &format!("ALTER DATABASE {} RENAME TO {}", quote(live), quote(old)),
        ) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = exec(
        admin,
        &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", quote(live)),
    );
    Err(last
        .unwrap_or_else(|| anyhow!("not tried"))
        .context(format!("`{live}` was still in use after lock_timeout")))
}

/// Renames `live` aside (to `old`) and `new` into its place. Returns
/// whether there was a live database to set aside.
fn swap(admin: &mut Client, live: &str, new: &str, old: &str, wait: Duration) -> Result<bool> {
    let existed = exists(admin, live)?;
    if existed {
        rename_aside(admin, live, old, wait)?;
    }
    // Our own check connection to `new` may still be closing.
    let mut result = Err(anyhow!("not tried"));
    for _ in 0..10 {
        end_sessions(admin, new);
        result = exec(
            admin,
            &format!("ALTER DATABASE {} RENAME TO {}", quote(new), quote(live)),
        );
        if result.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    if let Err(e) = result {
        if !existed {
            return Err(e.context(format!(
                "could not rename the restored copy to `{live}`; nothing was changed"
            )));
        }
        // Put the old database back as it was.
        let back = exec(
            admin,
            &format!("ALTER DATABASE {} RENAME TO {}", quote(old), quote(live)),
        )
        .and_then(|()| {
            exec(
                admin,
                &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", quote(live)),
            )
        });
        return Err(e.context(match back {
            Ok(()) => format!(
                "could not rename the restored copy to `{live}`; the live database was put back as it was"
            ),
            Err(b) => format!(
                "could not rename the restored copy to `{live}`, and putting the live database back failed too ({b:#}): it is now `{old}`, with connections disabled; rename it back with ALTER DATABASE \"{old}\" RENAME TO \"{live}\""
            ),
        }));
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use crate::repo::snapshot::Facts;

    #[test]
    fn older_restore_points_are_checked_on_what_they_recorded() {
        let old: Facts =
            serde_json::from_str(r#"{"server":"PostgreSQL 15.4","counts":{"public.t":3}}"#)
                .unwrap();
        let mut found = old.clone();
        found
            .objects
            .insert("large objects".into(), "0 objects, 0 bytes".into());
        found.minimums.insert("sequence public.t_id_seq".into(), 3);
        assert_eq!(old.differences(&found), Vec::<String>::new());

        let recorded = found.clone();
        let mut lost = found;
        lost.objects.clear();
        lost.objects
            .insert("large objects".into(), "0 objects, 0 bytes".into());
        lost.minimums.insert("sequence public.t_id_seq".into(), 2);
        lost.objects
            .insert("function public.f()".into(), "abc".into());
        assert_eq!(
            recorded.differences(&lost),
            vec![
                "function public.f(): not in the backup but present after restore".to_string(),
                "sequence public.t_id_seq: 2 after restore, at least 3 recorded".to_string(),
            ]
        );
    }

    #[test]
    fn pgpass_lines_match_like_libpq() {
        let text = "# comment\ndb.lan:5432:immich:app:one\n*:*:*:postgres:two\\:x\n";
        assert_eq!(
            super::pgpass_lookup(text, "db.lan", 5432, "immich", "app").as_deref(),
            Some("one")
        );
        assert_eq!(
            super::pgpass_lookup(text, "db.lan", 5433, "immich", "app"),
            None
        );
        assert_eq!(
            super::pgpass_lookup(text, "x", 1, "y", "postgres").as_deref(),
            Some("two:x")
        );
    }
}
