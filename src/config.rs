//! The configuration file: repositories, tiers and services.
//!
//! Unknown keys are errors, and every error names `file:line:col`.
//! Secrets are never written in the file, only referenced: a path, or
//! `env:NAME` for a path (or value) held in an environment variable.

pub use crate::model::{
    Command, Database, Policy, Redis, Retention, Service, Source, SourceKind, Thresholds, Tier,
};
use crate::Error;
use serde::Deserialize;
use std::collections::BTreeMap;
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
    /// The repository this one is the off-site copy of.
    copy_of: Option<Spanned<String>>,
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

mod sources;
use sources::RawSource;

/// When a job runs, in a form that maps onto both systemd timers and cron.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Hourly,
    Daily {
        hour: u8,
        minute: u8,
    },
    /// `weekday` 0 = Monday … 6 = Sunday.
    Weekly {
        weekday: u8,
        hour: u8,
        minute: u8,
    },
    /// The first such weekday of each month.
    MonthlyFirst {
        weekday: u8,
        hour: u8,
        minute: u8,
    },
    Monthly {
        day: u8,
        hour: u8,
        minute: u8,
    },
}

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl When {
    /// "hourly", "daily 02:00", "weekly sun 03:00", "monthly first-sun 04:00",
    /// "monthly 15 04:00".
    pub fn parse(s: &str) -> Result<When, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let time = |t: &str| -> Result<(u8, u8), String> {
            let (h, m) = t
                .split_once(':')
                .ok_or_else(|| format!("{t:?} is not a time like 02:00"))?;
            match (h.parse::<u8>(), m.parse::<u8>()) {
                (Ok(h), Ok(m)) if h < 24 && m < 60 => Ok((h, m)),
                _ => Err(format!("{t:?} is not a time like 02:00")),
            }
        };
        let day = |d: &str| {
            WEEKDAYS
                .iter()
                .position(|w| d.eq_ignore_ascii_case(w))
                .map(|i| i as u8)
                .ok_or_else(|| format!("{d:?} is not a weekday (mon … sun)"))
        };
        match words.as_slice() {
            ["hourly"] => Ok(When::Hourly),
            ["daily", t] => time(t).map(|(hour, minute)| When::Daily { hour, minute }),
            ["weekly", d, t] => Ok(When::Weekly { weekday: day(d)?, hour: time(t)?.0, minute: time(t)?.1 }),
            ["monthly", d, t] => {
                let (hour, minute) = time(t)?;
                match d.strip_prefix("first-") {
                    Some(w) => Ok(When::MonthlyFirst { weekday: day(w)?, hour, minute }),
                    None => match d.parse::<u8>() {
                        Ok(day) if (1..=28).contains(&day) => Ok(When::Monthly { day, hour, minute }),
                        _ => Err(format!("{d:?} is not a day of the month 1-28 or first-<weekday>")),
                    },
                }
            }
            _ => Err(format!("{s:?} is not a schedule: use \"hourly\", \"daily 02:00\", \"weekly sun 03:00\", \"monthly first-sun 04:00\" or \"monthly 15 04:00\"")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// (job, when): job is backup, verify, prune, drill or copy.
    pub jobs: Vec<(String, When)>,
    pub randomized_delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorKind {
    /// Healthchecks-style: URL on success, URL/start, URL/fail.
    Healthchecks,
    Ntfy,
    UptimeKuma,
    Webhook,
}

#[derive(Debug, Clone)]
pub struct Monitor {
    pub kind: MonitorKind,
    /// May hold a secret token: never logged whole, read when pinging.
    pub url: crate::util::SecretRef,
    /// Jobs that ping it; empty means all.
    pub jobs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The admin's own runbooks (added to the built-in ones).
    pub runbooks_dir: Option<PathBuf>,
    pub thresholds: Thresholds,
    pub schedule: Schedule,
    pub monitors: Vec<Monitor>,
    pub repositories: BTreeMap<String, Repository>,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone)]
pub struct Repository {
    pub name: String,
    /// The directory of a local repository; for one on object storage, its
    /// URL (for messages only).
    pub path: PathBuf,
    pub key_file: Option<crate::util::SecretRef>,
    /// Set for a repository on an S3-compatible store.
    pub s3: Option<crate::repo::s3::S3Settings>,
    /// The repository this one holds copies of (`lifeboat copy`).
    pub copy_of: Option<String>,
}

impl Repository {
    /// Its storage.
    pub fn backend(&self) -> anyhow::Result<Box<dyn crate::repo::Backend>> {
        Ok(match &self.s3 {
            Some(s) => Box::new(crate::repo::s3::S3Backend::new(s)?),
            None => Box::new(crate::repo::LocalBackend::new(&self.path)),
        })
    }

    /// Opens it with the key given for this command, else its `key_file`,
    /// else the default key ([`crate::repo::KeySource::choose`]).
    pub fn open(&self, key: Option<&Path>) -> anyhow::Result<crate::repo::Repository> {
        let key = crate::repo::KeySource::choose(key, self.key_file.as_ref())?;
        crate::repo::Repository::open(self.backend()?, key)
    }

    /// The path or URL, for people.
    pub fn location(&self) -> String {
        match &self.s3 {
            Some(s) => s.url.clone(),
            None => self.path.display().to_string(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Ok(Self::parse(path, &text)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
        let at = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            Error::Config {
                path: path.to_path_buf(),
                line,
                col,
                message,
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            at(offset, e.message().trim().replace('\n', " "))
        })?;

        let mut tiers: BTreeMap<Tier, Policy> =
            Tier::ALL.iter().map(|t| (*t, t.default_policy())).collect();
        let mut retention: BTreeMap<Tier, Retention> = Tier::ALL
            .iter()
            .map(|t| (*t, Retention::seed_default()))
            .collect();
        for (name, t) in &raw.tiers {
            let tier = Tier::ALL
                .iter()
                .copied()
                .find(|x| x.name() == name)
                .ok_or_else(|| {
                    at(
                        t.span().start,
                        format!(
                            "unknown tier `{name}`; tiers are critical, important and supporting"
                        ),
                    )
                })?;
            let policy = tiers
                .get_mut(&tier)
                .ok_or_else(|| at(0, "internal: tier table".into()))?;
            if let Some(d) = &t.get_ref().rpo {
                policy.rpo = duration(d, &at)?;
            }
            if let Some(d) = &t.get_ref().rto {
                policy.rto = duration(d, &at)?;
            }
            if let Some(r) = t.get_ref().retention {
                retention.insert(tier, r);
            }
        }

        let mut repositories = BTreeMap::new();
        for (name, r) in &raw.repositories {
            check_name(name)
                .map_err(|m| at(r.span().start, format!("repository `{name}`: {m}")))?;
            repositories.insert(name.clone(), repository(name, r, &at)?);
        }
        for (name, r) in &raw.repositories {
            if let Some(c) = &r.get_ref().copy_of {
                if c.get_ref() == name || !repositories.contains_key(c.get_ref()) {
                    return Err(at(
                        c.span().start,
                        format!(
                            "repository `{name}`: copy_of must name another repository (defined: {})",
                            names(&repositories)
                        ),
                    ));
                }
            }
        }

        let mut services = Vec::new();
        for (name, s) in &raw.services {
            let start = s.span().start;
            check_name(name).map_err(|m| at(start, format!("service `{name}`: {m}")))?;
            let rs = s.get_ref();
            let repository = match &rs.repository {
                Some(r) => {
                    if !repositories.contains_key(r.get_ref()) {
                        return Err(at(
                            r.span().start,
                            format!("service `{name}`: no repository named `{}` (defined: {})", r.get_ref(), names(&repositories)),
                        ));
                    }
                    r.get_ref().clone()
                }
                None if repositories.len() == 1 => repositories.keys().next().cloned().unwrap_or_default(),
                None => {
                    return Err(at(
                        start,
                        format!("service `{name}`: say which repository it uses (`repository = \"…\"`; defined: {})", names(&repositories)),
                    ))
                }
            };
            let mut policy = tiers[&rs.tier];
            if let Some(d) = &rs.rpo {
                policy.rpo = duration(d, &at)?;
            }
            if let Some(d) = &rs.rto {
                policy.rto = duration(d, &at)?;
            }
            if rs.sources.get_ref().is_empty() {
                return Err(at(
                    rs.sources.span().start,
                    format!("service `{name}` has no sources"),
                ));
            }
            let mut sources: Vec<Source> = Vec::new();
            for src in rs.sources.get_ref() {
                let parsed = sources::parse(name, src.get_ref(), src.span().start, &at)?;
                if sources.iter().any(|o| o.name == parsed.name) {
                    return Err(at(
                        src.span().start,
                        format!(
                            "service `{name}`: two sources are named `{}`; give one a `name`",
                            parsed.name
                        ),
                    ));
                }
                sources.push(parsed);
            }
            services.push(Service {
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
            });
        }
        services.sort_by(|a, b| a.tier.cmp(&b.tier).then(a.name.cmp(&b.name)));

        let mut thresholds = Thresholds::default();
        if let Some(h) = &raw.health {
            let hr = h.get_ref();
            if let Some(p) = hr.capacity_warn_percent {
                thresholds.capacity_warn_percent = p;
            }
            if let Some(p) = hr.capacity_breach_percent {
                thresholds.capacity_breach_percent = p;
            }
            let bad = |p: f64| !(0.0..=100.0).contains(&p);
            if bad(thresholds.capacity_warn_percent)
                || bad(thresholds.capacity_breach_percent)
                || thresholds.capacity_warn_percent > thresholds.capacity_breach_percent
            {
                return Err(at(
                    h.span().start,
                    "capacity percentages must be 0-100, the warning not above the breach".into(),
                ));
            }
            if let Some(d) = &hr.verify_max_age {
                thresholds.verify_max_age = duration(d, &at)?;
            }
            if let Some(d) = &hr.drill_max_age {
                thresholds.drill_max_age = duration(d, &at)?;
            }
        }

        let mut schedule = Schedule::default();
        if let Some(sch) = &raw.schedule {
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
                        .map_err(|m| at(w.span().start, format!("schedule.{job}: {m}")))?;
                    schedule.jobs.push((job.to_string(), parsed));
                }
            }
            if let Some(d) = &r.randomized_delay {
                schedule.randomized_delay = duration(d, &at)?;
            }
        }

        let mut monitors = Vec::new();
        for m in &raw.monitors {
            let r = m.get_ref();
            let kind = match r.kind.get_ref().as_str() {
                "healthchecks" => MonitorKind::Healthchecks,
                "ntfy" => MonitorKind::Ntfy,
                "uptime-kuma" => MonitorKind::UptimeKuma,
                "webhook" => MonitorKind::Webhook,
                other => return Err(at(r.kind.span().start, format!("unknown monitor kind `{other}` (kinds: healthchecks, ntfy, uptime-kuma, webhook)"))),
            };
            // Ping URLs carry tokens: a value, `env:NAME`, or `file:PATH`,
            // read when a job pings.
            let text = r.url.get_ref();
            let url = crate::util::SecretRef::new(text.clone(), location(&at, r.url.span().start));
            let literal = !(text.starts_with("env:") || text.starts_with("file:"));
            if literal && !(text.starts_with("http://") || text.starts_with("https://")) {
                return Err(at(
                    r.url.span().start,
                    "a monitor URL must start with http:// or https://".into(),
                ));
            }
            let mut jobs = Vec::new();
            for j in r.jobs.iter().flatten() {
                if !["backup", "verify", "prune", "drill", "restore", "copy"]
                    .contains(&j.get_ref().as_str())
                {
                    return Err(at(
                        j.span().start,
                        format!(
                            "unknown job `{}` (jobs: backup, verify, prune, drill, restore, copy)",
                            j.get_ref()
                        ),
                    ));
                }
                jobs.push(j.get_ref().clone());
            }
            monitors.push(Monitor { kind, url, jobs });
        }

        Ok(Config {
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
        })
    }

    /// Every service (`all`), or the named ones; `what` completes "name the
    /// services to …" when neither is given.
    pub fn select_services<S: AsRef<str>>(
        &self,
        names: &[S],
        all: bool,
        what: &str,
    ) -> anyhow::Result<Vec<&Service>> {
        if all {
            return Ok(self.services.iter().collect());
        }
        if names.is_empty() {
            anyhow::bail!("name the services to {what}, or --all");
        }
        names.iter().map(|n| self.service(n.as_ref())).collect()
    }

    /// A repository named in the config, or at a directory or
    /// `s3://bucket/prefix` that is not, opened with `key` (`--key`) or
    /// its configured key or the default one.
    pub fn open_repository(
        &self,
        name_or_location: &str,
        key: Option<&Path>,
    ) -> anyhow::Result<crate::repo::Repository> {
        match self.repositories.get(name_or_location) {
            Some(r) => r.open(key),
            None => crate::repo::open_at(name_or_location, key),
        }
    }

    pub fn service(&self, name: &str) -> anyhow::Result<&Service> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no service named `{name}` in {} (services: {})",
                    self.path.display(),
                    self.services
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
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
            ];
            if let Some(span) = s3_only.into_iter().flatten().next() {
                return Err(err(
                    span,
                    "only a repository with `url = \"s3://…\"` takes S3 settings".into(),
                ));
            }
            (PathBuf::from(p.get_ref()), None)
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
            let settings = crate::repo::s3::S3Settings {
                deadline: time(&rr.deadline)?,
                request_timeout: time(&rr.request_timeout)?,
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

fn names<T>(m: &BTreeMap<String, T>) -> String {
    if m.is_empty() {
        "none".into()
    } else {
        m.keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("names may contain only letters, digits, `-`, `_` and `.`".into());
    }
    Ok(())
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

/// `file:line:col` of a byte offset, for messages that come later (a
/// secret resolved when a command needs it).
fn location(at: &dyn Fn(usize, String) -> Error, offset: usize) -> String {
    match at(offset, String::new()) {
        Error::Config {
            path, line, col, ..
        } => format!("{}:{line}:{col}", path.display()),
        _ => String::new(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(Path::new("lb.toml"), text)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_key_is_located() {
        let e = err("[repositories.local]\npath = \"/r\"\ncolour = 1\n");
        assert!(e.starts_with("lb.toml:3:1: unknown field `colour`"), "{e}");
    }

    #[test]
    fn bad_tier_and_duration_are_located() {
        let base = "[repositories.local]\npath = \"/r\"\n[services.a]\n";
        let e = err(&format!(
            "{base}tier = \"vital\"\nsources = [{{ kind = \"files\", paths = [\"/a\"] }}]\n"
        ));
        assert!(e.starts_with("lb.toml:4:8: unknown variant `vital`"), "{e}");
        let e = err(&format!("{base}tier = \"critical\"\nrpo = \"soon\"\nsources = [{{ kind = \"files\", paths = [\"/a\"] }}]\n"));
        assert!(e.starts_with("lb.toml:5:7:"), "{e}");
    }

    #[test]
    fn relative_paths_and_unknown_repositories_are_rejected() {
        let e = err("[repositories.local]\npath = \"/r\"\n[services.a]\ntier = \"critical\"\nsources = [{ kind = \"files\", paths = [\"srv\"] }]\n");
        assert!(
            e.contains("lb.toml:5:39: service `a`: source paths must be absolute"),
            "{e}"
        );
        let e = err("[repositories.local]\npath = \"/r\"\n[services.a]\ntier = \"critical\"\nrepository = \"nas\"\nsources = [{ kind = \"files\", paths = [\"/srv\"] }]\n");
        assert!(
            e.contains("lb.toml:5:14: service `a`: no repository named `nas`"),
            "{e}"
        );
    }

    #[test]
    fn tiers_default_and_services_override() {
        let c = Config::parse(
            Path::new("lb.toml"),
            "[tiers.important]\nrto = \"4h\"\n[repositories.local]\npath = \"/r\"\n[services.a]\ntier = \"important\"\nrpo = \"12h\"\nsources = [{ kind = \"files\", paths = [\"/srv\"] }]\n",
        )
        .unwrap();
        let s = c.service("a").unwrap();
        assert_eq!(s.policy.rto, Duration::from_secs(4 * 3600));
        assert_eq!(s.policy.rpo, Duration::from_secs(12 * 3600));
        assert_eq!(s.repository, "local");
    }
}
