//! What the fidelity tests share: a config around one local repository,
//! the binary run against it, fake tools on PATH, a private redis-server,
//! and the leftovers they look for.

use super::common::db::{mariadb, password, pg, PASSWORD_FILE, START};
use super::common::{self, Env};
use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::time::{Duration, Instant};

/// A config with one local repository and the given services.
pub fn config(env: &Env, services: &str) -> PathBuf {
    let path = env.path("lifeboat.toml");
    let text = format!(
        "state_dir = \"{state}\"\ncache_dir = \"{cache}\"\n[repositories.local]\npath = \"{repo}\"\nkey_file = \"{key}\"\n{services}",
        state = env.path("state").display(),
        cache = env.path("cache").display(),
        repo = env.path("repo").display(),
        key = env.path("admin.key").display(),
    );
    std::fs::write(&path, text).unwrap();
    env.init(&env.path("repo"));
    path
}

pub fn lb(env: &Env, cfg: &Path) -> assert_cmd::Command {
    let mut c = env.lb();
    c.arg("--config").arg(cfg);
    c
}

pub fn snapshots(env: &Env, cfg: &Path, service: &str) -> Vec<serde_json::Value> {
    let out = lb(env, cfg)
        .args(["--json", "snapshots", service])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| match v {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        })
        .collect()
}

/// Runs a command that must fail, returning what it printed (stdout,
/// then stderr).
pub fn fails(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "expected a failure: {said}");
    said
}

pub fn mysql_service(service: &str, db: &str) -> String {
    format!("[services.{service}]\ntier = \"important\"\n[[services.{service}.sources]]\nkind = \"mysql\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"lifeboat_test\"\npassword_file = \"{PASSWORD_FILE}\"\n")
}

pub fn collation_of(db: &str) -> String {
    mariadb(&format!(
        "SELECT CONCAT(default_character_set_name, ' ', default_collation_name) FROM information_schema.schemata WHERE schema_name = '{db}'"
    ))
}

pub fn pg_service(
    service: &str,
    db: &str,
    user: &str,
    password_file: &Path,
    extra: &str,
) -> String {
    format!(
        "[services.{service}]\ntier = \"critical\"\n[[services.{service}.sources]]\nkind = \"postgres\"\nname = \"main\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"{user}\"\npassword_file = \"{}\"\n{extra}",
        password_file.display()
    )
}

/// Drops `db` and every copy a restore made of it.
pub fn drop_pg_databases(db: &str) {
    let mut admin = pg("postgres");
    for r in admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname = $1 OR datname LIKE $2",
            &[&db, &format!("{db}_lifeboat%")],
        )
        .unwrap()
    {
        let d: String = r.get(0);
        admin
            .batch_execute(&format!("DROP DATABASE \"{d}\" WITH (FORCE)"))
            .unwrap();
    }
}

/// Where a tool really is, so a fake one can call it.
pub fn real_tool(name: &str) -> String {
    let out = Std::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!path.is_empty(), "`{name}` is not installed; {START}");
    path
}

/// A private redis-server (the real binary) on a free port, with its data
/// in this test's directory; the shared server on 6379 is never touched.
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
}

impl RedisServer {
    pub fn start(dir: PathBuf) -> RedisServer {
        std::fs::create_dir_all(&dir).unwrap();
        let s = RedisServer {
            port: common::free_port(),
            dir,
        };
        let ok = Std::new("sh")
            .arg("-c")
            .arg(s.launch_command())
            .status()
            .unwrap_or_else(|e| panic!("redis-server: {e}; {START}"));
        assert!(ok.success(), "redis-server did not start; {START}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.cli(&["PING"]) != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer; {START}",
                s.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn launch_command(&self) -> String {
        format!(
            "redis-server --port {} --bind 127.0.0.1 --requirepass {} --dir {} --dbfilename dump.rdb --daemonize yes --pidfile {}/redis.pid --save '' --appendonly no",
            self.port,
            password(),
            self.dir.display(),
            self.dir.display()
        )
    }

    /// Stops the server and returns once its process is gone, so the next
    /// start can take the port.
    pub fn stop_command(&self) -> String {
        format!(
            "pid=$(cat {dir}/redis.pid); REDISCLI_AUTH=$(cat {PASSWORD_FILE}) redis-cli --no-auth-warning -p {port} SHUTDOWN NOSAVE; while kill -0 $pid 2>/dev/null; do sleep 0.05; done",
            dir = self.dir.display(),
            port = self.port
        )
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Std::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning"])
            .env("REDISCLI_AUTH", password())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("redis-cli: {e}; {START}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Sends SETs in bulk (`redis-cli --pipe`).
    pub fn set_all(&self, pairs: impl Iterator<Item = (String, Vec<u8>)>) {
        let mut resp = Vec::new();
        for (k, v) in pairs {
            resp.extend_from_slice(
                format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n", k.len(), v.len()).as_bytes(),
            );
            resp.extend_from_slice(&v);
            resp.extend_from_slice(b"\r\n");
        }
        let mut child = Std::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning", "--pipe"])
            .env("REDISCLI_AUTH", password())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-cli: {e}; {START}"));
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&resp).unwrap();
        assert!(child.wait().unwrap().success(), "redis-cli --pipe failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]);
    }
}

/// Drops a role (and what it owns) when the test ends, pass or fail:
/// roles outlive the test's databases.
pub struct DropRole(pub String);

impl Drop for DropRole {
    fn drop(&mut self) {
        let mut admin = pg("postgres");
        for r in admin
            .query(
                "SELECT datname::text FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = $1)",
                &[&self.0],
            )
            .unwrap_or_default()
        {
            let d: String = r.get(0);
            let _ = admin.batch_execute(&format!("DROP DATABASE \"{d}\" WITH (FORCE)"));
        }
        let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", self.0));
    }
}

/// Every `.lifeboat-cred-*` file under `dir`, at any depth.
pub fn credential_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name()
            .to_string_lossy()
            .starts_with(".lifeboat-cred-")
        {
            out.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(credential_files(&p));
        }
    }
    out
}

/// Files named like Lifeboat's own scratch copies, at any depth.
pub fn scratch_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ["lifeboat-new", "lifeboat-staging", "lifeboat-sqlite"]
            .iter()
            .any(|s| name.contains(s))
        {
            out.push(e.path());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(scratch_files(&e.path()));
        }
    }
    out
}
