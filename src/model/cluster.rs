//! A whole PostgreSQL cluster backed up for point-in-time recovery: base
//! backups taken with `pg_basebackup`, and the write-ahead log archived
//! continuously by `lifeboat wal-push`.

use crate::util::SecretRef;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Where `pg_basebackup` connects (a host, an address or a socket
    /// directory); the login needs the REPLICATION attribute.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password_file: Option<SecretRef>,
    /// The live data directory: what `restore --live` replaces.
    pub data_dir: Option<PathBuf>,
    /// Where `wal-push` keeps segments (fsynced) until they are packed
    /// into the repository.
    pub spool: PathBuf,
}
