//! Where Lifeboat keeps its own files on the admin host.

use std::path::PathBuf;

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Directory of per-repository caches (the files cache).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LIFEBOAT_CACHE_DIR") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"))
        .join("lifeboat")
}

/// Directory where `lifeboat init` stores identities by default.
pub fn key_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LIFEBOAT_KEY_DIR") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"))
        .join("lifeboat")
        .join("keys")
}

/// The host name recorded in snapshots and locks.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Where job records and reports live when no config says otherwise.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LIFEBOAT_STATE_DIR") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".local/state"))
        .join("lifeboat")
}
