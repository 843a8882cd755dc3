//! Progress is injected, not printed: the engine sends [`Event`]s on a tokio
//! channel and whoever started the job (CLI bar, TUI pane, job journal)
//! decides how to show them. Updates are throttled so a fast engine never
//! waits on a slow consumer.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    #[default]
    Starting,
    Scanning,
    Backup,
    Finishing,
    Restore,
    Checking,
    Verify,
    Done,
}

/// A small, copyable picture of a job's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub phase: Phase,
    pub files_done: u64,
    /// 0 while still unknown (a scan is running).
    pub files_total: u64,
    pub bytes_done: u64,
    /// 0 while still unknown.
    pub bytes_total: u64,
    /// Bytes newly written to the repository (after dedup and compression).
    pub bytes_stored: u64,
}

impl Counters {
    pub fn percent(&self) -> Option<f64> {
        (self.bytes_total > 0)
            .then(|| (self.bytes_done as f64 / self.bytes_total as f64 * 100.0).min(100.0))
    }
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Progress {
        counters: Counters,
        current: Option<String>,
    },
    /// Something the admin should know that did not stop the job
    /// (an unreadable file, a skipped device node).
    Warning { message: String },
}

/// The engine's handle for reporting. Cheap to share between threads.
pub struct Reporter {
    tx: Option<UnboundedSender<Event>>,
    last: Mutex<Option<Instant>>,
    interval: Duration,
}

impl Reporter {
    pub fn new(tx: UnboundedSender<Event>) -> Self {
        Reporter {
            tx: Some(tx),
            last: Mutex::new(None),
            interval: Duration::from_millis(100),
        }
    }

    /// A reporter that drops everything: tests and quiet runs.
    pub fn silent() -> Self {
        Reporter {
            tx: None,
            last: Mutex::new(None),
            interval: Duration::from_millis(100),
        }
    }

    /// Sends at most one update per interval; `force` sends regardless
    /// (phase changes and the final figures).
    pub fn progress(&self, counters: Counters, current: Option<&str>, force: bool) {
        let Some(tx) = &self.tx else { return };
        let now = Instant::now();
        if let Ok(mut last) = self.last.lock() {
            if !force && last.is_some_and(|t| now.duration_since(t) < self.interval) {
                return;
            }
            *last = Some(now);
        }
        let _ = tx.send(Event::Progress {
            counters,
            current: current.map(str::to_owned),
        });
    }

    pub fn warn(&self, message: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Event::Warning {
                message: message.into(),
            });
        }
    }
}
