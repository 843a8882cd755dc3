//! The lock object and who holds it: how it is read (leniently, so locks
//! of older and newer Lifeboats are judged rather than removed) and when
//! its holder is certainly gone.

use super::{Mode, LEASE};
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::SystemTime;

/// The lock object (JSON, plaintext: it holds nothing secret). Read with
/// [`TryFrom<Value>`]: unknown fields are ignored and the first format
/// (`time`, `exclusive`) is understood; only an object without a holder
/// (`host`, `pid`) fails to decode.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(try_from = "Value")]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id` of the holder's host, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The holder's start time in clock ticks since boot (field 22 of
    /// `/proc/PID/stat`), so a reused pid is not mistaken for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// `/etc/machine-id` of the holder's machine: host names repeat
    /// (cloned VMs, `raspberrypi`), machine ids do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The holder's pid namespace (`readlink /proc/self/ns/pid`): a
    /// container with host networking shares host name and boot id but
    /// not pids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<String>,
    pub mode: Mode,
    pub operation: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// RFC 3339, UTC: the lease runs [`LEASE`] from here.
    pub refreshed: String,
}

impl TryFrom<Value> for LockInfo {
    type Error = String;

    fn try_from(v: Value) -> Result<LockInfo, String> {
        let Value::Object(o) = v else {
            return Err("it is not a JSON object".into());
        };
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let host = text("host").ok_or("it names no holder host")?;
        let pid = o
            .get("pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .ok_or("it names no holder pid")?;
        // The first format had one `time`, never refreshed, for both.
        let created = text("created").or_else(|| text("time"));
        let refreshed = text("refreshed").or_else(|| created.clone());
        Ok(LockInfo {
            host,
            pid,
            boot_id: text("boot_id"),
            start_time: o.get("start_time").and_then(Value::as_u64),
            machine_id: text("machine_id"),
            pid_ns: text("pid_ns"),
            mode: mode_of(&o),
            operation: text("operation").unwrap_or_else(|| "an unknown operation".into()),
            created: created.unwrap_or_default(),
            refreshed: refreshed.unwrap_or_default(),
        })
    }
}

/// A mode this version does not know (a newer Lifeboat's) is taken as
/// exclusive: waiting for it is safe, running beside it may not be.
fn mode_of(o: &Map<String, Value>) -> Mode {
    if let Some(mode) = o.get("mode") {
        return serde_json::from_value(mode.clone()).unwrap_or(Mode::Exclusive);
    }
    match o.get("exclusive").and_then(Value::as_bool) {
        Some(false) => Mode::Write,
        _ => Mode::Exclusive,
    }
}

/// Who this process is, as a lock records it.
pub(super) struct Me {
    pub(super) host: String,
    pub(super) boot_id: Option<String>,
    pub(super) machine_id: String,
    pub(super) pid_ns: Option<String>,
}

impl Me {
    pub(super) fn get() -> Me {
        Me {
            host: crate::paths::hostname(),
            boot_id: boot_id(),
            machine_id: machine_id(),
            pid_ns: pid_ns(),
        }
    }

    /// Whether the lock's pid and boot id mean the same here: same host
    /// name, same machine id (a name alone repeats) and same pid
    /// namespace. Locks that do not record all three never qualify.
    fn shares_pids_with(&self, lock: &LockInfo) -> bool {
        !self.machine_id.is_empty()
            && lock.host == self.host
            && lock.machine_id.as_deref() == Some(self.machine_id.as_str())
            && self.pid_ns.is_some()
            && lock.pid_ns == self.pid_ns
    }
}

pub(super) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl LockInfo {
    /// A lock for this process.
    pub fn ours(mode: Mode, operation: &str) -> LockInfo {
        let now = rfc3339(SystemTime::now());
        let pid = std::process::id();
        let me = Me::get();
        LockInfo {
            host: me.host,
            pid,
            boot_id: me.boot_id,
            start_time: process_start(pid),
            machine_id: Some(me.machine_id).filter(|m| !m.is_empty()),
            pid_ns: me.pid_ns,
            mode,
            operation: operation.to_string(),
            created: now.clone(),
            refreshed: now,
        }
    }

    /// Why the holder is certainly gone, or None while it may be alive.
    pub fn stale_reason(&self) -> Option<String> {
        self.stale_reason_at(&Me::get(), SystemTime::now())
    }

    pub(super) fn stale_reason_at(&self, me: &Me, now: SystemTime) -> Option<String> {
        let Ok(refreshed) = humantime::parse_rfc3339_weak(&self.refreshed) else {
            return Some(format!(
                "its refresh time {:?} is not a time",
                self.refreshed
            ));
        };
        if let Ok(idle) = now.duration_since(refreshed) {
            if idle > LEASE {
                return Some(format!(
                    "its lease ran out: not refreshed for {} (leases last {})",
                    crate::util::short_duration(idle),
                    crate::util::short_duration(LEASE)
                ));
            }
        }
        if !me.shares_pids_with(self) {
            return None; // its pid cannot be looked at from here
        }
        if let (Some(theirs), Some(ours)) = (&self.boot_id, &me.boot_id) {
            if theirs != ours {
                return Some("this host has restarted since it was taken".into());
            }
        }
        if !process_running(self.pid) {
            return Some(format!("process {} is no longer running", self.pid));
        }
        match (self.start_time, process_start(self.pid)) {
            (Some(recorded), Some(now)) if recorded != now => Some(format!(
                "process {} is another program now (it started after the lock was taken)",
                self.pid
            )),
            _ => None,
        }
    }

    pub fn is_stale(&self) -> bool {
        self.stale_reason().is_some()
    }

    /// Time since the lock was taken, if its time reads.
    pub fn age(&self, now: SystemTime) -> Option<std::time::Duration> {
        let created = humantime::parse_rfc3339_weak(&self.created).ok()?;
        now.duration_since(created).ok()
    }

    /// Time since the holder last refreshed it.
    pub fn idle(&self, now: SystemTime) -> Option<std::time::Duration> {
        let refreshed = humantime::parse_rfc3339_weak(&self.refreshed).ok()?;
        now.duration_since(refreshed).ok()
    }

    /// "an exclusive lock for prune held by pid 4242 on nas-01 since …"
    pub fn describe(&self) -> String {
        format!(
            "{} lock for {} held by pid {} on {} since {}",
            self.mode.article(),
            crate::util::printable(&self.operation),
            self.pid,
            crate::util::printable(&self.host),
            crate::util::printable(&self.created),
        )
    }
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty())
}

/// Empty where neither file exists: then no lock counts as this
/// machine's, and all are judged by their lease.
fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|id| id.trim().to_string())
        .find(|id| !id.is_empty())
        .unwrap_or_default()
}

/// "pid:[4026531836]": the link's text names the namespace.
fn pid_ns() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
}

/// `/proc/PID/stat`: the state letter and the start time in ticks.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start
    // after the last ')'. State is field 3, start time field 22.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn process_start(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

fn process_running(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // A zombie has exited; only its parent has not looked yet.
    if let Some((state, _)) = proc_stat(pid) {
        return !matches!(state, 'Z' | 'X');
    }
    // No /proc: signal 0 checks existence; EPERM still means it exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn me() -> Me {
        Me {
            host: "here".into(),
            boot_id: Some("boot-a".into()),
            machine_id: "machine-a".into(),
            pid_ns: Some("pid:[1]".into()),
        }
    }

    fn lock(host: &str, pid: u32, boot: &str, refreshed: SystemTime) -> LockInfo {
        LockInfo {
            host: host.into(),
            pid,
            boot_id: Some(boot.into()),
            start_time: process_start(pid),
            machine_id: Some("machine-a".into()),
            pid_ns: Some("pid:[1]".into()),
            mode: Mode::Exclusive,
            operation: "prune".into(),
            created: rfc3339(refreshed),
            refreshed: rfc3339(refreshed),
        }
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn lapsed(now: SystemTime) -> SystemTime {
        now - LEASE - Duration::from_secs(60)
    }

    #[test]
    fn staleness_follows_process_boot_and_lease() {
        let now = SystemTime::now();
        let mine = std::process::id();
        assert_eq!(
            lock("here", mine, "boot-a", now).stale_reason_at(&me(), now),
            None
        );
        // Another host's lock is judged by its lease only.
        assert_eq!(
            lock("there", 1, "boot-z", now).stale_reason_at(&me(), now),
            None
        );
        let why = lock("there", 1, "boot-z", lapsed(now)).stale_reason_at(&me(), now);
        assert!(why.is_some_and(|w| w.contains("lease ran out")));
        let why = lock("here", mine, "boot-b", now).stale_reason_at(&me(), now);
        assert!(why.is_some_and(|w| w.contains("restarted")));
        let mut reused = lock("here", mine, "boot-a", now);
        reused.start_time = reused.start_time.map(|t| t + 1);
        let why = reused.stale_reason_at(&me(), now);
        assert!(why.is_some_and(|w| w.contains("another program")));
    }

    #[test]
    fn same_host_machine_and_pid_namespace_with_a_dead_pid_is_stale() {
        let now = SystemTime::now();
        let why = lock("here", dead_pid(), "boot-a", now).stale_reason_at(&me(), now);
        assert!(why.is_some_and(|w| w.contains("no longer running")));
    }

    #[test]
    fn another_machine_with_the_same_host_name_waits_for_its_lease() {
        let now = SystemTime::now();
        let dead = dead_pid();
        let mut clone = lock("here", dead, "boot-b", now);
        clone.machine_id = Some("machine-b".into());
        assert_eq!(clone.stale_reason_at(&me(), now), None);
        clone.refreshed = rfc3339(lapsed(now));
        let why = clone.stale_reason_at(&me(), now);
        assert!(why.is_some_and(|w| w.contains("lease ran out")));
        // Neither side knowing its machine id proves nothing either.
        let mut unknown = me();
        unknown.machine_id = String::new();
        let mut blank = lock("here", dead, "boot-a", now);
        blank.machine_id = Some(String::new());
        assert_eq!(blank.stale_reason_at(&unknown, now), None);
    }

    #[test]
    fn another_pid_namespace_waits_for_its_lease() {
        let now = SystemTime::now();
        let mut container = lock("here", dead_pid(), "boot-a", now);
        container.pid_ns = Some("pid:[2]".into());
        assert_eq!(container.stale_reason_at(&me(), now), None);
        container.refreshed = rfc3339(lapsed(now));
        let why = container.stale_reason_at(&me(), now);
        assert!(why.is_some_and(|w| w.contains("lease ran out")));
    }

    #[test]
    fn a_lock_without_machine_id_or_pid_namespace_waits_for_its_lease() {
        let now = SystemTime::now();
        let mut old = lock("here", dead_pid(), "boot-b", now);
        old.machine_id = None;
        old.pid_ns = None;
        assert_eq!(old.stale_reason_at(&me(), now), None);
    }

    #[test]
    fn older_and_newer_locks_decode_and_non_locks_do_not() {
        let first: LockInfo = serde_json::from_str(
            r#"{"host":"nas","pid":7,"time":"2024-05-01T03:00:00Z","exclusive":true,"operation":"prune"}"#,
        )
        .unwrap();
        assert_eq!(first.mode, Mode::Exclusive);
        assert_eq!(first.created, "2024-05-01T03:00:00Z");
        assert_eq!(first.refreshed, first.created);
        assert!(first.machine_id.is_none() && first.pid_ns.is_none());
        let shared: LockInfo = serde_json::from_str(
            r#"{"host":"nas","pid":7,"time":"2024-05-01T03:00:00Z","exclusive":false,"operation":"backup"}"#,
        )
        .unwrap();
        assert_eq!(shared.mode, Mode::Write);

        let mut newer = serde_json::to_value(LockInfo::ours(Mode::Read, "restore")).unwrap();
        newer["lease_secs"] = 900.into();
        let newer: LockInfo = serde_json::from_value(newer).unwrap();
        assert_eq!(newer.mode, Mode::Read);
        assert_eq!(newer.stale_reason(), None, "our own live lock");
        let odd: LockInfo =
            serde_json::from_str(r#"{"host":"nas","pid":7,"mode":"append","refreshed":"x"}"#)
                .unwrap();
        assert_eq!(odd.mode, Mode::Exclusive, "an unknown mode is waited for");

        for junk in [
            r#"[1,2]"#,
            r#"{"foo":1}"#,
            r#"{"host":"nas"}"#,
            r#"{"host":"nas","pid":-1}"#,
        ] {
            assert!(
                serde_json::from_str::<LockInfo>(junk).is_err(),
                "{junk} decoded"
            );
        }
    }

    #[test]
    fn our_own_lock_records_machine_and_pid_namespace() {
        let ours = LockInfo::ours(Mode::Write, "backup");
        let me = Me::get();
        assert_eq!(ours.pid_ns, me.pid_ns);
        assert_eq!(ours.machine_id.unwrap_or_default(), me.machine_id);
        assert!(
            me.shares_pids_with(&LockInfo::ours(Mode::Write, "backup")) || me.machine_id.is_empty()
        );
    }
}
