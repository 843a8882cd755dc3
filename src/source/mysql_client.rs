//! Talking to MariaDB/MySQL through its own client (`mariadb` or
//! `mysql`): the password only ever in a private option file, and SQL
//! written so it means the same whatever the server's SQL mode.

use super::process::{self, find_tool};
use crate::model::Database;
use anyhow::{Context, Result};
use std::process::Command;

/// Client options in a private option file (the only place the password
/// goes); it must come first on the command line.
pub fn options(db: &Database) -> Result<tempfile::NamedTempFile> {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut text = format!(
        "[client]\nuser={}\nhost={}\nport={}\n",
        q(&db.user),
        q(&db.host),
        db.port
    );
    if let Some(p) = &db.password_file {
        text.push_str(&format!("password={}\n", q(&process::read_password(p)?)));
    }
    super::credentials::secret_file(&text)
}

pub fn client(tool: &[&str], opts: &tempfile::NamedTempFile) -> Result<(String, Command)> {
    let name = find_tool(tool)?;
    let mut c = Command::new(&name);
    c.arg(format!("--defaults-extra-file={}", opts.path().display()));
    Ok((name, c))
}

/// A string literal that means the same whatever the server's SQL mode
/// (backslash escapes are off under NO_BACKSLASH_ESCAPES).
pub fn literal(s: &str) -> String {
    format!("CONVERT(UNHEX('{}') USING utf8mb4)", hex::encode(s))
}

pub fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Runs SQL and returns rows of tab-separated fields.
pub fn query(db: &Database, database: Option<&str>, sql: &str) -> Result<Vec<Vec<String>>> {
    let opts = options(db)?;
    let (name, mut c) = client(&["mariadb", "mysql"], &opts)?;
    c.args([
        "--batch",
        "--skip-column-names",
        "--connect-timeout=10",
        "-e",
        sql,
    ]);
    if let Some(d) = database {
        c.arg(d);
    }
    let out = process::output(&name, c)
        .with_context(|| format!("MariaDB/MySQL at {}:{} as `{}`", db.host, db.port, db.user))?;
    Ok(out
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect())
}
