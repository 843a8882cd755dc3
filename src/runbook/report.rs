//! What a run leaves behind: a report per job in `<state_dir>/reports`,
//! as JSON for machines and markdown for the incident write-up.

use crate::jobs::{Outcome, StepState};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub title: String,
    pub state: StepState,
    pub duration_ms: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    pub service: String,
    pub point: String,
    pub point_time: String,
    pub steps: Vec<StepReport>,
    pub check: Option<(bool, String)>,
    /// Time from the first step to the last, against the RTO.
    pub duration_ms: u64,
    /// Of that, the time spent waiting for a person.
    #[serde(default)]
    pub waited_ms: u64,
    pub rto_ms: u64,
    /// What the run replaced (kept for `lifeboat rollback JOB`).
    #[serde(default)]
    pub replaced: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job: String,
    pub runbook: String,
    pub title: String,
    pub started: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
    pub services: Vec<ServiceReport>,
}

/// How long before the run the restore point was taken.
fn point_age(point_time: &str, started: &str) -> String {
    let parse = |t: &str| humantime::parse_rfc3339_weak(&t.replace(' ', "T")).ok();
    match (parse(point_time), parse(started)) {
        (Some(p), Some(s)) => s
            .duration_since(p)
            .map(crate::health::short_duration)
            .unwrap_or_else(|_| "0s".into()),
        _ => "?".into(),
    }
}

pub fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Writes `<state_dir>/reports/JOB.md` and `JOB.json`; returns the .md.
pub fn write_report(state_dir: &Path, r: &JobReport) -> Result<PathBuf> {
    let dir = state_dir.join("reports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(format!("{}.json", r.job)),
        serde_json::to_vec_pretty(r)?,
    )?;
    let md = dir.join(format!("{}.md", r.job));
    std::fs::write(&md, report_markdown(r))?;
    Ok(md)
}

pub fn report_markdown(r: &JobReport) -> String {
    let mut s = format!(
        "# {}\n\nJob `{}`, runbook `{}`, started {}: **{:?}** in {}.\n",
        r.title,
        r.job,
        r.runbook,
        r.started.get(..19).unwrap_or(&r.started).replace('T', " "),
        r.outcome,
        secs(r.duration_ms)
    );
    for svc in &r.services {
        s.push_str(&format!(
            "\n## {}\n\nRestore point `{}` ({} UTC, {} before the run). Took {} against an RTO of {}{}{}.\n\n| step | state | time | detail |\n|---|---|---|---|\n",
            svc.service,
            &svc.point[..8.min(svc.point.len())],
            svc.point_time,
            point_age(&svc.point_time, &r.started),
            secs(svc.duration_ms),
            crate::health::short_duration(Duration::from_millis(svc.rto_ms)),
            if svc.duration_ms > svc.rto_ms { " (over)" } else { "" },
            if svc.waited_ms > 0 {
                format!(
                    "; the restore worked {} and waited {} for a person",
                    secs(svc.duration_ms.saturating_sub(svc.waited_ms)),
                    secs(svc.waited_ms)
                )
            } else {
                String::new()
            }
        ));
        for st in &svc.steps {
            s.push_str(&format!(
                "| {} | {} {:?} | {} | {} |\n",
                st.title,
                st.state.symbol(),
                st.state,
                secs(st.duration_ms),
                st.detail.replace('|', "\\|")
            ));
        }
        if !svc.replaced.is_empty() {
            s.push_str(&format!(
                "\nReplaced (the previous data is kept; `lifeboat rollback {}` puts it back): {}\n",
                r.job,
                svc.replaced.join(", ")
            ));
        }
        if let Some((ok, d)) = &svc.check {
            s.push_str(&format!(
                "\nCheck: {} {}\n",
                if *ok {
                    "✓ passed —"
                } else {
                    "✗ FAILED —"
                },
                d
            ));
        }
    }
    s
}
