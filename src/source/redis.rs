//! Redis: `redis-cli --rdb -` asks the server for a point-in-time RDB
//! snapshot (the replication path, so it works with persistence off).
//! Every restore first loads the RDB into a private `redis-server` on a
//! free loopback port and checks it; a live restore then stops the server
//! through the configured command, puts the RDB in place and starts it.

use super::capture::{Artifact, Capture};
use super::process::{self, find_tool, produce};
use super::{beside, Restored, Streams, To};
use crate::config::Redis;
use crate::repo::snapshot::{Facts, SourceRecord};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisCapture {
    name: String,
    spec: Redis,
    before: Facts,
}

impl RedisCapture {
    pub fn new(name: &str, spec: &Redis) -> Self {
        RedisCapture {
            name: name.to_string(),
            spec: spec.clone(),
            before: Facts::default(),
        }
    }
}

/// redis-cli for `host:port`; the password travels in REDISCLI_AUTH.
fn cli(host: &str, port: u16, password_file: Option<&Path>) -> Result<Command> {
    let mut c = Command::new(find_tool(&["redis-cli"])?);
    c.args(["-h", host, "-p", &port.to_string(), "--no-auth-warning"]);
    if let Some(p) = password_file {
        c.env("REDISCLI_AUTH", process::read_password(p)?);
    }
    Ok(c)
}

/// Server version and keys per database.
fn facts(host: &str, port: u16, password_file: Option<&Path>) -> Result<Facts> {
    let mut c = cli(host, port, password_file)?;
    c.arg("INFO");
    let out = process::output("redis-cli", c)
        .with_context(|| format!("asking Redis at {host}:{port} for INFO"))?;
    parse_info(&out).ok_or_else(|| {
        anyhow!(
            "Redis at {host}:{port} did not answer INFO: {}",
            out.lines().next().unwrap_or("no reply")
        )
    })
}

fn parse_info(out: &str) -> Option<Facts> {
    let mut f = Facts::default();
    let mut seen = false;
    for line in out.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("redis_version:") {
            f.server = Some(format!("Redis {v}"));
            seen = true;
        }
        // db0:keys=12,expires=0,avg_ttl=0
        if let Some((db, rest)) = line.split_once(':') {
            if db.starts_with("db") && db[2..].chars().all(|c| c.is_ascii_digit()) {
                let keys = rest
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("keys="))
                    .and_then(|n| n.parse().ok())?;
                f.counts.insert(db.to_string(), keys);
            }
        }
    }
    seen.then_some(f)
}

impl Capture for RedisCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn start(&mut self) -> Result<Vec<Artifact>> {
        let s = &self.spec;
        self.before = facts(&s.host, s.port, s.password_file.as_deref())?;
        let mut c = cli(&s.host, s.port, s.password_file.as_deref())?;
        c.args(["--rdb", "-"]);
        Ok(vec![produce(
            "redis-cli --rdb",
            c,
            "dump.rdb",
            Box::new(()),
        )?])
    }

    fn facts(self: Box<Self>) -> Result<Facts> {
        let s = &self.spec;
        let after = facts(&s.host, s.port, s.password_file.as_deref())?;
        let mut f = self.before;
        // Key counts bracket the snapshot; if they moved, it was being
        // written and a later check can only compare loosely.
        if after.counts != f.counts {
            f.approximate = true;
            f.counts = after.counts;
        }
        Ok(f)
    }
}

/// A private redis-server on a free loopback port, killed when dropped.
struct Sandbox {
    child: Child,
    port: u16,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Loads `dir/dump.rdb` into a private server and returns what it holds.
fn load_in_sandbox(dir: &Path) -> Result<Facts> {
    let port = free_port()?;
    let mut cmd = Command::new(find_tool(&["redis-server"])?);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args([
            "--dbfilename",
            "dump.rdb",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().context("starting a sandbox redis-server")?;
    let mut sb = Sandbox { child, port };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = sb.child.try_wait()? {
            bail!("the sandbox redis-server refused the RDB file and exited ({status}); the backup may be damaged or from a newer Redis");
        }
        // INFO answers "LOADING" until the dataset is in memory.
        if let Ok(f) = facts("127.0.0.1", sb.port, None) {
            let mut ping = cli("127.0.0.1", sb.port, None)?;
            ping.arg("PING");
            if process::output("redis-cli", ping).is_ok_and(|o| o.trim() == "PONG") {
                return Ok(f);
            }
        }
        if Instant::now() > deadline {
            bail!("the sandbox redis-server did not finish loading within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn compare(record: &Facts, found: &Facts) -> (Vec<String>, String) {
    let keys: u64 = found.counts.values().sum();
    let mut summary = format!("{keys} keys in {} databases", found.counts.len());
    let differences = record.differences(found);
    if record.approximate && !differences.is_empty() {
        summary.push_str(&format!(
            " (Redis was being written during the backup, so counts differ slightly: {})",
            differences.join("; ")
        ));
        return (Vec::new(), summary);
    }
    (differences, summary)
}

pub fn restore(
    spec: &Redis,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
) -> Result<Restored> {
    let file = record
        .files
        .first()
        .ok_or_else(|| anyhow!("the restore point holds no RDB file for `{}`", record.name))?;
    let scratch = match to {
        To::Sandbox(dir) => dir.join(&record.name),
        To::Live => std::env::temp_dir().join(format!("lifeboat-redis-{}", super::stamp())),
    };
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let result = (|| -> Result<Restored> {
        let rdb = scratch.join("dump.rdb");
        super::sqlite::write_new(&rdb, &mut streams.open(file)?)?;
        let found = load_in_sandbox(&scratch)?;
        let (differences, summary) = compare(&record.facts, &found);
        match to {
            To::Sandbox(_) => Ok(Restored {
                detail: format!("loaded into a private redis-server: {summary}"),
                differences,
                kept: None,
            }),
            To::Live => {
                if !differences.is_empty() {
                    bail!(
                        "the RDB does not match the backup ({}); the live server was not touched",
                        differences.join("; ")
                    );
                }
                live(spec, &rdb, &record.facts)
            }
        }
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn live(spec: &Redis, rdb: &Path, recorded: &Facts) -> Result<Restored> {
    let (Some(target), Some(stop), Some(start)) = (&spec.rdb_path, &spec.stop, &spec.start) else {
        bail!("a live Redis restore needs `rdb_path`, `stop` and `start` in the source's configuration (the server would overwrite a replaced RDB on shutdown); the RDB loaded and checked fine in a sandbox");
    };
    let dir = target
        .parent()
        .ok_or_else(|| anyhow!("rdb_path {} has no directory", target.display()))?;
    let staged = beside(target, &format!("new-{}", super::stamp()));
    std::fs::copy(rdb, &staged)
        .with_context(|| format!("copying the RDB next to {}", target.display()))?;
    if let Ok(m) = std::fs::metadata(target) {
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::chown(&staged, Some(m.uid()), Some(m.gid()));
    }
    process::run_shell("stop command", stop).map_err(|e| {
        let _ = std::fs::remove_file(&staged);
        e.context("stopping Redis failed; nothing was replaced")
    })?;
    let old = beside(target, &format!("old-{}", super::stamp()));
    let kept = if target.exists() {
        std::fs::rename(target, &old)
            .with_context(|| format!("moving {} aside", target.display()))?;
        Some(format!("the previous RDB is kept as {}", old.display()))
    } else {
        None
    };
    std::fs::rename(&staged, target)?;
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    process::run_shell("start command", start)
        .context("Redis did not start with the restored RDB; the previous RDB is kept beside it")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let found = loop {
        match facts(&spec.host, spec.port, spec.password_file.as_deref()) {
            Ok(f) => break f,
            Err(e) if Instant::now() > deadline => return Err(e.context("Redis did not come back")),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let (differences, summary) = compare(recorded, &found);
    Ok(Restored {
        detail: format!("Redis restarted with the restored RDB: {summary}"),
        differences,
        kept,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn info_keyspace_is_parsed() {
        let f = super::parse_info("# Server\r\nredis_version:7.0.15\r\n# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=0\r\ndb3:keys=2,expires=0,avg_ttl=0\r\n").unwrap();
        assert_eq!(f.server.as_deref(), Some("Redis 7.0.15"));
        assert_eq!(f.counts.get("db0"), Some(&12));
        assert_eq!(f.counts.get("db3"), Some(&2));
    }
}
