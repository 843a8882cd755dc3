//! Turning the TOML into the model. Every problem is collected with its
//! `file:line:col` and parsing goes on, so `config check` can report them
//! all at once; only a file that is not TOML of the right shape stops at
//! the first.

use super::sources::{self, RawSource};
use super::{check_name, location, Config, Monitor, MonitorKind, Repository, Schedule, When};
use crate::model::{Policy, Retention, Service, Source, Thresholds, Tier};
use crate::Error;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cache_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    runbooks_dir: Option<PathBuf>,
    health: Option<Spanned<RawHealth>>,
    schedule: Option<Spanned<RawSchedule>>,
    #[serde(default)]
    monitors: Vec<Spanned<RawMonitor>>,
    #[serde(default)]
    tiers: BTreeMap<String, Spanned<RawTier>>,
    #[serde(default)]
    repositories: BTreeMap<String, Spanned<RawRepository>>,
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawService>>,
    audit: Option<RawAudit>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    roots: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    rpo: Option<Spanned<String>>,
    rto: Option<Spanned<String>>,
    retention: Option<Retention>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    /// A directory; or, instead, `url`.
    path: Option<Spanned<String>>,
    /// `s3://bucket/prefix` on an S3-compatible store.
    url: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    region: Option<String>,
    path_style: Option<bool>,
    access_key_id: Option<Spanned<String>>,
    secret_access_key: Option<Spanned<String>>,
    transfers: Option<Spanned<i64>>,
    bandwidth_limit: Option<Spanned<String>>,
    /// How long one storage operation may keep retrying.
    deadline: Option<Spanned<String>>,
    /// How long one storage request may take.
    request_timeout: Option<Spanned<String>>,
    /// How long one storage request may go without a byte.
    progress_timeout: Option<Spanned<String>>,
    /// The repository this one is the off-site copy of.
    copy_of: Option<Spanned<String>>,
    /// `{ mode = "governance"|"compliance", days = N }`: S3 Object Lock.
    object_lock: Option<Spanned<RawObjectLock>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectLock {
    mode: Spanned<String>,
    days: Spanned<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    tier: Tier,
    repository: Option<Spanned<String>>,
    host: Option<String>,
    description: Option<String>,
    rpo: Option<Spanned<String>>,
    rto: Option<Spanned<String>>,
    retention: Option<Retention>,
    sources: Spanned<Vec<Spanned<RawSource>>>,
    /// Shell commands runbooks use to stop and start the service.
    stop: Option<String>,
    start: Option<String>,
    #[serde(default)]
    probes: Vec<Spanned<super::probes::RawProbe>>,
    sandbox_start: Option<Spanned<String>>,
    sandbox_stop: Option<Spanned<String>>,
    sandbox_timeout: Option<Spanned<String>>,
    before_backup: Option<Spanned<String>>,
    after_backup: Option<Spanned<String>>,
    hook_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    capacity_warn_percent: Option<f64>,
    capacity_breach_percent: Option<f64>,
    verify_max_age: Option<Spanned<String>>,
    drill_max_age: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    backup: Option<Spanned<String>>,
    verify: Option<Spanned<String>>,
    prune: Option<Spanned<String>>,
    drill: Option<Spanned<String>>,
    copy: Option<Spanned<String>>,
    randomized_delay: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    kind: Spanned<String>,
    url: Spanned<String>,
    jobs: Option<Vec<Spanned<String>>>,
}

/// Where problems go while parsing goes on.
struct Problems<'a> {
    path: &'a Path,
    text: &'a str,
    found: Vec<Error>,
}

impl Problems<'_> {
    fn at(&self, offset: usize, message: String) -> Error {
        let (line, col) = line_col(self.text, offset);
        Error::Config {
            path: self.path.to_path_buf(),
            line,
            col,
            message,
        }
    }

    /// The value, or None with the problem noted.
    fn keep<T>(&mut self, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.found.push(e);
                None
            }
        }
    }

    /// A duration, or None with the problem noted.
    fn duration(&mut self, d: &Spanned<String>) -> Option<Duration> {
        let r = duration(d, &|o, m| self.at(o, m));
        self.keep(r)
    }

    /// An RPO or RTO (`what`): a duration that is not zero, which no
    /// backup or restore could ever meet.
    fn target(&mut self, d: &Spanned<String>, what: &str) -> Option<Duration> {
        let v = self.duration(d)?;
        if v.is_zero() {
            let e = self.at(
                d.span().start,
                format!(
                    "an {what} of {:?} can never be met; give a real one, like \"24h\"",
                    d.get_ref()
                ),
            );
            self.found.push(e);
            return None;
        }
        Some(v)
    }
}

pub(super) fn parse_all(path: &Path, text: &str) -> Result<(Config, Vec<Error>), Error> {
    // A UTF-8 byte order mark is not part of the TOML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Problems {
        path,
        text,
        found: Vec::new(),
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        p.at(offset, e.message().trim().replace('\n', " "))
    })?;
    let (tiers, retention) = tiers(&mut p, &raw.tiers);
    let (repositories, broken) = repositories(&mut p, &raw.repositories);
    let services = services(
        &mut p,
        &raw.services,
        &tiers,
        &retention,
        &repositories,
        &broken,
    );
    let thresholds = thresholds(&mut p, raw.health.as_ref());
    let schedule = schedule(&mut p, raw.schedule.as_ref());
    let monitors = monitors(&mut p, &raw.monitors);
    let config = Config {
        path: path.to_path_buf(),
        cache_dir: raw.cache_dir.unwrap_or_else(crate::paths::cache_dir),
        log_dir: raw.log_dir.unwrap_or_else(|| {
            raw.state_dir
                .clone()
                .unwrap_or_else(crate::paths::state_dir)
                .join("logs")
        }),
        state_dir: raw.state_dir.unwrap_or_else(crate::paths::state_dir),
        runbooks_dir: raw.runbooks_dir,
        thresholds,
        schedule,
        monitors,
        repositories,
        services,
        audit_roots: audit_roots(&mut p, raw.audit.as_ref()),
    };
    Ok((config, p.found))
}

type Tiers = BTreeMap<Tier, Policy>;

fn tiers(
    p: &mut Problems,
    raw: &BTreeMap<String, Spanned<RawTier>>,
) -> (Tiers, BTreeMap<Tier, Retention>) {
    let mut tiers: Tiers = Tier::ALL.iter().map(|t| (*t, t.default_policy())).collect();
    let mut retention: BTreeMap<Tier, Retention> = Tier::ALL
        .iter()
        .map(|t| (*t, Retention::seed_default()))
        .collect();
    for (name, t) in raw {
        let Some(tier) = Tier::ALL.iter().copied().find(|x| x.name() == name) else {
            let e = p.at(
                t.span().start,
                format!("unknown tier `{name}`; tiers are critical, important and supporting"),
            );
            p.found.push(e);
            continue;
        };
        let rt = t.get_ref();
        let rpo = rt.rpo.as_ref().and_then(|d| p.target(d, "RPO"));
        let rto = rt.rto.as_ref().and_then(|d| p.target(d, "RTO"));
        if let Some(policy) = tiers.get_mut(&tier) {
            policy.rpo = rpo.unwrap_or(policy.rpo);
            policy.rto = rto.unwrap_or(policy.rto);
        }
        if let Some(r) = rt.retention {
            retention.insert(tier, r);
        }
    }
    (tiers, retention)
}

/// The repositories that parsed, and the names of those that did not (so
/// their services are not blamed for them too).
fn repositories(
    p: &mut Problems,
    raw: &BTreeMap<String, Spanned<RawRepository>>,
) -> (BTreeMap<String, Repository>, BTreeSet<String>) {
    let mut out = BTreeMap::new();
    let mut broken = BTreeSet::new();
    for (name, r) in raw {
        let parsed = check_name(name)
            .map_err(|m| p.at(r.span().start, format!("repository `{name}`: {m}")))
            .and_then(|()| repository(name, r, &|o, m| p.at(o, m)));
        match p.keep(parsed) {
            Some(repo) => {
                out.insert(name.clone(), repo);
            }
            None => {
                broken.insert(name.clone());
            }
        }
    }
    for (name, r) in raw {
        if let Some(c) = &r.get_ref().copy_of {
            let bad = c.get_ref() == name
                || !(out.contains_key(c.get_ref()) || broken.contains(c.get_ref()));
            if bad {
                let e = p.at(
                    c.span().start,
                    format!(
                        "repository `{name}`: copy_of must name another repository (defined: {})",
                        names(raw.keys())
                    ),
                );
                p.found.push(e);
            }
        }
    }
    (out, broken)
}

fn services(
    p: &mut Problems,
    raw: &BTreeMap<String, Spanned<RawService>>,
    tiers: &Tiers,
    retention: &BTreeMap<Tier, Retention>,
    repositories: &BTreeMap<String, Repository>,
    broken: &BTreeSet<String>,
) -> Vec<Service> {
    let mut out = Vec::new();
    let defined = || names(repositories.keys().chain(broken));
    for (name, s) in raw {
        let start = s.span().start;
        if let Err(m) = check_name(name) {
            let e = p.at(start, format!("service `{name}`: {m}"));
            p.found.push(e);
            continue;
        }
        let rs = s.get_ref();
        let repository = match &rs.repository {
            Some(r) if broken.contains(r.get_ref()) => r.get_ref().clone(),
            Some(r) if !repositories.contains_key(r.get_ref()) => {
                let e = p.at(
                    r.span().start,
                    format!(
                        "service `{name}`: no repository named `{}` (defined: {})",
                        r.get_ref(),
                        defined()
                    ),
                );
                p.found.push(e);
                r.get_ref().clone()
            }
            Some(r) => r.get_ref().clone(),
            None if repositories.len() + broken.len() == 1 => repositories
                .keys()
                .chain(broken)
                .next()
                .cloned()
                .unwrap_or_default(),
            None => {
                let e = p.at(
                    start,
                    format!(
                        "service `{name}`: say which repository it uses (`repository = \"…\"`; defined: {})",
                        defined()
                    ),
                );
                p.found.push(e);
                String::new()
            }
        };
        let mut policy = tiers[&rs.tier];
        if let Some(d) = rs.rpo.as_ref().and_then(|d| p.target(d, "RPO")) {
            policy.rpo = d;
        }
        if let Some(d) = rs.rto.as_ref().and_then(|d| p.target(d, "RTO")) {
            policy.rto = d;
        }
        if policy.rpo.is_zero() {
            let e = p.at(start, format!("service `{name}`: an RPO of 0s can never be met; give it a real one, like \"24h\""));
            p.found.push(e);
        }
        if rs.sources.get_ref().is_empty() {
            let e = p.at(
                rs.sources.span().start,
                format!("service `{name}` has no sources"),
            );
            p.found.push(e);
        }
        let mut sources: Vec<Source> = Vec::new();
        for src in rs.sources.get_ref() {
            let parsed = sources::parse(name, src.get_ref(), src.span().start, &|o, m| p.at(o, m));
            let Some(parsed) = p.keep(parsed) else {
                continue;
            };
            if sources.iter().any(|o| o.name == parsed.name) {
                let e = p.at(
                    src.span().start,
                    format!(
                        "service `{name}`: two sources are named `{}`; give one a `name`",
                        parsed.name
                    ),
                );
                p.found.push(e);
                continue;
            }
            sources.push(parsed);
        }
        let app = (&rs.sandbox_start, &rs.sandbox_stop, &rs.sandbox_timeout);
        let (probes, sandbox, found) =
            super::probes::of_service(name, &rs.probes, app, &sources, &|o, m| p.at(o, m));
        p.found.extend(found);
        out.push(Service {
            name: name.clone(),
            tier: rs.tier,
            retention: rs.retention.unwrap_or(retention[&rs.tier]),
            repository,
            host: rs.host.clone().unwrap_or_else(crate::paths::hostname),
            description: rs.description.clone().unwrap_or_default(),
            policy,
            sources,
            stop: rs.stop.clone(),
            start: rs.start.clone(),
            probes,
            sandbox,
            hooks: hooks(p, name, rs),
        });
    }
    out.sort_by(|a, b| a.tier.cmp(&b.tier).then(a.name.cmp(&b.name)));
    out
}

fn audit_roots(p: &mut Problems, raw: Option<&RawAudit>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for r in raw.map(|a| a.roots.as_slice()).unwrap_or_default() {
        if r.get_ref().starts_with('/') {
            out.push(PathBuf::from(r.get_ref()));
        } else {
            let e = p.at(
                r.span().start,
                format!("audit.roots: {:?} must be an absolute path", r.get_ref()),
            );
            p.found.push(e);
        }
    }
    out
}

/// A hook given as an empty string is a mistake, not "no hook".
fn hooks(p: &mut Problems, name: &str, rs: &RawService) -> crate::model::Hooks {
    let mut command = |v: &Option<Spanned<String>>, key: &str| match v {
        Some(c) if c.get_ref().trim().is_empty() => {
            let e = p.at(
                c.span().start,
                format!("service `{name}`: `{key}` is empty; remove it or give a command"),
            );
            p.found.push(e);
            None
        }
        Some(c) => Some(c.get_ref().clone()),
        None => None,
    };
    let before_backup = command(&rs.before_backup, "before_backup");
    let after_backup = command(&rs.after_backup, "after_backup");
    let timeout = rs.hook_timeout.as_ref().and_then(|d| p.duration(d));
    crate::model::Hooks {
        before_backup,
        after_backup,
        timeout,
    }
}

fn thresholds(p: &mut Problems, raw: Option<&Spanned<RawHealth>>) -> Thresholds {
    let mut t = Thresholds::default();
    let Some(h) = raw else { return t };
    let hr = h.get_ref();
    t.capacity_warn_percent = hr.capacity_warn_percent.unwrap_or(t.capacity_warn_percent);
    t.capacity_breach_percent = hr
        .capacity_breach_percent
        .unwrap_or(t.capacity_breach_percent);
    let bad = |v: f64| !(0.0..=100.0).contains(&v);
    if bad(t.capacity_warn_percent)
        || bad(t.capacity_breach_percent)
        || t.capacity_warn_percent > t.capacity_breach_percent
    {
        let e = p.at(
            h.span().start,
            "capacity percentages must be 0-100, the warning not above the breach".into(),
        );
        p.found.push(e);
        let d = Thresholds::default();
        t.capacity_warn_percent = d.capacity_warn_percent;
        t.capacity_breach_percent = d.capacity_breach_percent;
    }
    if let Some(d) = hr.verify_max_age.as_ref().and_then(|d| p.duration(d)) {
        t.verify_max_age = d;
    }
    if let Some(d) = hr.drill_max_age.as_ref().and_then(|d| p.duration(d)) {
        t.drill_max_age = d;
    }
    t
}

fn schedule(p: &mut Problems, raw: Option<&Spanned<RawSchedule>>) -> Schedule {
    let mut schedule = Schedule::default();
    let Some(sch) = raw else { return schedule };
    let r = sch.get_ref();
    for (job, when) in [
        ("backup", &r.backup),
        ("verify", &r.verify),
        ("prune", &r.prune),
        ("drill", &r.drill),
        ("copy", &r.copy),
    ] {
        if let Some(w) = when {
            let parsed = When::parse(w.get_ref())
                .map_err(|m| p.at(w.span().start, format!("schedule.{job}: {m}")));
            if let Some(parsed) = p.keep(parsed) {
                schedule.jobs.push((job.to_string(), parsed));
            }
        }
    }
    if let Some(d) = r.randomized_delay.as_ref().and_then(|d| p.duration(d)) {
        schedule.randomized_delay = d;
    }
    schedule
}

fn monitors(p: &mut Problems, raw: &[Spanned<RawMonitor>]) -> Vec<Monitor> {
    let mut out = Vec::new();
    for m in raw {
        let r = m.get_ref();
        let kind = match r.kind.get_ref().as_str() {
            "healthchecks" => MonitorKind::Healthchecks,
            "ntfy" => MonitorKind::Ntfy,
            "uptime-kuma" => MonitorKind::UptimeKuma,
            "webhook" => MonitorKind::Webhook,
            other => {
                let e = p.at(r.kind.span().start, format!("unknown monitor kind `{other}` (kinds: healthchecks, ntfy, uptime-kuma, webhook)"));
                p.found.push(e);
                continue;
            }
        };
        // Ping URLs carry tokens: a value, `env:NAME`, or `file:PATH`,
        // read when a job pings.
        let text = r.url.get_ref();
        let url = crate::util::SecretRef::new(
            text.clone(),
            location(&|o, m| p.at(o, m), r.url.span().start),
        );
        let literal = !(text.starts_with("env:") || text.starts_with("file:"));
        if literal && !(text.starts_with("http://") || text.starts_with("https://")) {
            let e = p.at(
                r.url.span().start,
                "a monitor URL must start with http:// or https://".into(),
            );
            p.found.push(e);
            continue;
        }
        let mut jobs = Vec::new();
        for j in r.jobs.iter().flatten() {
            if !["backup", "verify", "prune", "drill", "restore", "copy"]
                .contains(&j.get_ref().as_str())
            {
                let e = p.at(
                    j.span().start,
                    format!(
                        "unknown job `{}` (jobs: backup, verify, prune, drill, restore, copy)",
                        j.get_ref()
                    ),
                );
                p.found.push(e);
                continue;
            }
            jobs.push(j.get_ref().clone());
        }
        out.push(Monitor { kind, url, jobs });
    }
    out
}

/// One `[repositories.NAME]` table: a directory (`path`) or a bucket
/// (`url` and its S3 settings).
fn repository(
    name: &str,
    r: &Spanned<RawRepository>,
    at: &dyn Fn(usize, String) -> Error,
) -> Result<Repository, Error> {
    let rr = r.get_ref();
    let err = |span: std::ops::Range<usize>, m: String| {
        at(span.start, format!("repository `{name}`: {m}"))
    };
    let key_file = rr
        .key_file
        .as_ref()
        .map(|k| crate::util::SecretRef::new(k.get_ref().clone(), location(at, k.span().start)));
    let (path, s3) = match (&rr.path, &rr.url) {
        (Some(p), None) => {
            if p.get_ref().is_empty() {
                return Err(err(p.span(), "path is empty".into()));
            }
            let s3_only = [
                rr.endpoint.as_ref().map(|e| e.span()),
                rr.access_key_id.as_ref().map(|e| e.span()),
                rr.secret_access_key.as_ref().map(|e| e.span()),
                rr.bandwidth_limit.as_ref().map(|e| e.span()),
                rr.transfers.as_ref().map(|e| e.span()),
                rr.deadline.as_ref().map(|e| e.span()),
                rr.request_timeout.as_ref().map(|e| e.span()),
                rr.progress_timeout.as_ref().map(|e| e.span()),
                rr.object_lock.as_ref().map(|e| e.span()),
            ];
            if let Some(span) = s3_only.into_iter().flatten().next() {
                return Err(err(
                    span,
                    "only a repository with `url = \"s3://…\"` takes S3 settings".into(),
                ));
            }
            (PathBuf::from(p.get_ref()), None)
        }
        // A repository behind `lifeboat serve`: the server holds it.
        (None, Some(u)) if crate::repo::rest::is_rest(u.get_ref()) => {
            crate::repo::rest::parse_url(u.get_ref()).map_err(|e| err(u.span(), format!("{e}")))?;
            let s3_only = [
                rr.endpoint.as_ref().map(|e| e.span()),
                rr.access_key_id.as_ref().map(|e| e.span()),
                rr.secret_access_key.as_ref().map(|e| e.span()),
                rr.object_lock.as_ref().map(|e| e.span()),
            ];
            if let Some(span) = s3_only.into_iter().flatten().next() {
                return Err(err(
                    span,
                    "only a repository with `url = \"s3://…\"` takes S3 settings".into(),
                ));
            }
            (PathBuf::from(u.get_ref()), None)
        }
        (None, Some(u)) => {
            let url = u.get_ref();
            crate::repo::s3::parse_url(url).map_err(|e| err(u.span(), format!("{e}")))?;
            // Credentials are secrets: a value, `env:NAME` or `file:PATH`,
            // read when the repository is opened.
            let secret = |v: &Option<Spanned<String>>| {
                v.as_ref().map(|v| {
                    crate::util::SecretRef::new(v.get_ref().clone(), location(at, v.span().start))
                })
            };
            let transfers = match &rr.transfers {
                Some(n) if !(1..=32).contains(n.get_ref()) => {
                    return Err(err(n.span(), "transfers must be between 1 and 32".into()))
                }
                Some(n) => Some(*n.get_ref() as usize),
                None => None,
            };
            let bandwidth_limit = match &rr.bandwidth_limit {
                Some(b) => {
                    Some(crate::repo::s3::parse_rate(b.get_ref()).map_err(|m| err(b.span(), m))?)
                }
                None => None,
            };
            let time = |v: &Option<Spanned<String>>| -> Result<Option<Duration>, Error> {
                let Some(d) = v else { return Ok(None) };
                match humantime::parse_duration(d.get_ref()) {
                    Ok(t) if t >= Duration::from_secs(1) => Ok(Some(t)),
                    _ => Err(err(
                        d.span(),
                        format!(
                            "{:?} is not a duration of at least 1s, like \"10m\"",
                            d.get_ref()
                        ),
                    )),
                }
            };
            let object_lock = match &rr.object_lock {
                Some(l) => {
                    let l = l.get_ref();
                    let mode = crate::repo::object_lock::LockMode::parse(l.mode.get_ref())
                        .ok_or_else(|| err(l.mode.span(), format!("object_lock mode {:?} is neither \"governance\" nor \"compliance\"", l.mode.get_ref())))?;
                    let retain = crate::repo::object_lock::days(*l.days.get_ref()).ok_or_else(|| {
                        err(l.days.span(), "object_lock days must be a number of days above zero (fractions allowed), like 30".into())
                    })?;
                    Some(crate::repo::object_lock::LockSettings { mode, retain })
                }
                None => None,
            };
            let settings = crate::repo::s3::S3Settings {
                object_lock,
                deadline: time(&rr.deadline)?,
                request_timeout: time(&rr.request_timeout)?,
                progress_timeout: time(&rr.progress_timeout)?,
                url: url.clone(),
                endpoint: rr.endpoint.as_ref().map(|e| e.get_ref().clone()),
                region: rr.region.clone(),
                path_style: rr.path_style,
                access_key_id: secret(&rr.access_key_id),
                secret_access_key: secret(&rr.secret_access_key),
                transfers,
                bandwidth_limit,
            };
            (PathBuf::from(url), Some(settings))
        }
        (Some(_), Some(u)) => {
            return Err(err(
                u.span(),
                "give either `path` (a directory) or `url` (s3://bucket/prefix), not both".into(),
            ))
        }
        (None, None) => {
            return Err(err(
                r.span(),
                "needs `path` (a directory) or `url` (s3://bucket/prefix)".into(),
            ))
        }
    };
    Ok(Repository {
        name: name.to_string(),
        path,
        key_file,
        s3,
        copy_of: rr.copy_of.as_ref().map(|c| c.get_ref().clone()),
    })
}

fn names<'a>(m: impl IntoIterator<Item = &'a String>) -> String {
    let v: Vec<String> = m.into_iter().map(|k| format!("`{k}`")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn duration(d: &Spanned<String>, at: &dyn Fn(usize, String) -> Error) -> Result<Duration, Error> {
    humantime::parse_duration(d.get_ref()).map_err(|e| {
        at(
            d.span().start,
            format!(
                "{:?} is not a duration like \"24h\" or \"90m\": {e}",
                d.get_ref()
            ),
        )
    })
}

/// The file's bytes as text, or the line and column of the first byte
/// that is not UTF-8 (columns count characters, as editors do, and a byte
/// order mark is not one).
pub(super) fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = e.valid_up_to();
        let before = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
        let before = before.strip_prefix('\u{feff}').unwrap_or(before);
        let (line, col) = line_col(before, before.len());
        Error::Config {
            path: path.to_path_buf(),
            line,
            col,
            message: format!(
                "byte 0x{:02x} is not UTF-8: a config must be UTF-8 text (re-save the file as UTF-8)",
                bytes.get(good).copied().unwrap_or_default()
            ),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}
