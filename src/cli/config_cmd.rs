//! `lifeboat config check`.

use super::Ctx;
use anyhow::{bail, Result};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the configuration, printing file:line:col for problems
    Check,
}

pub fn config_check(ctx: &Ctx) -> Result<ExitCode> {
    let Some(config) = &ctx.config else {
        bail!("no config file found (pass --config FILE; config/lifeboat.example.toml is a starting point)");
    };
    ctx.say(format!(
        "{}: ok — {} repositories, {} services",
        config.path.display(),
        config.repositories.len(),
        config.services.len()
    ));
    Ok(ExitCode::SUCCESS)
}
