//! `verify --read-data` on a base backup: unpacked into a temporary
//! directory and checked by `pg_verifybackup` against its own manifest
//! (every file's checksum, and the WAL it needs to be consistent).

use crate::progress::Reporter;
use crate::repo::tree::Node;
use crate::repo::{Index, Repository, Snapshot};
use crate::source::{process, Streams};
use std::process::Command;

/// What is wrong with the base backups in `snap`, if anything.
pub fn base_problem(
    repo: &Repository,
    index: &Index,
    snap: &Snapshot,
    tree: &[Node],
    reporter: &Reporter,
) -> Option<String> {
    let records: Vec<_> = snap
        .sources
        .iter()
        .filter(|r| r.kind == "postgres-cluster")
        .collect();
    if records.is_empty() {
        return None;
    }
    let tool = match process::find_tool(&["pg_verifybackup"]).or_else(|e| debian_tool().ok_or(e)) {
        Ok(t) => t,
        Err(e) => return Some(format!("cannot check the base backup: {e:#}")),
    };
    let streams = Streams::new(repo, index, tree, reporter);
    for r in records {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                return Some(format!(
                    "cannot check the base backup: a temporary directory: {e}"
                ))
            }
        };
        if let Err(e) = super::recovery::unpack(&streams, &r.name, snap, dir.path()) {
            return Some(format!("base backup of `{}`: {e:#}", r.name));
        }
        let mut cmd = Command::new(&tool);
        cmd.arg(dir.path());
        if let Err(e) = process::output(&tool, cmd) {
            return Some(format!(
                "base backup of `{}` fails pg_verifybackup: {e:#}",
                r.name
            ));
        }
    }
    None
}

/// Debian keeps pg_verifybackup out of PATH, in /usr/lib/postgresql/N/bin:
/// the newest major version's (it checks older versions' backups too).
fn debian_tool() -> Option<String> {
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let t = e.path().join("bin/pg_verifybackup");
            t.is_file().then_some((v, t))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, t)| t.display().to_string())
}
