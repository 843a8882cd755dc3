//! `lifeboat demo`: a throwaway homelab to look around in.

use super::output::Progress;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the demo directory on exit (its path is printed)
    #[arg(long)]
    keep: bool,
    /// Build the demo here instead of a new temporary directory
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Build the demo and print where, without opening the console
    #[arg(long)]
    no_tui: bool,
}

pub fn demo(a: DemoArgs, quiet: bool) -> Result<ExitCode> {
    let (root, keep) = match a.dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                bail!(
                    "{} is not empty; the demo needs an empty or new directory",
                    d.display()
                );
            }
            (d, true)
        }
        None => (
            std::env::temp_dir().join(format!("lifeboat-demo-{:08x}", rand::random::<u32>())),
            a.keep,
        ),
    };
    if !quiet {
        eprintln!(
            "building a demo homelab in {} (a week of simulated nightly backups)…",
            root.display()
        );
    }
    let progress = Progress::start(quiet, "demo");
    let built = lifeboat::demo::build(&root, &progress.reporter());
    progress.finish();
    let result = built.and_then(|config| {
        if a.no_tui {
            println!("{}", config.path.display());
            Ok(())
        } else {
            super::console(config, Some("DEMO: simulated history".into()))
        }
    });
    if keep || a.no_tui {
        if !quiet {
            eprintln!(
                "the demo is kept in {}; `lifeboat --config {}/lifeboat.toml` reopens it",
                root.display(),
                root.display()
            );
        }
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    result?;
    Ok(ExitCode::SUCCESS)
}
