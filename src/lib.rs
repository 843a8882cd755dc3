//! Lifeboat: a disaster-recovery console for self-hosted services.
//!
//! The crate is the engine; the `lifeboat` binary is one front end over it.
//! The engine never draws and never prints: long work reports
//! [`progress::Event`]s on a channel that the CLI (or a TUI) consumes.
//!
//! ```no_run
//! use lifeboat::{engine, repo};
//! # fn main() -> anyhow::Result<()> {
//! let backend = repo::LocalBackend::new("/mnt/nas/lifeboat");
//! let repo = repo::Repository::open(Box::new(backend), repo::KeySource::File("/root/lb.key".into()))?;
//! let sources = vec![std::path::PathBuf::from("/srv/paperless")];
//! let opts = engine::BackupOptions::new("paperless", sources);
//! let snap = engine::backup(&repo, &opts, &lifeboat::progress::Reporter::silent())?;
//! println!("snapshot {}", snap.short_id());
//! # Ok(()) }
//! ```

// A recovery tool must not panic on what it reads: errors, not unwraps.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod checkup;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod health;
pub mod inventory;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod paths;
pub mod progress;
pub mod records;
pub mod repo;
pub mod runbook;
pub mod runtime;
pub mod schedule;
pub mod serve;
pub mod source;
#[cfg(feature = "console")]
pub mod tui;
pub mod util;

pub use error::Error;
