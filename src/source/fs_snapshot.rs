//! Read-only Btrfs snapshots for files sources (`snapshot = "btrfs"`): the
//! backup walks a frozen copy of the subvolume, so files written together
//! are read together. Each snapshot lives at the subvolume's top as
//! `.lifeboat-snapshot-PID-RAND` and is deleted when the guard drops; one
//! left by a killed run is deleted by the next run on that subvolume.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PREFIX: &str = ".lifeboat-snapshot-";
const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
/// The inode number of every Btrfs subvolume's top directory.
const SUBVOLUME_TOP_INO: u64 = 256;

/// A transient snapshot: never walked by any backup, even of the tree
/// that holds it.
pub fn is_own_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(PREFIX.as_bytes())
}

/// A configured path to read from a snapshot, and the source naming it.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: String,
    pub path: PathBuf,
}

/// The snapshots taken for one backup; dropping it deletes them.
#[derive(Default)]
pub struct Snapshots {
    taken: Vec<PathBuf>,
    /// (configured path, where its content is read in a snapshot).
    views: Vec<(PathBuf, PathBuf)>,
}

impl Snapshots {
    pub fn views(&self) -> &[(PathBuf, PathBuf)] {
        &self.views
    }

    /// Deletes the snapshots now, saying through `warn` which could not be.
    pub fn finish(mut self, warn: &mut dyn FnMut(String)) {
        for dir in self.taken.drain(..) {
            if let Err(err) = delete(&dir) {
                warn(format!(
                    "{err:#}; the next backup of this subvolume deletes it"
                ));
            }
        }
    }
}

impl Drop for Snapshots {
    fn drop(&mut self) {
        // On a failed backup, best effort: one that cannot be deleted now
        // is deleted by the next backup of its subvolume (its PID is gone).
        for dir in self.taken.drain(..) {
            let _ = delete(&dir);
        }
    }
}

/// Fails, as `take` would, when a requested path is not on Btrfs: checked
/// before anything is captured, so a bad config costs nothing.
pub fn check(service: &str, requests: &[Request]) -> Result<()> {
    for req in requests {
        locate(service, req)?;
    }
    Ok(())
}

/// The configured path made absolute, its canonical form, and the top of
/// its subvolume.
fn locate(service: &str, req: &Request) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let abs = std::path::absolute(&req.path)
        .with_context(|| format!("backup source {}", req.path.display()))?;
    let real =
        std::fs::canonicalize(&abs).with_context(|| format!("backup source {}", abs.display()))?;
    let top = subvolume_top(&real).map_err(|e| {
        anyhow::anyhow!(
            "service `{service}`, source `{}`: snapshot = \"btrfs\" but {} {e}\n  \
             hint: put the data on a Btrfs subvolume, or remove `snapshot` from the source to read the live tree",
            req.source,
            abs.display()
        )
    })?;
    Ok((abs, real, top))
}

/// Takes one read-only snapshot per subvolume holding a requested path.
pub fn take(
    service: &str,
    requests: &[Request],
    warn: &mut dyn FnMut(String),
) -> Result<Snapshots> {
    let mut snaps = Snapshots::default();
    let mut by_top: Vec<(PathBuf, PathBuf)> = Vec::new();
    for req in requests {
        let (abs, real, top) = locate(service, req)?;
        let snap = match by_top.iter().find(|(t, _)| *t == top) {
            Some((_, s)) => s.clone(),
            None => {
                clean_stale(&top, warn);
                let s = top.join(format!(
                    "{PREFIX}{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                run(Command::new("btrfs")
                    .args(["subvolume", "snapshot", "-r"])
                    .arg(&top)
                    .arg(&s))
                .with_context(|| {
                    format!(
                        "service `{service}`, source `{}`: taking a read-only snapshot of {}",
                        req.source,
                        top.display()
                    )
                })?;
                snaps.taken.push(s.clone());
                by_top.push((top.clone(), s.clone()));
                s
            }
        };
        let inside = real.strip_prefix(&top).unwrap_or(Path::new(""));
        snaps.views.push((abs, snap.join(inside)));
    }
    Ok(snaps)
}

/// The top directory of the Btrfs subvolume holding `real` (canonical).
fn subvolume_top(real: &Path) -> Result<PathBuf, String> {
    let fs_type = statfs_type(real).map_err(|e| format!("cannot be inspected: {e}"))?;
    if fs_type != BTRFS_SUPER_MAGIC {
        return Err(format!(
            "is not on a Btrfs filesystem (filesystem type 0x{fs_type:x})"
        ));
    }
    let dev = std::fs::metadata(real)
        .map_err(|e| format!("cannot be read: {e}"))?
        .dev();
    for dir in real.ancestors() {
        // Each subvolume has its own device number: leaving it means the
        // top was missed, which a Btrfs tree never does.
        let Ok(m) = std::fs::metadata(dir) else { break };
        if m.dev() != dev {
            break;
        }
        if m.is_dir() && m.ino() == SUBVOLUME_TOP_INO {
            return Ok(dir.to_path_buf());
        }
    }
    Err("is on Btrfs but its subvolume's top directory was not found".into())
}

fn statfs_type(p: &Path) -> std::io::Result<i64> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

/// Deletes snapshots at `top` whose backup process is gone.
fn clean_stale(top: &Path, warn: &mut dyn FnMut(String)) {
    let Ok(rd) = std::fs::read_dir(top) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Err(err) = delete(&e.path()) {
            warn(format!(
                "a snapshot left by an interrupted backup could not be deleted: {err:#}"
            ));
        }
    }
}

fn delete(dir: &Path) -> Result<()> {
    run(Command::new("btrfs").args(["subvolume", "delete"]).arg(dir))
        .with_context(|| format!("deleting snapshot {}", dir.display()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = match cmd.stdin(std::process::Stdio::null()).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("the `btrfs` command was not found\n  hint: install btrfs-progs (apt-get install btrfs-progs)")
        }
        Err(e) => return Err(e).context("running btrfs"),
    };
    if !out.status.success() {
        bail!(
            "btrfs failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
