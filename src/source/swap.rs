//! The one way live files and directories are replaced: a restored copy,
//! complete and checked, is renamed into place, and what was there is
//! renamed aside and kept. Renames within one filesystem, so each step is
//! atomic and a failure at any step puts back what was moved.

use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn sync_dir(p: &Path) {
    if let Some(parent) = p.parent() {
        let _ = fs::File::open(parent).and_then(|d| d.sync_all());
    }
}

/// Where a live path's previous content is kept by restore `id`:
/// `.NAME.lifeboat-kept-ID` beside it (same filesystem, so keeping it is a
/// rename, and hidden, so the application does not trip over it).
pub fn kept_path(live: &Path, id: &str) -> PathBuf {
    named_beside(live, &format!("kept-{id}"))
}

/// Where restore `id` stages a copy of `live` before swapping it in.
pub fn staging_path(live: &Path, id: &str) -> PathBuf {
    named_beside(live, &format!("staging-{id}"))
}

/// Where a rollback puts the restored copy it takes out again.
pub fn undone_path(live: &Path, id: &str) -> PathBuf {
    named_beside(live, &format!("undone-{id}"))
}

fn named_beside(live: &Path, what: &str) -> PathBuf {
    let name = live
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    live.with_file_name(format!(".{name}.lifeboat-{what}"))
}

/// Is this a name Lifeboat gives its own staging, kept and undone copies?
/// Backups leave them out: they are restores' leftovers, listed by
/// `lifeboat leftovers`, not the service's data.
pub fn is_own_name(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.starts_with('.')
        && ["staging-", "kept-", "undone-"]
            .iter()
            .any(|w| n.contains(&format!(".lifeboat-{w}")))
}

/// Makes a kept copy of secrets private while it waits (0700 for a
/// directory, 0600 for a file); returns the mode it had, to go back with.
pub fn make_private(p: &Path) -> Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let m = fs::symlink_metadata(p).with_context(|| format!("looking at {}", p.display()))?;
    if m.file_type().is_symlink() {
        return Ok(None);
    }
    let mode = m.permissions().mode() & 0o7777;
    let private = if m.is_dir() { 0o700 } else { 0o600 };
    set_mode(p, private)?;
    Ok(Some(mode))
}

pub fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", p.display()))
}

/// Moves `carry` entries (relative paths) from `from` into `to`, creating
/// parents in `to` as needed. Returns what was moved, so it can be moved
/// back.
fn carry_over(from: &Path, to: &Path, carry: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    for rel in carry {
        let src = from.join(rel);
        if !exists(&src) {
            continue;
        }
        let dst = to.join(rel);
        let res = (|| -> Result<()> {
            if exists(&dst) {
                bail!(
                    "{} is in the restored copy and in the live data",
                    dst.display()
                );
            }
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            fs::rename(&src, &dst).with_context(|| {
                format!(
                    "keeping {} in place (moving it into the restored copy)",
                    src.display()
                )
            })
        })();
        if let Err(e) = res {
            carry_back(to, from, &moved);
            return Err(e);
        }
        moved.push(rel.clone());
    }
    Ok(moved)
}

fn carry_back(from: &Path, to: &Path, moved: &[PathBuf]) {
    for rel in moved.iter().rev() {
        let _ = fs::rename(from.join(rel), to.join(rel));
    }
}

/// Swaps the checked copy at `staged` in for `live`: first the `carry`
/// entries of the live copy (data of other sources, paths the backup
/// excludes) move into the staged copy so they stay where they are; then
/// `live` becomes `kept` and `staged` becomes `live`. Any failure puts
/// everything back. Returns whether there was a live copy to keep.
pub fn swap_in(staged: &Path, live: &Path, kept: &Path, carry: &[PathBuf]) -> Result<bool> {
    if !exists(live) {
        if let Some(parent) = live.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::rename(staged, live)
            .with_context(|| format!("moving the restored copy into {}", live.display()))?;
        sync_dir(live);
        return Ok(false);
    }
    if exists(kept) {
        bail!("{} already exists; nothing was replaced", kept.display());
    }
    let moved = carry_over(live, staged, carry)?;
    if let Err(e) = fs::rename(live, kept) {
        carry_back(staged, live, &moved);
        return Err(anyhow!(e).context(format!("moving {} aside", live.display())));
    }
    if let Err(e) = fs::rename(staged, live) {
        let back = fs::rename(kept, live);
        carry_back(staged, live, &moved);
        return Err(anyhow!(e).context(match back {
            Ok(()) => format!(
                "moving the restored copy into {}; the live copy was put back",
                live.display()
            ),
            Err(b) => format!(
                "moving the restored copy into {}; the live copy is at {} ({b})",
                live.display(),
                kept.display()
            ),
        }));
    }
    sync_dir(live);
    Ok(true)
}

/// A file and its companions (`-wal`, `-shm`): the live ones become
/// `kept`+suffix, `new` becomes `live`. The companions of the new file do
/// not exist (a restored SQLite database is a single file), and stale
/// companions must never be replayed into it.
pub fn swap_file(new: &Path, live: &Path, kept: &Path, suffixes: &[&str]) -> Result<bool> {
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let undo = |moved: &[(PathBuf, PathBuf)]| {
        for (from, to) in moved.iter().rev() {
            let _ = fs::rename(to, from);
        }
    };
    for s in std::iter::once("").chain(suffixes.iter().copied()) {
        let from = with_suffix(live, s);
        if !exists(&from) {
            continue;
        }
        let to = with_suffix(kept, s);
        if let Err(e) = fs::rename(&from, &to) {
            undo(&moved);
            return Err(anyhow!(e).context(format!("moving {} aside", from.display())));
        }
        moved.push((from, to));
    }
    if let Err(e) = fs::rename(new, live) {
        undo(&moved);
        return Err(anyhow!(e).context(format!(
            "moving the restored copy to {}; the live file was put back",
            live.display()
        )));
    }
    sync_dir(live);
    Ok(!moved.is_empty())
}

/// Undoes [`swap_in`]/[`swap_file`]: the restored copy at `live` moves to
/// `undone` (kept, in case the rollback was the mistake), the carried
/// entries move back into the kept copy, and the kept copy becomes live
/// again. With nothing kept (the restore created `live`), the restored
/// copy is only moved to `undone`. Returns whether something moved to
/// `undone`.
pub fn swap_back(
    live: &Path,
    kept: Option<&Path>,
    undone: &Path,
    carried: &[PathBuf],
    suffixes: &[&str],
) -> Result<bool> {
    if let Some(k) = kept {
        if !exists(k) {
            bail!(
                "the kept copy {} is gone (removed with `lifeboat leftovers remove`?); {} was left as it is",
                k.display(),
                live.display()
            );
        }
    }
    let names = || std::iter::once("").chain(suffixes.iter().copied());
    // Each step is undone, in reverse, when a later one fails: a rollback
    // that cannot finish leaves things as they were before it.
    let mut carried_back: Vec<PathBuf> = Vec::new();
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let undo = |carried_back: &[PathBuf], moved: &[(PathBuf, PathBuf)]| {
        for (from, to) in moved.iter().rev() {
            let _ = fs::rename(to, from);
        }
        if let Some(k) = kept {
            carry_back(k, live, carried_back);
        }
    };
    if exists(live) {
        if let Some(k) = kept {
            // The carried entries live in the restored copy now; they go
            // back with the data they belong to.
            carried_back = carry_over(live, k, carried)?;
        }
        for s in names() {
            let from = with_suffix(live, s);
            if !exists(&from) {
                continue;
            }
            let to = with_suffix(undone, s);
            if let Err(e) = fs::rename(&from, &to) {
                undo(&carried_back, &moved);
                return Err(anyhow!(e).context(format!(
                    "moving {} aside; nothing was changed",
                    from.display()
                )));
            }
            moved.push((from, to));
        }
    }
    let set_aside = !moved.is_empty();
    if let Some(k) = kept {
        for s in names() {
            let from = with_suffix(k, s);
            if !exists(&from) {
                continue;
            }
            let to = with_suffix(live, s);
            if let Err(e) = fs::rename(&from, &to) {
                undo(&carried_back, &moved);
                return Err(anyhow!(e).context(format!(
                    "putting {} back at {}; nothing was changed",
                    from.display(),
                    live.display()
                )));
            }
            moved.push((from, to));
        }
    }
    sync_dir(live);
    Ok(set_aside)
}
