//! `lifeboat keys` and `lifeboat unlock`: who can open a repository, and stale locks.

use super::output::{self};
use super::Ctx;
use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat::repo::Repository;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List the recipients that can open the repository
    List,
    /// Let another age recipient (e.g. a break-glass key) open the repository
    Add {
        /// An age recipient (age1…)
        recipient: String,
        #[arg(long, default_value = "break-glass")]
        label: String,
    },
    /// Write a key that can back up but never read (for backed-up hosts)
    WriteOnly {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub fn keys(ctx: &Ctx, k: KeysCommand) -> Result<ExitCode> {
    let repo = ctx.open(None)?;
    match k {
        KeysCommand::List => {
            let keys = repo.list_keys()?;
            if ctx.json {
                output::json(&keys.iter().map(|(id, k)| serde_json::json!({"id": id, "recipient": k.recipient, "label": k.label, "created": k.created, "host": k.host})).collect::<Vec<_>>())?;
            } else {
                for (id, k) in keys {
                    println!(
                        "{}  {:<12} {}  (added {} on {})",
                        &id[..8],
                        k.label,
                        k.recipient,
                        k.created,
                        k.host
                    );
                }
            }
        }
        KeysCommand::Add { recipient, label } => {
            repo.add_recipient(&recipient, &label)?;
            ctx.say(format!(
                "{recipient} ({label}) can now open every restore point, old and new"
            ));
        }
        KeysCommand::WriteOnly { out } => {
            let text = repo.write_only_key()?;
            lifeboat::repo::keys::write_secret_file(&out, &text)?;
            ctx.say(format!("wrote write-only key {} (mode 0600): it can back up into this repository but cannot read from it", out.display()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct UnlockArgs {
    /// Also remove locks whose holder may still be running (another host's, inside its lease)
    #[arg(long)]
    all: bool,
}

/// Stale and damaged locks go without asking (every job removes them
/// too); live ones only with --all.
pub fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<ExitCode> {
    let (backend, _) = ctx.location(None)?;
    Repository::read_config(backend.as_ref())?;
    let done = lifeboat::repo::lock::unlock(backend.as_ref(), a.all)?;
    for line in &done.removed {
        ctx.say(format!("removed {line}"));
    }
    if done.kept > 0 {
        eprintln!(
            "{} lock(s) held by running or unconfirmable processes were kept; `lifeboat unlock --all` removes them too",
            done.kept
        );
    } else if done.removed.is_empty() {
        ctx.say("no locks");
    }
    Ok(ExitCode::SUCCESS)
}
