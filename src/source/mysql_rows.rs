//! What a MariaDB/MySQL dump holds, read from the dump itself as it
//! streams past: rows per table and, at `check = "checksums"`, a checksum
//! of each table's rows. The dump's consistent view cannot be shared, so
//! anything asked of the server in another session can disagree with it
//! under a write load (a `CHECKSUM TABLE` session opened just before the
//! dump disagreed in 10 of 10 backups at 675 updates a second); the dump's
//! own text cannot. A restored copy is checked by dumping it the same way.

use super::mysql_client::{client, options};
use super::process::produce;
use crate::model::Database;
use crate::repo::snapshot::Facts;
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// The `facts.objects` key of a table's checksum.
const KEY: &str = "checksum ";

/// Rows per table and, when hashing, the sum (mod 2^128) of a hash of
/// each row's text: the order rows come in does not matter, and memory
/// does not grow with the table.
#[derive(Debug, Default, Clone)]
pub struct Tallies {
    pub rows: BTreeMap<String, u64>,
    pub sums: BTreeMap<String, u128>,
}

pub type Shared = Arc<Mutex<Tallies>>;

/// Reads through a dump, tallying every `INSERT INTO `t` VALUES
/// (…),(…);` statement (MariaDB puts each row on its own line, MySQL all
/// on one). Strings are single-quoted with backslash escapes. The tallies
/// reach `shared` when the dump ends.
pub struct RowCounter<R> {
    inner: R,
    shared: Shared,
    local: Tallies,
    hashing: bool,
    row: Option<blake3::Hasher>,
    pending: Vec<u8>,
    head: Vec<u8>,
    table: Option<String>,
    depth: u32,
    quoted: bool,
    escaped: bool,
}

const INSERT: &[u8] = b"INSERT INTO `";
const VALUES: &[u8] = b"` VALUES";

/// Bytes of a row buffered before they go to its hasher (a row with a
/// large blob is hashed as it streams, never held whole).
const PENDING: usize = 64 * 1024;

impl<R: Read> RowCounter<R> {
    pub fn new(inner: R, shared: Shared, hashing: bool) -> Self {
        RowCounter {
            inner,
            shared,
            local: Tallies::default(),
            hashing,
            row: None,
            pending: Vec::new(),
            head: Vec::new(),
            table: None,
            depth: 0,
            quoted: false,
            escaped: false,
        }
    }

    /// A byte of the current row's text.
    fn keep(&mut self, b: u8) {
        if let Some(h) = self.row.as_mut() {
            self.pending.push(b);
            if self.pending.len() >= PENDING {
                h.update(&self.pending);
                self.pending.clear();
            }
        }
    }

    fn end_row(&mut self, table: &str) {
        if let Some(mut h) = self.row.take() {
            h.update(&self.pending);
            self.pending.clear();
            let mut first = [0u8; 16];
            first.copy_from_slice(&h.finalize().as_bytes()[..16]);
            let sum = self.local.sums.entry(table.to_string()).or_default();
            *sum = sum.wrapping_add(u128::from_le_bytes(first));
        }
    }

    fn feed(&mut self, b: u8) {
        let Some(table) = self.table.clone() else {
            if b == b'\n' {
                self.head.clear();
            } else if self.head.len() < 512 {
                self.head.push(b);
                if self.head.starts_with(INSERT) && self.head.ends_with(VALUES) {
                    let name = &self.head[INSERT.len()..self.head.len() - VALUES.len()];
                    self.table = Some(String::from_utf8_lossy(name).replace("``", "`"));
                    self.depth = 0;
                    self.quoted = false;
                    self.escaped = false;
                }
            }
            return;
        };
        if self.quoted {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'\'' {
                self.quoted = false;
            }
            self.keep(b);
            return;
        }
        match b {
            b'(' => {
                if self.depth == 0 {
                    *self.local.rows.entry(table).or_default() += 1;
                    if self.hashing {
                        self.row = Some(blake3::Hasher::new());
                    }
                } else {
                    self.keep(b);
                }
                self.depth += 1;
            }
            b')' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.end_row(&table);
                } else {
                    self.keep(b);
                }
            }
            b';' if self.depth == 0 => {
                self.table = None;
                self.head.clear();
            }
            _ => {
                if b == b'\'' {
                    self.quoted = true;
                }
                if self.depth > 0 {
                    self.keep(b);
                }
            }
        }
    }
}

impl<R: Read> Read for RowCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.feed(b);
        }
        if n == 0 {
            if let Ok(mut s) = self.shared.lock() {
                let local = std::mem::take(&mut self.local);
                for (t, k) in local.rows {
                    *s.rows.entry(t).or_default() += k;
                }
                for (t, k) in local.sums {
                    let sum = s.sums.entry(t).or_default();
                    *sum = sum.wrapping_add(k);
                }
            }
        }
        Ok(n)
    }
}

/// Records the checksum of every table in `f.counts` (an empty table's
/// is zero) from a dump's tallies.
pub fn record(tallies: &Tallies, f: &mut Facts) {
    let tables: Vec<String> = f.counts.keys().cloned().collect();
    for t in tables {
        let sum = tallies.sums.get(&t).copied().unwrap_or(0);
        f.objects.insert(format!("{KEY}{t}"), format!("{sum:032x}"));
    }
}

/// The checksums of `database` for the tables `recorded` has them for,
/// by dumping it as a backup does (rows only); nothing is read when it
/// has none.
pub fn add_as(db: &Database, database: &str, recorded: &Facts, f: &mut Facts) -> Result<()> {
    let tables: Vec<&str> = recorded
        .objects
        .keys()
        .filter_map(|k| k.strip_prefix(KEY))
        .collect();
    if tables.is_empty() {
        return Ok(());
    }
    let tallies =
        dumped(db, database).with_context(|| format!("checksumming the tables of `{database}`"))?;
    for t in tables {
        let sum = tallies.sums.get(t).copied().unwrap_or(0);
        f.objects.insert(format!("{KEY}{t}"), format!("{sum:032x}"));
    }
    Ok(())
}

/// The tallies of a rows-only dump of `database`, with the options that
/// decide how a backup's dump writes values (`--hex-blob`).
fn dumped(db: &Database, database: &str) -> Result<Tallies> {
    let opts = options(db)?;
    let (name, mut c) = client(&["mariadb-dump", "mysqldump"], &opts)?;
    c.args([
        "--single-transaction",
        "--quick",
        "--hex-blob",
        "--no-create-info",
        "--skip-triggers",
    ])
    .arg(database);
    let a = produce(&name, c, "rows", Box::new(opts))?;
    let shared = Shared::default();
    let mut r = RowCounter::new(a.reader, Arc::clone(&shared), true);
    std::io::copy(&mut r, &mut std::io::sink()).with_context(|| format!("reading `{name}`"))?;
    (a.done)()?;
    let t = shared
        .lock()
        .map_err(|_| anyhow!("row counter poisoned"))?
        .clone();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(dump: &[u8]) -> Tallies {
        let shared = Shared::default();
        let mut r = RowCounter::new(dump, Arc::clone(&shared), true);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let t = shared.lock().unwrap().clone();
        t
    }

    #[test]
    fn rows_are_counted_from_extended_inserts() {
        let c = tally(b"-- x\nINSERT INTO `a` VALUES (1,'x(y'),(2,'it\\'s (3);'),(3,NULL);\nINSERT INTO `b``c` VALUES\n(1),\n(2);\nCREATE TABLE `d` (id int);\n");
        assert_eq!(c.rows.get("a"), Some(&3));
        assert_eq!(c.rows.get("b`c"), Some(&2));
        assert_eq!(c.rows.get("d"), None);
    }

    #[test]
    fn a_changed_value_changes_the_checksum_but_row_order_does_not() {
        let a = tally(b"INSERT INTO `t` VALUES (1,'x'),(2,'y (z)');\n");
        let reordered = tally(b"INSERT INTO `t` VALUES\n(2,'y (z)'),\n(1,'x');\n");
        let changed = tally(b"INSERT INTO `t` VALUES (1,'x'),(2,'y (Z)');\n");
        assert_eq!(a.sums.get("t"), reordered.sums.get("t"));
        assert_ne!(a.sums.get("t"), changed.sums.get("t"));
        assert_eq!(a.rows, changed.rows);
    }
}
