//! Secrets are never written in the config, only referenced: a path, or
//! `env:NAME` for a path (or value) held in an environment variable, or
//! `file:PATH` for a value in a file.

use std::path::PathBuf;

/// A path to a secret: a literal path, or `env:NAME` naming an environment
/// variable that holds the path.
pub fn secret_path(s: &str) -> Result<PathBuf, String> {
    match s.strip_prefix("env:") {
        Some(var) => std::env::var_os(var)
            .map(PathBuf::from)
            .ok_or_else(|| format!("environment variable {var} is not set")),
        None if s.is_empty() => Err("empty path".into()),
        None => Ok(PathBuf::from(s)),
    }
}

/// A secret given as itself, as `env:NAME` (the variable's value) or as
/// `file:PATH` (the file's first line).
pub fn secret_value(s: &str) -> Result<String, String> {
    if let Some(var) = s.strip_prefix("env:") {
        return std::env::var(var).map_err(|_| format!("environment variable {var} is not set"));
    }
    if let Some(path) = s.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|t| t.lines().next().unwrap_or_default().trim().to_string())
            .map_err(|e| format!("cannot read {path}: {e}"));
    }
    Ok(s.to_string())
}
