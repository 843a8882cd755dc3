//! `lifeboat stats`: what the repository holds and what deduplication saves.

use super::output::{self, human_bytes};
use super::snapshots::{self, FilterArgs};
use super::Ctx;
use anyhow::Result;
use clap::Args;
use lifeboat::engine::stats::{self, Totals};
use std::process::ExitCode;

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn stats(ctx: &Ctx, a: StatsArgs) -> Result<ExitCode> {
    let filter = a.filter.filter()?;
    let mut reports = Vec::new();
    for (name, repo, snaps) in snapshots::selected(ctx, &a.filter, &filter)? {
        let report = stats::stats(&repo, &snaps)?;
        if report.missing_chunks > 0 {
            eprintln!(
                "warning: {} chunks that restore points need are not in the index (run `lifeboat verify`)",
                report.missing_chunks
            );
        }
        reports.push((name, repo.location(), report));
    }
    if ctx.json {
        let rows: Vec<_> = reports
            .iter()
            .map(|(name, location, r)| {
                serde_json::json!({
                    "repository": name, "location": location, "total": r.total,
                    "services": r.services, "storage_bytes": r.storage_bytes, "packs": r.packs,
                    "missing_chunks": r.missing_chunks,
                })
            })
            .collect();
        output::json(&serde_json::json!({ "repositories": rows }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if ctx.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    for (name, location, r) in &reports {
        println!(
            "repository {}: {} in storage ({})",
            name.as_deref().unwrap_or(location),
            human_bytes(r.storage_bytes),
            lifeboat::util::plural(r.packs, "pack")
        );
        println!(
            "  {:<16} {:>7} {:>9} {:>10} {:>10} {:>7} {:>9}",
            "SERVICE", "POINTS", "FILES", "RAW", "STORED", "DEDUP", "CHUNKS"
        );
        for (svc, t) in &r.services {
            println!("  {}", row(svc, t));
        }
        println!("  {}", row("(all)", &r.total));
    }
    Ok(ExitCode::SUCCESS)
}

fn row(name: &str, t: &Totals) -> String {
    format!(
        "{:<16} {:>7} {:>9} {:>10} {:>10} {:>6.2}x {:>9}",
        name,
        t.restore_points,
        t.files,
        human_bytes(t.raw_bytes),
        human_bytes(t.stored_bytes),
        t.dedup_ratio,
        t.chunks
    )
}
