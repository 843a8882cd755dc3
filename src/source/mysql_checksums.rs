//! The deeper MariaDB/MySQL check (`check = "checksums"`): `CHECKSUM
//! TABLE` of each base table, recorded at backup and compared after a
//! restore, so a row changed without changing any count fails the check.
//!
//! The dump's own consistent view cannot be shared, so at backup the
//! checksums are read in a session of ours that takes `START TRANSACTION
//! WITH CONSISTENT SNAPSHOT` just before the dump takes its own (InnoDB
//! answers CHECKSUM TABLE from the transaction's snapshot). A write
//! committed in the moment between the two — while the dump starts and
//! connects — is in one view and not the other, and the next drill says
//! so for that table; non-transactional tables (MyISAM, Aria) have no
//! snapshot at all, in the dump or here.

use super::mysql_client::{client, ident, literal, options, query};
use crate::model::Database;
use crate::repo::snapshot::Facts;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

const KEY: &str = "checksum ";

/// Tables larger than this (data and indexes) are not checksummed at
/// backup: each check reads the whole table. The restore point names them.
const MAX_TABLE_BYTES: u64 = 1 << 30;

const READY: &str = "lifeboat-snapshot-taken";

/// A session holding a consistent snapshot of one database, opened just
/// before the dump starts.
pub struct Snapshot {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    database: String,
    _options: tempfile::NamedTempFile,
}

impl Snapshot {
    pub fn open(db: &Database, database: &str) -> Result<Snapshot> {
        let opts = options(db)?;
        let (name, mut c) = client(&["mariadb", "mysql"], &opts)?;
        c.args([
            "--batch",
            "--skip-column-names",
            "--unbuffered",
            "--connect-timeout=10",
        ])
        .arg(database)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .with_context(|| format!("starting `{name}` for the checksum snapshot"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{name}` started without pipes");
        };
        let mut s = Snapshot {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            database: database.to_string(),
            _options: opts,
        };
        s.send(&format!(
            "START TRANSACTION WITH CONSISTENT SNAPSHOT; SELECT '{READY}';\n"
        ))?;
        let mut line = String::new();
        loop {
            line.clear();
            let n = s
                .stdout
                .read_line(&mut line)
                .context("reading from the checksum session")?;
            if n == 0 {
                return Err(s.failure("taking a consistent snapshot for the checksums"));
            }
            if line.trim_end() == READY {
                return Ok(s);
            }
        }
    }

    fn send(&mut self, sql: &str) -> Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            bail!("the checksum session is closed");
        };
        stdin
            .write_all(sql.as_bytes())
            .and_then(|()| stdin.flush())
            .context("writing to the checksum session")
    }

    /// The client's exit and first stderr line, after it stopped answering.
    fn failure(&mut self, doing: &str) -> anyhow::Error {
        self.stdin = None;
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
        let mut err = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            let _ = e.take(64 * 1024).read_to_string(&mut err);
        }
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        anyhow!("MariaDB/MySQL: {doing}: {first} ({status})")
    }

    /// `checksum TABLE` → value for the base tables in `f.counts` up to
    /// [`MAX_TABLE_BYTES`], read in the snapshot; the session ends.
    pub fn add(mut self, db: &Database, f: &mut Facts) -> Result<()> {
        let sizes = query(
            db,
            None,
            &format!(
                "SELECT table_name, COALESCE(data_length, 0) + COALESCE(index_length, 0) FROM information_schema.tables WHERE table_schema = {} AND table_type = 'BASE TABLE'",
                literal(&self.database)
            ),
        )?;
        let mut skipped = Vec::new();
        let mut tables = Vec::new();
        for r in sizes {
            if let [name, size] = r.as_slice() {
                if !f.counts.contains_key(name) {
                    continue;
                }
                if size.parse::<u64>().unwrap_or(0) > MAX_TABLE_BYTES {
                    skipped.push(name.clone());
                } else {
                    tables.push(name.clone());
                }
            }
        }
        if !skipped.is_empty() {
            f.notes.insert(
                "checksums left out (tables over 1 GiB)".into(),
                skipped.join(", "),
            );
        }
        if tables.is_empty() {
            return Ok(());
        }
        self.send(&format!("{}; COMMIT;\n", statement(&tables)))?;
        self.stdin = None;
        let mut out = String::new();
        self.stdout
            .read_to_string(&mut out)
            .context("reading the checksums")?;
        let ok = self.child.wait().is_ok_and(|s| s.success());
        if !ok {
            return Err(self.failure("CHECKSUM TABLE"));
        }
        let rows: Vec<Vec<String>> = out
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        f.objects.extend(parse(&rows, &self.database));
        Ok(())
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn statement(tables: &[String]) -> String {
    let names: Vec<String> = tables.iter().map(|t| ident(t)).collect();
    format!("CHECKSUM TABLE {}", names.join(", "))
}

/// `db.table<TAB>value` rows as `checksum table` → value (NULL for a table
/// that is not there).
fn parse(rows: &[Vec<String>], database: &str) -> BTreeMap<String, String> {
    let prefix = format!("{database}.");
    rows.iter()
        .filter_map(|r| match r.as_slice() {
            [name, value] => {
                let t = name.strip_prefix(&prefix).unwrap_or(name);
                Some((format!("{KEY}{t}"), value.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The checksums of database `database` for the tables `recorded` has
/// them for, for a check after restore.
pub fn add_as(db: &Database, database: &str, recorded: &Facts, f: &mut Facts) -> Result<()> {
    let tables: Vec<String> = recorded
        .objects
        .keys()
        .filter_map(|k| k.strip_prefix(KEY))
        .map(str::to_string)
        .collect();
    if tables.is_empty() {
        return Ok(());
    }
    let rows = query(db, Some(database), &statement(&tables))
        .map_err(|e| e.context(format!("checksumming the tables of `{database}`")))?;
    f.objects.extend(parse(&rows, database));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksums_are_keyed_by_table_without_the_database() {
        let rows = vec![
            vec!["shop.items".to_string(), "123".to_string()],
            vec!["shop.a.b".to_string(), "NULL".to_string()],
        ];
        let m = super::parse(&rows, "shop");
        assert_eq!(m.get("checksum items").map(String::as_str), Some("123"));
        assert_eq!(m.get("checksum a.b").map(String::as_str), Some("NULL"));
    }
}
