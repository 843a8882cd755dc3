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
    let mut skipped = 0;
    for (name, repo, snaps) in snapshots::selected(ctx, &a.filter, &filter)? {
        let report = stats::stats(&repo, &snaps)?;
        if report.missing_chunks > 0 {
            eprintln!(
                "warning: {} that restore points need {} not in the index (run `lifeboat verify`)",
                lifeboat::util::plural(report.missing_chunks, "chunk"),
                if report.missing_chunks == 1 {
                    "is"
                } else {
                    "are"
                }
            );
        }
        for (id, why) in &report.unreadable {
            eprintln!(
                "warning: restore point {id} is left out of the totals: {}",
                output::clean(why)
            );
        }
        skipped += report.unreadable.len();
        reports.push((name, repo.location(), report));
    }
    // 3, as for `find`: the totals lack what could not be read.
    let code = if skipped == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "  hint: `lifeboat verify` says what is damaged; `lifeboat repair index` rebuilds a damaged index"
        );
        ExitCode::from(3)
    };
    if ctx.json {
        let rows: Vec<_> = reports
            .iter()
            .map(|(name, location, r)| {
                serde_json::json!({
                    "repository": name, "location": location, "total": r.total,
                    "services": r.services, "storage_bytes": r.storage_bytes, "packs": r.packs,
                    "missing_chunks": r.missing_chunks,
                    "unreadable": r.unreadable.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                })
            })
            .collect();
        output::json(&serde_json::json!({ "repositories": rows }))?;
        return Ok(code);
    }
    if ctx.quiet {
        return Ok(code);
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
    Ok(code)
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
