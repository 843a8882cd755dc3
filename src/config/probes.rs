//! The `[[services.NAME.probes]]` tables and a service's `sandbox_start`:
//! one flat raw table per probe (so every key keeps its span for errors),
//! checked per kind into a [`Probe`].

use super::{Error, Source, SourceKind};
use crate::model::{
    variables_in, Compare, Expect, FileFormat, Probe, ProbeKind, SandboxApp, VARIABLES,
};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

pub const KINDS: &str = "sql, file, http, tcp, command";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    kind: Spanned<String>,
    name: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    query: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
    expect_row: Option<Spanned<Vec<toml::Value>>>,
    path: Option<Spanned<String>>,
    min_size: Option<Spanned<toml::Value>>,
    parse: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    status: Option<Spanned<u16>>,
    contains: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
}

type At<'a> = &'a dyn Fn(usize, String) -> Error;

/// A required text key's value, or its error.
type Required<'a> = &'a dyn Fn(&Option<Spanned<String>>, &str) -> Result<String, Error>;

impl RawProbe {
    /// (key, where) of every key given.
    fn given(&self) -> Vec<(&'static str, usize)> {
        fn s<T>(k: &'static str, v: &Option<Spanned<T>>) -> Option<(&'static str, usize)> {
            v.as_ref().map(|v| (k, v.span().start))
        }
        [
            s("source", &self.source),
            s("query", &self.query),
            s("expect", &self.expect),
            s("expect_row", &self.expect_row),
            s("path", &self.path),
            s("min_size", &self.min_size),
            s("parse", &self.parse),
            s("url", &self.url),
            s("status", &self.status),
            s("contains", &self.contains),
            s("address", &self.address),
            s("command", &self.command),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Checks that `text` uses only the sandbox variables.
pub(super) fn check_variables(
    svc: &str,
    key: &str,
    v: &Spanned<String>,
    at: At<'_>,
) -> Result<(), Error> {
    for name in variables_in(v.get_ref()) {
        if !VARIABLES.contains(&name.as_str()) {
            return Err(at(
                v.span().start,
                format!(
                    "service `{svc}`: `{key}` uses {{{{{name}}}}}, which is not a sandbox variable (they are: {})",
                    VARIABLES.map(|v| format!("{{{{{v}}}}}")).join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A duration for a timeout: at least a millisecond, at most a day.
pub(super) fn timeout(
    svc: &str,
    key: &str,
    v: &Spanned<String>,
    at: At<'_>,
) -> Result<Duration, Error> {
    match humantime::parse_duration(v.get_ref()) {
        Ok(d) if d >= Duration::from_millis(1) && d <= Duration::from_secs(86400) => Ok(d),
        _ => Err(at(
            v.span().start,
            format!(
                "service `{svc}`: {key} {:?} is not a duration between 1ms and 24h, like \"30s\"",
                v.get_ref()
            ),
        )),
    }
}

/// Checks probe number `n` (from 1) of service `svc`, whose sources are
/// `sources`; `at_table` is where its table starts.
pub(super) fn parse(
    svc: &str,
    n: usize,
    raw: &RawProbe,
    at_table: usize,
    sources: &[Source],
    at: At<'_>,
) -> Result<Probe, Error> {
    let kind = raw.kind.get_ref().as_str();
    let accepts: &[&str] = match kind {
        "sql" => &["source", "query", "expect", "expect_row"],
        "file" => &["path", "min_size", "parse"],
        "http" => &["url", "status", "contains"],
        "tcp" => &["address"],
        "command" => &["command"],
        other => {
            return Err(at(
                raw.kind.span().start,
                format!("service `{svc}`: unknown probe kind `{other}` (kinds: {KINDS})"),
            ))
        }
    };
    for (key, pos) in raw.given() {
        if !accepts.contains(&key) {
            return Err(at(
                pos,
                format!(
                    "service `{svc}`: `{key}` does not apply to a {kind} probe (it takes: name, timeout, {})",
                    accepts.join(", ")
                ),
            ));
        }
    }
    let required = |v: &Option<Spanned<String>>, key: &str| -> Result<String, Error> {
        match v {
            Some(s) if !s.get_ref().trim().is_empty() => {
                check_variables(svc, key, s, at)?;
                Ok(s.get_ref().clone())
            }
            Some(s) => Err(at(
                s.span().start,
                format!("service `{svc}`: `{key}` is empty"),
            )),
            None => Err(at(
                at_table,
                format!("service `{svc}`: a {kind} probe needs `{key}`"),
            )),
        }
    };
    let probe_kind = match kind {
        "sql" => sql(svc, raw, at_table, sources, at, &required)?,
        "file" => {
            let path = required(&raw.path, "path")?;
            if !path.starts_with('/') {
                let pos = raw
                    .path
                    .as_ref()
                    .map(|p| p.span().start)
                    .unwrap_or(at_table);
                return Err(at(
                    pos,
                    format!("service `{svc}`: a file probe's path is the live path, so absolute (like \"/srv/app/config.json\"), not {path:?}"),
                ));
            }
            let parse = match &raw.parse {
                None => None,
                Some(p) => Some(match p.get_ref().as_str() {
                    "json" => FileFormat::Json,
                    "toml" => FileFormat::Toml,
                    "sqlite" => FileFormat::Sqlite,
                    other => {
                        return Err(at(
                            p.span().start,
                            format!("service `{svc}`: parse {other:?} is not one of \"json\", \"toml\", \"sqlite\""),
                        ))
                    }
                }),
            };
            let min_size = raw
                .min_size
                .as_ref()
                .map(|m| {
                    size(m.get_ref())
                        .map_err(|e| at(m.span().start, format!("service `{svc}`: min_size: {e}")))
                })
                .transpose()?;
            ProbeKind::File {
                path: PathBuf::from(path),
                min_size,
                parse,
            }
        }
        "http" => {
            let url = required(&raw.url, "url")?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                let pos = raw.url.as_ref().map(|p| p.span().start).unwrap_or(at_table);
                return Err(at(
                    pos,
                    format!("service `{svc}`: an http probe's url must start with http:// or https://, not {url:?}"),
                ));
            }
            if let Some(s) = &raw.status {
                if !(100..=599).contains(s.get_ref()) {
                    return Err(at(
                        s.span().start,
                        format!(
                            "service `{svc}`: status {} is not an HTTP status (100-599)",
                            s.get_ref()
                        ),
                    ));
                }
            }
            ProbeKind::Http {
                url,
                status: raw.status.as_ref().map(|s| *s.get_ref()),
                contains: raw.contains.as_ref().map(|c| c.get_ref().clone()),
            }
        }
        "tcp" => {
            let address = required(&raw.address, "address")?;
            if !address.contains(':') {
                let pos = raw
                    .address
                    .as_ref()
                    .map(|p| p.span().start)
                    .unwrap_or(at_table);
                return Err(at(
                    pos,
                    format!("service `{svc}`: a tcp probe's address is host:port (like \"127.0.0.1:{{{{sandbox.port}}}}\"), not {address:?}"),
                ));
            }
            ProbeKind::Tcp { address }
        }
        _ => ProbeKind::Command {
            command: required(&raw.command, "command")?,
        },
    };
    let name = match &raw.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            return Err(at(
                n.span().start,
                format!("service `{svc}`: a probe's name is empty"),
            ))
        }
        Some(n) => n.get_ref().clone(),
        None => format!("{kind} #{n}"),
    };
    let timeout = match &raw.timeout {
        Some(t) => timeout(svc, "timeout", t, at)?,
        None => Duration::from_secs(30),
    };
    Ok(Probe {
        name,
        timeout,
        kind: probe_kind,
    })
}

fn sql(
    svc: &str,
    raw: &RawProbe,
    at_table: usize,
    sources: &[Source],
    at: At<'_>,
    required: Required<'_>,
) -> Result<ProbeKind, Error> {
    let databases: Vec<&Source> = sources
        .iter()
        .filter(|s| {
            matches!(
                s.kind,
                SourceKind::Postgres(_) | SourceKind::Mysql(_) | SourceKind::Sqlite { .. }
            )
        })
        .collect();
    let listed = || {
        if databases.is_empty() {
            "it has none".to_string()
        } else {
            format!(
                "its database sources: {}",
                databases
                    .iter()
                    .map(|s| format!("`{}`", s.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let source = match &raw.source {
        Some(s) => {
            if !databases.iter().any(|d| &d.name == s.get_ref()) {
                return Err(at(
                    s.span().start,
                    format!(
                        "service `{svc}`: an sql probe's source must name a postgres, mysql or sqlite source of the service, and `{}` is not one ({})",
                        s.get_ref(),
                        listed()
                    ),
                ));
            }
            s.get_ref().clone()
        }
        None => match databases.as_slice() {
            [one] => one.name.clone(),
            _ => {
                return Err(at(
                    at_table,
                    format!("service `{svc}`: say which database an sql probe queries with `source = \"…\"` ({})", listed()),
                ))
            }
        },
    };
    let query = required(&raw.query, "query")?;
    let expect = match (&raw.expect, &raw.expect_row) {
        (Some(_), Some(r)) => {
            return Err(at(
                r.span().start,
                format!("service `{svc}`: give an sql probe `expect` (a value) or `expect_row` (a row), not both"),
            ))
        }
        (Some(e), None) => Expect::Value(
            Compare::parse(e.get_ref()).map_err(|m| at(e.span().start, format!("service `{svc}`: expect {m}")))?,
        ),
        (None, Some(r)) => {
            if r.get_ref().is_empty() {
                return Err(at(r.span().start, format!("service `{svc}`: expect_row is empty")));
            }
            let mut row = Vec::new();
            for v in r.get_ref() {
                row.push(match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        return Err(at(
                            r.span().start,
                            format!("service `{svc}`: expect_row holds values (strings, numbers, booleans), not {}", v.type_str()),
                        ))
                    }
                });
            }
            Expect::Row(row)
        }
        (None, None) => Expect::AnyRow,
    };
    Ok(ProbeKind::Sql {
        source,
        query,
        expect,
    })
}

/// Bytes: a number, or a string like "10 KiB", "2MB", "512".
fn size(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        toml::Value::String(s) => {
            let t = s.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (n, unit) = t.split_at(split);
            let n: u64 = n
                .parse()
                .map_err(|_| format!("{s:?} is not a size like 1024, \"10 KiB\" or \"2 MB\""))?;
            let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kib" => 1 << 10,
                "kb" => 1000,
                "m" | "mib" => 1 << 20,
                "mb" => 1_000_000,
                "g" | "gib" => 1 << 30,
                "gb" => 1_000_000_000,
                _ => {
                    return Err(format!(
                        "{s:?} is not a size like 1024, \"10 KiB\" or \"2 MB\""
                    ))
                }
            };
            n.checked_mul(mult)
                .ok_or_else(|| format!("{s:?} is too large"))
        }
        _ => Err(format!(
            "{v} is not a size like 1024, \"10 KiB\" or \"2 MB\""
        )),
    }
}

type RawApp<'a> = (
    &'a Option<Spanned<String>>,
    &'a Option<Spanned<String>>,
    &'a Option<Spanned<String>>,
);

/// A service's probes and its sandbox app (`sandbox_start`,
/// `sandbox_stop`, `sandbox_timeout`), and every problem found in them.
pub(super) fn of_service(
    svc: &str,
    raw: &[Spanned<RawProbe>],
    (start, stop, wait): RawApp<'_>,
    sources: &[Source],
    at: At<'_>,
) -> (Vec<Probe>, Option<SandboxApp>, Vec<Error>) {
    let mut found = Vec::new();
    let mut probes: Vec<Probe> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match parse(svc, i + 1, r.get_ref(), r.span().start, sources, at) {
            Ok(p) if probes.iter().any(|o| o.name == p.name) => found.push(at(
                r.span().start,
                format!(
                    "service `{svc}`: two probes are named `{}`; give one another `name`",
                    p.name
                ),
            )),
            Ok(p) => probes.push(p),
            Err(e) => found.push(e),
        }
    }
    let mut app = None;
    match start {
        Some(s) if s.get_ref().trim().is_empty() => found.push(at(
            s.span().start,
            format!("service `{svc}`: `sandbox_start` is empty"),
        )),
        Some(s) => {
            let mut ok = true;
            for (key, v) in [("sandbox_start", Some(s)), ("sandbox_stop", stop.as_ref())] {
                if let Some(v) = v {
                    if let Err(e) = check_variables(svc, key, v, at) {
                        found.push(e);
                        ok = false;
                    }
                }
            }
            let timeout = match wait {
                Some(t) => match timeout(svc, "sandbox_timeout", t, at) {
                    Ok(d) => d,
                    Err(e) => {
                        found.push(e);
                        ok = false;
                        Duration::ZERO
                    }
                },
                None => Duration::from_secs(60),
            };
            if ok {
                app = Some(SandboxApp {
                    start: s.get_ref().clone(),
                    stop: stop.as_ref().map(|s| s.get_ref().clone()),
                    timeout,
                });
            }
        }
        None => {
            if let Some(v) = stop.as_ref().or(wait.as_ref()) {
                found.push(at(
                    v.span().start,
                    format!("service `{svc}`: `sandbox_stop` and `sandbox_timeout` go with a `sandbox_start` command"),
                ));
            }
        }
    }
    (probes, app, found)
}
