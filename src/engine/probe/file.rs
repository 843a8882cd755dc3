//! `file` probes: a path of the restored tree exists, is big enough, and
//! (optionally) parses as JSON or TOML or opens as a sound SQLite database.

use super::{timed_out, within, Outcome, Target};
use crate::model::FileFormat;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// TOML is parsed whole: a bigger "config file" is not one.
const MAX_TOML: u64 = 64 << 20;

pub(super) fn run(
    path: &Path,
    min_size: Option<u64>,
    parse: Option<FileFormat>,
    timeout: Duration,
    target: &Target,
) -> Outcome {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let full = target.root.join(rel);
    let root = target.root.clone();
    match within(timeout, move || check(&full, &root, min_size, parse)) {
        None => timed_out(timeout),
        Some(Ok(d)) => Outcome::Pass(d),
        Some(Err(d)) => Outcome::Fail(d),
    }
}

fn check(
    full: &PathBuf,
    root: &Path,
    min_size: Option<u64>,
    parse: Option<FileFormat>,
) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(full).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "not in the restored tree".to_string(),
        _ => format!("cannot read it: {e}"),
    })?;
    // A restored link that leads out of the restored tree would check
    // some other file, and prove nothing.
    if meta.file_type().is_symlink() {
        let real =
            std::fs::canonicalize(full).map_err(|e| format!("a link that leads nowhere ({e})"))?;
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        if !real.starts_with(&root) {
            return Err(format!(
                "a link to {}, outside the restored tree",
                real.display()
            ));
        }
    }
    let meta = std::fs::metadata(full).map_err(|e| format!("cannot read it: {e}"))?;
    let size = meta.len();
    let human = crate::util::human_bytes(size);
    if let Some(min) = min_size {
        if size < min {
            return Err(format!(
                "{human}, smaller than its min_size of {}",
                crate::util::human_bytes(min)
            ));
        }
    }
    let Some(format) = parse else {
        return Ok(format!("present, {human}"));
    };
    if !meta.is_file() {
        return Err(format!("not a file, so not {}", format.name()));
    }
    match format {
        FileFormat::Json => {
            let f = std::fs::File::open(full).map_err(|e| format!("cannot open it: {e}"))?;
            // Checked as it streams by, never held whole.
            serde_json::from_reader::<_, serde::de::IgnoredAny>(std::io::BufReader::new(f))
                .map_err(|e| format!("not valid JSON: {e}"))?;
        }
        FileFormat::Toml => {
            if size > MAX_TOML {
                return Err(format!(
                    "{human} is too large to be a TOML file (over 64 MiB)"
                ));
            }
            let text = std::fs::read_to_string(full)
                .map_err(|e| format!("cannot read it as text: {e}"))?;
            text.parse::<toml::Table>()
                .map_err(|e| format!("not valid TOML: {}", e.message()))?;
        }
        FileFormat::Sqlite => {
            let c = rusqlite::Connection::open_with_flags(
                full,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|e| format!("does not open as SQLite: {e}"))?;
            let verdict: String = c
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| format!("not a sound SQLite database: {e}"))?;
            if verdict != "ok" {
                return Err(format!("SQLite's quick_check says: {verdict}"));
            }
        }
    }
    Ok(format!("present, {human}, valid {}", format.name()))
}
