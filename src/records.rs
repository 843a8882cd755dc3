//! What jobs leave behind for health to read: verify and drill results, as
//! JSON lines in the state directory (one file per repository or service,
//! appended with one write per record).

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyRecord {
    pub time: String,
    pub repository: String,
    pub read_data_percent: f64,
    pub ok: bool,
    pub problems: usize,
    /// Services with at least one affected restore point.
    pub affected_services: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillRecord {
    pub time: String,
    pub service: String,
    pub snapshot: String,
    pub ok: bool,
    /// Measured time to restore and check.
    pub duration_ms: u64,
    /// The target it was measured against.
    pub rto_ms: u64,
    pub detail: String,
    /// `drill`, or `restore` for a checked live restore (which proves the
    /// same thing).
    #[serde(default = "drill_kind")]
    pub kind: String,
    /// Time it waited for a person (not counted in `duration_ms`).
    #[serde(default)]
    pub waited_ms: u64,
    /// Which point, from which repository, and what was probed.
    #[serde(default, flatten)]
    pub evidence: Evidence,
}

/// What an auditor asks of a drill beyond its result (records written
/// before these existed read as empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Evidence {
    /// The repository it restored from (its name in the config, or its
    /// location); empty in older records.
    pub repository: String,
    /// From a repository other than the service's own: an off-site copy.
    pub offsite: bool,
    /// How the point was chosen: `latest`, `random`, or `chosen`.
    pub point: String,
    /// When the restore point was taken.
    pub point_time: String,
    pub probes: Vec<crate::engine::probe::ProbeResult>,
}

/// The last coverage audit (`lifeboat audit`), as health reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: String,
    pub report: crate::engine::audit::AuditReport,
}

fn drill_kind() -> String {
    "drill".into()
}

impl VerifyRecord {
    pub fn new(
        repository: &str,
        read_data_percent: f64,
        report: &crate::engine::VerifyReport,
    ) -> VerifyRecord {
        VerifyRecord {
            time: crate::repo::snapshot::now_rfc3339(),
            repository: repository.to_string(),
            read_data_percent,
            ok: report.ok(),
            problems: report.problems.len(),
            affected_services: report.affected_services.clone(),
        }
    }
}

impl DrillRecord {
    pub fn new(service: &str, report: &crate::engine::DrillReport) -> DrillRecord {
        DrillRecord {
            time: crate::repo::snapshot::now_rfc3339(),
            service: service.to_string(),
            snapshot: report.snapshot.clone(),
            ok: report.ok,
            duration_ms: report.duration_ms,
            rto_ms: report.rto_ms,
            detail: report.detail.clone(),
            kind: drill_kind(),
            waited_ms: 0,
            evidence: Evidence {
                probes: report.probes.clone(),
                ..Evidence::default()
            },
        }
    }
}

pub struct Records {
    dir: PathBuf,
}

fn file_name(kind: &str, key: &str) -> String {
    // Keys are service names or repository ids: already safe, but never
    // let one walk out of the directory.
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{kind}-{safe}.jsonl")
}

impl Records {
    pub fn new(state_dir: &Path) -> Records {
        Records {
            dir: state_dir.join("records"),
        }
    }

    fn append<T: Serialize>(&self, name: &str, rec: &T) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let p = self.dir.join(name);
        let mut line = serde_json::to_vec(rec)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        f.write_all(&line)
            .with_context(|| format!("writing {}", p.display()))?;
        Ok(())
    }

    /// Every readable record, oldest first. A torn last line (a crash while
    /// appending) is skipped rather than failing health.
    fn read<T: DeserializeOwned>(&self, name: &str) -> Vec<T> {
        std::fs::read_to_string(self.dir.join(name))
            .map(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn add_verify(&self, rec: &VerifyRecord) -> Result<()> {
        self.append(&file_name("verify", &rec.repository), rec)
    }

    pub fn verifies(&self, repository: &str) -> Vec<VerifyRecord> {
        self.read(&file_name("verify", repository))
    }

    /// How many partial data reads this repository has had: the next
    /// one reads the next slice.
    pub fn partial_reads(&self, repository: &str) -> u64 {
        self.verifies(repository)
            .iter()
            .filter(|v| v.read_data_percent > 0.0 && v.read_data_percent < 100.0)
            .count() as u64
    }

    pub fn add_drill(&self, rec: &DrillRecord) -> Result<()> {
        self.append(&file_name("drill", &rec.service), rec)
    }

    pub fn drills(&self, service: &str) -> Vec<DrillRecord> {
        self.read(&file_name("drill", service))
    }

    /// Every drill of every service (those no longer configured too),
    /// oldest first.
    pub fn all_drills(&self) -> Vec<DrillRecord> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("drill-") && n.ends_with(".jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let mut all: Vec<DrillRecord> = names.iter().flat_map(|n| self.read(n)).collect();
        all.sort_by(|a, b| a.time.cmp(&b.time));
        all
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.json")
    }

    /// Replaces the last audit; written whole and renamed, so health never
    /// reads half of one.
    pub fn save_audit(&self, rec: &AuditRecord) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.audit_path();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(rec)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// The last audit, if one was kept and can be read.
    pub fn last_audit(&self) -> Option<AuditRecord> {
        let bytes = std::fs::read(self.audit_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
