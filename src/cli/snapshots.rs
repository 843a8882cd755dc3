//! `lifeboat snapshots` and `lifeboat ls`: what the repository holds.

use super::output::{self, human_bytes};
use super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use lifeboat::repo::tree::is_at_or_under;
use std::process::ExitCode;

#[derive(Args)]
pub struct SnapshotsArgs {
    /// Only this service's restore points
    service: Option<String>,
}

pub fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<ExitCode> {
    let repo = ctx.open(super::service_repo(ctx, a.service.as_deref()))?;
    let (snaps, damaged) = repo.list_snapshots()?;
    let snaps: Vec<_> = snaps
        .into_iter()
        .filter(|s| a.service.as_ref().is_none_or(|svc| &s.service == svc))
        .collect();
    if ctx.json {
        output::json(&snaps.iter().map(output::snapshot_json).collect::<Vec<_>>())?;
    } else {
        println!(
            "{:<10} {:<20} {:<16} {:<12} {:>8} {:>10} {:>10}",
            "ID", "TIME", "SERVICE", "HOST", "FILES", "SIZE", "ADDED"
        );
        for s in &snaps {
            println!(
                "{:<10} {:<20} {:<16} {:<12} {:>8} {:>10} {:>10}",
                s.short_id(),
                s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
                s.service,
                s.host,
                s.stats.files,
                human_bytes(s.stats.bytes),
                human_bytes(s.stats.bytes_added)
            );
        }
        if snaps.is_empty() {
            println!("(no restore points yet)");
        }
    }
    for (name, why) in &damaged {
        eprintln!("warning: snapshot {name} is unreadable: {why} (run `lifeboat verify`)");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct LsArgs {
    /// Snapshot id (or unique prefix), `latest`, or `SERVICE:latest`
    snapshot: String,
    /// Only entries at or below this path
    path: Option<String>,
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<ExitCode> {
    let repo = ctx.open(super::snapshot_repo(ctx, &a.snapshot))?;
    let snap = repo.find_snapshot(&a.snapshot, None)?;
    let (index, _) = repo.load_index()?;
    let nodes = repo.read_tree(&index, &snap)?;
    let prefix = a
        .path
        .as_deref()
        .map(|p| p.trim_matches('/').to_string())
        .unwrap_or_default();
    let mut shown = 0;
    for n in nodes.iter().filter(|n| is_at_or_under(&n.path, &prefix)) {
        shown += 1;
        if ctx.json {
            output::json(&serde_json::json!({
                "path": format!("/{}", n.path), "kind": n.kind, "mode": format!("{:o}", n.mode),
                "size": n.size, "mtime_ns": n.mtime_ns, "uid": n.uid, "gid": n.gid, "target": n.target,
            }))?;
        } else {
            println!("{}", output::ls_line(n));
        }
    }
    if shown == 0 && !prefix.is_empty() {
        bail!("/{prefix} is not in snapshot {}", snap.short_id());
    }
    Ok(ExitCode::SUCCESS)
}
