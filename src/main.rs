#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // SIGPIPE is left ignored: see `pipe` for why, and for how a closed
    // stdout still ends the program quietly.
    lifeboat_cli::pipe::install_hook();
    match std::panic::catch_unwind(lifeboat_cli::run) {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            eprintln!("error: {err:#}");
            if let Some(hint) = lifeboat::error::hint_for(&err) {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(1)
        }
        Err(payload) if lifeboat_cli::pipe::is_closed_stdout(payload.as_ref()) => {
            ExitCode::from(lifeboat_cli::pipe::CLOSED_STATUS)
        }
        Err(payload) => {
            match lifeboat_cli::pipe::stdout_failure(payload.as_ref()) {
                Some(msg) => {
                    eprintln!("error: {msg}");
                    eprintln!("  hint: the output could not be written; check the disk or file it goes to");
                    ExitCode::from(1)
                }
                None => std::panic::resume_unwind(payload),
            }
        }
    }
}

#[path = "cli/mod.rs"]
mod lifeboat_cli;
