//! `lifeboat drill`: restore into a sandbox, measured against the RTO.

use super::output::{self, Progress};
use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use lifeboat::engine;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct DrillArgs {
    /// Services to drill
    services: Vec<String>,
    /// Drill every service, most critical first
    #[arg(long, conflicts_with = "services")]
    all: bool,
    /// Where sandboxes go [default: <state_dir>/sandboxes]
    #[arg(long, value_name = "DIR")]
    sandbox: Option<PathBuf>,
}

pub fn drill(ctx: &Ctx, a: DrillArgs) -> Result<ExitCode> {
    let config = ctx.config.as_ref().context(
        "drills need a config (pass --config FILE): they measure against each service's RTO",
    )?;
    let chosen = config.select_services(&a.services, a.all, "drill")?;
    let records = lifeboat::records::Records::new(&config.state_dir);
    let sandbox_root = a
        .sandbox
        .clone()
        .unwrap_or_else(|| config.state_dir.join("sandboxes"));
    let mut failed = 0;
    for svc in chosen {
        let result = (|| -> Result<lifeboat::engine::DrillReport> {
            let repo = ctx.open(Some(&svc.repository))?;
            let snap = repo.find_snapshot("latest", Some(&svc.name))?;
            let progress = Progress::start(ctx.quiet || ctx.json, &format!("drill {}", svc.name));
            let r = engine::drill(
                &repo,
                &snap,
                &engine::DrillOptions {
                    sandbox_root: sandbox_root.clone(),
                    rto: svc.policy.rto,
                    service: Some(svc.clone()),
                    state_dir: Some(config.state_dir.clone()),
                },
                &progress.reporter(),
            );
            progress.finish();
            r
        })();
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                tracing::error!(job = "drill", service = %svc.name, error = %format!("{e:#}"), "drill could not run");
                ctx.error_line(&e, &format!("drill of {} could not run", svc.name));
                continue;
            }
        };
        tracing::info!(job = "drill", service = %svc.name, snapshot = %report.snapshot, ok = report.ok, within_rto = report.within_rto, duration_ms = report.duration_ms, rto_ms = report.rto_ms, "drill finished");
        records.add_drill(&lifeboat::records::DrillRecord::new(&svc.name, &report))?;
        if !(report.ok && report.within_rto) {
            failed += 1;
        }
        if ctx.json {
            output::json(&serde_json::json!({"service": svc.name, "report": report}))?;
        } else if !(ctx.quiet && report.ok && report.within_rto) {
            let took = report.duration_ms as f64 / 1000.0;
            let verdict = match (report.ok, report.within_rto) {
                (false, _) => format!("FAILED: {}", report.detail),
                (true, false) => format!(
                    "restored, but {took:.1} s is over the RTO of {}",
                    lifeboat::health::short_duration(svc.policy.rto)
                ),
                (true, true) => format!(
                    "ok: {took:.1} s against an RTO of {}",
                    lifeboat::health::short_duration(svc.policy.rto)
                ),
            };
            println!(
                "drill {} ({}): {verdict}",
                svc.name,
                &report.snapshot[..8.min(report.snapshot.len())]
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
