//! The configuration file: repositories, tiers and services.
//!
//! Unknown keys are errors, and every error names `file:line:col`.
//! Secrets are never written in the file, only referenced: a path, or
//! `env:NAME` for a path (or value) held in an environment variable.

pub use crate::model::{
    Command, Database, Policy, Redis, Retention, Service, Source, SourceKind, Thresholds, Tier,
};
use crate::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod parse;
mod probes;
mod sources;

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
    /// `[audit] roots`: where `lifeboat audit` looks for `.env` files no
    /// source covers (none by default).
    pub audit_roots: Vec<PathBuf>,
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
            None => match self.path.to_str().filter(|p| crate::repo::rest::is_rest(p)) {
                Some(url) => Box::new(crate::repo::rest::RestBackend::new(url)?),
                None => Box::new(crate::repo::LocalBackend::new(&self.path)),
            },
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
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Ok(Self::parse(path, parse::utf8(path, &bytes)?)?)
    }

    /// [`Config::parse_all`] of a file's bytes: bytes that are not UTF-8
    /// are reported at their line and column.
    pub fn parse_all_bytes(path: &Path, bytes: &[u8]) -> Result<(Config, Vec<Error>), Error> {
        parse::parse_all(path, parse::utf8(path, bytes)?)
    }

    /// The config in `text`, or its first problem.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
        let (config, mut problems) = parse::parse_all(path, text)?;
        match problems.is_empty() {
            true => Ok(config),
            false => Err(problems.remove(0)),
        }
    }

    /// The config in `text` and every problem found in it (`config
    /// check` reports them all). Only a file that is not TOML of the right
    /// shape stops at once.
    pub fn parse_all(path: &Path, text: &str) -> Result<(Config, Vec<Error>), Error> {
        parse::parse_all(path, text)
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
            // Doing nothing successfully would look like a healthy night.
            if self.services.is_empty() {
                anyhow::bail!(
                    "no services are configured in {}: add a [[services]] entry (`lifeboat config init` writes a commented example)",
                    self.path.display()
                );
            }
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
                let names = self.services.iter().map(|s| s.name.as_str());
                anyhow::anyhow!(
                    "no service named `{name}` in {}{}; services: {}",
                    self.path.display(),
                    crate::util::suggestion(name, names.clone()),
                    names.collect::<Vec<_>>().join(", ")
                )
            })
    }

    /// A repository named in the config, with a suggestion when `name`
    /// looks like a mistyped one rather than a location.
    pub fn unknown_repository(&self, name: &str) -> anyhow::Error {
        let names = self.repositories.keys().map(String::as_str);
        anyhow::anyhow!(
            "no repository named `{name}` in {}{}; repositories: {}",
            self.path.display(),
            crate::util::suggestion(name, names.clone()),
            names.collect::<Vec<_>>().join(", ")
        )
    }
}

pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("names may contain only letters, digits, `-`, `_` and `.`".into());
    }
    Ok(())
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
