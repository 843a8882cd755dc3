//! Job logs: JSON lines in daily files under the log directory (the last
//! fourteen kept), for whoever reads them after the fact. The terminal gets
//! the CLI's own human-readable output; `LIFEBOAT_LOG=info` (or any tracing
//! filter) also mirrors these events there. Nothing logged is secret: keys
//! never leave the key files, and URLs are logged by host only.

use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Starts logging; keep the guard until the program ends (it flushes).
/// A log directory that cannot be used is not fatal: the second value says
/// why there are no log files, for the caller to show.
pub fn init(log_dir: &Path) -> (Option<WorkerGuard>, Option<String>) {
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    if let Ok(filter) = std::env::var("LIFEBOAT_LOG") {
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(EnvFilter::new(filter))
                .boxed(),
        );
    }
    let file = std::fs::create_dir_all(log_dir)
        .map_err(anyhow::Error::from)
        .and_then(|_| {
            Builder::new()
                .rotation(Rotation::DAILY)
                .filename_prefix("lifeboat")
                .filename_suffix("jsonl")
                .max_log_files(14)
                .build(log_dir)
                .map_err(anyhow::Error::from)
        });
    let guard = match file {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            layers.push(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_target(false)
                    .with_filter(EnvFilter::new("info"))
                    .boxed(),
            );
            (Some(guard), None)
        }
        Err(e) => (
            None,
            Some(format!(
                "not writing log files to {}: {e:#}",
                log_dir.display()
            )),
        ),
    };
    let _ = tracing_subscriber::registry().with(layers).try_init();
    guard
}

/// A URL fit for a log line: scheme and host only (paths and queries of
/// ping URLs are tokens).
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!(
            "{scheme}://{}/…",
            rest.split(['/', '?']).next().unwrap_or_default()
        ),
        None => "(url)".into(),
    }
}
