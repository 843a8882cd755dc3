//! `pg_amcheck` on a restored PostgreSQL copy, when the tool is installed:
//! a dump restores into fresh pages, so corruption found there means the
//! server or its storage is damaging what it writes — worth failing the
//! drill for, and never worth swapping in. The `amcheck` extension it
//! needs is created in the copy only (never in the live database) and
//! dropped again before the copy is compared or swapped in.

use super::process;
use anyhow::Result;
use postgres::Client;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// `pg_amcheck` with the connection options and the private pgpass file
/// (kept until it exits) the other PostgreSQL tools get.
type Tool = (Command, Option<tempfile::NamedTempFile>);

/// At most this many corrupt relations are named; the rest are counted.
const NAMED: usize = 10;

/// What `pg_amcheck` said about a copy: a line for the check's detail, and
/// one difference per corrupt relation.
pub struct Verdict {
    pub line: Option<String>,
    pub corrupt: Vec<String>,
}

/// Runs `pg_amcheck` (made by `tool`) on database `copy`, reached through
/// `client`, a session on it; `describe` words the server's errors.
/// Problems running it are said in the line, not failed: the check
/// without it is still the check.
pub fn run(
    tool: impl FnOnce() -> Result<Tool>,
    copy: &str,
    client: &mut Client,
    describe: fn(&postgres::Error) -> String,
) -> Verdict {
    let said = |line: String| Verdict {
        line: Some(line),
        corrupt: Vec::new(),
    };
    if process::find_tool(&["pg_amcheck"]).is_err() {
        return Verdict {
            line: None,
            corrupt: Vec::new(),
        };
    }
    let had = match client.query("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[]) {
        Ok(rows) => !rows.is_empty(),
        Err(e) => return said(format!("pg_amcheck not run: {}", describe(&e))),
    };
    if !had {
        if let Err(e) = client.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck") {
            return said(format!(
                "pg_amcheck not run: the amcheck extension cannot be created in the restored copy ({})",
                describe(&e)
            ));
        }
    }
    let mut verdict = amcheck(tool, copy);
    if !had {
        if let Err(e) = client.batch_execute("DROP EXTENSION IF EXISTS amcheck") {
            verdict.corrupt.push(format!(
                "the amcheck extension could not be dropped from the restored copy again ({})",
                describe(&e)
            ));
        }
    }
    verdict
}

fn amcheck(tool: impl FnOnce() -> Result<Tool>, copy: &str) -> Verdict {
    let fail = |why: String| Verdict {
        line: Some(format!("pg_amcheck could not check the copy: {why}")),
        corrupt: Vec::new(),
    };
    let (mut cmd, _pass) = match tool() {
        Ok(c) => c,
        Err(e) => return fail(format!("{e:#}")),
    };
    // A pattern in double quotes matches the name exactly.
    cmd.arg("--database")
        .arg(format!("\"{}\"", copy.replace('"', "\"\"")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return fail(e.to_string()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let corrupt = corruption(&stdout, copy);
    match out.status.code() {
        Some(0) => Verdict {
            line: Some("pg_amcheck: no corruption found in tables or B-tree indexes".into()),
            corrupt: Vec::new(),
        },
        Some(2) if !corrupt.is_empty() => Verdict {
            line: Some(format!(
                "pg_amcheck: corruption found in {} relation{}",
                corrupt.len(),
                if corrupt.len() == 1 { "" } else { "s" }
            )),
            corrupt: named(corrupt),
        },
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr
                .lines()
                .chain(stdout.lines())
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_string();
            fail(format!("{} ({first})", out.status))
        }
    }
}

fn named(corrupt: BTreeMap<String, (usize, String)>) -> Vec<String> {
    let total = corrupt.len();
    let mut out: Vec<String> = corrupt
        .into_iter()
        .take(NAMED)
        .map(|(rel, (n, first))| {
            let more = if n > 1 {
                format!(
                    " and {} more problem{}",
                    n - 1,
                    if n == 2 { "" } else { "s" }
                )
            } else {
                String::new()
            };
            format!("pg_amcheck: corruption in {rel}: {first}{more}")
        })
        .collect();
    if total > NAMED {
        out.push(format!(
            "pg_amcheck: corruption in {} more relations",
            total - NAMED
        ));
    }
    out
}

/// Corrupt relations in `pg_amcheck`'s report — `heap table "db.s.t",
/// block 0, offset 1:` or `btree index "db.s.i":` headers, each followed
/// by indented message lines — keyed by kind and name (without the
/// database), with how many problems and the first message.
fn corruption(report: &str, copy: &str) -> BTreeMap<String, (usize, String)> {
    let mut out: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in report.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(rel) = &current {
                if let Some(e) = out.get_mut(rel) {
                    if e.1.is_empty() {
                        e.1 = line.split_whitespace().collect::<Vec<_>>().join(" ");
                    }
                }
            }
            continue;
        }
        let Some((kind, rest)) = line.split_once('"') else {
            current = None;
            continue;
        };
        let Some((name, _)) = rest.split_once('"') else {
            current = None;
            continue;
        };
        let name = name.strip_prefix(&format!("{copy}.")).unwrap_or(name);
        let rel = format!("{} {name}", kind.trim());
        let entry = out.entry(rel.clone()).or_default();
        entry.0 += 1;
        current = entry.1.is_empty().then_some(rel);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn corruption_is_named_by_relation_without_the_database() {
        let report = "btree index \"d.public.t_pkey\":\n    ERROR:  index tuple size does not equal lp_len\n    DETAIL:  x\nheap table \"d.public.t\", block 0, offset 1:\n    line pointer redirection to item at offset 9 exceeds maximum offset 8\nheap table \"d.public.t\", block 0, offset 2:\n    other\n";
        let c = super::corruption(report, "d");
        assert_eq!(
            c.get("btree index public.t_pkey"),
            Some(&(
                1,
                "ERROR: index tuple size does not equal lp_len".to_string()
            ))
        );
        assert_eq!(c.get("heap table public.t").map(|e| e.0), Some(2));
        let named = super::named(c);
        assert!(named[1].ends_with("and 1 more problem"), "{named:?}");
    }
}
