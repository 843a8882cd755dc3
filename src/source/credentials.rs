//! Credential files: how passwords reach client tools (`pg_dump`'s
//! PGPASSFILE, `mariadb`'s option file) without touching argv. They live
//! in a private (0700) directory under the state dir, never in the shared
//! temporary directory, and each carries the pid of the run that made it,
//! so the next run removes what a crashed one (`kill -9` mid-dump) left.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where credential files go unless told otherwise.
static CREDENTIALS: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

const CRED_PREFIX: &str = ".lifeboat-cred-";

/// Keeps credential files in `dir` (private, 0700) from now on, and
/// removes the ones a crashed run left there. Called once at start with
/// a directory under the state dir: a `kill -9` during a dump must not
/// leave a password in the shared temporary directory.
pub fn keep_credentials_in(dir: PathBuf) {
    if let Ok(mut d) = CREDENTIALS.lock() {
        *d = Some(dir.clone());
    }
    // Made when a tool first needs it, not by every command.
    if dir.is_dir() {
        sweep(&dir);
    }
    // Versions before this one wrote them to the temporary directory.
    for legacy in legacy_dirs() {
        sweep_legacy(&legacy);
    }
}

fn credentials_dir() -> Result<PathBuf> {
    let dir = CREDENTIALS
        .lock()
        .ok()
        .and_then(|d| d.clone())
        .unwrap_or_else(|| crate::paths::state_dir().join("credentials"));
    private_dir(&dir)?;
    Ok(dir)
}

/// Makes `dir` exist as a directory of ours that only we can enter.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let m = std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() || m.uid() != me {
        bail!(
            "{} is not a directory of this user's; credential files will not be written there (remove it)",
            dir.display()
        );
    }
    if m.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// Removes credential files whose process is gone: each name carries the
/// pid of the run that made it, and a pid now used by a process younger
/// than the file is not that run.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(CRED_PREFIX) else {
            continue;
        };
        // PID@HOST-RANDOM: a state dir shared between hosts (NFS) holds
        // other hosts' files, whose pids mean nothing here.
        let (pid, host) = match rest.split_once('@') {
            Some((pid, tail)) => (
                pid.parse::<i32>().ok(),
                tail.rsplit_once('-').map(|(h, _)| h),
            ),
            None => (None, None),
        };
        if host.is_some_and(|h| h != own_host()) {
            continue;
        }
        let written = e.metadata().and_then(|m| m.modified()).ok();
        let alive = match (pid, written) {
            (Some(pid), Some(written)) => {
                pid as u32 == std::process::id() || process_since(pid, written)
            }
            _ => false,
        };
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// This host's name as it goes into a file name.
fn own_host() -> String {
    crate::paths::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether process `pid` exists and was already running at `t`.
fn process_since(pid: i32, t: std::time::SystemTime) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match process_start(pid) {
        Some(started) => started <= t + std::time::Duration::from_secs(2),
        // Not Linux, or /proc hidden: trust the pid.
        None => true,
    }
}

/// When a process started, from /proc (Linux).
fn process_start(pid: i32) -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces.
    let after = stat.rsplit_once(')')?.1;
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(boot * 1000 + ticks * 1000 / hz))
}

fn legacy_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    v.push(std::env::temp_dir());
    v
}

/// Removes this user's credential files an older version left in a shared
/// directory; they carry no pid, so only those untouched for an hour
/// (no dump of such a run can still be reading them, or it has its copy).
fn sweep_legacy(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(CRED_PREFIX) {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        let old = m
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if m.is_file() && m.uid() == me && old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A private file (mode 0600, in the private credentials directory)
/// holding `content`, removed when dropped: how passwords reach client
/// tools without touching argv. Its name carries our pid and host, so a
/// run that died before removing it is recognised by the next one.
pub fn secret_file(content: &str) -> Result<tempfile::NamedTempFile> {
    let dir = credentials_dir()?;
    let mut f = tempfile::Builder::new()
        .prefix(&format!(
            "{CRED_PREFIX}{}@{}-",
            std::process::id(),
            own_host()
        ))
        .tempfile_in(&dir)
        .with_context(|| format!("creating a private credentials file in {}", dir.display()))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.flush())
        .context("writing a private credentials file")?;
    Ok(f)
}
