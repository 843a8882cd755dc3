//! Health: is every service inside its targets? One evaluation serves the
//! TUI's home screen and `lifeboat health` (table, JSON, exit code).
//!
//! A service is judged on four things, and shows the worst:
//! - backup age against its RPO (none at all, or too old: breach);
//! - the last verify (failed: breach; never, or older than a week: warning);
//! - the last restore drill (failed or slower than the RTO: breach; never,
//!   or older than 35 days: warning — an untested backup is a hope);
//! - each off-site copy: behind the newest local restore point by more than
//!   the RPO, or never made: warning;
//! - its repository: unreadable or 95 % full is a breach for every service
//!   in it (backups will fail); 80 % full is the repository's own warning.

use crate::inventory::{Inventory, ServiceView};
pub use crate::model::Thresholds;
use serde::Serialize;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Warning,
    /// Cannot be judged (its repository cannot be read). A known breach
    /// elsewhere is still the worse news.
    Unknown,
    Breach,
}

impl State {
    /// Reads without colour.
    pub fn symbol(self) -> &'static str {
        match self {
            State::Ok => "✓",
            State::Warning => "!",
            State::Unknown => "?",
            State::Breach => "✗",
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Unknown => "unknown",
            State::Breach => "breach",
        }
    }
    /// Nagios-style exit codes, which monitoring already understands.
    pub fn exit_code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Breach => 2,
            State::Unknown => 3,
        }
    }
}

/// One judged aspect: its state, a short text for a table cell, and what
/// to tell the admin when it is not ok.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub state: State,
    pub text: String,
    #[serde(skip)]
    pub alert: String,
}

impl Check {
    fn ok(text: String) -> Check {
        Check {
            state: State::Ok,
            text,
            alert: String::new(),
        }
    }
    fn bad(state: State, text: impl Into<String>, alert: String) -> Check {
        Check {
            state,
            text: text.into(),
            alert,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceHealth {
    pub service: String,
    pub tier: crate::model::Tier,
    pub state: State,
    pub backup: Check,
    pub verify: Check,
    pub drill: Check,
    pub restore_points: usize,
    /// Size of the newest restore point.
    pub size: u64,
    /// Seconds since the newest restore point.
    pub backup_age_secs: Option<u64>,
    pub rpo_secs: u64,
    pub rto_secs: u64,
    /// One per off-site repository holding copies of this service.
    pub offsite: Vec<OffsiteLag>,
    /// The last drill that restored from a repository other than the
    /// service's own ([`Report::add_offsite_drill`]).
    pub last_offsite_drill: Option<OffsiteDrill>,
    /// A postgres-cluster service's WAL archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pitr: Option<PitrHealth>,
}

mod pitr;
pub use pitr::PitrHealth;

/// A drill from an off-site copy: proof that losing the site is survivable.
#[derive(Debug, Clone, Serialize)]
pub struct OffsiteDrill {
    pub repository: String,
    pub time: String,
    pub snapshot: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub age_secs: Option<u64>,
    pub text: String,
}

/// How far the newest off-site copy is behind the newest local restore point.
#[derive(Debug, Clone, Serialize)]
pub struct OffsiteLag {
    pub repository: String,
    pub lag_secs: Option<u64>,
    pub check: Check,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub state: State,
    pub service: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapacityCheck {
    pub repository: String,
    pub state: State,
    pub percent: Option<f64>,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub state: State,
    pub services: Vec<ServiceHealth>,
    pub repositories: Vec<CapacityCheck>,
    /// Worst first.
    pub alerts: Vec<Alert>,
    /// Rollback copies restores kept (a warning while there are any).
    pub kept: crate::inventory::Kept,
    /// Repository locks other hosts hold ([`Report::add_foreign_locks`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<ForeignLock>,
}

/// A lock another host holds: this host's own jobs are not news, another
/// host's long-held or abandoned lock may be why a job here waits.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignLock {
    pub repository: String,
    pub state: State,
    pub host: String,
    pub operation: String,
    pub age_secs: Option<u64>,
    pub text: String,
}

impl Report {
    /// A warning for each critical-tier service whose repository neither
    /// S3 Object Lock (`object_lock`) nor an append-only server (`rest:`,
    /// `lifeboat serve --append-only`) protects; (service, repository).
    fn add_unprotected(&mut self, unprotected: &[(String, String)]) {
        for (service, repository) in unprotected {
            self.alerts.push(Alert {
                state: State::Warning,
                service: Some(service.clone()),
                message: format!(
                    "repository {repository} has neither Object Lock nor append-only protection: backups can be deleted by any host that writes them (docs/security.md)"
                ),
            });
            self.state = self.state.max(State::Warning);
        }
    }

    /// What the inventory read beside restore points.
    fn add_notices(&mut self, n: &crate::inventory::Notices, now: SystemTime) {
        self.add_unprotected(&n.unprotected);
        for d in &n.offsite_drills {
            self.add_offsite_drill(
                &d.service,
                &d.evidence.repository,
                &d.time,
                &d.snapshot,
                d.ok,
                d.duration_ms,
                now,
            );
        }
        if let Some(a) = &n.audit {
            let findings: Vec<_> = a
                .report
                .findings
                .iter()
                .map(|f| (f.service.clone(), f.message.clone()))
                .collect();
            self.add_audit(a.time.get(..16).unwrap_or(&a.time), &findings);
        }
    }

    /// Adds what the last coverage audit (`lifeboat audit`, at `time`)
    /// found, as one warning: data outside every backup, or a source that
    /// went empty. `findings`: (service, message).
    fn add_audit(&mut self, time: &str, findings: &[(Option<String>, String)]) {
        let Some((service, first)) = findings.first() else {
            return;
        };
        let message = if findings.len() == 1 {
            format!("audit ({time}): {first}")
        } else {
            format!(
                "audit ({time}): {} need a look, first: {first}; `lifeboat audit` lists them",
                crate::util::plural(findings.len() as u64, "finding")
            )
        };
        self.alerts.push(Alert {
            state: State::Warning,
            service: service.clone(),
            message,
        });
        self.state = self.state.max(State::Warning);
    }

    /// Notes `service`'s last off-site drill (from the drill records):
    /// shown on its off-site line, and a failed one is a warning (the
    /// site's loss would not be survivable as things stand).
    #[allow(clippy::too_many_arguments)]
    fn add_offsite_drill(
        &mut self,
        service: &str,
        repository: &str,
        time: &str,
        snapshot: &str,
        ok: bool,
        duration_ms: u64,
        now: SystemTime,
    ) {
        let Some(s) = self.services.iter_mut().find(|s| s.service == service) else {
            return;
        };
        let age = humantime::parse_rfc3339_weak(time)
            .ok()
            .map(|t| age(now, t));
        let ago = age.map(short_duration).unwrap_or_else(|| "?".into());
        let text = if ok {
            format!("drilled ok {ago} ago")
        } else {
            format!("drill FAILED {ago} ago")
        };
        if let Some(o) = s.offsite.iter_mut().find(|o| o.repository == repository) {
            o.check.text = format!("{}, {text}", o.check.text);
        }
        if !ok {
            let message = format!(
                "{service}: the last off-site drill (from {repository}, {ago} ago) failed (`lifeboat report drills` shows why)"
            );
            s.state = s.state.max(State::Warning);
            self.state = self.state.max(State::Warning);
            self.alerts.push(Alert {
                state: State::Warning,
                service: Some(service.to_string()),
                message,
            });
        }
        s.last_offsite_drill = Some(OffsiteDrill {
            repository: repository.to_string(),
            time: time.to_string(),
            snapshot: snapshot.to_string(),
            ok,
            duration_ms,
            age_secs: age.map(|d| d.as_secs()),
            text,
        });
    }

    /// Adds the locks of `repository` held by hosts other than `here`; one
    /// not refreshed for longer than the lease is a warning (its holder is
    /// gone; the next job removes it).
    pub fn add_foreign_locks(
        &mut self,
        repository: &str,
        locks: &[crate::repo::lock::LockInfo],
        here: &str,
        now: SystemTime,
    ) {
        for l in locks.iter().filter(|l| l.host != here) {
            let age = l.age(now);
            let expired = l.idle(now).is_none_or(|d| d > crate::repo::lock::LEASE);
            let text = format!(
                "{} (for {}){}",
                l.describe(),
                age.map(short_duration).unwrap_or_else(|| "?".into()),
                if expired {
                    format!(
                        ": not refreshed for longer than its {} lease, its holder is gone",
                        short_duration(crate::repo::lock::LEASE)
                    )
                } else {
                    String::new()
                }
            );
            let state = if expired { State::Warning } else { State::Ok };
            if expired {
                self.alerts.push(Alert {
                    state,
                    service: None,
                    message: format!("repository {repository}: {text}"),
                });
                self.state = self.state.max(state);
            }
            self.locks.push(ForeignLock {
                repository: repository.to_string(),
                state,
                host: l.host.clone(),
                operation: l.operation.clone(),
                age_secs: age.map(|d| d.as_secs()),
                text,
            });
        }
    }
}

pub use crate::util::short_duration;

fn age(now: SystemTime, t: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or_default()
}

fn backup_check(s: &ServiceView, now: SystemTime) -> Check {
    let rpo = Duration::from_secs(s.rpo_secs);
    match s.latest() {
        None => Check::bad(
            State::Breach,
            "never",
            format!("{}: never backed up", s.name),
        ),
        Some(p) => {
            let a = age(now, p.time);
            let text = format!("{}/{}", short_duration(a), short_duration(rpo));
            if a > rpo {
                Check::bad(
                    State::Breach,
                    text,
                    format!(
                        "{}: last backup {} ago, RPO is {}",
                        s.name,
                        short_duration(a),
                        short_duration(rpo)
                    ),
                )
            } else if p.unreadable > 0 {
                // Recent, but it lacks what could not be read: restoring
                // it would silently miss those files.
                Check::bad(
                    State::Warning,
                    format!("{text} incomplete"),
                    format!(
                        "newest restore point of {} is incomplete ({} skipped: could not be read)",
                        s.name,
                        crate::util::plural(p.unreadable, "entry")
                    ),
                )
            } else {
                Check::ok(text)
            }
        }
    }
}

fn verify_check(s: &ServiceView, now: SystemTime, t: &Thresholds) -> Check {
    // A verify older than every restore point of the service checked none
    // of them; a failed one stays news (new points share its chunks).
    let covered = s
        .last_verify
        .as_ref()
        .filter(|v| !v.ok || s.restore_points.iter().any(|p| p.time <= v.time));
    match covered {
        None => Check::bad(
            State::Warning,
            "never",
            format!("{}: never verified (run `lifeboat verify`)", s.name),
        ),
        Some(v) if !v.ok => {
            let ago = short_duration(age(now, v.time));
            Check::bad(
                State::Breach,
                format!("FAILED {ago} ago"),
                format!(
                    "{}: the last verify ({ago} ago) found damaged restore points",
                    s.name
                ),
            )
        }
        Some(v) => {
            let a = age(now, v.time);
            let text = format!("ok {} ago", short_duration(a));
            if a > t.verify_max_age {
                Check::bad(
                    State::Warning,
                    text,
                    format!("{}: last verified {} ago", s.name, short_duration(a)),
                )
            } else {
                Check::ok(text)
            }
        }
    }
}

fn drill_check(s: &ServiceView, now: SystemTime, t: &Thresholds) -> Check {
    let Some(d) = &s.last_drill else {
        return Check::bad(
            State::Warning,
            "never",
            format!(
                "{}: restore never drilled (run `lifeboat drill {}`)",
                s.name, s.name
            ),
        );
    };
    let when = humantime::parse_rfc3339_weak(&d.time)
        .map(|t| age(now, t))
        .unwrap_or_default();
    let took = Duration::from_millis(d.duration_ms);
    let rto = Duration::from_secs(s.rto_secs);
    if !d.ok {
        Check::bad(
            State::Breach,
            format!("FAILED {} ago", short_duration(when)),
            format!(
                "{}: the last restore {} failed: {}",
                s.name, d.kind, d.detail
            ),
        )
    } else if took > rto {
        Check::bad(
            State::Breach,
            format!("{} > RTO {}", fmt_took(took), short_duration(rto)),
            format!(
                "{}: the last drill took {}, over its RTO of {}",
                s.name,
                fmt_took(took),
                short_duration(rto)
            ),
        )
    } else {
        let text = format!(
            "{}/{} {} ago",
            fmt_took(took),
            short_duration(rto),
            short_duration(when)
        );
        if when > t.drill_max_age {
            Check::bad(
                State::Warning,
                text,
                format!("{}: last drilled {} ago", s.name, short_duration(when)),
            )
        } else {
            Check::ok(text)
        }
    }
}

/// Off-site lag: the newest local restore point's time minus the newest
/// copy's. Behind by more than the RPO means losing the site loses more
/// than the RPO allows: a warning (the local backups still stand).
fn offsite_check(s: &ServiceView) -> Vec<OffsiteLag> {
    let rpo = Duration::from_secs(s.rpo_secs);
    let local = s.latest().map(|p| p.time);
    s.offsite
        .iter()
        .map(|o| {
            let copy_cmd = format!("`lifeboat copy --to {}`", o.repository);
            let (lag, check) = match (local, o.latest) {
                _ if o.unreadable => (
                    None,
                    Check::bad(
                        State::Warning,
                        "unreadable",
                        format!(
                            "{}: off-site repository {} is unreadable",
                            s.name, o.repository
                        ),
                    ),
                ),
                (None, _) => (None, Check::ok("—".into())),
                (Some(_), None) => (
                    None,
                    Check::bad(
                        State::Warning,
                        "never",
                        format!(
                            "{}: never copied to {} (run {copy_cmd})",
                            s.name, o.repository
                        ),
                    ),
                ),
                (Some(l), Some(c)) => {
                    let lag = l.duration_since(c).unwrap_or_default();
                    if lag > rpo {
                        (
                            Some(lag),
                            Check::bad(
                                State::Warning,
                                format!("{} behind", short_duration(lag)),
                                format!(
                                    "{}: the copy in {} is {} behind, RPO is {} (run {copy_cmd})",
                                    s.name,
                                    o.repository,
                                    short_duration(lag),
                                    short_duration(rpo)
                                ),
                            ),
                        )
                    } else if lag.is_zero() {
                        (Some(lag), Check::ok("current".into()))
                    } else {
                        (
                            Some(lag),
                            Check::ok(format!("{} behind", short_duration(lag))),
                        )
                    }
                }
            };
            OffsiteLag {
                repository: o.repository.clone(),
                lag_secs: lag.map(|d| d.as_secs()),
                check,
            }
        })
        .collect()
}

fn fmt_took(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        short_duration(d)
    }
}

pub fn evaluate(inv: &Inventory, now: SystemTime, t: &Thresholds) -> Report {
    let mut alerts = Vec::new();
    let mut repositories = Vec::new();
    for r in &inv.repositories {
        let (state, percent, text) = match (&r.error, &r.capacity) {
            (Some(e), _) => (State::Unknown, None, format!("unreadable: {e}")),
            (None, None) if r.object_storage => (State::Ok, None, "object storage".to_string()),
            (None, None) => (State::Warning, None, "capacity unknown".to_string()),
            (None, Some(c)) => {
                let p = c.percent();
                let state = if p >= t.capacity_breach_percent {
                    State::Breach
                } else if p >= t.capacity_warn_percent {
                    State::Warning
                } else {
                    State::Ok
                };
                (
                    state,
                    Some(p),
                    format!("{:.0}% of {} used", p, crate::util::human_bytes(c.total)),
                )
            }
        };
        if state != State::Ok {
            alerts.push(Alert {
                state,
                service: None,
                message: format!("repository {}: {text}", r.name),
            });
        }
        repositories.push(CapacityCheck {
            repository: r.name.clone(),
            state,
            percent,
            text,
        });
    }
    if inv.kept.count > 0 {
        alerts.push(Alert {
            state: State::Warning,
            service: None,
            message: format!(
                "{} kept by restores {} {} (oldest {}): `lifeboat leftovers` lists them, `lifeboat leftovers remove ID` discards them",
                crate::util::plural(inv.kept.count as u64, "rollback copy"),
                if inv.kept.count == 1 { "takes" } else { "take" },
                crate::util::human_bytes(inv.kept.bytes),
                short_duration(Duration::from_secs(inv.kept.oldest_secs))
            ),
        });
    }
    if inv.services.is_empty() {
        // Nothing judged is not the same as everything fine.
        alerts.push(Alert {
            state: State::Unknown,
            service: None,
            message: "no services are configured: nothing is being protected (add a [[services]] entry to the config)".into(),
        });
    }
    let mut services = Vec::new();
    let mut unjudged: Vec<(&str, &str)> = Vec::new();
    for s in &inv.services {
        let unreadable = repositories
            .iter()
            .any(|r| r.repository == s.repository && r.state == State::Unknown);
        if unreadable {
            // What its repository holds is unknown: saying "never backed
            // up" would page someone for a key problem as a data loss.
            unjudged.push((&s.name, &s.repository));
            let unknown = || Check {
                state: State::Unknown,
                text: "unknown".into(),
                alert: String::new(),
            };
            services.push(ServiceHealth {
                service: s.name.clone(),
                tier: s.tier,
                state: State::Unknown,
                backup_age_secs: None,
                size: 0,
                restore_points: 0,
                backup: unknown(),
                verify: unknown(),
                drill: unknown(),
                rpo_secs: s.rpo_secs,
                rto_secs: s.rto_secs,
                offsite: Vec::new(),
                pitr: None,
                last_offsite_drill: None,
            });
            continue;
        }
        let backup = backup_check(s, now);
        let verify = verify_check(s, now, t);
        let drill = drill_check(s, now, t);
        let offsite = offsite_check(s);
        let pitr = pitr::pitr_check(s, now);
        // A nearly full repository is the repository's alert; it makes a
        // service's own state worse only once its backups will fail.
        let repo_state = repositories
            .iter()
            .find(|r| r.repository == s.repository)
            .map(|r| r.state)
            .filter(|st| *st == State::Breach)
            .unwrap_or(State::Ok);
        let state = [backup.state, verify.state, drill.state, repo_state]
            .into_iter()
            .chain(offsite.iter().map(|o| o.check.state))
            .chain(pitr.iter().map(|p| p.check.state))
            .max()
            .unwrap_or(State::Ok);
        for c in [&backup, &verify, &drill]
            .into_iter()
            .chain(offsite.iter().map(|o| &o.check))
            .chain(pitr.iter().map(|p| &p.check))
        {
            if c.state != State::Ok {
                alerts.push(Alert {
                    state: c.state,
                    service: Some(s.name.clone()),
                    message: c.alert.clone(),
                });
            }
        }
        services.push(ServiceHealth {
            service: s.name.clone(),
            tier: s.tier,
            state,
            backup_age_secs: s.latest().map(|p| age(now, p.time).as_secs()),
            size: s.latest().map(|p| p.bytes).unwrap_or(0),
            restore_points: s.restore_points.len(),
            backup,
            verify,
            drill,
            rpo_secs: s.rpo_secs,
            rto_secs: s.rto_secs,
            offsite,
            pitr,
            last_offsite_drill: None,
        });
    }
    for r in &repositories {
        let names: Vec<&str> = unjudged
            .iter()
            .filter(|(_, repo)| *repo == r.repository)
            .map(|(n, _)| *n)
            .collect();
        if let Some(a) = alerts
            .iter_mut()
            .find(|a| {
                a.service.is_none()
                    && a.message
                        .starts_with(&format!("repository {}:", r.repository))
            })
            .filter(|_| !names.is_empty())
        {
            a.message
                .push_str(&format!("; cannot judge {}", names.join(", ")));
        }
    }
    // Worst first; within a state, the more critical tier first.
    let tier_of = |a: &Alert| {
        a.service
            .as_ref()
            .and_then(|n| inv.services.iter().find(|s| &s.name == n))
            .map(|s| s.tier)
    };
    let state = services
        .iter()
        .map(|s| s.state)
        .chain(repositories.iter().map(|r| r.state))
        .chain((inv.kept.count > 0).then_some(State::Warning))
        .chain(inv.services.is_empty().then_some(State::Unknown))
        .max()
        .unwrap_or(State::Ok);
    let mut report = Report {
        state,
        services,
        repositories,
        alerts,
        kept: inv.kept.clone(),
        locks: Vec::new(),
    };
    report.add_notices(&inv.notices, now);
    report
        .alerts
        .sort_by(|a, b| b.state.cmp(&a.state).then(tier_of(a).cmp(&tier_of(b))));
    report
}

#[cfg(test)]
mod tests {
    use super::short_duration;
    use std::time::Duration;

    #[test]
    fn durations_stay_short_but_never_round_a_breach_away() {
        let d = |s| short_duration(Duration::from_secs(s));
        assert_eq!(d(42), "42s");
        assert_eq!(d(45 * 60), "45m");
        assert_eq!(d(8 * 3600), "8h");
        assert_eq!(d(8 * 3600 + 20 * 60), "8h20m");
        assert_eq!(d(86400), "1d");
        assert_eq!(d(3 * 86400 + 3 * 3600), "3d3h");
    }
}
