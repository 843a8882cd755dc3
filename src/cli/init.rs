//! `lifeboat init`: a new repository and its admin key.

use super::output::{self};
use super::Ctx;
use anyhow::Result;
use clap::Args;
use lifeboat::repo::Repository;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct InitArgs {
    /// Where to write the new admin key, or an existing identity to reuse
    /// [default: ~/.config/lifeboat/keys/<repository id>.key]
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

pub fn init(ctx: &Ctx, a: InitArgs) -> Result<ExitCode> {
    // The config's repository is created at its path or URL, and its key
    // written to its key_file: what every later command will look for.
    let (backend, configured_key) = match ctx.configured(None)? {
        Some(r) => (
            r.backend()?,
            r.key_file.as_ref().map(|k| k.path()).transpose()?,
        ),
        None => (ctx.location(None)?.0, None),
    };
    let path = backend.location();
    let key_file = a
        .key_file
        .or_else(|| ctx.cli_key.clone())
        .or(configured_key);
    let created = Repository::init(backend, key_file)?;
    if ctx.json {
        output::json(&serde_json::json!({
            "repository": path, "id": created.repo_id, "recipient": created.recipient,
            "key_file": created.key_file, "key_file_created": created.key_file_created,
        }))?;
    } else if ctx.quiet {
        // Even quiet: a key nobody knows the place of loses every backup.
        println!("admin key: {}", created.key_file.display());
    } else {
        println!("created repository {} at {path}", created.repo_id,);
        println!("admin recipient: {}", created.recipient);
        if created.key_file_created {
            println!(
                "admin key written to {} (mode 0600)",
                created.key_file.display()
            );
        } else {
            println!("admin key reused from {}", created.key_file.display());
        }
        println!();
        println!(
            "Keep a copy of that key away from this host: without it nothing can be restored."
        );
        println!("Add a break-glass key with `lifeboat keys add age1…`; give backed-up hosts a");
        println!("key that cannot read backups with `lifeboat keys write-only --out FILE`.");
        println!("A second key also opens the repository if this key's object is ever damaged.");
    }
    Ok(ExitCode::SUCCESS)
}
