//! The shipped runbooks, compiled into the binary: an installed Lifeboat
//! has every scenario without a `runbooks/` directory anywhere. A
//! directory of runbooks (`--runbooks`, `runbooks_dir`, or `runbooks/`
//! beside the config) adds to them and overrides them by id.

use std::path::{Path, PathBuf};

/// (file name, text) of every shipped runbook.
pub const RUNBOOKS: &[(&str, &str)] = &[
    (
        "backup-now.md",
        include_str!("../../runbooks/backup-now.md"),
    ),
    (
        "db-corruption.md",
        include_str!("../../runbooks/db-corruption.md"),
    ),
    (
        "files-deleted.md",
        include_str!("../../runbooks/files-deleted.md"),
    ),
    ("host-lost.md", include_str!("../../runbooks/host-lost.md")),
    (
        "monthly-drill.md",
        include_str!("../../runbooks/monthly-drill.md"),
    ),
    (
        "point-in-time.md",
        include_str!("../../runbooks/point-in-time.md"),
    ),
    (
        "ransomware.md",
        include_str!("../../runbooks/ransomware.md"),
    ),
    ("rollback.md", include_str!("../../runbooks/rollback.md")),
    (
        "secrets-lost.md",
        include_str!("../../runbooks/secrets-lost.md"),
    ),
    ("site-lost.md", include_str!("../../runbooks/site-lost.md")),
    ("vm-lost.md", include_str!("../../runbooks/vm-lost.md")),
];

/// The name a built-in runbook goes by where a file path would be:
/// `builtin:db-corruption.md`.
pub fn path_of(name: &str) -> PathBuf {
    PathBuf::from(format!("builtin:{name}"))
}

/// The text of a built-in runbook named by [`path_of`].
pub fn text_of(path: &Path) -> Option<&'static str> {
    let name = path.to_str()?.strip_prefix("builtin:")?;
    RUNBOOKS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_shipped_runbook_is_built_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".md") && n != "README.md")
            .collect();
        on_disk.sort();
        let built_in: Vec<&str> = super::RUNBOOKS.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            on_disk, built_in,
            "add the runbook to src/runbook/builtin.rs"
        );
    }
}
