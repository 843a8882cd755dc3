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
    /// Which restore point: `latest`, `random` (any point retention keeps,
    /// never the one drilled last while there is another), or an id.
    /// With the global --repo NAME the drill restores from that repository
    /// (an off-site copy) and is recorded as an off-site drill.
    #[arg(long, value_name = "POINT", default_value = "latest")]
    point: String,
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
            let last = records.drills(&svc.name).pop().map(|d| d.snapshot);
            let snap =
                engine::choose_point(&repo, &svc.name, &svc.retention, &choice(&a.point, last))?;
            let progress = Progress::start(ctx.quiet || ctx.json, &format!("drill {}", svc.name));
            let opts = engine::DrillOptions {
                sandbox_root: sandbox_root.clone(),
                rto: svc.policy.rto,
                service: Some(svc.clone()),
                state_dir: Some(config.state_dir.clone()),
            };
            // A cluster recovers to the end of the archive, which the
            // private server fetches through this binary.
            let r = match lifeboat::source::pitr::restore_at::cluster_of(svc) {
                Some(_) => super::wal_restore::restore_command(ctx, &svc.name).and_then(|cmd| {
                    engine::drill::drill_cluster(
                        &repo,
                        &snap,
                        &opts,
                        Some(&cmd),
                        &progress.reporter(),
                    )
                }),
                None => engine::drill(&repo, &snap, &opts, &progress.reporter()),
            };
            progress.finish();
            r
        })();
        // The repository it came from: --repo, else the service's own.
        let from = match ctx.configured(Some(&svc.repository)) {
            Ok(Some(r)) => r.name.clone(),
            _ => ctx
                .cli_repo
                .clone()
                .unwrap_or_else(|| svc.repository.clone()),
        };
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
        let mut record = lifeboat::records::DrillRecord::new(&svc.name, &report);
        record.evidence.offsite = from != svc.repository;
        record.evidence.repository = from.clone();
        record.evidence.point = choice(&a.point, None).word().into();
        record.evidence.point_time = report.point_time.clone();
        records.add_drill(&record)?;
        if !(report.ok && report.within_rto) {
            failed += 1;
        }
        if ctx.json {
            output::json(
                &serde_json::json!({"service": svc.name, "repository": from, "offsite": record.evidence.offsite, "report": report}),
            )?;
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
            let offsite = if record.evidence.offsite {
                format!(", off-site from {from}")
            } else {
                String::new()
            };
            println!(
                "drill {} ({}{offsite}): {verdict}",
                svc.name,
                &report.snapshot[..8.min(report.snapshot.len())]
            );
            for p in &report.probes {
                println!("  {}", output::clean(&p.line()));
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--point` as the engine takes it; `last` is the point drilled last.
fn choice(point: &str, last: Option<String>) -> engine::PointChoice {
    match point {
        "latest" => engine::PointChoice::Latest,
        "random" => engine::PointChoice::Random { avoid: last },
        id => engine::PointChoice::Id(id.to_string()),
    }
}
