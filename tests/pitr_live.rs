//! Live restores and drills of a PostgreSQL cluster, against a private
//! cluster as tests/pitr.rs runs one (initdb into a temporary directory, a
//! free port, `archive_command` calling the built binary): `restore --at
//! T --live` swaps in a data directory recovered to T and checked by a
//! private server, `rollback` puts the old one back, a failed check
//! leaves the live directory as it was, and a drill proves the cluster.

mod common;

use common::pg::PgCluster;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A cluster whose service has the stop and start commands `rollback`
/// runs around the swap.
fn start() -> PgCluster {
    PgCluster::start_with(|data| {
        let stop = format!(
            "if pg_ctl -D '{d}' status >/dev/null; then pg_ctl -D '{d}' -m fast -w stop; fi",
            d = data.display()
        );
        let start = format!(
            "pg_ctl -D '{}' -l '{}' -w -t 30 start",
            data.display(),
            data.with_extension("log").display()
        );
        format!("rto = \"10m\"\nstop = '''{stop}'''\nstart = '''{start}'''")
    })
}

/// What these tests ask of the cluster beyond the common ones.
trait Live {
    fn history(&mut self) -> String;
    fn leftovers(&self) -> Vec<String>;
    fn records(&self) -> Vec<String>;
}

impl Live for PgCluster {
    /// Base backup, then rows 1..=200 committed before the returned
    /// moment T, rows 201..=300 and a dropped table after it, archived.
    fn history(&mut self) -> String {
        let mut db = self.sql(self.port);
        db.batch_execute(
            "CREATE TABLE t (id int primary key, v text); CREATE TABLE doomed (id int);\
             INSERT INTO t SELECT g, 'before base' FROM generate_series(1, 100) g;\
             INSERT INTO doomed VALUES (1), (2);",
        )
        .unwrap();
        self.ok(self.lb().args(["backup", "db"]));
        db.batch_execute("INSERT INTO t SELECT g, 'after base' FROM generate_series(101, 200) g")
            .unwrap();
        // One session: the commit above precedes T, the ones below follow.
        let t: String = db
            .query_one(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                &[],
            )
            .unwrap()
            .get(0);
        db.batch_execute(
            "SELECT pg_sleep(0.05); INSERT INTO t SELECT g, 'after T' FROM generate_series(201, 300) g; DROP TABLE doomed",
        )
        .unwrap();
        self.archive_all();
        self.ok(self.lb().args(["wal-flush"]));
        t
    }

    /// What lifeboat left beside the data directory.
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.env.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".lifeboat-"))
            .collect()
    }

    /// Restore records still kept in the state directory.
    fn records(&self) -> Vec<String> {
        std::fs::read_dir(self.env.path("state/restores"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every entry under `dir`: kind, mode, owner, size and a hash of the
/// content, so two looks compare byte for byte.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let hash = if m.is_file() {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&p).unwrap().hash(&mut h);
                h.finish()
            } else {
                0
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(
                p.strip_prefix(dir).unwrap().to_path_buf(),
                (m.mode(), m.uid(), m.len(), hash),
            );
        }
    }
    out
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn live_restore_to_a_moment_replaces_the_data_directory_and_rolls_back() {
    let mut c = start();
    let t = c.history();

    // Refused while the cluster runs, before anything is made.
    let out = c
        .lb()
        .args(["restore", "db", "--at", &t, "--live", "--yes"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("stop PostgreSQL first"), "{said}");
    assert!(said.contains("pg_ctl -D"), "{said}");
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());

    c.pg_stop(&c.data.clone());
    let before = fingerprint(&c.data);
    let out = c.ok(c
        .lb()
        .args(["--json", "restore", "db", "--at", &t, "--live", "--yes"]));
    let report = json(&out);
    eprintln!("live restore: {report}");
    let id = report["id"].as_str().unwrap().to_string();
    let kept = PathBuf::from(report["kept"].as_str().unwrap());
    assert_eq!(
        fingerprint(&kept),
        before,
        "the old data directory is kept as it was"
    );
    assert_eq!(
        report["check"]["rows"].as_u64(),
        Some(202),
        "the private server counted the rows of T (200 in t, 2 in doomed): {report}"
    );
    assert_eq!(report["check"]["tables"].as_u64(), Some(2), "{report}");
    let auto = std::fs::read_to_string(c.data.join("postgresql.auto.conf")).unwrap();
    assert!(
        !auto.contains("archive_mode = 'off'") && !auto.contains("recovery_target_time"),
        "the live cluster archives again: {auto}"
    );
    assert!(!c.data.join("recovery.signal").exists());

    c.pg_start(&c.data.clone());
    let mut db = c.sql(c.port);
    let rows: Vec<(i32, String)> = db
        .query("SELECT id, v FROM t ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows.len(), 200, "exactly the rows committed before T");
    assert_eq!(rows.first().map(|r| r.0), Some(1));
    assert_eq!(rows.last().map(|r| r.0), Some(200));
    assert!(rows.iter().all(|(_, v)| v != "after T"));
    let doomed: i64 = db
        .query_one("SELECT count(*) FROM doomed", &[])
        .unwrap()
        .get(0);
    assert_eq!(doomed, 2, "the table dropped after T is back");
    drop(db);
    c.pg_stop(&c.data.clone());

    // The service's stop and start commands run around the swap back.
    c.ok(c.lb().args(["rollback", &id, "--yes"]));
    c.running(&c.data.clone());
    let mut db = c.sql(c.port);
    let n: i64 = db
        .query_one("SELECT count(*) FROM t WHERE v = 'after T'", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 100, "the data directory from before the restore is back");
    assert!(
        db.query_one("SELECT count(*) FROM doomed", &[]).is_err(),
        "as it was: without the table dropped after T"
    );
    assert!(
        c.leftovers().iter().any(|l| l.contains("lifeboat-undone-")),
        "what the restore wrote is kept: {:?}",
        c.leftovers()
    );
}

#[test]
fn a_failed_check_leaves_the_live_directory_untouched() {
    let mut c = start();
    let t = c.history();
    c.pg_stop(&c.data.clone());
    let before = fingerprint(&c.data);

    // The restored copy is damaged: the private server cannot start.
    let out = c
        .lb()
        .args(["restore", "db", "--at", &t, "--live", "--yes"])
        .env("LIFEBOAT_TEST_TRIAL_DAMAGE", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("did not pass its check"), "{said}");
    assert!(said.contains("was not changed"), "{said}");
    assert_eq!(
        fingerprint(&c.data),
        before,
        "the live directory is as it was"
    );
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
    assert!(c.records().is_empty(), "{:?}", c.records());

    // A moment before the oldest base backup: refused, nothing made.
    let out = c
        .lb()
        .args([
            "restore",
            "db",
            "--at",
            "2001-01-01 00:00:00",
            "--live",
            "--yes",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("restorable window"),
        "{said}"
    );
    assert_eq!(fingerprint(&c.data), before);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());

    // A cluster source without its data directory: the error says where.
    let cfg = std::fs::read_to_string(c.env.path("lifeboat.toml")).unwrap();
    let no_path: String = cfg
        .lines()
        .filter(|l| !l.starts_with("path = \"") || l.contains("/repo"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(c.env.path("no-path.toml"), no_path).unwrap();
    c.own(&c.env.path("no-path.toml"));
    let mut cmd = Command::new(&c.lifeboat);
    c.user(&mut cmd);
    let out = cmd
        .arg("--config")
        .arg(c.env.path("no-path.toml"))
        .args(["restore", "db", "--at", &t, "--live", "--yes"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("no-path.toml") && said.contains("`db`") && said.contains("no `path`"),
        "{said}"
    );
    assert_eq!(fingerprint(&c.data), before);
}

#[test]
fn a_drill_of_a_cluster_recovers_it_on_a_private_server_and_reports_a_time() {
    let mut c = start();
    c.history();
    let out = c.ok(c.lb().args(["--json", "drill", "db"]));
    let v = json(&out);
    eprintln!("drill: {v}");
    let r = &v["report"];
    assert_eq!(r["ok"], true, "{v}");
    assert_eq!(r["within_rto"], true, "{v}");
    assert!(r["duration_ms"].as_u64().is_some_and(|d| d > 0), "{v}");
    let detail = r["detail"].as_str().unwrap();
    // 300 rows in t (the WAL after the base backup replayed to its end),
    // and `doomed` dropped.
    assert!(detail.contains("replayed the archived WAL"), "{detail}");
    assert!(detail.contains("1 table, 300 rows"), "{detail}");
    let sandboxes: Vec<_> = std::fs::read_dir(c.env.path("state/sandboxes"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(
        sandboxes.is_empty(),
        "the sandbox is removed: {sandboxes:?}"
    );
    // Run as root (as lifeboat runs on a server), the private server runs
    // as the data directory's owner.
    if c.as_user.is_some() {
        let mut cmd = Command::new(&c.lifeboat);
        c.user(&mut cmd);
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        cmd.uid(me).gid(unsafe { libc::getgid() });
        let out = c.ok(cmd
            .arg("--config")
            .arg(c.env.path("lifeboat.toml"))
            .args(["--json", "drill", "db"]));
        let v = json(&out);
        assert_eq!(v["report"]["ok"], true, "as root: {v}");
        assert!(
            v["report"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("1 table, 300 rows")),
            "as root: {v}"
        );
        let left = std::fs::read_dir(c.env.path("state/sandboxes"))
            .unwrap()
            .count();
        assert_eq!(left, 0, "the sandbox of the drill as root is removed");
    }
    // The live cluster kept running and was never touched.
    let n: i64 = c
        .sql(c.port)
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 300);
}
