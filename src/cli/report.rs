//! `lifeboat report drills`: the drill evidence an audit asks for, as
//! markdown (for people and tickets) or JSON.

use super::output;
use super::Ctx;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lifeboat::engine::probe::ProbeState;
use lifeboat::records::DrillRecord;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Every drill (and checked live restore) since a time: service,
    /// point, repository, duration against the RTO, probes, result
    Drills(DrillsArgs),
}

#[derive(Args)]
pub struct DrillsArgs {
    /// Only these services [default: all, those no longer configured too]
    services: Vec<String>,
    /// How far back, like "90d" or "12w"
    #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
    since: Duration,
}

pub fn report(ctx: &Ctx, c: ReportCommand) -> Result<ExitCode> {
    let ReportCommand::Drills(a) = c;
    let config = ctx
        .config
        .as_ref()
        .context("`report drills` reads the drill records of a config (pass --config FILE)")?;
    let from = SystemTime::now()
        .checked_sub(a.since)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let drills: Vec<DrillRecord> = lifeboat::records::Records::new(&config.state_dir)
        .all_drills()
        .into_iter()
        .filter(|d| a.services.is_empty() || a.services.contains(&d.service))
        .filter(|d| humantime::parse_rfc3339_weak(&d.time).is_ok_and(|t| t >= from))
        .collect();
    let since = humantime::format_rfc3339_seconds(from).to_string();
    if ctx.json {
        let rows: Vec<serde_json::Value> = drills.iter().map(json_row).collect();
        output::json(&serde_json::json!({ "since": since, "drills": rows }))?;
    } else {
        print!("{}", markdown(&since, &drills));
    }
    Ok(ExitCode::SUCCESS)
}

fn result(d: &DrillRecord) -> &'static str {
    match (d.ok, d.duration_ms <= d.rto_ms) {
        (false, _) => "failed",
        (true, false) => "over RTO",
        (true, true) => "passed",
    }
}

fn json_row(d: &DrillRecord) -> serde_json::Value {
    let e = &d.evidence;
    serde_json::json!({
        "service": d.service,
        "kind": d.kind,
        "time": d.time,
        "point": d.snapshot,
        "point_time": e.point_time,
        "chosen": e.point,
        "repository": e.repository,
        "offsite": e.offsite,
        "duration_ms": d.duration_ms,
        "rto_ms": d.rto_ms,
        "within_rto": d.ok && d.duration_ms <= d.rto_ms,
        "probes": e.probes,
        "result": result(d),
        "detail": d.detail,
    })
}

/// Table cells hold no `|` or line breaks, and no terminal escapes.
fn cell(s: &str) -> String {
    output::clean(s)
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn markdown(since: &str, drills: &[DrillRecord]) -> String {
    let mut out = format!("# Restore drills since {since}\n\n");
    if drills.is_empty() {
        out.push_str("No drills were recorded in this period.\n");
        return out;
    }
    let passed = drills.iter().filter(|d| result(d) == "passed").count();
    out.push_str(&format!(
        "{passed} of {} passed.\n\n| time | service | point | repository | duration / RTO | probes | result |\n|---|---|---|---|---|---|---|\n",
        drills.len()
    ));
    for d in drills {
        let e = &d.evidence;
        let pass = e
            .probes
            .iter()
            .filter(|p| p.state == ProbeState::Pass)
            .count();
        let probes = if e.probes.is_empty() {
            "—".to_string()
        } else {
            format!("{pass}/{} passed", e.probes.len())
        };
        let point: String = d.snapshot.chars().take(8).collect();
        let point = match (e.point.as_str(), e.point_time.as_str()) {
            ("", _) => point,
            (how, "") => format!("{point} ({how})"),
            (how, t) => format!("{point} ({how}, {t})"),
        };
        let repo = match (e.repository.as_str(), e.offsite) {
            ("", _) => "—".to_string(),
            (r, true) => format!("{r} (off-site)"),
            (r, false) => r.to_string(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} / {} | {} | {} |\n",
            cell(&d.time),
            cell(&d.service),
            cell(&point),
            cell(&repo),
            secs(d.duration_ms),
            lifeboat::health::short_duration(Duration::from_millis(d.rto_ms)),
            probes,
            result(d)
        ));
    }
    let probed: Vec<&DrillRecord> = drills
        .iter()
        .filter(|d| !d.evidence.probes.is_empty() || !d.ok)
        .collect();
    if !probed.is_empty() {
        out.push_str("\n## Details\n");
        for d in probed {
            out.push_str(&format!(
                "\n### {} at {}: {}\n\n",
                cell(&d.service),
                cell(&d.time),
                result(d)
            ));
            for p in &d.evidence.probes {
                out.push_str(&format!(
                    "- {} `{}` ({} {}): {}\n",
                    p.state.word(),
                    cell(&p.name),
                    p.kind,
                    cell(&p.target),
                    cell(&p.detail)
                ));
            }
            if !d.ok {
                out.push_str(&format!("- detail: {}\n", cell(&d.detail)));
            }
        }
    }
    out
}
