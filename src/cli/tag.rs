//! `lifeboat tag`: label restore points so filters can find them.

use super::output;
use super::snapshots;
use super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use lifeboat::engine;
use std::process::ExitCode;

#[derive(Args)]
pub struct TagArgs {
    /// Restore point: an id (or unique prefix), `latest`, `SERVICE:latest`, or a service name
    snapshot: String,
    /// Add this tag (repeatable)
    #[arg(long, value_name = "TAG", value_parser = parse_tag)]
    add: Vec<String>,
    /// Remove this tag (repeatable); a tag both added and removed is kept
    #[arg(long, value_name = "TAG", value_parser = parse_tag)]
    remove: Vec<String>,
}

/// Checks a tag while parsing, so a bad one fails before anything is read.
pub fn parse_tag(s: &str) -> Result<String> {
    lifeboat::repo::snapshot::validate_tag(s)?;
    Ok(s.to_string())
}

pub fn tag(ctx: &Ctx, a: TagArgs) -> Result<ExitCode> {
    if a.add.is_empty() && a.remove.is_empty() {
        bail!("say what to change: --add TAG and/or --remove TAG");
    }
    let (repo, snap) = snapshots::resolve(ctx, &a.snapshot)?;
    let (snap, changed) = engine::tag::tag(&repo, &snap.id, &a.add, &a.remove, &|w| {
        eprintln!("warning: {w}")
    })?;
    if ctx.json {
        output::json(&output::snapshot_json(&snap))?;
    } else {
        ctx.say(format!(
            "restore point {} of {}: {}{}",
            snap.short_id(),
            snap.service,
            if snap.tags.is_empty() {
                "no tags".to_string()
            } else {
                format!("tags {}", snap.tags.join(", "))
            },
            if changed { "" } else { " (unchanged)" }
        ));
    }
    Ok(ExitCode::SUCCESS)
}
