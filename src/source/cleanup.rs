//! Removing what restores make (staging directories, new files, new
//! databases), whatever the kind: the one place that knows how, for a
//! restore ending, a cancel, and the staging a crashed restore left.

use super::ledger::{Ledger, Made};
use anyhow::{Context, Result};
use std::path::Path;

/// Removes it; Ok when it is gone (or was never there).
pub fn remove(m: &Made) -> Result<()> {
    match m {
        Made::Path { path } => remove_path(path),
        Made::Postgres { db, name } => super::postgres::drop_named(db, name),
        Made::Mysql { db, name } => super::mysql::drop_named(db, name),
    }
}

/// Removes everything `ledger` made and has not removed yet, newest
/// first; returns what could not be removed, for the report.
pub fn clean_up(ledger: &Ledger) -> Vec<String> {
    let made = ledger.record().made;
    let mut problems = Vec::new();
    for m in made.iter().rev() {
        match remove(m) {
            Ok(()) => ledger.unmade(m),
            Err(e) => problems.push(format!("could not remove {}: {e:#}", m.describe())),
        }
    }
    problems
}

/// The restore is over: what it made is removed, and a record left with
/// nothing to roll back is removed too.
pub fn finish(ledger: &Ledger) -> Vec<String> {
    let mut problems = clean_up(ledger);
    if let Err(e) = ledger.close() {
        problems.push(format!("{e:#}"));
    }
    problems
}

pub fn remove_path(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("looking at {}", p.display())),
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))
        }
        Ok(_) => std::fs::remove_file(p).with_context(|| format!("removing {}", p.display())),
    }
}
