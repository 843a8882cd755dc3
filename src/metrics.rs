//! Prometheus metrics for node_exporter's textfile collector: the same
//! figures as `lifeboat health`, written atomically.

use crate::health::{Report, State};
use crate::inventory::Inventory;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn state_value(s: State) -> u8 {
    s.exit_code()
}

/// One metric and its series, for the text format and for `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// Label pairs in the order they are written (service first, as
/// dashboards and alert rules already expect); a JSON object.
#[derive(Debug, Clone, Default)]
pub struct Labels(pub Vec<(&'static str, String)>);

impl Labels {
    fn with(mut self, name: &'static str, value: String) -> Labels {
        self.0.push((name, value));
        self
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Every metric, with the same figures as `lifeboat health`.
pub fn families(inv: &Inventory, report: &Report) -> Vec<Family> {
    let mut out = Vec::new();
    let mut family = |name: &'static str, help: &'static str, rows: Vec<(Labels, f64)>| {
        out.push(Family {
            name,
            help,
            samples: rows
                .into_iter()
                .map(|(labels, value)| Sample { labels, value })
                .collect(),
        });
    };
    let svc = |s: &crate::inventory::ServiceView| -> Labels {
        Labels::default()
            .with("service", s.name.clone())
            .with("tier", s.tier.name().to_string())
            .with("host", s.host.clone())
    };
    // A repository that cannot be read says nothing about its services:
    // a 0 there would read as "no restore points" (health_state says 3).
    let readable = |s: &crate::inventory::ServiceView| {
        !inv.repositories
            .iter()
            .any(|r| r.name == s.repository && r.error.is_some())
    };
    let each = |f: &dyn Fn(&crate::inventory::ServiceView) -> Option<f64>| -> Vec<(Labels, f64)> {
        inv.services
            .iter()
            .filter(|s| readable(s))
            .filter_map(|s| f(s).map(|v| (svc(s), v)))
            .collect()
    };
    family(
        "lifeboat_last_backup_timestamp_seconds",
        "Time of the newest restore point.",
        each(&|s| s.latest().map(|p| secs(p.time))),
    );
    family(
        "lifeboat_last_backup_duration_seconds",
        "How long the newest backup took.",
        each(&|s| s.latest().map(|p| p.duration_ms as f64 / 1000.0)),
    );
    family(
        "lifeboat_last_backup_added_bytes",
        "Bytes the newest backup added to the repository.",
        each(&|s| s.latest().map(|p| p.added as f64)),
    );
    family(
        "lifeboat_last_backup_size_bytes",
        "Size of the newest restore point.",
        each(&|s| s.latest().map(|p| p.bytes as f64)),
    );
    family(
        "lifeboat_wal_newest_archived_timestamp_seconds",
        "PostgreSQL point-in-time recovery: when the newest WAL segment in the repository was archived (archive lag = now - this).",
        each(&|s| s.pitr.as_ref()?.newest_archived.map(secs)),
    );
    family(
        "lifeboat_pitr_oldest_restorable_timestamp_seconds",
        "PostgreSQL point-in-time recovery: the oldest moment a restore can reach.",
        each(&|s| s.pitr.as_ref()?.window.oldest.map(secs)),
    );
    family(
        "lifeboat_wal_missing_segments",
        "PostgreSQL point-in-time recovery: WAL segments missing from the archive after the oldest base backup (a gap no restore gets past).",
        each(&|s| {
            let w = &s.pitr.as_ref()?.window;
            Some(w.gaps.iter().map(|g| g.missing_count).sum::<u64>() as f64)
        }),
    );
    family(
        "lifeboat_restore_points",
        "Restore points kept.",
        each(&|s| Some(s.restore_points.len() as f64)),
    );
    family(
        "lifeboat_rpo_seconds",
        "Recovery point objective.",
        each(&|s| Some(s.rpo_secs as f64)),
    );
    family(
        "lifeboat_rto_seconds",
        "Recovery time objective.",
        each(&|s| Some(s.rto_secs as f64)),
    );
    family(
        "lifeboat_last_drill_duration_seconds",
        "Measured time to restore in the last drill.",
        each(&|s| s.last_drill.as_ref().map(|d| d.duration_ms as f64 / 1000.0)),
    );
    family(
        "lifeboat_last_drill_success",
        "1 if the last restore drill succeeded.",
        each(&|s| s.last_drill.as_ref().map(|d| f64::from(u8::from(d.ok)))),
    );
    family(
        "lifeboat_last_verify_timestamp_seconds",
        "Time of the last verify.",
        each(&|s| s.last_verify.as_ref().map(|v| secs(v.time))),
    );
    // One series per service and off-site repository holding its copies.
    let lags: Vec<(Labels, f64)> = report
        .services
        .iter()
        .flat_map(|h| {
            let labels = inv.services.iter().find(|s| s.name == h.service).map(&svc);
            h.offsite.iter().filter_map(move |o| {
                let labels = labels.clone()?;
                let lag = o.lag_secs?;
                Some((labels.with("repository", o.repository.clone()), lag as f64))
            })
        })
        .collect();
    family(
        "lifeboat_offsite_lag_seconds",
        "How far the newest off-site copy is behind the newest local restore point.",
        lags,
    );
    let states: Vec<(Labels, f64)> = report
        .services
        .iter()
        .filter_map(|h| {
            inv.services
                .iter()
                .find(|s| s.name == h.service)
                .map(|s| (svc(s), f64::from(state_value(h.state))))
        })
        .collect();
    family(
        "lifeboat_health_state",
        "0 ok, 1 warning, 2 breach, 3 unknown.",
        states,
    );
    let repos =
        |f: &dyn Fn(&crate::inventory::RepositoryView) -> Option<f64>| -> Vec<(Labels, f64)> {
            inv.repositories
                .iter()
                .filter_map(|r| {
                    f(r).map(|v| (Labels::default().with("repository", r.name.clone()), v))
                })
                .collect()
        };
    family(
        "lifeboat_repository_size_bytes",
        "Bytes the repository's data takes.",
        repos(&|r| r.size.map(|s| s as f64)),
    );
    family(
        "lifeboat_repository_storage_used_ratio",
        "Share of the repository's storage in use.",
        repos(&|r| r.capacity.as_ref().map(|c| c.percent() / 100.0)),
    );
    family(
        "lifeboat_health_overall_state",
        "Worst state of all: 0 ok, 1 warning, 2 breach, 3 unknown.",
        vec![(Labels::default(), f64::from(state_value(report.state)))],
    );
    out
}

/// One warning per repository that cannot be read, whose services the
/// metrics leave out (all but their health state).
pub fn warnings(inv: &Inventory) -> Vec<String> {
    inv.repositories
        .iter()
        .filter_map(|r| {
            let why = r.error.as_ref()?;
            Some(format!("repository {} cannot be read: {why}", r.name))
        })
        .collect()
}

/// The Prometheus text format of [`families`].
pub fn render(inv: &Inventory, report: &Report) -> String {
    let mut out = String::new();
    for f in families(inv, report) {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", f.name, f.help, f.name);
        for s in f.samples {
            let labels: Vec<String> = s
                .labels
                .0
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {}", f.name, labels.join(","), s.value);
        }
    }
    out
}

/// Writes the metrics atomically (the collector never sees half a file).
pub fn write_textfile(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
