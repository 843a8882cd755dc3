//! Storage that refuses to delete or overwrite what it holds until a date
//! (S3 Object Lock). A host whose credentials are stolen can then hide
//! objects (a delete marker, a newer version) but not destroy the locked
//! versions underneath, which [`ObjectLocks::recover`] makes current again.
//!
//! Lifeboat never overwrites an object and, under a lock, never hides a
//! restore point, pack or key whose lock still runs (index files are
//! derived data and may be replaced). So a hidden or replaced object whose
//! oldest version is still locked was hidden by someone else.

use super::Kind;
use anyhow::Result;
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// Governance locks can be lifted by an account allowed to bypass them;
/// compliance locks by no one, not even the bucket's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    pub fn parse(s: &str) -> Option<LockMode> {
        match s.to_ascii_lowercase().as_str() {
            "governance" => Some(LockMode::Governance),
            "compliance" => Some(LockMode::Compliance),
            _ => None,
        }
    }

    /// The value S3 wants in `x-amz-object-lock-mode`.
    pub fn header(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// A repository's `object_lock = { mode, days }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LockSettings {
    pub mode: LockMode,
    /// How long each upload (and each extension) protects an object.
    pub retain: Duration,
}

impl LockSettings {
    /// The retain-until an object stored or extended at `now` gets: the
    /// configured time plus a margin (a tenth, at most a day), so a job
    /// that runs a little late still finds everything locked.
    pub fn until(&self, now: SystemTime) -> SystemTime {
        let margin = (self.retain / 10).min(Duration::from_secs(86_400));
        now + self.retain + margin
    }
}

/// Which kinds of object carry a lock. Repository locks and damage notes
/// come and go, and must be removable at once.
pub fn lockable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Config | Kind::Keys | Kind::Data | Kind::Index | Kind::Snapshots
    )
}

/// Returned (inside an `anyhow::Error`) by `Backend::remove` for an object
/// whose lock has not ended: nothing was changed.
#[derive(Debug, Clone)]
pub struct StillLocked {
    pub what: String,
    pub until: SystemTime,
}

impl std::fmt::Display for StillLocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is locked until {}",
            self.what,
            humantime::format_rfc3339_seconds(self.until)
        )
    }
}

impl std::error::Error for StillLocked {}

/// The lock that stopped a removal, if that is why it failed.
pub fn still_locked(e: &anyhow::Error) -> Option<&StillLocked> {
    e.chain().find_map(|c| c.downcast_ref::<StillLocked>())
}

/// The lock on the current version of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: Option<LockMode>,
    /// None: the object carries no lock at all.
    pub until: Option<SystemTime>,
}

impl ObjectLock {
    pub fn holds_at(&self, now: SystemTime) -> bool {
        self.until.is_some_and(|u| u > now)
    }
}

/// What the bucket enforces.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BucketProtection {
    pub versioning: bool,
    pub object_lock: bool,
}

/// What `reclaim` deleted and what it had to leave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reclaimed {
    /// Old versions and delete markers deleted.
    pub versions_deleted: usize,
    pub bytes_freed: u64,
    /// Old versions still locked: their bytes, and when the last frees up.
    pub versions_locked: usize,
    pub bytes_locked: u64,
    #[serde(serialize_with = "crate::repo::object_lock::ser_time")]
    pub locked_until: Option<SystemTime>,
}

/// What `recover` made current again.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovered {
    /// Objects that had been deleted (a delete marker hid them).
    pub undeleted: Vec<String>,
    /// Objects whose current version had replaced the original.
    pub unreplaced: Vec<String>,
    /// Hidden or replaced objects whose original is no longer locked, so
    /// nothing proves it is the original; left as they are.
    pub unprotected: Vec<String>,
}

pub(crate) fn ser_time<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string()),
        None => s.serialize_none(),
    }
}

/// A store's Object Lock operations (`Backend::object_lock`).
pub trait ObjectLocks: Send + Sync {
    fn settings(&self) -> LockSettings;
    /// Versioning and Object Lock on the bucket.
    fn protection(&self) -> Result<BucketProtection>;
    /// Errors, saying what to change, unless the bucket enforces locks.
    fn check(&self) -> Result<()> {
        let p = self.protection()?;
        if p.object_lock && p.versioning {
            return Ok(());
        }
        let missing = match (p.versioning, p.object_lock) {
            (false, false) => "neither versioning nor Object Lock",
            (true, false) => "no Object Lock",
            _ => "no versioning",
        };
        Err(crate::Error::Storage {
            what: format!("the repository asks for object_lock but its bucket has {missing} enabled, so nothing it stores would be protected"),
            hint: "Object Lock can only be turned on when a bucket is created: create a new bucket with Object Lock enabled (aws s3api create-bucket --object-lock-enabled-for-bucket …, or your provider's console), or remove object_lock from the repository's config section".into(),
        }
        .into())
    }
    /// The lock on an object's current version.
    fn lock_of(&self, kind: Kind, name: &str) -> Result<ObjectLock>;
    /// Moves the current version's retain-until to `until` (never earlier).
    fn extend(&self, kind: Kind, name: &str, until: SystemTime) -> Result<()>;
    /// Deletes the old versions and delete markers no current object
    /// needs, where their lock has ended.
    fn reclaim(&self) -> Result<Reclaimed>;
    /// Makes the original version current again for every object that was
    /// deleted or replaced while its original was locked.
    fn recover(&self) -> Result<Recovered>;
}

/// Days as written in the config ("30", "0.5", fractions for tests and
/// short-lived repositories) as a duration of at least a second.
pub fn days(d: f64) -> Option<Duration> {
    if !d.is_finite() || d <= 0.0 || d > 36_500.0 {
        return None;
    }
    let secs = d * 86_400.0;
    (secs >= 1.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_gets_a_margin_of_a_tenth_up_to_a_day() {
        let t = SystemTime::UNIX_EPOCH;
        let s = LockSettings {
            mode: LockMode::Governance,
            retain: Duration::from_secs(100),
        };
        assert_eq!(s.until(t), t + Duration::from_secs(110));
        let s = LockSettings {
            mode: LockMode::Governance,
            retain: Duration::from_secs(30 * 86_400),
        };
        assert_eq!(s.until(t), t + Duration::from_secs(31 * 86_400));
    }

    #[test]
    fn days_must_be_positive_and_sane() {
        assert_eq!(days(1.0), Some(Duration::from_secs(86_400)));
        assert!(days(0.0).is_none());
        assert!(days(-1.0).is_none());
        assert!(days(f64::NAN).is_none());
        assert!(days(1e-9).is_none());
    }
}
