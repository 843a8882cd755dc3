//! `lifeboat keys` and `lifeboat unlock`: who can open a repository, and stale locks.

use super::output::{self};
use super::Ctx;
use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat::repo::keys::KeyKind;
use lifeboat::repo::Repository;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List every key object (admin, break-glass, write-only) with its id, label and creation time
    List,
    /// Let another age recipient (e.g. a break-glass key) open the repository
    Add {
        /// An age recipient (age1…)
        recipient: String,
        #[arg(long, default_value = "break-glass")]
        label: String,
        /// admin or break-glass (both open everything)
        #[arg(long, value_enum, default_value = "break-glass")]
        kind: ReaderKind,
    },
    /// Write a key that can back up but never read (for backed-up hosts)
    WriteOnly {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Says whose key it is in `keys list` (e.g. the host's name)
        #[arg(long, default_value = "write-only")]
        label: String,
    },
    /// Remove a key object: that key can no longer open the repository (see the output for what it may still hold)
    Revoke {
        /// The key object's id, or enough of its start to be unique (`keys list`)
        id: String,
    },
    /// New data and metadata identities and a new chunk key for future backups; old restore points stay readable
    Rotate,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ReaderKind {
    Admin,
    BreakGlass,
}

pub fn keys(ctx: &Ctx, k: KeysCommand) -> Result<ExitCode> {
    let repo = ctx.open(None)?;
    match k {
        KeysCommand::List => list(ctx, &repo)?,
        KeysCommand::Add {
            recipient,
            label,
            kind,
        } => {
            let kind = match kind {
                ReaderKind::Admin => KeyKind::Admin,
                ReaderKind::BreakGlass => KeyKind::BreakGlass,
            };
            let id = repo.add_recipient(&recipient, &label, kind)?;
            ctx.say(format!(
                "{recipient} ({label}, key {}) can now open every restore point, old and new",
                short(&id)
            ));
        }
        KeysCommand::WriteOnly { out, label } => {
            if out.exists() {
                anyhow::bail!(
                    "{} already exists; a key file is never overwritten: choose another path",
                    out.display()
                );
            }
            let (id, text) = repo.issue_write_only(&label)?;
            if let Err(e) = lifeboat::repo::keys::write_secret_file(&out, &text) {
                // No file, no key: leave no key object nobody holds.
                let _ = repo.revoke_key(&id);
                return Err(e);
            }
            ctx.say(format!("wrote write-only key {} (key {}, mode 0600): it can back up into this repository but cannot read from it; `lifeboat keys revoke {}` takes it away", out.display(), short(&id), short(&id)));
        }
        KeysCommand::Revoke { id } => {
            let gone = repo.revoke_key(&id)?;
            let kind = gone.object.as_ref().map(|o| o.kind());
            let label = gone
                .object
                .as_ref()
                .map(|o| o.label.clone())
                .unwrap_or_default();
            ctx.say(format!("revoked key {} ({})", gone.id, label));
            let note = match kind {
                Some(KeyKind::WriteOnly) => "It can no longer back up into this repository: its key object, which held the secrets it writes with, is gone. It never could read restore points. A host you believe compromised may have kept those secrets and can still write objects where its storage access allows: take that access away too (its `lifeboat serve` tunnel or its S3 credentials), and run `lifeboat keys rotate` so the chunk key it knew no longer matches new backups.",
                Some(_) => "It can no longer open this repository. But whoever holds it can still decrypt everything written before your next `lifeboat keys rotate` from any copy of this repository's objects they have or can reach (the storage itself, copies made by `lifeboat copy`, backups of the key directory). Run `lifeboat keys rotate` now so future backups are sealed to secrets it never had; to put old restore points out of its reach, `lifeboat copy` them to a new repository and delete this one.",
                None => "It was damaged and opened nothing.",
            };
            if ctx.json {
                output::json(&serde_json::json!({
                    "revoked": gone.id,
                    "kind": kind.map(|k| k.name()),
                    "label": label,
                    "note": note,
                }))?;
            } else {
                ctx.say(note);
            }
        }
        KeysCommand::Rotate => {
            let done = repo.rotate_keys()?;
            if ctx.json {
                output::json(&serde_json::json!({
                    "generations": done.generations,
                    "admin_keys_resealed": done.readers,
                    "write_only_keys_resealed": done.write_only,
                    "skipped": done.skipped,
                }))?;
            } else {
                ctx.say(format!(
                    "rotated: generation {} of the data and metadata identities and the chunk key is what backups use from now on",
                    done.generations
                ));
                ctx.say(format!(
                    "re-sealed {} admin/break-glass and {} write-only key object(s); write-only keys keep working, old restore points stay readable by every admin key",
                    done.readers, done.write_only
                ));
                ctx.say("the next backup of each service stores its changed data again (new chunk key: no deduplication against data written before), files it can skip keep their old chunks; a full re-encryption is `lifeboat copy` to a new repository");
                ctx.say("write-only key files from before key objects (with `meta_identity` in them) stop working: issue new ones with `lifeboat keys write-only`");
            }
            for id in &done.skipped {
                eprintln!("warning: key object {id} is damaged and was left as it was: it does not open the new generation");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

fn list(ctx: &Ctx, repo: &Repository) -> Result<()> {
    let keys = repo.list_keys()?;
    if ctx.json {
        let rows: Vec<_> = keys
            .iter()
            .map(|k| match &k.object {
                Some(o) => serde_json::json!({
                    "id": k.id, "kind": o.kind().name(), "label": o.label,
                    "recipient": o.recipient, "created": o.created, "host": o.host,
                }),
                None => serde_json::json!({"id": k.id, "damaged": k.damaged}),
            })
            .collect();
        return output::json(&rows);
    }
    for k in keys {
        match k.object {
            Some(o) => println!(
                "{}  {:<11}  {:<14} created {} on {}  {}",
                short(&k.id),
                o.kind().name(),
                o.label,
                o.created,
                o.host,
                o.recipient
            ),
            None => println!(
                "{}  damaged      {}",
                short(&k.id),
                k.damaged.unwrap_or_default()
            ),
        }
    }
    Ok(())
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
