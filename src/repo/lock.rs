//! Repository locks. Backups, restores and verifies take shared locks and may
//! run side by side; prune takes an exclusive one. A lock records who holds
//! it, so a stale one is explained rather than silently broken.

use super::{Backend, Kind};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    pub time: String,
    pub exclusive: bool,
    pub operation: String,
}

impl LockInfo {
    /// True when the holder is certainly gone: same host, process not running.
    pub fn is_stale(&self) -> bool {
        self.host == crate::paths::hostname() && !pid_alive(self.pid)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} lock for {} held by pid {} on {} since {}{}",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.operation,
            self.pid,
            self.host,
            self.time,
            if self.is_stale() {
                " (that process is no longer running)"
            } else {
                ""
            }
        )
    }
}

fn pid_alive(pid: u32) -> bool {
    // Signal 0 checks existence; EPERM still means the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub struct Lock<'a> {
    backend: &'a dyn Backend,
    name: String,
}

impl<'a> Lock<'a> {
    pub fn shared(backend: &'a dyn Backend, operation: &str) -> Result<Lock<'a>> {
        Self::take(backend, operation, false)
    }

    pub fn exclusive(backend: &'a dyn Backend, operation: &str) -> Result<Lock<'a>> {
        Self::take(backend, operation, true)
    }

    fn take(backend: &'a dyn Backend, operation: &str, exclusive: bool) -> Result<Lock<'a>> {
        check_conflicts(backend, exclusive, None)?;
        let info = LockInfo {
            host: crate::paths::hostname(),
            pid: std::process::id(),
            time: super::snapshot::now_rfc3339(),
            exclusive,
            operation: operation.to_string(),
        };
        let name = hex::encode(rand::random::<[u8; 16]>());
        backend.put(Kind::Locks, &name, &serde_json::to_vec(&info)?)?;
        let lock = Lock { backend, name };
        // Two exclusive takers may both pass the first check; the second
        // look sees the other's lock and one of them backs off.
        if let Err(e) = check_conflicts(backend, exclusive, Some(&lock.name)) {
            drop(lock);
            return Err(e);
        }
        Ok(lock)
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        let _ = self.backend.remove(Kind::Locks, &self.name);
    }
}

pub fn list(backend: &dyn Backend) -> Result<Vec<(String, LockInfo)>> {
    let mut out = Vec::new();
    for (name, _) in backend.list(Kind::Locks)? {
        let Ok(raw) = backend.get(Kind::Locks, &name) else {
            continue; // removed meanwhile
        };
        let info: LockInfo =
            serde_json::from_slice(&raw).with_context(|| format!("lock {name} is damaged"))?;
        out.push((name, info));
    }
    Ok(out)
}

fn check_conflicts(backend: &dyn Backend, exclusive: bool, own: Option<&str>) -> Result<()> {
    for (name, info) in list(backend)? {
        if Some(name.as_str()) == own || !(exclusive || info.exclusive) {
            continue;
        }
        return Err(crate::Error::Locked {
            holder: info.describe(),
            stale: info.is_stale(),
        }
        .into());
    }
    Ok(())
}

/// Removes locks: only stale ones unless `all`.
pub fn unlock(backend: &dyn Backend, all: bool) -> Result<Vec<LockInfo>> {
    let mut removed = Vec::new();
    for (name, info) in list(backend)? {
        if all || info.is_stale() {
            backend.remove(Kind::Locks, &name)?;
            removed.push(info);
        }
    }
    Ok(removed)
}
