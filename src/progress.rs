//! Progress is injected, not printed: the engine reports [`Event`]s to a
//! [`Sink`], and whoever started the job (CLI bar, console pane, job
//! journal) decides how to show them. The engine never waits on a slow
//! consumer: updates are throttled at the source, and the channel sink
//! keeps only the latest progress and a bounded number of warnings.
//!
//! The same handle carries the job's cancellation: the engine checks it
//! between units of work and stops with [`crate::Error::Cancelled`],
//! cleaning up what it made on the way out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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

impl Phase {
    /// What the job is doing, for a progress line.
    pub fn doing(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Scanning => "scanning",
            Phase::Backup => "backing up",
            Phase::Finishing => "finishing",
            Phase::Restore => "restoring",
            Phase::Checking => "checking",
            Phase::Verify => "verifying",
            Phase::Done => "done",
        }
    }
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

/// Where the engine's events go.
pub trait Sink: Send + Sync {
    fn event(&self, ev: Event);
}

/// Asks a running job to stop. Cheap to clone; every clone is the same
/// token.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The engine's handle for reporting (and for noticing a cancel). Cheap to
/// share between threads.
pub struct Reporter {
    sink: Option<Arc<dyn Sink>>,
    last: Mutex<Option<Instant>>,
    interval: Duration,
    cancel: Cancel,
    warnings: AtomicU64,
}

/// Warnings beyond this many in one job are counted, not sent: a tree of a
/// million unreadable files must not flood a log or a ping.
const MAX_WARNINGS: u64 = 200;

impl Reporter {
    pub fn to(sink: Arc<dyn Sink>) -> Self {
        Reporter {
            sink: Some(sink),
            ..Self::silent()
        }
    }

    /// A reporter that drops everything: tests and quiet runs.
    pub fn silent() -> Self {
        Reporter {
            sink: None,
            last: Mutex::new(None),
            interval: Duration::from_millis(100),
            cancel: Cancel::default(),
            warnings: AtomicU64::new(0),
        }
    }

    /// The same reporter, stopped by `cancel`.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Sends at most one update per interval; `force` sends regardless
    /// (phase changes and the final figures).
    pub fn progress(&self, counters: Counters, current: Option<&str>, force: bool) {
        let Some(sink) = &self.sink else { return };
        let now = Instant::now();
        if let Ok(mut last) = self.last.lock() {
            if !force && last.is_some_and(|t| now.duration_since(t) < self.interval) {
                return;
            }
            *last = Some(now);
        }
        sink.event(Event::Progress {
            counters,
            current: current.map(str::to_owned),
        });
    }

    pub fn warn(&self, message: impl Into<String>) {
        let Some(sink) = &self.sink else { return };
        let n = self.warnings.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= MAX_WARNINGS {
            sink.event(Event::Warning {
                message: message.into(),
            });
        } else if n == MAX_WARNINGS + 1 {
            sink.event(Event::Warning {
                message: format!("more than {MAX_WARNINGS} warnings; the rest are not shown"),
            });
        }
    }

    /// How many warnings this job gave, shown or not.
    pub fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Err([`crate::Error::Cancelled`]) once the job was asked to stop.
    pub fn check_cancelled(&self) -> anyhow::Result<()> {
        if self.cancelled() {
            return Err(crate::Error::Cancelled.into());
        }
        Ok(())
    }
}

/// A channel from the engine to one consumer thread that keeps only the
/// newest progress (a burst of updates costs the consumer one) and at most
/// [`QUEUED_WARNINGS`] warnings.
pub fn channel() -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        ready: Condvar::new(),
    });
    (
        Sender(Arc::new(Closing(Arc::clone(&shared)))),
        Receiver(shared),
    )
}

const QUEUED_WARNINGS: usize = 256;

#[derive(Default)]
struct State {
    progress: Option<(Counters, Option<String>)>,
    warnings: VecDeque<String>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

/// Closes the channel when the last sender is gone.
struct Closing(Arc<Shared>);

impl Drop for Closing {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.closed = true;
        }
        self.0.ready.notify_all();
    }
}

impl Sink for Closing {
    fn event(&self, ev: Event) {
        if let Ok(mut s) = self.0.state.lock() {
            match ev {
                Event::Progress { counters, current } => s.progress = Some((counters, current)),
                Event::Warning { message } => {
                    if s.warnings.len() < QUEUED_WARNINGS {
                        s.warnings.push_back(message);
                    }
                }
            }
        }
        self.0.ready.notify_one();
    }
}

/// The engine's end of a [`channel`]: make reporters from it; the channel
/// closes when it and every reporter made from it are gone.
#[derive(Clone)]
pub struct Sender(Arc<Closing>);

impl Sender {
    pub fn reporter(&self) -> Reporter {
        Reporter::to(self.0.clone())
    }
}

/// The consumer's end of a [`channel`].
pub struct Receiver(Arc<Shared>);

impl Receiver {
    /// The next event, waiting for one; None once the channel is closed
    /// and drained. Warnings come before the progress queued with them.
    pub fn recv(&self) -> Option<Event> {
        let Ok(mut s) = self.0.state.lock() else {
            return None;
        };
        loop {
            if let Some(message) = s.warnings.pop_front() {
                return Some(Event::Warning { message });
            }
            if let Some((counters, current)) = s.progress.take() {
                return Some(Event::Progress { counters, current });
            }
            if s.closed {
                return None;
            }
            s = match self.0.ready.wait(s) {
                Ok(g) => g,
                Err(_) => return None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_progress_reaches_a_slow_consumer_as_its_latest_value() {
        let (tx, rx) = channel();
        let r = tx.reporter();
        for i in 0..10_000 {
            r.progress(
                Counters {
                    bytes_done: i,
                    ..Counters::default()
                },
                None,
                true,
            );
        }
        r.warn("one");
        drop((r, tx));
        let events: Vec<Event> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(&events[0], Event::Warning { message } if message == "one"));
        assert!(matches!(
            &events[1],
            Event::Progress { counters, .. } if counters.bytes_done == 9_999
        ));
    }

    #[test]
    fn warnings_are_bounded() {
        let (tx, rx) = channel();
        let r = tx.reporter();
        for i in 0..1000 {
            r.warn(format!("w{i}"));
        }
        assert_eq!(r.warnings(), 1000);
        drop((r, tx));
        let n = std::iter::from_fn(|| rx.recv()).count();
        assert_eq!(n as u64, MAX_WARNINGS + 1);
    }

    #[test]
    fn a_cancel_reaches_the_engine() {
        let c = Cancel::default();
        let r = Reporter::silent().with_cancel(c.clone());
        assert!(r.check_cancelled().is_ok());
        c.cancel();
        assert!(r.cancelled());
        assert!(matches!(
            r.check_cancelled()
                .unwrap_err()
                .downcast_ref::<crate::Error>(),
            Some(crate::Error::Cancelled)
        ));
    }
}
