//! `lifeboat serve`: a repository directory over HTTP, append-only for
//! backed-up hosts or full for the admin box.

use super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ServeArgs {
    /// The repository directory to serve (an empty directory is fine: `lifeboat init --repo rest:…` creates one there)
    dir: PathBuf,
    /// Store new objects and serve reads, refuse every overwrite and delete (HTTP 403): for hosts that back up here
    #[arg(long)]
    append_only: bool,
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8734")]
    listen: SocketAddr,
    /// Listen on an address other than loopback. The server speaks plain HTTP with no login: put it behind an SSH tunnel or a TLS reverse proxy that authenticates
    #[arg(long)]
    allow_remote: bool,
}

pub fn serve(ctx: &Ctx, a: ServeArgs) -> Result<ExitCode> {
    if !a.listen.ip().is_loopback() && !a.allow_remote {
        bail!(
            "refusing to listen on {}: `lifeboat serve` speaks plain HTTP with no login, so by default only this machine (127.0.0.1) may reach it\n\
             hint: reach it through `ssh -L 8734:127.0.0.1:8734 storage-host`, or put a TLS reverse proxy that authenticates in front and pass --allow-remote (docs/security.md)",
            a.listen
        );
    }
    if !a.dir.is_dir() {
        bail!(
            "{} is not a directory\nhint: serve the repository's directory (as given to `lifeboat init --repo`), or an empty directory to create one in",
            a.dir.display()
        );
    }
    let listener = lifeboat::serve::bind(a.listen)?;
    let addr = listener.local_addr()?;
    let has_repo = a.dir.join("config").exists();
    // Always said, even with --quiet: a script started with port 0 needs
    // it. Written once, and a reader that went away is no reason to stop.
    let mut said = format!(
        "serving {} at http://{addr}/ ({})\nuse it as --repo rest:http://{addr}/\n",
        a.dir.display(),
        if a.append_only {
            "append-only: new objects only, overwrites and deletes refused"
        } else {
            "full access: anyone who reaches it can delete"
        }
    );
    if !has_repo && !ctx.quiet {
        said += &format!(
            "{} holds no repository yet: `lifeboat init --repo rest:http://{addr}/` creates one\n",
            a.dir.display()
        );
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(said.as_bytes()).and_then(|_| out.flush());
    }
    lifeboat::serve::run_until_signal(
        listener,
        lifeboat::serve::ServeOptions {
            root: a.dir,
            append_only: a.append_only,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
