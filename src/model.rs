//! The plain data the engine works on: a service, its tier and targets,
//! its sources and how to reach them, retention rules and health
//! thresholds. The config module turns TOML into these; nothing here reads
//! a file or knows where the values came from.

use crate::util::SecretRef;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Critical,
    Important,
    Supporting,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Critical, Tier::Important, Tier::Supporting];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Important => "important",
            Tier::Supporting => "supporting",
        }
    }

    /// Defaults from the plans our users wrote: critical data back within
    /// two hours, everything at most a day (two for supporting) old.
    pub fn default_policy(self) -> Policy {
        let h = |n: u64| Duration::from_secs(n * 3600);
        match self {
            Tier::Critical => Policy {
                rpo: h(24),
                rto: h(2),
            },
            Tier::Important => Policy {
                rpo: h(24),
                rto: h(8),
            },
            Tier::Supporting => Policy {
                rpo: h(48),
                rto: h(24),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Maximum age of the newest good backup.
    pub rpo: Duration,
    /// Maximum time to restore.
    pub rto: Duration,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub tier: Tier,
    /// Which restore points `forget` keeps.
    pub retention: Retention,
    pub repository: String,
    pub host: String,
    pub description: String,
    pub policy: Policy,
    pub sources: Vec<Source>,
    /// Shell commands that stop and start the service (runbooks' `stop`
    /// and `start` actions).
    pub stop: Option<String>,
    pub start: Option<String>,
    /// Application-level checks drills and live restores run on the
    /// restored data.
    pub probes: Vec<Probe>,
    /// How a drill starts the application on its sandbox, for `http` and
    /// `tcp` probes.
    pub sandbox: Option<SandboxApp>,
    /// Commands run around every backup of the service.
    pub hooks: Hooks,
}

/// `before_backup` / `after_backup`: run by `sh -c` with the service's
/// name and (after) the backup's outcome in the environment. A failing
/// `before_backup` aborts the backup; `after_backup` runs whatever
/// happened, once `before_backup` was started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub before_backup: Option<String>,
    pub after_backup: Option<String>,
    /// How long each may run before it is killed (a failure).
    pub timeout: Option<Duration>,
}

mod probe;
pub use probe::{
    variables_in, Compare, Expect, FileFormat, Probe, ProbeKind, SandboxApp, VARIABLES,
};

mod cluster;
pub use cluster::Cluster;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Unique within the service; names the source's files in a snapshot
    /// (`.lifeboat/NAME/…`). Defaults to the kind.
    pub name: String,
    pub kind: SourceKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SourceKind {
    Files {
        paths: Vec<PathBuf>,
        exclude: Vec<String>,
        /// Read the paths from a read-only filesystem snapshot taken for
        /// the backup (see `crate::source::fs_snapshot`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<FsSnapshot>,
    },
    /// Files that hold secrets (`.env`): stored like files, never previewed,
    /// restored mode 0600.
    Secrets {
        paths: Vec<PathBuf>,
    },
    Postgres(Database),
    /// A whole cluster, for point-in-time recovery.
    PostgresCluster(Cluster),
    Mysql(Database),
    Sqlite {
        path: PathBuf,
    },
    Redis(Redis),
    Command(Command),
    VmImage {
        path: PathBuf,
    },
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Files { .. } => "files",
            SourceKind::Secrets { .. } => "secrets",
            SourceKind::Postgres(_) => "postgres",
            SourceKind::PostgresCluster(_) => "postgres-cluster",
            SourceKind::Mysql(_) => "mysql",
            SourceKind::Sqlite { .. } => "sqlite",
            SourceKind::Redis(_) => "redis",
            SourceKind::Command(_) => "command",
            SourceKind::VmImage { .. } => "vm-image",
        }
    }

    /// Sources whose data is walked as a tree rather than streamed.
    pub fn is_tree(&self) -> bool {
        matches!(self, SourceKind::Files { .. } | SourceKind::Secrets { .. })
    }
}

/// A filesystem snapshot a files source is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsSnapshot {
    Btrfs,
}

/// A PostgreSQL or MariaDB/MySQL database and how to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub database: String,
    /// A host name, an address, or (PostgreSQL) a socket directory.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// A file holding the password (its first line). Never on a command line.
    pub password_file: Option<SecretRef>,
    /// PostgreSQL: also keep roles and tablespaces (`pg_dumpall --globals-only`).
    pub globals: bool,
    /// `check = "checksums"`: record a checksum of every table's content
    /// (PostgreSQL: up to 1 GiB a table; MariaDB: read from the dump) and
    /// compare it after a restore.
    #[serde(default)]
    pub checksums: bool,
    /// How long a swap waits for the application's open transactions
    /// before it gives up and leaves the live database as it was.
    #[serde(default = "default_lock_timeout", with = "humantime_serde_secs")]
    pub lock_timeout: Duration,
}

fn default_lock_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Durations in records as whole seconds.
mod humantime_serde_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redis {
    pub host: String,
    pub port: u16,
    pub password_file: Option<SecretRef>,
    /// Where the live server loads its RDB from; needed to restore live.
    pub rdb_path: Option<PathBuf>,
    /// Stop and start the live server around a live restore.
    pub stop: Option<String>,
    pub start: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Its standard output is the backup (`vzdump 100 --stdout`).
    pub backup: String,
    /// Receives the backup on standard input.
    pub restore: Option<String>,
    /// Run after a restore; exit 0 means the restored service is sound.
    pub check: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl Retention {
    /// The plans' common default: 7 daily, 4 weekly, 12 monthly.
    pub fn seed_default() -> Retention {
        Retention {
            daily: 7,
            weekly: 4,
            monthly: 12,
            ..Retention::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }

    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
        if parts.is_empty() {
            "keep everything".into()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub verify_max_age: Duration,
    pub drill_max_age: Duration,
    pub capacity_warn_percent: f64,
    pub capacity_breach_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            verify_max_age: Duration::from_secs(7 * 86400),
            drill_max_age: Duration::from_secs(35 * 86400),
            capacity_warn_percent: 80.0,
            capacity_breach_percent: 95.0,
        }
    }
}
