//! Point-in-time recovery of a whole PostgreSQL cluster: base backups
//! streamed from `pg_basebackup` (`base`), write-ahead log segments
//! spooled by `wal-push` and packed into the repository in groups
//! (`spool`, `wal`), the window a restore can reach (`window`) and the
//! data directory a restore writes (`recovery`).

pub mod archive;
pub mod base;
pub mod fetch;
pub mod label;
pub mod recovery;
pub mod restore_at;
pub mod spool;
pub mod trial;
pub mod verify;
pub mod wal;
pub mod window;

use anyhow::{bail, Result};

/// The service name WAL groups are stored under: not a name a service
/// can have (`+` is not allowed), so the groups never show up as restore
/// points of the service, and retention of its base backups never
/// thins out the log between them.
pub fn wal_service(service: &str) -> String {
    format!("{service}+wal")
}

/// The source kind recorded on WAL groups.
pub const WAL_KIND: &str = "postgres-wal";

/// A file name PostgreSQL archives: a segment (24 hex digits), a
/// timeline history file, a backup history file or a partial segment.
/// Anything else (a path, `..`) is refused before it names a file.
pub fn check_wal_name(name: &str) -> Result<()> {
    let hex = |s: &str| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = hex(name)
        || name.strip_suffix(".partial").is_some_and(hex)
        || name
            .strip_suffix(".history")
            .is_some_and(|t| t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        || name
            .strip_suffix(".backup")
            .is_some_and(|t| t.len() == 24 + 9 && hex(&t[..24]) && t.as_bytes()[24] == b'.');
    if !ok {
        bail!(
            "{name:?} is not a WAL file name (24 hex digits, or a .history, .backup or .partial file); archive_command must pass %p and restore_command %f"
        );
    }
    Ok(())
}

/// A cluster cannot be staged like a database dump: a restore picks a
/// moment, and the data directory is written by `restore --at`.
pub fn stage_refused() -> Result<(String, Vec<String>, super::Commit)> {
    bail!(
        "a postgres-cluster source is restored to a moment: `lifeboat restore SERVICE --at TIME|latest --target DIR`"
    )
}

#[cfg(test)]
mod tests {
    use super::check_wal_name;

    #[test]
    fn only_wal_names_are_accepted() {
        for ok in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000003.partial",
        ] {
            assert!(check_wal_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../000000010000000000000003",
            "pg_wal/000000010000000000000003",
            "00000001000000000000000G",
            "x.history",
        ] {
            assert!(check_wal_name(bad).is_err(), "{bad}");
        }
    }
}
