//! `lifeboat repair index|snapshots`: put a damaged repository back into a
//! state where everything it still holds can be restored. Exit 0 when all
//! was repaired, 1 when something could not be (it is named).

use super::output::{self, clean, Progress};
use super::width;
use super::Ctx;
use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat::engine::repair::{self, RepairIndexOptions, RepairSnapshotsOptions};
use lifeboat::util::plural;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the packs' own tables (after an index file is damaged or lost)
    Index(IndexArgs),
    /// Rewrite restore points that need lost data, leaving out the files that cannot be restored
    Snapshots(SnapshotsArgs),
}

#[derive(Args)]
pub struct IndexArgs {
    /// Also decrypt and check every chunk; damaged ones are left out of the index, so the next backup stores them again
    #[arg(long)]
    read_data: bool,
}

#[derive(Args)]
pub struct SnapshotsArgs {
    /// Show what would be rewritten and dropped; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Also remove restore points whose file list itself is lost (nothing in them can be restored)
    #[arg(long)]
    forget: bool,
}

pub fn repair(ctx: &Ctx, c: RepairCommand) -> Result<ExitCode> {
    let repo = ctx.open(None)?;
    let ok = match c {
        RepairCommand::Index(a) => index(ctx, &repo, &a)?,
        RepairCommand::Snapshots(a) => snapshots(ctx, &repo, &a)?,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn index(ctx: &Ctx, repo: &lifeboat::repo::Repository, a: &IndexArgs) -> Result<bool> {
    let progress = Progress::start(ctx.quiet || ctx.json, "repair index");
    let report = repair::repair_index(
        repo,
        &RepairIndexOptions {
            read_data: a.read_data,
        },
        &progress.reporter(),
    );
    progress.finish();
    let r = report?;
    tracing::info!(
        job = "repair-index",
        packs = r.packs,
        chunks = r.chunks,
        unreadable = r.unreadable_packs.len(),
        damaged = r.damaged_chunks.len(),
        "repair index finished"
    );
    if ctx.json {
        output::json(&r)?;
        return Ok(r.ok());
    }
    let parts = [
        format!("rebuilt the index from {}:", plural(r.packs as u64, "pack")),
        format!(
            "{} in {};",
            plural(r.chunks as u64, "chunk"),
            plural(r.index_files_written as u64, "new index file")
        ),
        format!(
            "removed {}",
            plural(r.index_files_removed as u64, "old index file")
        ),
    ];
    for line in width::clauses(&parts, " ", width::line_width()) {
        ctx.say(line);
    }
    for (p, why) in &r.unreadable_packs {
        eprintln!(
            "unreadable pack {p}: {} (left out of the index)",
            clean(why)
        );
    }
    for (p, why) in &r.trailerless_packs {
        eprintln!(
            "damaged pack {p}: {} (kept the chunks the old index names in it that read back)",
            clean(why)
        );
    }
    for (p, c, why) in &r.damaged_chunks {
        eprintln!(
            "damaged chunk {c} in pack {p}: {} (left out; the next backup of the same data stores it again)",
            clean(why)
        );
    }
    if !r.ok() {
        eprintln!("hint: restore points that need what was left out: run `lifeboat repair snapshots --dry-run`, then `lifeboat repair snapshots`");
    }
    Ok(r.ok())
}

fn snapshots(ctx: &Ctx, repo: &lifeboat::repo::Repository, a: &SnapshotsArgs) -> Result<bool> {
    let progress = Progress::start(ctx.quiet || ctx.json, "repair snapshots");
    let report = repair::repair_snapshots(
        repo,
        &RepairSnapshotsOptions {
            dry_run: a.dry_run,
            forget_lost: a.forget,
        },
        &progress.reporter(),
    );
    progress.finish();
    let r = report?;
    tracing::info!(
        job = "repair-snapshots",
        checked = r.checked,
        repaired = r.repaired.len(),
        unrepairable = r.unrepairable.len(),
        dry_run = r.dry_run,
        "repair snapshots finished"
    );
    if ctx.json {
        output::json(&r)?;
        return Ok(r.ok());
    }
    let verb = if r.dry_run {
        "would rewrite"
    } else {
        "rewrote"
    };
    for s in &r.repaired {
        let short = &s.original[..8.min(s.original.len())];
        let to = s
            .replacement
            .as_deref()
            .map(|n| format!(" as {}", &n[..8.min(n.len())]))
            .unwrap_or_default();
        let parts = [
            format!(
                "{verb} restore point {short} of {} ({}){to},",
                clean(&s.service),
                s.time
            ),
            format!(
                "leaving out {} whose data is lost:",
                plural(s.dropped.len() as u64, "file")
            ),
        ];
        for line in width::clauses(&parts, " ", width::line_width()) {
            ctx.say(line);
        }
        for p in &s.dropped {
            ctx.say(format!("  /{}", clean(p)));
        }
    }
    for (id, service, why) in &r.removed {
        let parts = [
            format!(
                "{} restore point {} of {}:",
                if r.dry_run { "would remove" } else { "removed" },
                &id[..8.min(id.len())],
                clean(service)
            ),
            "its file list is lost".to_string(),
            format!("({})", clean(why)),
        ];
        for line in width::clauses(&parts, " ", width::line_width()) {
            ctx.say(line);
        }
    }
    for (id, why) in &r.unrepairable {
        eprintln!("cannot repair restore point {}: {}", clean(id), clean(why));
    }
    if !r.unrepairable.is_empty() {
        eprintln!("hint: nothing in those can be restored; `lifeboat repair snapshots --forget` removes them");
    }
    let mut parts = vec![
        format!("checked {}:", plural(r.checked as u64, "restore point")),
        format!(
            "{} {},",
            r.repaired.len(),
            if r.dry_run { "to rewrite" } else { "rewritten" }
        ),
        format!(
            "{} {},",
            r.removed.len(),
            if r.dry_run { "to remove" } else { "removed" }
        ),
        format!("{} cannot be repaired", r.unrepairable.len()),
    ];
    if r.dry_run {
        parts.push("(dry run: nothing changed)".into());
    }
    for line in width::clauses(&parts, " ", width::line_width()) {
        ctx.say(line);
    }
    Ok(r.ok())
}
