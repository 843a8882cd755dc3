//! Redis: `redis-cli --rdb -` asks the server for a point-in-time RDB
//! snapshot (the replication path, so it works with persistence off).
//! Every restore first loads the RDB into a private `redis-server` on a
//! free loopback port and checks it; a live restore then stops the server
//! through the configured command, puts the RDB in place and starts it.

use super::capture::{Artifact, Capture};
use super::ledger::{Ledger, Made};
use super::process::{self, find_tool, produce};
use super::{Commit, Streams, To};
use crate::model::Redis;
use crate::repo::snapshot::{Facts, SourceRecord};
use crate::util::SecretRef;
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

/// Where a server listens: the configured one on TCP, a sandbox on a unix
/// socket in a private directory (nobody else can read the restored data).
#[derive(Clone, Copy)]
enum At<'a> {
    Tcp(&'a str, u16),
    Socket(&'a Path),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Tcp(h, p) => write!(f, "{h}:{p}"),
            At::Socket(s) => write!(f, "{}", s.display()),
        }
    }
}

/// redis-cli for a server; the password travels in REDISCLI_AUTH.
fn cli(at: At<'_>, password_file: Option<&SecretRef>) -> Result<Command> {
    let mut c = Command::new(find_tool(&["redis-cli"])?);
    match at {
        At::Tcp(host, port) => c.args(["-h", host, "-p", &port.to_string()]),
        At::Socket(s) => c.arg("-s").arg(s),
    };
    c.arg("--no-auth-warning");
    if let Some(p) = password_file {
        c.env("REDISCLI_AUTH", process::read_password(p)?);
    }
    Ok(c)
}

/// Server version and keys per database.
fn facts(at: At<'_>, password_file: Option<&SecretRef>) -> Result<Facts> {
    info(at, password_file).map(|(f, _)| f)
}

/// Server version and keys per database, and whether the server is still
/// loading its dataset (then the counts are partial), from one INFO reply.
fn info(at: At<'_>, password_file: Option<&SecretRef>) -> Result<(Facts, bool)> {
    let mut c = cli(at, password_file)?;
    c.arg("INFO");
    let out = process::output("redis-cli", c)
        .with_context(|| format!("asking Redis at {at} for INFO"))?;
    parse_info(&out).ok_or_else(|| {
        anyhow!(
            "Redis at {at} did not answer INFO: {}",
            out.lines().next().unwrap_or("no reply")
        )
    })
}

/// The facts once an INFO reply says `loading:0`: keys counted while
/// Redis is still loading an RDB are a fraction of what it holds. Gives
/// up after `limit`, with what it last saw.
fn wait_until_loaded(
    at: At<'_>,
    password_file: Option<&SecretRef>,
    limit: Duration,
    mut gone: impl FnMut() -> Result<()>,
) -> Result<Facts> {
    let deadline = Instant::now() + limit;
    loop {
        gone()?;
        let last = info(at, password_file);
        if let Ok((f, false)) = &last {
            return Ok(f.clone());
        }
        if Instant::now() > deadline {
            let mins = limit.as_secs() / 60;
            return Err(match last {
                Err(e) => e.context(format!(
                    "Redis at {at} did not come back within {mins} minutes"
                )),
                Ok(_) => anyhow!("Redis at {at} was still loading its RDB after {mins} minutes"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The facts of an INFO reply and whether it says the server is loading
/// (a reply without a `loading:` line counts as loading: no answer yet).
fn parse_info(out: &str) -> Option<(Facts, bool)> {
    let mut f = Facts::default();
    let mut seen = false;
    let mut loading = true;
    for line in out.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("redis_version:") {
            f.server = Some(format!("Redis {v}"));
            seen = true;
        }
        if let Some(v) = line.strip_prefix("loading:") {
            loading = v != "0";
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
    seen.then_some((f, loading))
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
        self.before = facts(At::Tcp(&s.host, s.port), s.password_file.as_ref())?;
        let mut c = cli(At::Tcp(&s.host, s.port), s.password_file.as_ref())?;
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
        let after = facts(At::Tcp(&s.host, s.port), s.password_file.as_ref())?;
        let mut f = self.before;
        // Key counts bracket the snapshot; if they moved, it was being
        // written, and a check accepts any count between the two.
        if after.counts != f.counts {
            f.approximate = true;
            for (db, n) in std::mem::replace(&mut f.counts, after.counts) {
                f.notes.insert(format!("before:{db}"), n.to_string());
            }
        }
        Ok(f)
    }
}

/// A private redis-server on a free loopback port, killed when dropped.
struct Sandbox {
    child: Child,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Loads `dir/dump.rdb` into a private server (no TCP port, a unix socket
/// in `dir`, which must be private) and returns what it holds.
fn load_in_sandbox(dir: &Path) -> Result<Facts> {
    // A unix socket path must fit in 108 bytes: it lives in a short
    // private directory of its own, not beside the data.
    let socket_dir = tempfile::Builder::new()
        .prefix("lb-redis-")
        .tempdir()
        .context("creating a private directory for the sandbox's socket")?;
    let socket = socket_dir.path().join("redis.sock");
    let mut cmd = Command::new(find_tool(&["redis-server"])?);
    cmd.args(["--port", "0", "--unixsocketperm", "700", "--unixsocket"])
        .arg(&socket)
        .arg("--dir")
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
    let mut sb = Sandbox { child };
    wait_until_loaded(At::Socket(&socket), None, Duration::from_secs(300), || {
        match sb.child.try_wait()? {
            Some(status) => bail!("the sandbox redis-server refused the RDB file and exited ({status}); the backup may be damaged or from a newer Redis"),
            None => Ok(()),
        }
    })
    .context("loading the RDB into a sandbox redis-server")
}

fn compare(record: &Facts, found: &Facts) -> (Vec<String>, String) {
    let keys: u64 = found.counts.values().sum();
    let mut summary = format!("{keys} keys in {} databases", found.counts.len());
    if !record.approximate {
        return (record.differences(found), summary);
    }
    // Written during the backup: any count between before and after is right.
    let mut differences = Vec::new();
    let mut dbs: Vec<&String> = record.counts.keys().chain(found.counts.keys()).collect();
    dbs.sort();
    dbs.dedup();
    for db in dbs {
        let after = record.counts.get(db).copied().unwrap_or(0);
        let before = record
            .notes
            .get(&format!("before:{db}"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(after);
        let got = found.counts.get(db).copied().unwrap_or(0);
        if got < before.min(after) || got > before.max(after) {
            differences.push(format!(
                "{db}: {got} keys after restore, between {} and {} expected",
                before.min(after),
                before.max(after)
            ));
        }
    }
    summary.push_str(
        " (Redis was being written during the backup; counts checked against the range seen)",
    );
    (differences, summary)
}

/// The server answers INFO, with the configured password.
pub fn ping(spec: &Redis) -> Result<()> {
    facts(At::Tcp(&spec.host, spec.port), spec.password_file.as_ref()).map(|_| ())
}

/// The live server's keys against what a restore point recorded.
pub fn check_live(spec: &Redis, recorded: &Facts) -> Result<(String, Vec<String>)> {
    let found = wait_loaded(spec)?;
    let (differences, summary) = compare(recorded, &found);
    Ok((summary, differences))
}

/// Loads the RDB of `record` into a private server and checks its keys
/// against the backup's. For a live restore the checked RDB is then copied
/// beside the live one, ready to be put in place.
pub fn stage(
    spec: &Redis,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
    ledger: &Ledger,
) -> Result<(String, Vec<String>, Commit)> {
    let file = record.file("", "RDB file")?;
    let target = match to {
        To::Live { .. } => Some(live_target(spec)?),
        To::Sandbox(_) => None,
    };
    let parent = match to {
        To::Sandbox(dir) => dir.clone(),
        To::Live { .. } => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    // Private (0700) and unpredictable: nobody can swap the RDB after it
    // is checked.
    let scratch_dir = tempfile::Builder::new()
        .prefix("lifeboat-redis-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a private directory in {}", parent.display()))?;
    let scratch = Made::Path {
        path: scratch_dir.path().to_path_buf(),
    };
    ledger.made(scratch.clone())?;
    let result = (|| -> Result<(String, Vec<String>, Commit)> {
        let rdb = scratch_dir.path().join("dump.rdb");
        super::write_new_file(&rdb, &mut streams.open(file)?)?;
        let found = load_in_sandbox(scratch_dir.path())?;
        let (differences, summary) = compare(&record.facts, &found);
        let Some(target) = target else {
            return Ok((
                format!("loaded into a private redis-server: {summary}"),
                differences,
                Commit::None,
            ));
        };
        if !differences.is_empty() {
            bail!(
                "the RDB does not match the backup ({}); the live server was not touched",
                differences.join("; ")
            );
        }
        // Beside the live RDB, where the swap is a rename. When the RDB
        // lies inside a directory this restore swaps in too, the copy goes
        // into that directory's staging and arrives beside it with it.
        let staged = super::swap::staging_path(&target, &ledger.id());
        let written = match to {
            To::Live { file: Some(f) } => super::swap::staging_path(f, &ledger.id()),
            _ => staged.clone(),
        };
        for path in [&written, &staged] {
            ledger.made(Made::Path { path: path.clone() })?;
        }
        if let Some(dir) = written.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::copy(&rdb, &written)
            .with_context(|| format!("copying the RDB next to {}", target.display()))?;
        if let Ok(m) = std::fs::metadata(&target) {
            use std::os::unix::fs::MetadataExt;
            let _ = std::os::unix::fs::chown(&written, Some(m.uid()), Some(m.gid()));
        }
        if written != staged {
            ledger.unmade(&Made::Path { path: written });
        }
        Ok((
            summary,
            differences,
            Commit::Redis {
                spec: spec.clone(),
                new: staged,
                recorded: record.facts.clone(),
            },
        ))
    })();
    drop(scratch_dir);
    ledger.unmade(&scratch);
    result
}

fn live_target(spec: &Redis) -> Result<std::path::PathBuf> {
    match (&spec.rdb_path, &spec.stop, &spec.start) {
        (Some(t), Some(_), Some(_)) => Ok(t.clone()),
        _ => bail!("a live Redis restore needs `rdb_path`, `stop` and `start` in the source's configuration (the server would overwrite a replaced RDB on shutdown)"),
    }
}

/// Stops the server and puts `new` where it loads its RDB from, the
/// previous RDB kept as `kept`; returns whether there was one. A failure
/// before anything moved starts the server again on its old data.
pub fn stop_and_swap(spec: &Redis, new: &Path, kept: &Path) -> Result<bool> {
    let target = live_target(spec)?;
    let (Some(stop), Some(start)) = (&spec.stop, &spec.start) else {
        bail!("a live Redis restore needs `stop` and `start`");
    };
    process::run_shell("stop command", stop)
        .map_err(|e| e.context("stopping Redis failed; nothing was replaced"))?;
    let had = target.exists();
    if let Err(e) = super::swap::swap_file(new, &target, kept, &[]) {
        let restarted = process::run_shell("start command", start);
        return Err(e.context(match restarted {
            Ok(()) => "nothing was replaced; Redis was started again on its old data".to_string(),
            Err(s) => format!("nothing was replaced, but Redis did not start again: {s:#}"),
        }));
    }
    Ok(had)
}

/// Starts the server on the restored RDB, waits for it to load and checks
/// its keys against the backup's. Returns (detail, differences).
pub fn start_and_check(
    spec: &Redis,
    recorded: &Facts,
    kept: &Path,
) -> Result<(String, Vec<String>)> {
    let Some(start) = &spec.start else {
        bail!("a live Redis restore needs `start`");
    };
    let undo = format!(
        "the previous RDB is kept as {} (`lifeboat rollback` puts it back)",
        kept.display()
    );
    process::run_shell("start command", start)
        .with_context(|| format!("Redis did not start with the restored RDB; {undo}"))?;
    let found = wait_loaded(spec).with_context(|| undo.clone())?;
    let (differences, summary) = compare(recorded, &found);
    Ok((
        format!("Redis restarted with the restored RDB: {summary}"),
        differences,
    ))
}

/// Waits until the restarted server has loaded its RDB.
fn wait_loaded(spec: &Redis) -> Result<Facts> {
    wait_until_loaded(
        At::Tcp(&spec.host, spec.port),
        spec.password_file.as_ref(),
        Duration::from_secs(300),
        || Ok(()),
    )
}

/// Puts the kept RDB back: the restored one is kept as `undone`.
pub fn undo(
    spec: &Redis,
    rdb: &Path,
    kept: Option<&Path>,
    rollback_id: &str,
) -> Result<Option<std::path::PathBuf>> {
    let (Some(stop), Some(start)) = (&spec.stop, &spec.start) else {
        bail!("rolling Redis back needs `stop` and `start`");
    };
    let undone = super::swap::undone_path(rdb, rollback_id);
    process::run_shell("stop command", stop)
        .context("stopping Redis failed; nothing was changed")?;
    let moved = super::swap::swap_back(rdb, kept, &undone, &[], &[]);
    let started = process::run_shell("start command", start);
    let moved = moved?;
    started.context("Redis did not start again after the rollback")?;
    wait_loaded(spec)?;
    Ok(moved.then_some(undone))
}

#[cfg(test)]
mod tests {
    #[test]
    fn info_keyspace_is_parsed() {
        let (f, loading) = super::parse_info("# Server\r\nredis_version:7.0.15\r\n# Persistence\r\nloading:0\r\n# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=0\r\ndb3:keys=2,expires=0,avg_ttl=0\r\n").unwrap();
        assert!(!loading);
        let (_, loading) = super::parse_info("redis_version:7.0.15\r\nloading:1\r\n").unwrap();
        assert!(loading);
        assert_eq!(f.server.as_deref(), Some("Redis 7.0.15"));
        assert_eq!(f.counts.get("db0"), Some(&12));
        assert_eq!(f.counts.get("db3"), Some(&2));
    }
}
