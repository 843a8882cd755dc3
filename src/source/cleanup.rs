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
        Made::Swap {
            staged,
            live,
            kept,
            carried,
            ..
        } => undo_swap(staged, live, kept, carried),
    }
}

/// Puts a swap that stopped halfway back to before it: the live copy (if
/// it was moved aside) back in place, and the entries carried into the
/// staged copy back into it. A swap that finished is not undone here; see
/// [`finished_swap`].
fn undo_swap(
    staged: &Path,
    live: &Path,
    kept: &Path,
    carried: &[std::path::PathBuf],
) -> Result<()> {
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if !exists(live) && exists(kept) {
        std::fs::rename(kept, live).with_context(|| format!("putting {} back", live.display()))?;
    }
    if exists(live) && exists(staged) {
        for rel in carried {
            let (from, to) = (staged.join(rel), live.join(rel));
            if exists(&from) && !exists(&to) {
                std::fs::rename(&from, &to)
                    .with_context(|| format!("putting {} back", to.display()))?;
            }
        }
    }
    Ok(())
}

/// A swap the record says was under way, that did finish (the restored
/// copy is live and the old one kept): what it replaced, to be written
/// down instead of undone.
pub fn finished_swap(m: &Made) -> Option<super::ledger::Replaced> {
    let Made::Swap {
        source,
        staged,
        live,
        kept,
        carried,
    } = m
    else {
        return None;
    };
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    (exists(live) && exists(kept) && !exists(staged)).then(|| super::ledger::Replaced::Path {
        source: source.clone(),
        live: live.clone(),
        kept: Some(kept.clone()),
        carried: carried.clone(),
        suffixes: Vec::new(),
        mode: None,
    })
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

/// [`super::swap::swap_in`], written down: the swap as under way before
/// its first rename, and what it replaced as soon as it is done. `private`
/// makes the kept copy owner-only while it waits (old secrets).
#[allow(clippy::too_many_arguments)]
pub fn swap_in_recorded(
    ledger: &Ledger,
    source: &str,
    staged: &Path,
    live: &Path,
    kept: &Path,
    carry: &[std::path::PathBuf],
    private: bool,
) -> Result<bool> {
    let pending = Made::Swap {
        source: source.to_string(),
        staged: staged.to_path_buf(),
        live: live.to_path_buf(),
        kept: kept.to_path_buf(),
        carried: carry.to_vec(),
    };
    ledger.made(pending.clone())?;
    let had = match super::swap::swap_in(staged, live, kept, carry) {
        Ok(had) => had,
        Err(e) => {
            ledger.unmade(&pending);
            return Err(e);
        }
    };
    let mode = match had && private {
        true => super::swap::make_private(kept).unwrap_or(None),
        false => None,
    };
    ledger.replaced(super::ledger::Replaced::Path {
        source: source.to_string(),
        live: live.to_path_buf(),
        kept: had.then(|| kept.to_path_buf()),
        carried: carry.to_vec(),
        suffixes: Vec::new(),
        mode,
    })?;
    ledger.unmade(&pending);
    Ok(had)
}
