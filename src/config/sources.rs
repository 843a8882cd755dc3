//! The `[[services.NAME.sources]]` tables: one flat raw table (so every key
//! keeps its span for errors), checked per kind into a [`Source`].

use super::{Command, Database, Error, Redis, Source, SourceKind};
use crate::util::SecretRef;
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// Every kind, as written in the config.
pub const KINDS: &str =
    "files, secrets, postgres, postgres-cluster, mysql, sqlite, redis, command, vm-image";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    kind: Spanned<String>,
    name: Option<Spanned<String>>,
    paths: Option<Spanned<Vec<Spanned<String>>>>,
    exclude: Option<Spanned<Vec<Spanned<String>>>>,
    snapshot: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    globals: Option<Spanned<bool>>,
    check: Option<Spanned<String>>,
    lock_timeout: Option<Spanned<String>>,
    rdb_path: Option<Spanned<String>>,
    stop: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    restore_command: Option<Spanned<String>>,
    check_command: Option<Spanned<String>>,
    spool: Option<Spanned<String>>,
}

type At<'a> = &'a dyn Fn(usize, String) -> Error;

impl RawSource {
    /// (key, where) of every key given.
    fn given(&self) -> Vec<(&'static str, usize)> {
        fn s<T>(k: &'static str, v: &Option<Spanned<T>>) -> Option<(&'static str, usize)> {
            v.as_ref().map(|v| (k, v.span().start))
        }
        [
            s("name", &self.name),
            s("paths", &self.paths),
            s("exclude", &self.exclude),
            s("snapshot", &self.snapshot),
            s("path", &self.path),
            s("database", &self.database),
            s("host", &self.host),
            s("port", &self.port),
            s("user", &self.user),
            s("password_file", &self.password_file),
            s("globals", &self.globals),
            s("check", &self.check),
            s("lock_timeout", &self.lock_timeout),
            s("rdb_path", &self.rdb_path),
            s("stop", &self.stop),
            s("start", &self.start),
            s("command", &self.command),
            s("restore_command", &self.restore_command),
            s("check_command", &self.check_command),
            s("spool", &self.spool),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Checks one source table of service `svc`; `at_table` is where it starts.
pub(super) fn parse(
    svc: &str,
    raw: &RawSource,
    at_table: usize,
    at: At<'_>,
) -> Result<Source, Error> {
    let kind = raw.kind.get_ref().as_str();
    let accepts: &[&str] = match kind {
        "files" => &["paths", "exclude", "snapshot"],
        "secrets" => &["paths"],
        "postgres" => &[
            "database",
            "host",
            "port",
            "user",
            "password_file",
            "globals",
            "check",
            "lock_timeout",
        ],
        "postgres-cluster" => &["host", "port", "user", "password_file", "path", "spool"],
        "mysql" => &[
            "database",
            "host",
            "port",
            "user",
            "password_file",
            "check",
            "lock_timeout",
        ],
        "sqlite" | "vm-image" => &["path"],
        "redis" => &["host", "port", "password_file", "rdb_path", "stop", "start"],
        "command" => &["command", "restore_command", "check_command"],
        other => {
            return Err(at(
                raw.kind.span().start,
                format!("service `{svc}`: unknown source kind `{other}` (kinds: {KINDS})"),
            ))
        }
    };
    for (key, pos) in raw.given() {
        if key != "name" && !accepts.contains(&key) {
            return Err(at(
                pos,
                format!(
                    "service `{svc}`: `{key}` does not apply to a {kind} source (it takes: name, {})",
                    accepts.join(", ")
                ),
            ));
        }
    }
    let text = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
    let required = |v: &Option<Spanned<String>>, key: &str| -> Result<String, Error> {
        match v {
            Some(s) if !s.get_ref().trim().is_empty() => Ok(s.get_ref().clone()),
            Some(s) => Err(at(
                s.span().start,
                format!("service `{svc}`: `{key}` is empty"),
            )),
            None => Err(at(
                at_table,
                format!("service `{svc}`: a {kind} source needs `{key}`"),
            )),
        }
    };
    let absolute = |v: &Spanned<String>| -> Result<PathBuf, Error> {
        if v.get_ref().starts_with('/') {
            Ok(PathBuf::from(v.get_ref()))
        } else {
            Err(at(
                v.span().start,
                format!(
                    "service `{svc}`: source paths must be absolute, not {:?}",
                    v.get_ref()
                ),
            ))
        }
    };
    let paths = || -> Result<Vec<PathBuf>, Error> {
        let given = raw
            .paths
            .as_ref()
            .map(|p| p.get_ref().as_slice())
            .unwrap_or_default();
        if given.is_empty() {
            let pos = raw
                .paths
                .as_ref()
                .map(|p| p.span().start)
                .unwrap_or(at_table);
            return Err(at(
                pos,
                format!("service `{svc}`: a {kind} source needs at least one path"),
            ));
        }
        given.iter().map(absolute).collect()
    };
    let path = || -> Result<PathBuf, Error> {
        required(&raw.path, "path")?;
        match &raw.path {
            Some(p) => absolute(p),
            None => Err(at(at_table, format!("service `{svc}`: needs `path`"))),
        }
    };
    let password_file = || -> Result<Option<SecretRef>, Error> {
        Ok(raw
            .password_file
            .as_ref()
            .map(|p| SecretRef::new(p.get_ref().clone(), super::location(at, p.span().start))))
    };
    let port = |default: u16| raw.port.as_ref().map(|p| *p.get_ref()).unwrap_or(default);
    let database = |default_port: u16, default_user: &str| -> Result<Database, Error> {
        Ok(Database {
            database: required(&raw.database, "database")?,
            host: text(&raw.host).unwrap_or_else(|| "localhost".into()),
            port: port(default_port),
            user: text(&raw.user).unwrap_or_else(|| default_user.into()),
            password_file: password_file()?,
            globals: raw.globals.as_ref().is_some_and(|g| *g.get_ref()),
            checksums: match &raw.check {
                None => false,
                Some(c) => match c.get_ref().as_str() {
                    "counts" => false,
                    "checksums" => true,
                    other => {
                        return Err(at(
                            c.span().start,
                            format!("service `{svc}`: check {other:?} is not one of \"counts\", \"checksums\""),
                        ))
                    }
                },
            },
            lock_timeout: match &raw.lock_timeout {
                None => std::time::Duration::from_secs(60),
                Some(d) => humantime::parse_duration(d.get_ref()).map_err(|e| {
                    at(
                        d.span().start,
                        format!(
                            "service `{svc}`: lock_timeout {:?} is not a duration like \"60s\": {e}",
                            d.get_ref()
                        ),
                    )
                })?,
            },
        })
    };

    let parsed = match kind {
        "files" => {
            let exclude: Vec<String> = raw
                .exclude
                .as_ref()
                .map(|e| e.get_ref().iter().map(|g| g.get_ref().clone()).collect())
                .unwrap_or_default();
            for g in raw.exclude.iter().flat_map(|e| e.get_ref()) {
                crate::source::files::Excludes::new(std::slice::from_ref(g.get_ref()))
                    .map_err(|e| at(g.span().start, format!("service `{svc}`: {e:#}")))?;
            }
            let snapshot = match &raw.snapshot {
                None => None,
                Some(v) => match v.get_ref().as_str() {
                    "btrfs" => Some(crate::model::FsSnapshot::Btrfs),
                    other => {
                        return Err(at(
                            v.span().start,
                            format!(
                                "service `{svc}`: snapshot {other:?} is not supported; the only one is \"btrfs\" (leave `snapshot` out to read the live tree)"
                            ),
                        ))
                    }
                },
            };
            SourceKind::Files {
                paths: paths()?,
                exclude,
                snapshot,
            }
        }
        "secrets" => SourceKind::Secrets { paths: paths()? },
        "postgres" => SourceKind::Postgres(database(5432, "postgres")?),
        "postgres-cluster" => SourceKind::PostgresCluster(crate::model::Cluster {
            host: text(&raw.host).unwrap_or_else(|| "localhost".into()),
            port: port(5432),
            user: text(&raw.user).unwrap_or_else(|| "postgres".into()),
            password_file: password_file()?,
            data_dir: raw.path.as_ref().map(absolute).transpose()?,
            spool: match &raw.spool {
                Some(s) => absolute(s)?,
                None => crate::paths::state_dir().join("wal-spool").join(svc),
            },
        }),
        "mysql" => SourceKind::Mysql(database(3306, "root")?),
        "sqlite" => SourceKind::Sqlite { path: path()? },
        "vm-image" => SourceKind::VmImage { path: path()? },
        "redis" => {
            let rdb_path = raw.rdb_path.as_ref().map(absolute).transpose()?;
            SourceKind::Redis(Redis {
                host: text(&raw.host).unwrap_or_else(|| "127.0.0.1".into()),
                port: port(6379),
                password_file: password_file()?,
                rdb_path,
                stop: text(&raw.stop),
                start: text(&raw.start),
            })
        }
        _ => SourceKind::Command(Command {
            backup: required(&raw.command, "command")?,
            restore: text(&raw.restore_command),
            check: text(&raw.check_command),
        }),
    };
    let name = match &raw.name {
        Some(n) => {
            super::check_name(n.get_ref())
                .and_then(|()| {
                    if n.get_ref().starts_with('.') {
                        Err("a source name may not start with `.`".to_string())
                    } else {
                        Ok(())
                    }
                })
                .map_err(|m| at(n.span().start, format!("service `{svc}`: source name: {m}")))?;
            n.get_ref().clone()
        }
        None => kind.to_string(),
    };
    Ok(Source { name, kind: parsed })
}
