//! A private PostgreSQL cluster for the point-in-time tests, run the way
//! users run one: initdb into the test's directory, a free port,
//! `archive_command` calling the installed binary, and the config's
//! service `db` with a postgres-cluster source named `cluster`.
//! PostgreSQL refuses to run as root, so a root test runs the cluster and
//! every lifeboat command as `postgres`.

use super::{free_port, install_executable, Env};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const NEEDS_PG: &str = "the point-in-time tests need the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup): run scripts/test-deps.sh";

/// Where initdb and friends live: the newest /usr/lib/postgresql/N/bin.
pub fn pg_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap_or_else(|e| panic!("/usr/lib/postgresql: {e}; {NEEDS_PG}"))
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no initdb found; {NEEDS_PG}"))
        .1
}

/// The `postgres` user's uid and gid when the test runs as root.
pub fn run_as() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        assert!(out.status.success(), "no `postgres` user; {NEEDS_PG}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    Some((id("-u"), id("-g")))
}

pub fn append(p: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub struct PgCluster {
    pub env: Env,
    pub bin: PathBuf,
    /// The built binary, installed into the test's directory.
    pub lifeboat: PathBuf,
    /// The live data directory.
    pub data: PathBuf,
    pub port: u16,
    pub as_user: Option<(u32, u32)>,
    /// Data directories with a server running, stopped on drop.
    servers: Vec<PathBuf>,
}

impl PgCluster {
    /// A cluster archiving into a fresh repository through `wal-push`.
    pub fn start() -> PgCluster {
        PgCluster::start_with(|_| String::new())
    }

    /// The same, with lines for `[services.db]` (stop and start
    /// commands, an RTO) made from the live data directory's path.
    pub fn start_with(service_lines: impl FnOnce(&Path) -> String) -> PgCluster {
        let mut c = PgCluster::prepare(service_lines);
        let push = c.push_command();
        c.initdb_and_start(&push);
        c
    }

    /// The config and the repository, before the cluster exists.
    pub fn prepare(service_lines: impl FnOnce(&Path) -> String) -> PgCluster {
        let env = Env::new();
        let lifeboat = env.path("lifeboat");
        install_executable(&assert_cmd::cargo::cargo_bin("lifeboat"), &lifeboat);
        let c = PgCluster {
            bin: pg_bin(),
            lifeboat,
            data: env.path("data"),
            port: free_port(),
            as_user: run_as(),
            servers: Vec::new(),
            env,
        };
        for d in ["home", "keys", "cache", "state", "sock"] {
            std::fs::create_dir_all(c.env.path(d)).unwrap();
        }
        let service_lines = service_lines(&c.data);
        let cfg = format!(
            "state_dir = \"{state}\"\ncache_dir = \"{cache}\"\n[repositories.local]\npath = \"{repo}\"\nkey_file = \"{key}\"\n\
             [services.db]\ntier = \"critical\"\nrpo = \"5m\"\n{service_lines}\n[[services.db.sources]]\nkind = \"postgres-cluster\"\nname = \"cluster\"\n\
             host = \"127.0.0.1\"\nport = {port}\nuser = \"postgres\"\npath = \"{data}\"\nspool = \"{spool}\"\n",
            state = c.env.path("state").display(),
            cache = c.env.path("cache").display(),
            repo = c.env.path("repo").display(),
            key = c.env.path("admin.key").display(),
            port = c.port,
            data = c.data.display(),
            spool = c.env.path("spool").display(),
        );
        std::fs::write(c.config(), cfg).unwrap();
        c.own(c.env.dir.path());
        c.ok(c
            .lb()
            .args(["init", "--repo"])
            .arg(c.env.path("repo"))
            .arg("--key-file")
            .arg(c.env.path("admin.key")));
        c
    }

    /// initdb (1 MiB segments, so tests fill them quickly), archiving
    /// through `archive` (a command line without the `%p`), and start.
    pub fn initdb_and_start(&mut self, archive: &str) {
        self.ok(self.tool("initdb").arg("-D").arg(&self.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--wal-segsize=1",
            "-N",
        ]));
        append(
            &self.data.join("postgresql.conf"),
            &format!(
                "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\n\
                 archive_mode = on\narchive_command = '{} %p'\narchive_timeout = 30s\nfsync = off\nmax_wal_senders = 4\n",
                self.port,
                self.env.path("sock").display(),
                archive.replace('\'', "''"),
            ),
        );
        let data = self.data.clone();
        self.pg_start(&data);
    }

    pub fn config(&self) -> PathBuf {
        self.env.path("lifeboat.toml")
    }

    /// `wal-push` with this test's config, as archive_command runs it.
    pub fn push_command(&self) -> String {
        format!(
            "{} --config {} wal-push",
            self.lifeboat.display(),
            self.config().display()
        )
    }

    /// Files made as root become the cluster user's.
    pub fn own(&self, p: &Path) {
        if let Some((u, g)) = self.as_user {
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{u}:{g}"))
                .arg(p)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    /// Runs `cmd` as the cluster's user, in the test's directory, with
    /// its own HOME, keys and caches and nothing of the caller's
    /// lifeboat settings.
    pub fn user(&self, cmd: &mut Command) {
        if let Some((u, g)) = self.as_user {
            cmd.uid(u).gid(g);
        }
        cmd.current_dir(self.env.dir.path())
            .env("HOME", self.env.path("home"))
            .env("LIFEBOAT_KEY_DIR", self.env.path("keys"))
            .env("LIFEBOAT_CACHE_DIR", self.env.path("cache"))
            .env(
                "PATH",
                format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap()),
            )
            .env_remove("LIFEBOAT_REPO")
            .env_remove("LIFEBOAT_KEY")
            .env_remove("LIFEBOAT_CONFIG")
            .env_remove("LIFEBOAT_TEST_TRIAL_DAMAGE");
    }

    /// A PostgreSQL program.
    pub fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        self.user(&mut c);
        c
    }

    /// The installed binary with this test's config.
    pub fn lb(&self) -> Command {
        let mut c = Command::new(&self.lifeboat);
        self.user(&mut c);
        c.arg("--config").arg(self.config());
        c
    }

    /// Runs `cmd`, which must succeed; its stdout.
    pub fn ok(&self, cmd: &mut Command) -> String {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a server on `data` (its log beside it, `DATA.log`).
    pub fn pg_start(&mut self, data: &Path) {
        let log = data.with_extension("log");
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "30", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start {}: {}\n{}",
            data.display(),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.servers.push(data.to_path_buf());
    }

    /// A server another program started on `data` (a service's start
    /// command): stopped on drop too.
    pub fn running(&mut self, data: &Path) {
        self.servers.push(data.to_path_buf());
    }

    /// Stops the server on `data` cleanly.
    pub fn pg_stop(&mut self, data: &Path) {
        self.ok(self
            .tool("pg_ctl")
            .arg("-D")
            .arg(data)
            .args(["-m", "fast", "-w", "stop"]));
        self.servers.retain(|d| d != data);
    }

    pub fn sql(&self, port: u16) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("the private cluster on port {port}: {e}"))
    }

    /// Forces a segment switch and waits (pg_stat_archiver) until the
    /// archiver has pushed it: everything written so far is archived.
    pub fn archive_all(&self) {
        let mut db = self.sql(self.port);
        let seg: String = db
            .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
            .unwrap()
            .get(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let last: String = db
                .query_one(
                    "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
                    &[],
                )
                .unwrap()
                .get(0);
            if last.len() >= 24 && last[..24] >= *seg {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the archiver did not push {seg} within 30 s (last {last:?}); see {}",
                self.data.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        for d in self.servers.iter().rev() {
            let _ = self
                .tool("pg_ctl")
                .arg("-D")
                .arg(d)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}
