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
        for (_, why) in &report.unreadable {
            // `why` names the restore point (the error's own context).
            eprintln!("warning: left out of the totals: {}", output::clean(why));
        }
        skipped += report.unreadable.len();
        let locks = lifeboat::engine::locks::status(repo.backend())?;
        reports.push((name, repo.location(), report, locks));
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
            .map(|(name, location, r, locks)| {
                serde_json::json!({
                    "object_lock": locks,
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
    for (name, location, r, locks) in &reports {
        println!(
            "repository {}: {} in storage ({})",
            name.as_deref().unwrap_or(location),
            human_bytes(r.storage_bytes),
            lifeboat::util::plural(r.packs, "pack")
        );
        if let Some(l) = locks {
            let at = |t: Option<std::time::SystemTime>| {
                t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "  Object Lock ({}): {} locked, frees up from {} (all by {})",
                l.mode,
                human_bytes(l.locked_bytes),
                at(l.first_frees),
                at(l.all_free)
            );
        }
        print_table(r);
    }
    Ok(code)
}

/// Per service and in all, in columns that never run together and, on
/// a terminal, fit it (see `width`).
fn print_table(r: &stats::StatsReport) {
    use super::width::{self, Column, Cut};
    let cols = [
        Column::new("SERVICE").cut(Cut::End, 12),
        Column::new("POINTS").right(),
        Column::new("FILES").right(),
        Column::new("RAW").right(),
        Column::new("STORED").right(),
        Column::new("DEDUP").right(),
        Column::new("CHUNKS").right(),
    ];
    let rows: Vec<Vec<String>> = r
        .services
        .iter()
        .map(|(svc, t)| row(&output::clean(svc), t))
        .chain([row("(all)", &r.total)])
        .collect();
    let room = width::terminal_columns().map(|w| w.saturating_sub(2));
    for line in width::table(&cols, &rows, room) {
        println!("  {line}");
    }
}

fn row(name: &str, t: &Totals) -> Vec<String> {
    vec![
        name.to_string(),
        t.restore_points.to_string(),
        t.files.to_string(),
        human_bytes(t.raw_bytes),
        human_bytes(t.stored_bytes),
        format!("{:.2}x", t.dedup_ratio),
        t.chunks.to_string(),
    ]
}
