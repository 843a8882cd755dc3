//! The model every view reads: repositories (with capacity), services with
//! their tier, targets and restore points, and the last verify and drill.
//! Built by [`load`], which does the I/O; views only read it.

use crate::config::{Config, Policy, Source, SourceKind, Tier};
use crate::records::{DrillRecord, Records};
use crate::repo::Snapshot;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    pub total: u64,
    pub used: u64,
}

impl Capacity {
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / self.total as f64
        }
    }

    /// The filesystem holding `path`.
    pub fn of(path: &Path) -> Option<Capacity> {
        let (total, avail) = crate::util::fs_space(path)?;
        Some(Capacity {
            total,
            used: total.saturating_sub(avail),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryView {
    pub name: String,
    pub location: String,
    pub capacity: Option<Capacity>,
    /// Bytes the repository's packs take.
    pub size: Option<u64>,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
    /// On object storage, where capacity is the provider's business.
    pub object_storage: bool,
    /// The repository this one holds copies of.
    pub copy_of: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestorePoint {
    pub id: String,
    #[serde(skip)]
    pub time: SystemTime,
    pub time_text: String,
    pub host: String,
    pub files: u64,
    pub bytes: u64,
    pub added: u64,
    pub duration_ms: u64,
    /// Entries that could not be read when it was made (0: complete).
    pub unreadable: u64,
}

impl RestorePoint {
    pub fn short_id(&self) -> &str {
        &self.id[..8.min(self.id.len())]
    }

    fn from(s: &Snapshot) -> RestorePoint {
        RestorePoint {
            id: s.id.clone(),
            time: s.system_time().unwrap_or(SystemTime::UNIX_EPOCH),
            time_text: s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
            host: s.host.clone(),
            files: s.stats.files,
            bytes: s.stats.bytes,
            added: s.stats.bytes_added,
            duration_ms: s.stats.duration_ms,
            unreadable: s.stats.unreadable,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LastVerify {
    #[serde(skip)]
    pub time: SystemTime,
    pub time_text: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub tier: Tier,
    pub host: String,
    pub description: String,
    pub repository: String,
    pub rpo_secs: u64,
    pub rto_secs: u64,
    pub sources: Vec<String>,
    /// Oldest first.
    pub restore_points: Vec<RestorePoint>,
    pub last_verify: Option<LastVerify>,
    pub last_drill: Option<DrillRecord>,
    /// The newest copy in each off-site repository (one with `copy_of`
    /// naming this service's repository).
    pub offsite: Vec<OffsiteCopy>,
    /// For a service with a postgres-cluster source: what point-in-time
    /// recovery can reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pitr: Option<Pitr>,
}

/// The archive of a postgres-cluster service, from its summaries.
#[derive(Debug, Clone, Serialize)]
pub struct Pitr {
    pub window: crate::source::pitr::window::Window,
    /// When the newest segment in the repository was archived.
    #[serde(skip)]
    pub newest_archived: Option<SystemTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OffsiteCopy {
    pub repository: String,
    /// The newest copied restore point's time (a copy keeps the original's).
    #[serde(skip)]
    pub latest: Option<SystemTime>,
    /// The off-site repository could not be read.
    pub unreadable: bool,
}

impl ServiceView {
    pub fn policy(&self) -> Policy {
        Policy {
            rpo: std::time::Duration::from_secs(self.rpo_secs),
            rto: std::time::Duration::from_secs(self.rto_secs),
        }
    }
    pub fn latest(&self) -> Option<&RestorePoint> {
        self.restore_points.last()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub repositories: Vec<RepositoryView>,
    /// Most critical tier first, then by name.
    pub services: Vec<ServiceView>,
    /// Copies restores kept of what they replaced, until discarded.
    pub kept: Kept,
    pub notices: Notices,
}

/// What health judges beside restore points, read with them so that the
/// command line and the console judge alike.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Notices {
    /// (service, repository) of critical-tier services whose repository
    /// neither S3 Object Lock nor an append-only server protects.
    pub unprotected: Vec<(String, String)>,
    /// Each service's last off-site drill.
    pub offsite_drills: Vec<crate::records::DrillRecord>,
    /// The last coverage audit.
    pub audit: Option<crate::records::AuditRecord>,
}

fn notices(config: &Config) -> Notices {
    let records = crate::records::Records::new(&config.state_dir);
    let unprotected = config
        .services
        .iter()
        .filter(|s| s.tier == crate::model::Tier::Critical)
        .filter_map(|s| {
            let r = config.repositories.get(&s.repository)?;
            let locked = r.s3.as_ref().is_some_and(|s3| s3.object_lock.is_some());
            (!locked && !r.location().starts_with("rest:"))
                .then(|| (s.name.clone(), r.name.clone()))
        })
        .collect();
    let offsite_drills = config
        .services
        .iter()
        .filter_map(|s| {
            records
                .drills(&s.name)
                .into_iter()
                .rev()
                .find(|d| d.evidence.offsite)
        })
        .collect();
    Notices {
        unprotected,
        offsite_drills,
        audit: records.last_audit(),
    }
}

/// The rollback copies restores left, in sum.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kept {
    pub count: usize,
    pub bytes: u64,
    pub oldest_secs: u64,
}

impl Inventory {
    pub fn hosts(&self) -> Vec<String> {
        let mut h: Vec<String> = self.services.iter().map(|s| s.host.clone()).collect();
        h.sort();
        h.dedup();
        h
    }
}

/// One line about a source, for the inventory. Passwords live in files
/// and are never shown; a command is shown as configured.
fn describe(src: &Source) -> String {
    let list = |paths: &[std::path::PathBuf]| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let what = match &src.kind {
        SourceKind::Files { paths, .. } | SourceKind::Secrets { paths } => list(paths),
        SourceKind::Postgres(d) | SourceKind::Mysql(d) => {
            format!("{} on {}:{}", d.database, d.host, d.port)
        }
        SourceKind::Sqlite { path } | SourceKind::VmImage { path } => path.display().to_string(),
        SourceKind::Redis(r) => format!("{}:{}", r.host, r.port),
        SourceKind::PostgresCluster(c) => format!("cluster on {}:{}", c.host, c.port),
        SourceKind::Command(c) => c.backup.clone(),
    };
    if src.name == src.kind.name() {
        format!("{}: {what}", src.name)
    } else {
        format!("{} {}: {what}", src.kind.name(), src.name)
    }
}

/// The archive of `svc` when it has a postgres-cluster source.
fn pitr_of(svc: &crate::model::Service, snaps: &BTreeMap<String, Vec<Snapshot>>) -> Option<Pitr> {
    use crate::source::pitr::{wal_service, window};
    svc.sources
        .iter()
        .find(|s| matches!(s.kind, SourceKind::PostgresCluster(_)))?;
    let all: Vec<Snapshot> = [svc.name.clone(), wal_service(&svc.name)]
        .iter()
        .filter_map(|n| snaps.get(&format!("{}\0{n}", svc.repository)))
        .flatten()
        .cloned()
        .collect();
    Some(Pitr {
        window: window::window(&all, &svc.name, None),
        newest_archived: window::newest_archived(&all, &svc.name),
    })
}

/// Reads every repository of the config. A repository that cannot be read
/// is reported in its view; the rest still load.
pub fn load(config: &Config) -> Inventory {
    load_with_key(config, None)
}

/// [`load`], opening every repository with `key` when one is given
/// (`--key`) instead of its configured key.
pub fn load_with_key(config: &Config, key: Option<&std::path::Path>) -> Inventory {
    let records = Records::new(&config.state_dir);
    let mut repositories = Vec::new();
    let mut snaps: BTreeMap<String, Vec<Snapshot>> = BTreeMap::new();
    let mut repo_ids: BTreeMap<String, String> = BTreeMap::new();
    for r in config.repositories.values() {
        let mut view = RepositoryView {
            name: r.name.clone(),
            location: r.location(),
            capacity: match r.s3 {
                None => Capacity::of(&r.path),
                Some(_) => None,
            },
            size: None,
            error: None,
            object_storage: r.s3.is_some(),
            copy_of: r.copy_of.clone(),
        };
        match r.open(key).and_then(|repo| {
            let repo = repo.with_cache_dir(config.cache_dir.clone());
            let (list, _) = repo.list_snapshots_cached()?;
            let size: u64 = repo
                .backend()
                .list(crate::repo::Kind::Data)?
                .iter()
                .map(|(_, s)| s)
                .sum();
            Ok((repo.config().id.clone(), list, size))
        }) {
            Ok((id, list, size)) => {
                view.size = Some(size);
                repo_ids.insert(r.name.clone(), id);
                for s in list {
                    snaps
                        .entry(format!("{}\0{}", r.name, s.service))
                        .or_default()
                        .push(s);
                }
            }
            Err(e) => view.error = Some(format!("{e:#}")),
        }
        repositories.push(view);
    }
    let services = config
        .services
        .iter()
        .map(|svc| {
            let points: Vec<RestorePoint> = snaps
                .get(&format!("{}\0{}", svc.repository, svc.name))
                .map(|v| v.iter().map(RestorePoint::from).collect())
                .unwrap_or_default();
            let last_verify = repo_ids
                .get(&svc.repository)
                .and_then(|id| records.verifies(id).pop())
                .map(|v| LastVerify {
                    time: humantime::parse_rfc3339_weak(&v.time).unwrap_or(SystemTime::UNIX_EPOCH),
                    time_text: v.time.get(..19).unwrap_or(&v.time).replace('T', " "),
                    ok: !v.affected_services.contains(&svc.name),
                });
            ServiceView {
                name: svc.name.clone(),
                tier: svc.tier,
                host: svc.host.clone(),
                description: svc.description.clone(),
                repository: svc.repository.clone(),
                rpo_secs: svc.policy.rpo.as_secs(),
                rto_secs: svc.policy.rto.as_secs(),
                sources: svc.sources.iter().map(describe).collect(),
                restore_points: points,
                last_verify,
                last_drill: records.drills(&svc.name).pop(),
                offsite: repositories
                    .iter()
                    .filter(|r| r.copy_of.as_deref() == Some(svc.repository.as_str()))
                    .map(|r| OffsiteCopy {
                        repository: r.name.clone(),
                        latest: snaps
                            .get(&format!("{}\0{}", r.name, svc.name))
                            .and_then(|v| v.iter().filter_map(|s| s.system_time()).max()),
                        unreadable: r.error.is_some(),
                    })
                    .collect(),
                pitr: pitr_of(svc, &snaps),
            }
        })
        .collect();
    let kept = crate::engine::leftovers::list(&config.state_dir, SystemTime::now())
        .iter()
        .fold(Kept::default(), |k, l| Kept {
            count: k.count + 1,
            bytes: k.bytes + l.bytes.unwrap_or(0),
            oldest_secs: k.oldest_secs.max(l.age.as_secs()),
        });
    Inventory {
        repositories,
        services,
        kept,
        notices: notices(config),
    }
}
