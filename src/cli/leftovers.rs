//! `lifeboat leftovers`: the copies restores kept of what they replaced,
//! with size and age, and discarding them.

use super::output::{self, human_bytes};
use super::Ctx;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use lifeboat::engine::leftovers;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[derive(Args)]
pub struct LeftoversArgs {
    #[command(subcommand)]
    command: Option<LeftoversCommand>,
}

#[derive(Subcommand)]
enum LeftoversCommand {
    /// Discard kept copies: those of one restore, or all older than a time
    Remove {
        /// The restore (or job) whose copies to discard
        #[arg(required_unless_present = "older_than")]
        id: Option<String>,
        /// Every kept copy older than this (e.g. 7d)
        #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "id")]
        older_than: Option<Duration>,
    },
}

pub fn leftovers(ctx: &Ctx, a: LeftoversArgs) -> Result<ExitCode> {
    let state_dir = ctx.state_dir();
    let cleaned = leftovers::clean_stale(&state_dir);
    for line in &cleaned {
        eprintln!("{line}");
    }
    match a.command {
        None => {
            let list = leftovers::list(&state_dir, SystemTime::now());
            if ctx.json {
                return output::json(&list).map(|()| ExitCode::SUCCESS);
            }
            if list.is_empty() {
                ctx.say("no kept copies: nothing to roll back, nothing taking space");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<40} {:<14} {:>9} {:>6}  KEPT COPY OF → AT",
                "RESTORE", "SERVICE", "SIZE", "AGE"
            );
            let mut total = 0;
            for l in &list {
                total += l.bytes.unwrap_or(0);
                println!(
                    "{:<40} {:<14} {:>9} {:>6}  {} → {}",
                    l.restore,
                    l.service,
                    l.bytes.map(human_bytes).unwrap_or_else(|| "?".into()),
                    lifeboat::health::short_duration(l.age),
                    output::clean(&l.of),
                    output::clean(&l.at)
                );
            }
            println!(
                "{} kept copies, {}: `lifeboat rollback RESTORE` puts one back, `lifeboat leftovers remove RESTORE` discards it",
                list.len(),
                human_bytes(total)
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(LeftoversCommand::Remove { id, older_than }) => {
            if id.is_none() && older_than.is_none() {
                bail!("name a restore, or --older-than");
            }
            let said =
                leftovers::remove(&state_dir, id.as_deref(), older_than.unwrap_or_default())?;
            for l in &said {
                ctx.say(l);
            }
            if said.is_empty() {
                ctx.say("nothing that old is kept");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
