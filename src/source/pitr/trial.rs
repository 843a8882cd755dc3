//! A private server on a restored data directory: started on a free
//! loopback port with its socket in a private temporary directory and
//! archiving off, waited for until recovery has finished and the server
//! promoted, checked (every database's catalog and tables, `pg_amcheck`
//! when installed), and stopped cleanly. A live restore runs this on the
//! new data directory before swapping it in; a drill runs it on its
//! sandbox.

use crate::progress::Reporter;
use crate::source::process;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to start and check.
#[derive(Debug, Clone)]
pub struct TrialOptions {
    /// The restored data directory (recovery.signal and the recovery
    /// settings written by `recovery::write`).
    pub data_dir: PathBuf,
    /// A login that exists in the cluster: the postgres-cluster source's
    /// `user`, which took the base backup. The checks themselves run as
    /// the cluster's bootstrap superuser, found through it.
    pub user: String,
    /// How long recovery may take before the trial gives up.
    pub timeout: Duration,
}

impl TrialOptions {
    pub fn new(data_dir: &Path, user: &str) -> Self {
        TrialOptions {
            data_dir: data_dir.to_path_buf(),
            user: user.to_string(),
            timeout: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    /// The major version in PG_VERSION.
    pub version: String,
    pub port: u16,
    /// From start until recovery had finished and the server promoted.
    pub recovery_ms: u64,
    pub databases: usize,
    /// User tables across all databases, and the rows they hold (counted,
    /// which reads every table).
    pub tables: u64,
    pub rows: u64,
    /// Rows of pg_class across all databases: the catalog is readable.
    pub catalog: u64,
    /// What pg_amcheck found, or why it did not run.
    pub amcheck: String,
}

impl TrialReport {
    pub fn line(&self) -> String {
        format!(
            "PostgreSQL {} recovered and promoted in {:.1} s on a private port; {}, {}, {} ({} catalog rows); {}",
            self.version,
            self.recovery_ms as f64 / 1000.0,
            crate::util::plural(self.databases as u64, "database"),
            crate::util::plural(self.tables, "table"),
            crate::util::plural(self.rows, "row"),
            self.catalog,
            self.amcheck
        )
    }
}

/// A PostgreSQL server program for a data directory of major version
/// `major`: the server must match the directory's version, so Debian's
/// /usr/lib/postgresql/MAJOR/bin comes first (it keeps them out of PATH),
/// then PATH, as `find_tool` looks.
pub fn server_tool(name: &str, major: &str) -> Result<PathBuf> {
    let debian = Path::new("/usr/lib/postgresql")
        .join(major)
        .join("bin")
        .join(name);
    if debian.is_file() {
        return Ok(debian);
    }
    process::find_tool(&[name]).map(PathBuf::from).map_err(|e| {
        e.context(format!(
            "PostgreSQL {major}'s `{name}` is needed to start the restored data directory (looked in PATH and {})",
            debian.display()
        ))
    })
}

/// The major version of the data directory at `dir`.
pub fn version_of(dir: &Path) -> Result<String> {
    let p = dir.join("PG_VERSION");
    let v = std::fs::read_to_string(&p)
        .with_context(|| format!("reading {}: not a PostgreSQL data directory", p.display()))?;
    let v = v.trim().to_string();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        bail!("{} holds {v:?}, not a PostgreSQL version", p.display());
    }
    Ok(v)
}

/// The pid of the server running on `data_dir`, if one is: its
/// postmaster.pid names a process that exists.
pub fn running_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    if pid <= 0 {
        return None;
    }
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    alive.then_some(pid)
}

/// The server process; stopped (immediately) if dropped while running,
/// so a failing check never leaves a server on the restored copy.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child, which has not been reaped.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// The end of the server's log: why it stopped.
    fn said(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n  ")
    }

    /// Fast shutdown (SIGINT): sessions end, a shutdown checkpoint is
    /// written, and the directory is left clean for the next start.
    fn stop(mut self) -> Result<()> {
        self.signal(libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(st) = self.child.try_wait().context("waiting for PostgreSQL")? {
                if !st.success() {
                    bail!(
                        "PostgreSQL did not shut down cleanly ({st}):\n  {}",
                        self.said()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "PostgreSQL did not shut down within 120 s; it was stopped at once:\n  {}",
                    self.said()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGQUIT);
            let _ = self.child.wait();
        }
    }
}

/// For the failure test: `LIFEBOAT_TEST_TRIAL_DAMAGE=1` empties the
/// restored directory's pg_control before the server starts, as a
/// damaged copy would be.
fn damage_hook(dir: &Path) -> Result<()> {
    if std::env::var_os("LIFEBOAT_TEST_TRIAL_DAMAGE").is_some_and(|v| v == "1") {
        std::fs::write(dir.join("global/pg_control"), b"").context("damaging pg_control")?;
    }
    Ok(())
}

/// Starts a private server on `opts.data_dir`, waits until recovery has
/// finished and it promoted, checks it and stops it. Any failure stops
/// the server before returning.
pub fn trial(opts: &TrialOptions, reporter: &Reporter) -> Result<TrialReport> {
    let dir = std::path::absolute(&opts.data_dir)
        .with_context(|| format!("data directory {}", opts.data_dir.display()))?;
    let version = version_of(&dir)?;
    let major = version.split('.').next().unwrap_or(&version).to_string();
    let postgres = server_tool("postgres", &major)?;
    let owner = std::fs::metadata(dir.join("PG_VERSION"))
        .with_context(|| format!("looking at {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && owner.uid() == 0 {
        bail!(
            "{} belongs to root, and PostgreSQL refuses to run as root: the base backup was unpacked without its owners; `chown -R postgres: {}` and try again",
            dir.display(),
            dir.display()
        );
    }
    if root {
        reachable(&dir, owner.uid(), owner.gid())?;
    }
    let private = tempfile::Builder::new()
        .prefix("lifeboat-pg-")
        .tempdir()
        .context("creating a private directory for the server's socket")?;
    let sock = private.path().to_path_buf();
    let hba = sock.join("pg_hba.conf");
    let ident = sock.join("pg_ident.conf");
    // Only the socket, in a directory only the server's owner can enter,
    // lets anyone in: no password is needed and none is exposed.
    std::fs::write(&hba, "local all all trust\n")
        .and_then(|_| std::fs::write(&ident, ""))
        .with_context(|| format!("writing into {}", sock.display()))?;
    let log = sock.join("server.log");
    // A Debian-style cluster keeps postgresql.conf outside the data
    // directory, so the base backup has none: an empty one will do.
    let config_file = match dir.join("postgresql.conf").is_file() {
        true => None,
        false => {
            let c = sock.join("postgresql.conf");
            std::fs::write(&c, "").with_context(|| format!("writing {}", c.display()))?;
            Some(c)
        }
    };
    if root {
        for p in std::iter::once(sock.clone()).chain(
            [&hba, &ident]
                .into_iter()
                .cloned()
                .chain(config_file.clone()),
        ) {
            std::os::unix::fs::chown(&p, Some(owner.uid()), Some(owner.gid())).with_context(
                || format!("handing {} to the data directory's owner", p.display()),
            )?;
        }
    }
    damage_hook(&dir)?;
    let port = free_port()?;
    let mut cmd = Command::new(&postgres);
    cmd.arg("-D").arg(&dir);
    let mut set = |k: &str, v: &str| {
        cmd.arg("-c").arg(format!("{k}={v}"));
    };
    set("port", &port.to_string());
    set("listen_addresses", "127.0.0.1");
    set("unix_socket_directories", &sock.display().to_string());
    set("hba_file", &hba.display().to_string());
    set("ident_file", &ident.display().to_string());
    // No WAL of this copy reaches the live cluster's archive.
    set("archive_mode", "off");
    set("logging_collector", "off");
    set("log_destination", "stderr");
    set("ssl", "off");
    // A promoted copy must not wait for standbys that are not there.
    set("synchronous_standby_names", "");
    set("primary_conninfo", "");
    set("hot_standby", "on");
    if let Some(c) = &config_file {
        set("config_file", &c.display().to_string());
    }
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("opening the server log")?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C is ours to handle, so the server
        // is stopped in order rather than by the terminal.
        .process_group(0);
    if root {
        cmd.uid(owner.uid()).gid(owner.gid());
    }
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", postgres.display()))?;
    let mut server = Server { child, log };
    let result = (|| -> Result<TrialReport> {
        let mut login = wait_promoted(&mut server, &sock, port, opts, reporter)?;
        let recovery_ms = started.elapsed().as_millis() as u64;
        let superuser: String = login
            .query_one("SELECT rolname::text FROM pg_roles WHERE oid = 10", &[])
            .map_err(|e| anyhow!("asking for the bootstrap superuser: {e}"))?
            .get(0);
        let dbs: Vec<String> = login
            .query(
                "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY datname",
                &[],
            )
            .map_err(|e| anyhow!("listing the databases: {e}"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(login);
        let mut report = TrialReport {
            version: version.clone(),
            port,
            recovery_ms,
            databases: dbs.iter().filter(|d| *d != "template1").count(),
            tables: 0,
            rows: 0,
            catalog: 0,
            amcheck: String::new(),
        };
        let mut without_amcheck = Vec::new();
        let mut can_amcheck = true;
        for db in &dbs {
            reporter.check_cancelled()?;
            let mut c = connect(&sock, port, &superuser, db)
                .with_context(|| format!("connecting to database `{db}`"))?;
            let (tables, rows, catalog, had, available) = check_db(&mut c)
                .with_context(|| format!("checking database `{db}` of the restored cluster"))?;
            report.tables += tables;
            report.rows += rows;
            report.catalog += catalog;
            can_amcheck &= available;
            if !had {
                without_amcheck.push(db.clone());
            }
        }
        report.amcheck = amcheck(&major, &sock, port, &superuser, can_amcheck)?;
        // What --install-missing added goes again: a live restore must
        // swap in the cluster as it was, not with a checker installed.
        for db in &without_amcheck {
            if let Ok(mut c) = connect(&sock, port, &superuser, db) {
                c.batch_execute("DROP EXTENSION IF EXISTS amcheck")
                    .map_err(|e| anyhow!("removing the amcheck extension from `{db}`: {e}"))?;
            }
        }
        Ok(report)
    })();
    match result {
        Ok(r) => {
            server.stop().context("stopping the private server")?;
            Ok(r)
        }
        Err(e) => {
            let said = server.said();
            drop(server);
            Err(e.context(format!(
                "the restored data directory {} did not pass its check; the server's log ends:\n  {said}",
                dir.display()
            )))
        }
    }
}

/// Run as root, the server runs as the directory's owner: every
/// directory above the data directory must let that user through, or
/// PostgreSQL fails with a bare "permission denied".
fn reachable(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    for a in dir.ancestors().skip(1) {
        let m = std::fs::metadata(a).with_context(|| format!("looking at {}", a.display()))?;
        let mode = m.mode();
        let ok = (m.uid() == uid && mode & 0o100 != 0)
            || (m.gid() == gid && mode & 0o010 != 0)
            || mode & 0o001 != 0;
        if !ok {
            bail!(
                "PostgreSQL runs as the data directory's owner (uid {uid}), who cannot get through {} to reach {}; restore (or drill with --sandbox DIR) somewhere that user can reach",
                a.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// A free port on loopback.
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("finding a free port on 127.0.0.1")
}

fn connect(sock: &Path, port: u16, user: &str, db: &str) -> Result<postgres::Client> {
    postgres::Config::new()
        .host_path(sock)
        .port(port)
        .user(user)
        .dbname(db)
        .connect_timeout(Duration::from_secs(10))
        .connect(postgres::NoTls)
        .map_err(|e| anyhow!("PostgreSQL on the private socket: {e}"))
}

/// Polls until the server accepts `opts.user` and is out of recovery;
/// fails when the server exits (recovery failed), on cancel, or after
/// `opts.timeout`.
fn wait_promoted(
    server: &mut Server,
    sock: &Path,
    port: u16,
    opts: &TrialOptions,
    reporter: &Reporter,
) -> Result<postgres::Client> {
    let deadline = Instant::now() + opts.timeout;
    let mut last = String::from("no answer yet");
    loop {
        reporter.check_cancelled()?;
        if let Some(st) = server.child.try_wait().context("waiting for PostgreSQL")? {
            bail!("PostgreSQL stopped during recovery ({st})");
        }
        for db in ["postgres", "template1"] {
            match connect(sock, port, &opts.user, db) {
                Ok(mut c) => match c.query_one("SELECT pg_is_in_recovery()", &[]) {
                    Ok(r) if !r.get::<_, bool>(0) => return Ok(c),
                    Ok(_) => last = "still recovering".into(),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = format!("{e:#}"),
            }
            if !last.contains("does not exist") {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!(
                "recovery did not finish within {} s ({last})",
                opts.timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (user tables, their rows, catalog rows, amcheck installed already,
/// amcheck available) of one database.
fn check_db(c: &mut postgres::Client) -> Result<(u64, u64, u64, bool, bool)> {
    let catalog: i64 = c
        .query_one("SELECT count(*) FROM pg_class", &[])
        .map_err(|e| anyhow!("reading pg_class: {e}"))?
        .get(0);
    let tables: Vec<String> = c
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname !~ '^pg_toast' ORDER BY 1",
            &[],
        )
        .map_err(|e| anyhow!("listing tables: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut rows = 0u64;
    for t in &tables {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .map_err(|e| anyhow!("reading table {t}: {e}"))?
            .get(0);
        rows += n as u64;
    }
    let had = c
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[])
        .map_err(|e| anyhow!("{e}"))?
        .is_some();
    let available = c
        .query_opt(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'",
            &[],
        )
        .map_err(|e| anyhow!("{e}"))?
        .is_some();
    Ok((tables.len() as u64, rows, catalog as u64, had, available))
}

/// `pg_amcheck --all` (tables and B-tree indexes of every database), when
/// the tool and the extension are installed; what it found in words.
fn amcheck(major: &str, sock: &Path, port: u16, user: &str, available: bool) -> Result<String> {
    let Ok(tool) = server_tool("pg_amcheck", major) else {
        return Ok("pg_amcheck not run: not installed".into());
    };
    if !available {
        return Ok(
            "pg_amcheck not run: the amcheck extension is not installed (PostgreSQL's contrib)"
                .into(),
        );
    }
    let mut cmd = Command::new(&tool);
    cmd.arg("--host")
        .arg(sock)
        .arg("--port")
        .arg(port.to_string())
        .arg("--username")
        .arg(user)
        .args(["--no-password", "--all", "--install-missing"])
        .env_remove("PGPASSFILE")
        .env_remove("PGSERVICE");
    process::output("pg_amcheck", cmd).map_err(|e| {
        e.context("pg_amcheck found corruption in the restored data directory (or could not run)")
    })?;
    Ok("pg_amcheck found no corruption".into())
}
