//! `lifeboat completions SHELL` and `lifeboat man`: both from the clap
//! definition, so they never disagree with the commands.

use super::Cli;
use anyhow::Result;
use clap::{Args, CommandFactory};
use std::process::ExitCode;

#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell; load with e.g. `source <(lifeboat completions bash)`
    shell: clap_complete::Shell,
}

/// The commands people type: the definition without hidden subcommands
/// (`job-run` is how a job process is started, not something to offer).
fn visible() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("lifeboat")
        .about(full.get_about().cloned().unwrap_or_default())
        .version(env!("CARGO_PKG_VERSION"));
    for arg in full.get_arguments() {
        cmd = cmd.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(sub.clone());
    }
    cmd
}

pub fn completions(a: CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = visible();
    // Into memory first: clap_complete panics on a failed write, and
    // `lifeboat completions zsh | head` closes the pipe early.
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "lifeboat", &mut out);
    super::pipe::write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
success; for \fBhealth\fR, every service is inside its targets
.TP
\fB1\fR
an error (its message and a hint are on stderr); for \fBhealth\fR, a warning
.TP
\fB2\fR
\fBhealth\fR: a breach of an RPO or RTO, a failed verify or drill
.TP
\fB3\fR
\fBhealth\fR: unknown (a repository cannot be read, no config); \fBbackup\fR: the restore point was made but some files could not be read; \fBrestore --skip-damaged\fR: damaged files were left out; \fBfind\fR, \fBstats\fR: some restore points could not be read and were skipped
.SH FILES
.TP
\fI/etc/lifeboat/lifeboat.toml\fR, \fI~/.config/lifeboat/lifeboat.toml\fR
the configuration (\fBlifeboat config init\fR writes one, \fBlifeboat config check\fR checks it)
.TP
\fI~/.config/lifeboat/keys/\fR
admin keys written by \fBlifeboat init\fR
"#;

/// The manual page (roff) on stdout: `lifeboat man | man -l -`.
pub fn man() -> Result<ExitCode> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    out.extend_from_slice(EXIT_STATUS.as_bytes());
    super::pipe::write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
