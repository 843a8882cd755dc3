//! Finishing restored files: creating them, checking them against their
//! recorded hashes, and giving them (and directories and symlinks) the
//! snapshot's owner, mode and times.

use crate::repo::tree::{Node, NodeKind};
use anyhow::{Context, Result};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Opens a restored file for writing, creating it (mode 0600 until its
/// metadata is applied). Never follows a symlink.
pub(super) fn create_file(p: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .with_context(|| format!("creating {}", p.display()))
}

/// A file still to be read back and checked once all its chunks are in.
pub(super) const PENDING: u8 = 0;
/// A file checked from the bytes written into it, and finished.
pub(super) const FINISHED: u8 = 1;
/// A file whose content does not match its recorded hash.
pub(super) const WRONG: u8 = 2;

/// Finishes a file written whole through `f`, whose content hashes to
/// `written`: when that is its recorded hash, gives it its metadata
/// through the same handle. Returns [`FINISHED`] or [`WRONG`].
pub(super) fn finish_written(
    f: &fs::File,
    p: &Path,
    n: &Node,
    written: blake3::Hash,
    owners: bool,
) -> Result<u8> {
    if written.to_hex().as_str() != n.hash.as_deref().unwrap_or_default() {
        return Ok(WRONG);
    }
    set_file_metadata(f, p, n, owners)?;
    Ok(FINISHED)
}

/// Hashes a restored file; when it matches, applies the snapshot's owner,
/// mode and times.
pub(super) fn check_and_finish_file(p: &Path, n: &Node, owners: bool) -> Result<bool> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .with_context(|| format!("opening {}", p.display()))?;
    if hash_reader(&f)? != n.hash.as_deref().unwrap_or_default() {
        return Ok(false);
    }
    set_file_metadata(&f, p, n, owners)?;
    Ok(true)
}

/// Gives a restored file the snapshot's owner, mode and times through an
/// open handle. Owner first: changing it clears set-id bits.
fn set_file_metadata(f: &fs::File, p: &Path, n: &Node, owners: bool) -> Result<()> {
    if owners {
        std::os::unix::fs::fchown(f, Some(n.uid), Some(n.gid))
            .with_context(|| format!("setting owner of {}", p.display()))?;
    }
    let mode = if n.secret {
        secret_mode(n.mode, owners)
    } else {
        n.mode & 0o7777
    };
    f.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", p.display()))?;
    let t = system_time(n.mtime_ns);
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .with_context(|| format!("setting times of {}", p.display()))?;
    Ok(())
}

/// The mode a restored secret gets: the recorded one when it is already
/// private (no access for others, no writing for the group: 0600, 0640,
/// 0400), else only its owner's part of it. Never more than recorded. The
/// group may read only when the recorded group was given back (`owners`):
/// otherwise the file's group is whoever restored it, or the directory's.
fn secret_mode(recorded: u32, owners: bool) -> u32 {
    let mode = recorded & 0o7777;
    if mode & 0o027 == 0 && owners {
        mode
    } else {
        mode & 0o700
    }
}

fn system_time(ns: i64) -> std::time::SystemTime {
    let d = std::time::Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    }
}

/// The BLAKE3 of a file's content, as snapshots record it.
pub fn hash_reader(mut f: &fs::File) -> Result<String> {
    thread_local! {
        // One buffer per thread, not a fresh 1 MiB per file.
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.resize(1 << 20, 0);
        let mut h = blake3::Hasher::new();
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finalize().to_hex().to_string())
    })
}

pub(super) fn apply_metadata(p: &Path, n: &Node, owners: bool) -> Result<()> {
    if owners {
        std::os::unix::fs::lchown(p, Some(n.uid), Some(n.gid))
            .with_context(|| format!("setting owner of {}", p.display()))?;
    }
    let mtime = filetime::FileTime::from_system_time(system_time(n.mtime_ns));
    if n.kind == NodeKind::Symlink {
        filetime::set_symlink_file_times(p, mtime, mtime)
            .with_context(|| format!("setting times of {}", p.display()))?;
        return Ok(());
    }
    fs::set_permissions(p, fs::Permissions::from_mode(n.mode & 0o7777))
        .with_context(|| format!("setting mode of {}", p.display()))?;
    filetime::set_file_times(p, mtime, mtime)
        .with_context(|| format!("setting times of {}", p.display()))?;
    Ok(())
}
