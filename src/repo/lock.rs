//! Repository locks, as leases. A lock object names its holder (host,
//! machine id, pid namespace, pid, boot id, the process's start time) and
//! is refreshed by a background thread while held, so a lock whose holder
//! is gone is recognised without a person: by its process where this
//! process shares the holder's machine and pids, anywhere by its lapsed
//! lease (see `holder`). Stale locks and objects that are not locks are
//! removed on the way, with a warning.
//!
//! Read and write locks are shared (restores, verifies and backups run side
//! by side); an exclusive lock (prune, forget) excludes every other. A taker
//! that meets a conflicting lock waits for it up to [`LockOptions::wait`].
//! docs/format.md ("Locks") describes the object and the rules.

mod holder;

pub use holder::LockInfo;
use holder::{rfc3339, Me};

use super::{Backend, Kind};
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

/// A lock not refreshed for this long is stale, whoever holds it. Long
/// against [`REFRESH_EVERY`], so a holder survives a few failed refreshes
/// and clocks that disagree by minutes.
pub const LEASE: Duration = Duration::from_secs(30 * 60);
/// How often a holder rewrites its lock's `refreshed` time.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// How long jobs (backup, verify, restore, drill, copy, prune, forget,
/// scheduled and runbook jobs) wait for a conflicting lock by default:
/// longer than a typical nightly prune.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30 * 60);
/// Polls of a held lock while waiting start here and back off to
/// [`MAX_POLL`]: a short prune is noticed quickly, a long one costs one
/// listing every few seconds.
const FIRST_POLL: Duration = Duration::from_millis(250);
const MAX_POLL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Reads only (restore, verify, drill, the source of a copy).
    Read,
    /// Adds objects (backup, the destination of a copy).
    Write,
    /// Removes objects (prune, forget): nobody else may hold a lock.
    Exclusive,
}

impl Mode {
    fn conflicts_with(self, other: Mode) -> bool {
        self == Mode::Exclusive || other == Mode::Exclusive
    }

    fn article(self) -> &'static str {
        match self {
            Mode::Read => "a read",
            Mode::Write => "a write",
            Mode::Exclusive => "an exclusive",
        }
    }
}

/// How a job locks its repository. The front end decides; the engine only
/// passes these on.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    /// How long to wait for a conflicting lock before failing.
    pub wait: Duration,
    /// False for `--no-lock`: read-only operations take no lock (a
    /// read-only repository); writing ones refuse to run.
    pub enabled: bool,
    /// How often a held lock is refreshed ([`REFRESH_EVERY`]; tests
    /// shorten it).
    pub refresh_every: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            wait: DEFAULT_WAIT,
            enabled: true,
            refresh_every: REFRESH_EVERY,
        }
    }
}

/// A held lock (or, with `--no-lock`, the absence of one). Released when
/// dropped.
pub struct Lock {
    held: Option<Held>,
}

struct Held {
    backend: Arc<dyn Backend>,
    name: String,
    operation: String,
    lost: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

/// What one look at the lock directory found.
pub enum Entry {
    Live(LockInfo),
    Stale(LockInfo, String),
    /// The object does not decode: (why).
    Damaged(String),
}

impl Lock {
    /// No lock at all (`--no-lock` on a read-only operation).
    pub fn none() -> Lock {
        Lock { held: None }
    }

    /// Takes a lock, waiting up to `opts.wait` for conflicting ones.
    /// `notify` hears what was removed and what is waited for.
    pub fn take(
        backend: Arc<dyn Backend>,
        mode: Mode,
        operation: &str,
        opts: &LockOptions,
        notify: &dyn Fn(String),
    ) -> Result<Lock> {
        if !opts.enabled {
            if mode == Mode::Read {
                return Ok(Lock::none());
            }
            anyhow::bail!(
                "--no-lock is only for operations that read (restore, verify, drill, ls, snapshots); {operation} changes the repository and must lock it"
            );
        }
        // A bound too far to represent is no bound.
        let deadline = Instant::now().checked_add(opts.wait);
        let mut pause = FIRST_POLL;
        let mut announced = false;
        loop {
            // Stamped per try: `created` is when the lock was had.
            let info = LockInfo::ours(mode, operation);
            let holder = match attempt(backend.as_ref(), &info, notify)? {
                Ok(name) => return Lock::hold(backend, name, info, opts.refresh_every),
                Err(holder) => holder,
            };
            let now = Instant::now();
            let left = deadline.map(|d| d.saturating_duration_since(now));
            if left == Some(Duration::ZERO) {
                return Err(crate::Error::Locked {
                    holder: holder.describe(),
                    stale: false,
                }
                .into());
            }
            if !announced {
                notify(format!(
                    "waiting up to {} for {} to be released",
                    crate::util::short_duration(opts.wait),
                    holder.describe()
                ));
                announced = true;
            }
            // Jitter keeps two takers that backed off from each other
            // from meeting again.
            let jitter = Duration::from_millis(rand::random::<u64>() % 200);
            let pause_now = pause + jitter;
            std::thread::sleep(left.map_or(pause_now, |l| pause_now.min(l)));
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    fn hold(
        backend: Arc<dyn Backend>,
        name: String,
        info: LockInfo,
        every: Duration,
    ) -> Result<Lock> {
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel::<()>();
        let operation = info.operation.clone();
        let refresher = {
            let (backend, name, lost) = (backend.clone(), name.clone(), lost.clone());
            std::thread::Builder::new()
                .name("lock-refresh".into())
                .spawn(move || {
                    refresh_until_stopped(backend.as_ref(), &name, info, every, &lost, &stopped)
                })
        };
        // A lock nobody refreshes would look abandoned within a lease.
        let refresher = match refresher {
            Ok(t) => t,
            Err(e) => {
                let _ = backend.remove(Kind::Locks, &name);
                return Err(e).context("starting the thread that keeps the repository lock");
            }
        };
        Ok(Lock {
            held: Some(Held {
                backend,
                name,
                operation,
                lost,
                stop: Some(stop),
                refresher: Some(refresher),
            }),
        })
    }

    /// Fails unless this lock is still in the repository and its lease
    /// was kept: a backup checks before it records its snapshot, so a lock
    /// removed under it (`unlock --all`, a lapsed lease) cannot let it
    /// record one that a prune may already have cut the data from.
    pub fn ensure_held(&self) -> Result<()> {
        let Some(h) = &self.held else { return Ok(()) };
        let present = h.backend.exists(Kind::Locks, &h.name)?;
        if h.lost.load(Ordering::SeqCst) || !present {
            return Err(anyhow!(
                "{} lost its repository lock while it ran (removed by `lifeboat unlock --all`, or its lease ran out); nothing was recorded: run it again",
                h.operation
            ));
        }
        Ok(())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let Some(h) = &mut self.held else { return };
        // Stop the refresher first so it cannot write the lock back.
        h.stop.take();
        if let Some(t) = h.refresher.take() {
            let _ = t.join();
        }
        let _ = h.backend.remove(Kind::Locks, &h.name);
    }
}

fn refresh_until_stopped(
    backend: &dyn Backend,
    name: &str,
    mut info: LockInfo,
    every: Duration,
    lost: &AtomicBool,
    stopped: &mpsc::Receiver<()>,
) {
    let mut last_ok = Instant::now();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
        // Someone judged it stale and removed it: writing it back would
        // hide that from `ensure_held`.
        match backend.exists(Kind::Locks, name) {
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Ok(true) => {
                info.refreshed = rfc3339(SystemTime::now());
                let written = serde_json::to_vec(&info)
                    .map_err(anyhow::Error::from)
                    .and_then(|raw| backend.put(Kind::Locks, name, &raw));
                if written.is_ok() {
                    last_ok = Instant::now();
                }
            }
            Err(_) => {}
        }
        // A store down for a whole lease: others may take the lock as
        // stale now.
        if last_ok.elapsed() > LEASE {
            lost.store(true, Ordering::SeqCst);
        }
    }
}

/// One try: look, write ours, look again. Ok(name) when taken, else the
/// holder in the way.
fn attempt(
    backend: &dyn Backend,
    info: &LockInfo,
    notify: &dyn Fn(String),
) -> Result<std::result::Result<String, LockInfo>> {
    if let Some(holder) = conflict(backend, info.mode, None, notify)? {
        return Ok(Err(holder));
    }
    let name = hex::encode(rand::random::<[u8; 16]>());
    let raw = serde_json::to_vec(info)?;
    if let Err(e) = backend.put(Kind::Locks, &name, &raw) {
        return Err(read_only(backend, e));
    }
    // Two takers may both pass the first look; the second look sees the
    // other's lock and both back off (and retry after a jittered pause).
    let second = conflict(backend, info.mode, Some(&name), notify);
    if !matches!(second, Ok(None)) {
        let _ = backend.remove(Kind::Locks, &name);
    }
    Ok(match second? {
        None => Ok(name),
        Some(holder) => Err(holder),
    })
}

/// A lock that cannot be written because the storage refuses writes is a
/// read-only repository, which has its own remedy.
fn read_only(backend: &dyn Backend, e: anyhow::Error) -> anyhow::Error {
    let refused = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.raw_os_error(),
                Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
            )
        })
    });
    if refused {
        return crate::Error::ReadOnly {
            repo: backend.location(),
            cause: format!("{e:#}"),
        }
        .into();
    }
    e.context(format!("writing a lock into {}", backend.location()))
}

/// The first live lock that conflicts with `mode`, removing stale and
/// damaged ones on the way.
fn conflict(
    backend: &dyn Backend,
    mode: Mode,
    own: Option<&str>,
    notify: &dyn Fn(String),
) -> Result<Option<LockInfo>> {
    let mut found = None;
    for (name, entry) in scan(backend)? {
        if Some(name.as_str()) == own {
            continue;
        }
        match entry {
            Entry::Live(info) => {
                if found.is_none() && mode.conflicts_with(info.mode) {
                    found = Some(info);
                }
            }
            Entry::Stale(info, why) => {
                backend.remove(Kind::Locks, &name)?;
                notify(format!(
                    "removed a stale repository lock held by pid {} on {} for {} since {}: {why}",
                    info.pid,
                    crate::util::printable(&info.host),
                    crate::util::printable(&info.operation),
                    crate::util::printable(&info.created),
                ));
            }
            Entry::Damaged(why) => {
                backend.remove(Kind::Locks, &name)?;
                notify(format!("removed a damaged repository lock {name}: {why}"));
            }
        }
    }
    Ok(found)
}

/// Every lock object and what it is, without changing anything.
pub fn scan(backend: &dyn Backend) -> Result<Vec<(String, Entry)>> {
    let me = Me::get();
    let now = SystemTime::now();
    let mut out = Vec::new();
    for (name, _) in backend.list(Kind::Locks)? {
        let Some(decoded) = read_lock(backend, &name)? else {
            continue; // released meanwhile
        };
        out.push((
            name,
            match decoded {
                Err(why) => Entry::Damaged(why),
                Ok(info) => match info.stale_reason_at(&me, now) {
                    Some(why) => Entry::Stale(info, why),
                    None => Entry::Live(info),
                },
            },
        ));
    }
    Ok(out)
}

/// Locks bigger than this are not locks; none is read whole.
const MAX_LOCK_BYTES: u64 = 64 * 1024;

/// None when the object is gone; Err(why) when it does not decode. A
/// read that fails while the object still exists is an error, not damage:
/// the store may be failing, and someone's live lock must not be removed
/// for that.
fn read_lock(backend: &dyn Backend, name: &str) -> Result<Option<Result<LockInfo, String>>> {
    let mut last = String::new();
    // Twice: a body cut short on the way must not be taken for damage.
    for _ in 0..2 {
        let raw = match backend.get(Kind::Locks, name) {
            Ok(raw) => raw,
            Err(e) => {
                if !backend.exists(Kind::Locks, name)? {
                    return Ok(None);
                }
                return Err(e).with_context(|| format!("reading lock {name}"));
            }
        };
        if raw.len() as u64 > MAX_LOCK_BYTES {
            return Ok(Some(Err(format!("it is {} bytes, not a lock", raw.len()))));
        }
        match serde_json::from_slice::<LockInfo>(&raw) {
            Ok(info) => return Ok(Some(Ok(info))),
            Err(e) => last = format!("it does not decode ({e})"),
        }
    }
    Ok(Some(Err(last)))
}

/// The locks that decode (for `health` and messages).
pub fn list(backend: &dyn Backend) -> Result<Vec<(String, LockInfo)>> {
    Ok(scan(backend)?
        .into_iter()
        .filter_map(|(name, e)| match e {
            Entry::Live(i) | Entry::Stale(i, _) => Some((name, i)),
            Entry::Damaged(_) => None,
        })
        .collect())
}

/// What `unlock` did: a line per removed lock, and how many were kept.
pub struct Unlocked {
    pub removed: Vec<String>,
    pub kept: usize,
}

/// Removes stale and damaged locks, and live ones too with `all`.
pub fn unlock(backend: &dyn Backend, all: bool) -> Result<Unlocked> {
    let mut done = Unlocked {
        removed: Vec::new(),
        kept: 0,
    };
    for (name, entry) in scan(backend)? {
        let line = match entry {
            Entry::Live(_) if !all => {
                done.kept += 1;
                continue;
            }
            Entry::Live(info) => info.describe(),
            Entry::Stale(info, why) => format!("{} ({why})", info.describe()),
            Entry::Damaged(why) => format!("damaged lock {name} ({why})"),
        };
        backend.remove(Kind::Locks, &name)?;
        done.removed.push(line);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::LocalBackend;

    #[test]
    fn a_held_lock_is_refreshed_and_noticed_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
        let opts = LockOptions {
            wait: Duration::ZERO,
            refresh_every: Duration::from_millis(50),
            ..Default::default()
        };
        let held = Lock::take(backend.clone(), Mode::Write, "backup", &opts, &|_| {}).unwrap();
        let name = held.held.as_ref().unwrap().name.clone();
        let first = backend.get(Kind::Locks, &name).unwrap();
        // Refreshes rewrite the object; its created time stays.
        let t0 = Instant::now();
        let refreshed = loop {
            std::thread::sleep(Duration::from_millis(20));
            let now: LockInfo =
                serde_json::from_slice(&backend.get(Kind::Locks, &name).unwrap()).unwrap();
            let before: LockInfo = serde_json::from_slice(&first).unwrap();
            if now.refreshed != before.refreshed {
                assert_eq!(now.created, before.created);
                break true;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                break false;
            }
        };
        assert!(refreshed, "the lock was not refreshed within 5 s");
        held.ensure_held().unwrap();
        backend.remove(Kind::Locks, &name).unwrap();
        assert!(held.ensure_held().is_err());
        // The refresher notices and stops instead of writing it back.
        let lost = held.held.as_ref().unwrap().lost.clone();
        let t0 = Instant::now();
        while !lost.load(Ordering::SeqCst) {
            assert!(t0.elapsed() < Duration::from_secs(5), "removal not noticed");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!backend.exists(Kind::Locks, &name).unwrap());
    }
}
