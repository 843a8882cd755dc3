#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // Behave like other Unix tools when piped into `head`.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match lifeboat_cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if let Some(hint) = lifeboat::error::hint_for(&err) {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}

#[path = "cli/mod.rs"]
mod lifeboat_cli;
