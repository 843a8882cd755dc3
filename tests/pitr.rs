//! Point-in-time recovery against a private PostgreSQL cluster: initdb
//! into a temporary directory, a free port, `archive_command` calling the
//! built binary; base backup, pgbench, a moment T, destruction after it,
//! and a restore to T that holds exactly what was committed before T.

mod common;

use common::free_port;
use common::pg::{append, PgCluster};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A private cluster (tests/common/pg.rs) whose database host archives
/// with a write-only key.
struct Cluster(PgCluster);

impl std::ops::Deref for Cluster {
    type Target = PgCluster;
    fn deref(&self) -> &PgCluster {
        &self.0
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut PgCluster {
        &mut self.0
    }
}

impl Cluster {
    /// A repository, a config, and a running cluster archiving into it
    /// through `archive_command` (given the command line of `wal-push`
    /// without the `%p`).
    fn start(archive: impl Fn(&Cluster) -> String) -> Cluster {
        let mut c = Cluster(PgCluster::prepare(|_| String::new()));
        // The database host holds a write-only key: enough to archive.
        c.ok(c
            .lb()
            .args(["keys", "write-only", "--repo"])
            .arg(c.env.path("repo"))
            .arg("--key")
            .arg(c.env.path("admin.key"))
            .arg("--out")
            .arg(c.env.path("host.key")));
        let archive_command = archive(&c);
        c.initdb_and_start(&archive_command);
        c
    }

    /// `wal-push` as archive_command runs it: the write-only key.
    fn push_command(&self) -> String {
        format!(
            "{} --config {} --key {} wal-push",
            self.lifeboat.display(),
            self.config().display(),
            self.env.path("host.key").display()
        )
    }

    /// Restores `at` into a new directory and starts it on a free port;
    /// returns the port once recovery is over.
    fn restore_and_start(&mut self, at: &str) -> u16 {
        let target = (0..)
            .map(|i| self.env.path(&format!("restored-{i}")))
            .find(|p| !p.exists())
            .unwrap();
        self.ok(self
            .lb()
            .args(["restore", "db", "--at", at, "--target"])
            .arg(&target));
        assert!(target.join("recovery.signal").is_file());
        let port = free_port();
        append(
            &target.join("postgresql.auto.conf"),
            &format!("port = {port}\n"),
        );
        self.pg_start(&target);
        let mut db = self.sql(port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while db
            .query_one("SELECT pg_is_in_recovery()", &[])
            .unwrap()
            .get::<_, bool>(0)
        {
            assert!(
                Instant::now() < deadline,
                "recovery did not finish within 30 s; see {}",
                target.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        port
    }
}

const TABLES: [&str; 4] = [
    "pgbench_accounts",
    "pgbench_branches",
    "pgbench_tellers",
    "pgbench_history",
];

/// What every pgbench table holds: rows and a hash of all of them.
fn contents(db: &mut impl postgres::GenericClient) -> Vec<(String, i64, String)> {
    TABLES
        .iter()
        .map(|t| {
            let row = db
                .query_one(
                    &format!("SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {t} x"),
                    &[],
                )
                .unwrap();
            (t.to_string(), row.get(0), row.get(1))
        })
        .collect()
}

fn pgbench(c: &Cluster, args: &[&str]) -> Command {
    let mut p = c.tool("pgbench");
    p.args([
        "-h",
        "127.0.0.1",
        "-p",
        &c.port.to_string(),
        "-U",
        "postgres",
    ])
    .args(args)
    .arg("postgres")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    p
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn restore_to_a_moment_gives_exactly_what_was_committed_before_it() {
    let mut c = Cluster::start(|c| c.push_command());
    c.ok(&mut pgbench(&c, &["-i", "-s", "1", "-q"]));
    c.ok(c.lb().args(["backup", "db"]));
    let at_base: i64 = c
        .sql(c.port)
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .unwrap()
        .get(0);

    let bench = Killed(
        pgbench(&c, &["-n", "-c", "2", "-T", "60", "-R", "300"])
            .spawn()
            .unwrap(),
    );
    let mut db = c.sql(c.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while db
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .unwrap()
        .get::<_, i64>(0)
        < at_base + 50
    {
        assert!(Instant::now() < deadline, "pgbench wrote nothing in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // T: with writers held off by the lock, everything committed so far
    // has a commit time before T and everything after commits after it.
    let (t, at_t) = {
        let mut tx = db.transaction().unwrap();
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            TABLES.join(", ")
        ))
        .unwrap();
        let t: String = tx
            .query_one("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", &[])
            .unwrap()
            .get(0);
        let snap = contents(&mut tx);
        tx.commit().unwrap();
        (t, snap)
    };
    assert!(
        at_t[3].1 > at_base,
        "history grew after the base backup: WAL replay is needed to reach T"
    );
    // pgbench goes on after T, then the destruction.
    let more = at_t[3].1 + 100;
    let deadline = Instant::now() + Duration::from_secs(20);
    while db
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .unwrap()
        .get::<_, i64>(0)
        < more
    {
        assert!(Instant::now() < deadline, "pgbench stopped writing after T");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(bench);
    db.batch_execute("UPDATE pgbench_accounts SET abalance = -999999; DROP TABLE pgbench_history")
        .unwrap();
    c.archive_all();

    c.ok(c.lb().args(["wal-flush"]));
    assert!(
        std::fs::read_dir(c.env.path("spool/segments"))
            .unwrap()
            .next()
            .is_none(),
        "wal-flush leaves the spool empty, so the restore reads the repository"
    );
    let health: serde_json::Value = {
        let out = c.lb().args(["--json", "health"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "health --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    };
    let pitr = &health["services"][0]["pitr"];
    let lag = pitr["archive_lag_secs"]
        .as_u64()
        .unwrap_or_else(|| panic!("no archive lag in {health}"));
    assert!(
        lag < 60,
        "archive lag {lag} s with archive_timeout = 30s: {health}"
    );
    assert!(pitr["oldest_restorable"].is_string(), "{health}");
    assert!(pitr["base_backup_age_secs"].is_u64(), "{health}");

    // Outside the window: refused, and the window is named.
    let out = c
        .lb()
        .args(["restore", "db", "--at", "2001-01-01 00:00:00", "--target"])
        .arg(c.env.path("never"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("restorable window"),
        "{said}"
    );
    assert!(!c.env.path("never").exists());

    let port = c.restore_and_start(&t);
    let mut restored = c.sql(port);
    assert_eq!(
        contents(&mut restored),
        at_t,
        "the restore at {t} holds exactly what was committed before T"
    );
}

#[test]
fn a_push_killed_mid_write_is_retried_and_nothing_is_lost() {
    // The first push of every segment is SIGKILLed halfway through
    // writing it; PostgreSQL keeps the segment and tries again.
    let mut c = Cluster::start(|c| {
        let marks = c.env.path("marks");
        std::fs::create_dir_all(&marks).unwrap();
        c.own(&marks);
        let wrapper = c.env.path("push-wrapper.sh");
        common::write_executable(
            &wrapper,
            &format!(
                "#!/bin/sh\nm={marks}/$(basename \"$1\")\nif [ ! -e \"$m\" ]; then : > \"$m\"; LIFEBOAT_TEST_WAL_PUSH_CRASH=1 {push} \"$1\"; echo $? >> {marks}/kills; exit 1; fi\nexec {push} \"$1\"\n",
                marks = marks.display(),
                push = c.push_command()
            ),
        );
        c.own(&wrapper);
        wrapper.display().to_string()
    });
    c.ok(c.lb().args(["backup", "db"]));
    let mut db = c.sql(c.port);
    db.batch_execute("CREATE TABLE t (id int primary key, v text)")
        .unwrap();
    for round in 0..3 {
        db.batch_execute(&format!(
            "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series({}, {}) g; SELECT pg_switch_wal();",
            round * 2000 + 1,
            round * 2000 + 2000
        ))
        .unwrap();
    }
    c.archive_all();
    let failed: i64 = db
        .query_one("SELECT failed_count FROM pg_stat_archiver", &[])
        .unwrap()
        .get(0);
    assert!(
        failed >= 3,
        "the killed pushes failed ({failed} failures) and PostgreSQL retried them"
    );
    let parts: Vec<_> = std::fs::read_dir(c.env.path("spool/tmp"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(
        parts.is_empty(),
        "no half-written segment is left: {parts:?}"
    );
    // A shell reports a SIGKILLed child as 128 + 9.
    let kills = std::fs::read_to_string(c.env.path("marks/kills")).unwrap_or_default();
    assert!(
        kills.lines().filter(|l| *l == "137").count() >= 3,
        "pushes were really killed mid-write: {kills:?}"
    );
    c.ok(c.lb().args(["wal-flush"]));
    // The base backup passes pg_verifybackup (verify --read-data).
    c.ok(c.lb().args(["verify", "--read-data"]));
    let port = c.restore_and_start("latest");
    let n: i64 = c
        .sql(port)
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 6000);
}

/// A WAL group as `snapshots --json` shows it.
struct Group {
    id: String,
    segments: Vec<String>,
}

impl Cluster {
    /// `health` exits non-zero when anything is not ok: its JSON is the answer.
    fn health(&self) -> serde_json::Value {
        let out = self.lb().args(["--json", "health"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "health --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(self.lb().arg("--json").args(args));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} --json: {e}: {out}"))
    }

    /// The WAL groups in the repository, oldest segment first.
    fn groups(&self) -> Vec<Group> {
        let snaps = self.json(&["snapshots"]);
        let mut v: Vec<Group> = snaps
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["service"] == "db+wal")
            .map(|s| Group {
                id: s["id"].as_str().unwrap().to_string(),
                segments: s["sources"][0]["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| {
                        f.as_str()
                            .unwrap()
                            .trim_start_matches(".lifeboat/wal/")
                            .to_string()
                    })
                    .collect(),
            })
            .collect();
        v.sort_by(|a, b| a.segments.iter().min().cmp(&b.segments.iter().min()));
        v
    }

    /// Base backups: (id, the segment its WAL starts in), oldest first.
    fn bases(&self) -> Vec<(String, String)> {
        let snaps = self.json(&["snapshots"]);
        let mut v: Vec<(String, String)> = snaps
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["service"] == "db")
            .map(|s| {
                let seg = s["sources"][0]["facts"]["notes"]["start_segment"]
                    .as_str()
                    .unwrap_or_else(|| panic!("the base backup records where its WAL starts: {s}"));
                (s["id"].as_str().unwrap().to_string(), seg.to_string())
            })
            .collect();
        v.sort_by(|a, b| a.1.cmp(&b.1));
        v
    }

    /// Writes some WAL, switches segments and packs what was archived.
    fn wal_rounds(&self, db: &mut postgres::Client, rounds: usize) {
        db.batch_execute("CREATE TABLE IF NOT EXISTS t (id serial primary key, v text)")
            .unwrap();
        for _ in 0..rounds {
            db.batch_execute(
                "INSERT INTO t (v) SELECT repeat('x', 200) FROM generate_series(1, 500)",
            )
            .unwrap();
            self.archive_all();
            self.ok(self.lb().args(["wal-flush"]));
        }
    }
}

/// 24-hex segment names and .partial files are placed by their name.
fn is_segment(n: &str) -> bool {
    n.len() == 24 || n.ends_with(".partial")
}

#[test]
fn wal_groups_go_with_the_base_backups_that_no_longer_need_them() {
    let mut c = Cluster::start(|c| c.push_command());
    let mut db = c.sql(c.port);
    c.ok(c.lb().args(["backup", "db"]));
    c.wal_rounds(&mut db, 3);
    c.ok(c.lb().args(["backup", "db"]));
    c.wal_rounds(&mut db, 2);
    let bases = c.bases();
    assert_eq!(bases.len(), 2);
    let (old_base, newer) = (&bases[0].0, &bases[1].1);
    let groups = c.groups();
    // Needed: a group with any segment at or after the start of the base
    // backup that stays (or a timeline history).
    let needed = |g: &Group| {
        g.segments
            .iter()
            .any(|s| s.ends_with(".history") || (is_segment(s) && s[..24] >= **newer))
    };
    let expect_kept: Vec<&str> = groups
        .iter()
        .filter(|g| needed(g))
        .map(|g| g.id.as_str())
        .collect();
    let expect_gone: Vec<&str> = groups
        .iter()
        .filter(|g| !needed(g))
        .map(|g| g.id.as_str())
        .collect();
    assert!(
        !expect_gone.is_empty() && expect_kept.len() >= 2,
        "the first base backup's WAL is older than the second's: {expect_gone:?} / {expect_kept:?}"
    );

    // forget --dry-run says so and changes nothing.
    let plan = c.json(&["forget", "db", "--keep-last", "1", "--dry-run"]);
    let decided: Vec<(String, bool)> = plan["wal"]["wal_groups"]
        .as_array()
        .unwrap_or_else(|| panic!("the forget plan shows the WAL groups: {plan}"))
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_string(),
                g["keep"].as_bool().unwrap(),
            )
        })
        .collect();
    for (id, keep) in &decided {
        assert_eq!(*keep, expect_kept.contains(&id.as_str()), "{id}: {plan}");
    }
    assert_eq!(decided.len(), groups.len());
    assert_eq!(c.groups().len(), groups.len(), "a dry run forgets nothing");

    // The old base backup forgotten by hand: prune --dry-run shows its
    // WAL going, prune forgets exactly that.
    std::fs::remove_file(c.env.path("repo/snapshots").join(old_base)).unwrap();
    let out = c.ok(c.lb().args(["prune", "--dry-run"]));
    for id in &expect_gone {
        assert!(
            out.contains(&format!("would forget  {}", &id[..8])),
            "{id}: {out}"
        );
    }
    assert_eq!(c.groups().len(), groups.len(), "a dry run forgets nothing");
    c.ok(c.lb().args(["prune"]));
    let left: Vec<String> = c.groups().into_iter().map(|g| g.id).collect();
    assert_eq!(left, expect_kept, "prune keeps exactly the needed groups");

    // What is left still restores everything.
    let rows: i64 = db.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    let port = c.restore_and_start("latest");
    let n: i64 = c
        .sql(port)
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, rows);
}

#[test]
fn a_deleted_wal_group_is_a_gap_that_health_names_and_restore_refuses_to_cross() {
    let c = Cluster::start(|c| c.push_command());
    let mut db = c.sql(c.port);
    c.ok(c.lb().args(["backup", "db"]));
    c.wal_rounds(&mut db, 4);
    let start = c.bases()[0].1.clone();
    let health = c.health();
    assert!(
        health["services"][0]["pitr"]["gaps"].is_null(),
        "no gap before one is made: {health}"
    );
    // A group in the middle, wholly after the base backup's start, lost.
    let groups = c.groups();
    let after: Vec<&Group> = groups
        .iter()
        .filter(|g| {
            g.segments
                .iter()
                .filter(|s| is_segment(s))
                .all(|s| s[..24] > *start)
        })
        .collect();
    assert!(after.len() >= 3, "rounds make groups: {}", after.len());
    let lost = after[after.len() / 2];
    let missing = lost
        .segments
        .iter()
        .filter(|s| s.len() == 24)
        .min()
        .unwrap()
        .clone();
    std::fs::remove_file(c.env.path("repo/snapshots").join(&lost.id)).unwrap();

    let health = c.health();
    let pitr = &health["services"][0]["pitr"];
    assert_eq!(pitr["gaps"][0]["missing"], missing.as_str(), "{health}");
    let until = pitr["gaps"][0]["reachable_until"]
        .as_str()
        .unwrap_or_else(|| panic!("the gap says how far a restore gets: {health}"))
        .to_string();
    let alert = health["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["message"].as_str().unwrap().contains(&missing))
        .unwrap_or_else(|| panic!("an alert names the missing segment: {health}"));
    assert_eq!(alert["service"], "db");
    assert_eq!(
        pitr["newest_restorable"].as_str().map(|s| &s[..19]),
        Some(&until[..19]),
        "{health}"
    );

    // A restore past the gap is refused, naming the segment and the last
    // moment reachable; one before it is not.
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let out = c
        .lb()
        .args(["restore", "db", "--at", &now, "--target"])
        .arg(c.env.path("past-gap"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&missing) && said.contains("last moment that can be reached"),
        "{said}"
    );
    assert!(!c.env.path("past-gap").exists());
    c.ok(c
        .lb()
        .args(["restore", "db", "--at", &until, "--target"])
        .arg(c.env.path("before-gap")));
    assert!(c.env.path("before-gap").join("recovery.signal").is_file());
    // `latest` is the furthest a restore gets, and says where it stops.
    let out = c.ok(c
        .lb()
        .args(["restore", "db", "--at", "latest", "--target"])
        .arg(c.env.path("latest")));
    assert!(
        out.contains(&format!("warning: WAL segment {missing} is missing")),
        "{out}"
    );
}
