//! `sql` probes: a query against a restored PostgreSQL, MariaDB/MySQL or
//! SQLite database, its rows judged against what the probe expects.

use super::{timed_out, within, Outcome, Restored, Target};
use crate::model::Expect;
use std::time::Duration;

pub(super) fn run(
    source: &str,
    query: &str,
    expect: &Expect,
    timeout: Duration,
    target: &Target,
) -> Outcome {
    let Some((_, db)) = target.databases.iter().find(|(n, _)| n == source) else {
        return Outcome::Fail(format!(
            "source `{source}` was not restored here (the restore point holds no copy of it)"
        ));
    };
    let (db, query_text) = (db.clone(), query.to_string());
    let rows = within(timeout, move || query_rows(&db, &query_text, timeout));
    match rows {
        None => timed_out(timeout),
        Some(Err(e)) => Outcome::Fail(format!("the query failed: {e}")),
        Some(Ok(rows)) => judge(expect, &rows),
    }
}

/// The rows as text (NULL as `NULL`).
fn query_rows(db: &Restored, query: &str, timeout: Duration) -> Result<Vec<Vec<String>>, String> {
    match db {
        Restored::Postgres { db, name } => {
            let mut c = postgres::Config::new();
            c.host(&db.host)
                .port(db.port)
                .user(&db.user)
                .dbname(name)
                .application_name("lifeboat-probe")
                .connect_timeout(timeout.min(Duration::from_secs(10)));
            if let Some(p) = &db.password_file {
                c.password(crate::source::process::read_password(p).map_err(|e| format!("{e:#}"))?);
            }
            let mut client = c.connect(postgres::NoTls).map_err(|e| {
                format!(
                    "cannot connect to PostgreSQL database `{name}` at {}:{}: {e}",
                    db.host, db.port
                )
            })?;
            // The server gives up too, so a thread left waiting ends.
            let _ = client.simple_query(&format!(
                "SET statement_timeout = {}",
                timeout.as_millis().max(1)
            ));
            let msgs = client
                .simple_query(query)
                .map_err(|e| match e.as_db_error() {
                    Some(d) => d.message().to_string(),
                    None => e.to_string(),
                })?;
            Ok(msgs
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL").to_string())
                            .collect(),
                    ),
                    _ => None,
                })
                .collect())
        }
        Restored::Mysql { db, name } => {
            let opts = crate::source::mysql_client::options(db).map_err(|e| format!("{e:#}"))?;
            let (tool, mut cmd) = crate::source::mysql_client::client(&["mariadb", "mysql"], &opts)
                .map_err(|e| format!("{e:#}"))?;
            cmd.args([
                "--batch",
                "--skip-column-names",
                "--connect-timeout=10",
                "-e",
                query,
                name,
            ]);
            let out = crate::source::process::output(&tool, cmd).map_err(|e| format!("{e:#}"))?;
            Ok(out
                .lines()
                .map(|l| l.split('\t').map(str::to_string).collect())
                .collect())
        }
        Restored::Sqlite { path } => {
            let c = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let _ = c.busy_timeout(timeout);
            let mut st = c.prepare(query).map_err(|e| e.to_string())?;
            let n = st.column_count();
            let mut rows = st.query([]).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| e.to_string())? {
                let mut row = Vec::with_capacity(n);
                for i in 0..n {
                    use rusqlite::types::ValueRef as V;
                    row.push(match r.get_ref(i).map_err(|e| e.to_string())? {
                        V::Null => "NULL".to_string(),
                        V::Integer(i) => i.to_string(),
                        V::Real(f) => f.to_string(),
                        V::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        V::Blob(b) => format!("<{} bytes>", b.len()),
                    });
                }
                out.push(row);
                // A probe's answer is small; a runaway query is not read whole.
                if out.len() >= 100_000 {
                    break;
                }
            }
            Ok(out)
        }
    }
}

fn judge(expect: &Expect, rows: &[Vec<String>]) -> Outcome {
    let n = crate::util::plural(rows.len() as u64, "row");
    match expect {
        Expect::AnyRow if rows.is_empty() => {
            Outcome::Fail("expected at least one row; the query returned none".into())
        }
        Expect::AnyRow => Outcome::Pass(format!("returned {n}")),
        Expect::Value(c) => match rows.first().and_then(|r| r.first()) {
            None => Outcome::Fail(format!(
                "expected a value {}; the query returned no rows",
                c.describe()
            )),
            Some(v) if c.matches(v) => Outcome::Pass(format!("returned {v} ({})", c.describe())),
            Some(v) => Outcome::Fail(format!("expected {}, got {v}", c.describe())),
        },
        Expect::Row(want) => {
            let shown = want.join(", ");
            if rows.iter().any(|r| r == want) {
                Outcome::Pass(format!("found the row ({shown}) among {n}"))
            } else {
                Outcome::Fail(format!(
                    "expected a row ({shown}); the query returned {n}, none of them that"
                ))
            }
        }
    }
}
