//! Every source kind against the real thing: PostgreSQL, MariaDB and Redis
//! servers on loopback, SQLite files being written, command streams and
//! qcow2 images. `scripts/test-deps.sh` installs and starts the servers and
//! creates the `lifeboat_test` login; a test that cannot reach one fails
//! saying so.

mod common;

use common::{fake_tool, Env};
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::time::Duration;

use common::db::{mariadb, password, pg, unique, PASSWORD_FILE, START};

/// A config with one local repository and the given services.
fn config(env: &Env, services: &str) -> PathBuf {
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

fn lb(env: &Env, cfg: &Path) -> assert_cmd::Command {
    let mut c = env.lb();
    c.arg("--config").arg(cfg);
    c
}

fn snapshots(env: &Env, cfg: &Path, service: &str) -> Vec<serde_json::Value> {
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

fn verify_clean(env: &Env, cfg: &Path) {
    lb(env, cfg)
        .args(["verify", "--read-data"])
        .assert()
        .success();
}

fn pg_counts(db: &str) -> Vec<(String, i64)> {
    let mut c = pg(db);
    [
        "pgbench_accounts",
        "pgbench_branches",
        "pgbench_history",
        "pgbench_tellers",
    ]
    .iter()
    .map(|t| {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .unwrap()
            .get(0);
        (format!("public.{t}"), n)
    })
    .collect()
}

fn pg_service(db: &str) -> String {
    format!(
        "[services.immich-db]\ntier = \"critical\"\n[[services.immich-db.sources]]\nkind = \"postgres\"\nname = \"immich\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"lifeboat_test\"\npassword_file = \"{PASSWORD_FILE}\"\n"
    )
}

#[test]
fn postgres_under_write_load_round_trips_with_matching_row_counts() {
    let db = unique("lb_pg");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let bench = |args: &[&str]| {
        Std::new("pgbench")
            .args(["-h", "127.0.0.1", "-U", "lifeboat_test", "-q"])
            .args(args)
            .arg(&db)
            .env("PGPASSWORD", password())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("pgbench: {e}; {START}"))
    };
    assert!(bench(&["-i", "-s", "2"]).success());

    let env = Env::new();
    let cfg = config(&env, &pg_service(&db));
    // A concurrent write load for the whole backup.
    let mut load = Std::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "lifeboat_test",
            "-c",
            "4",
            "-T",
            "8",
        ])
        .arg(&db)
        .env("PGPASSWORD", password())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    lb(&env, &cfg)
        .args(["backup", "immich-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("postgres immich: PostgreSQL"));
    assert!(load.wait().unwrap().success(), "pgbench load failed");

    let snaps = snapshots(&env, &cfg, "immich-db");
    assert_eq!(snaps.len(), 1);
    let facts = &snaps[0]["sources"][0]["facts"];
    let recorded = facts["counts"]["public.pgbench_history"].as_u64().unwrap();
    assert!(
        recorded > 0,
        "the load wrote history rows before the backup"
    );
    let after_load = pg_counts(&db);
    let live_history = after_load
        .iter()
        .find(|(t, _)| t.ends_with("history"))
        .unwrap()
        .1 as u64;
    assert!(
        live_history > recorded,
        "the load kept writing after the snapshot ({live_history} vs {recorded})"
    );

    // A drill restores into a throwaway database and checks the counts.
    lb(&env, &cfg)
        .args(["drill", "immich-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok:"));

    // Live restore: the database goes back to exactly the snapshot.
    lb(&env, &cfg)
        .args(["restore", "immich-db", "--live", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("kept as"));
    for (table, n) in pg_counts(&db) {
        assert_eq!(
            facts["counts"][&table].as_u64(),
            Some(n as u64),
            "{table} after restore"
        );
    }
    // The replaced database is kept, with the rows written after the backup.
    let kept: Vec<String> = pg("postgres")
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&format!("{db}_lifeboat_old_%")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    verify_clean(&env, &cfg);
    let mut admin = pg("postgres");
    for d in kept.iter().chain([&db]) {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{d}\" WITH (FORCE)"))
            .unwrap();
    }
}

#[test]
fn postgres_failures_leave_no_restore_point_and_the_live_database_untouched() {
    let db = unique("lb_pgfail");
    let mut admin = pg("postgres");
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series(1, 20000) g")
        .unwrap();
    let env = Env::new();
    let cfg = config(&env, &pg_service(&db));
    let fail = |cmd: &mut assert_cmd::Command, says: &str| {
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("immich-db") && err.contains(says),
            "{says:?} not in: {err}"
        );
        for secret in [password(), "not-the-password".to_string()] {
            assert!(!err.contains(&secret), "a password leaked: {err}");
        }
    };

    // Wrong password.
    let wrong = env.path("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace(PASSWORD_FILE, wrong.to_str().unwrap())).unwrap();
    fail(
        lb(&env, &cfg).args(["backup", "immich-db"]),
        "password authentication failed",
    );
    std::fs::write(&cfg, &text).unwrap();

    // Unreachable server.
    std::fs::write(
        &cfg,
        text.replace("host = \"127.0.0.1\"", "host = \"127.0.0.1\"\nport = 1"),
    )
    .unwrap();
    fail(
        lb(&env, &cfg).args(["backup", "immich-db"]),
        "cannot connect",
    );
    std::fs::write(&cfg, &text).unwrap();

    // No pg_dump on PATH.
    fail(
        lb(&env, &cfg)
            .env("PATH", "/nonexistent")
            .args(["backup", "immich-db"]),
        "`pg_dump` is not installed",
    );

    // A dump that dies halfway.
    let path = fake_tool(
        &env,
        "pg_dump",
        "head -c 300000 /dev/urandom; echo 'pg_dump: error: connection lost' >&2; exit 1",
    );
    fail(
        lb(&env, &cfg)
            .env("PATH", &path)
            .args(["backup", "immich-db"]),
        "connection lost",
    );
    assert!(
        snapshots(&env, &cfg, "immich-db").is_empty(),
        "no restore point after failures"
    );
    verify_clean(&env, &cfg);

    // A good backup, then a restore that fails halfway.
    lb(&env, &cfg)
        .args(["backup", "immich-db"])
        .assert()
        .success();
    pg(&db)
        .batch_execute("DELETE FROM t WHERE id > 100")
        .unwrap();
    std::fs::remove_dir_all(env.path("fake-bin")).unwrap();
    let path = fake_tool(
        &env,
        "pg_restore",
        "head -c 1000 >/dev/null; echo 'pg_restore: error: could not read input' >&2; exit 1",
    );
    fail(
        lb(&env, &cfg)
            .env("PATH", &path)
            .args(["restore", "immich-db", "--live", "--yes"]),
        "was not touched",
    );
    let n: i64 = pg(&db)
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 100, "the live database is untouched");
    let leftovers: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            &[&format!("{db}_lifeboat%")],
        )
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0, "the half-restored copy is dropped");
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .unwrap();
}

#[test]
fn sqlite_being_written_in_wal_mode_is_backed_up_consistently() {
    let env = Env::new();
    let live = env.path("app/db.sqlite3");
    std::fs::create_dir_all(live.parent().unwrap()).unwrap();
    let c = rusqlite::Connection::open(&live).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, body BLOB); CREATE INDEX items_body ON items(body);")
        .unwrap();
    drop(c);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let live = live.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&live).unwrap();
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tx = c.unchecked_transaction().unwrap();
                for _ in 0..50 {
                    tx.execute("INSERT INTO items (body) VALUES (randomblob(300))", [])
                        .unwrap();
                }
                tx.commit().unwrap();
                n += 50;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let cfg = config(
        &env,
        &format!("[services.sonarr]\ntier = \"supporting\"\nsources = [{{ kind = \"sqlite\", path = \"{}\" }}]\n", live.display()),
    );
    for _ in 0..2 {
        lb(&env, &cfg).args(["backup", "sonarr"]).assert().success();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();

    let snaps = snapshots(&env, &cfg, "sonarr");
    let recorded = snaps[1]["sources"][0]["facts"]["counts"]["items"]
        .as_u64()
        .unwrap();
    assert!(
        recorded > 0 && recorded < written,
        "{recorded} of {written}"
    );
    // As a plain file, the copy opens and passes integrity_check.
    let out = env.path("out");
    lb(&env, &cfg)
        .args(["restore", snaps[1]["id"].as_str().unwrap(), "--target"])
        .arg(&out)
        .assert()
        .success();
    let copy = rusqlite::Connection::open(out.join(".lifeboat/sqlite/db.sqlite3")).unwrap();
    let ok: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let n: u64 = copy
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, recorded);

    // Live restore swaps the file, keeping the old one and its WAL aside.
    lb(&env, &cfg)
        .args([
            "restore",
            snaps[1]["id"].as_str().unwrap(),
            "--live",
            "--yes",
        ])
        .assert()
        .success();
    let c = rusqlite::Connection::open(&live).unwrap();
    let n: u64 = c
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, recorded);
    let kept = std::fs::read_dir(live.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("lifeboat-kept")
        })
        .count();
    assert!(kept >= 1, "the replaced database is kept beside it");
}

#[test]
fn mariadb_round_trip() {
    let db = unique("lb_my");
    mariadb(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE notes (id INT PRIMARY KEY AUTO_INCREMENT, body TEXT, raw BLOB);
         CREATE TABLE empty_one (id INT);
         INSERT INTO notes (body, raw) VALUES ('it''s (tricky), isn''t it', x'00ff28'), ('line\\nbreak', NULL), ('back\\\\slash)', '(');
         INSERT INTO notes (body) SELECT CONCAT('row ', seq) FROM seq_1_to_3000;"
    ));
    let env = Env::new();
    let cfg = config(
        &env,
        &format!("[services.nextcloud-db]\ntier = \"important\"\n[[services.nextcloud-db.sources]]\nkind = \"mysql\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"lifeboat_test\"\npassword_file = \"{PASSWORD_FILE}\"\n"),
    );
    lb(&env, &cfg)
        .args(["backup", "nextcloud-db"])
        .assert()
        .success();
    let snaps = snapshots(&env, &cfg, "nextcloud-db");
    let counts = &snaps[0]["sources"][0]["facts"]["counts"];
    assert_eq!(counts["notes"].as_u64(), Some(3003), "{counts}");
    assert_eq!(counts["empty_one"].as_u64(), Some(0), "{counts}");
    let before = mariadb(&format!(
        "SELECT MD5(GROUP_CONCAT(id, body, HEX(raw) ORDER BY id)) FROM {db}.notes"
    ));

    mariadb(&format!(
        "DELETE FROM {db}.notes WHERE id > 10; UPDATE {db}.notes SET body = 'oops'"
    ));
    lb(&env, &cfg)
        .args(["drill", "nextcloud-db"])
        .assert()
        .success();
    lb(&env, &cfg)
        .args(["restore", "nextcloud-db", "--live", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("3003 rows"));
    let after = mariadb(&format!(
        "SELECT MD5(GROUP_CONCAT(id, body, HEX(raw) ORDER BY id)) FROM {db}.notes"
    ));
    assert_eq!(before, after, "content is back exactly");
    let old = mariadb(&format!("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{db}_lifeboat_old_%'"));
    assert!(!old.is_empty(), "the replaced tables are kept");
    assert_eq!(mariadb(&format!("SELECT COUNT(*) FROM {old}.notes")), "10");
    mariadb(&format!("DROP DATABASE {db}; DROP DATABASE {old}"));
}

/// A private redis-server (the real binary) on a free port.
struct RedisServer {
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    fn start(dir: PathBuf) -> RedisServer {
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = RedisServer { port, dir };
        s.launch();
        s
    }

    fn launch_command(&self) -> String {
        format!(
            "redis-server --port {} --bind 127.0.0.1 --requirepass {} --dir {} --dbfilename dump.rdb --daemonize yes --pidfile {}/redis.pid --save ''",
            self.port,
            password(),
            self.dir.display(),
            self.dir.display()
        )
    }

    fn launch(&self) {
        let ok = Std::new("sh")
            .arg("-c")
            .arg(self.launch_command())
            .status()
            .unwrap_or_else(|e| panic!("redis-server: {e}; {START}"));
        assert!(ok.success(), "redis-server did not start; {START}");
        for _ in 0..100 {
            if self.cli(&["PING"]) == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not answer; {START}", self.port);
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Std::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning"])
            .env("REDISCLI_AUTH", password())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("redis-cli: {e}; {START}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]);
    }
}

#[test]
fn redis_keyspace_round_trip() {
    let env = Env::new();
    let server = RedisServer::start(env.path("redis"));
    for i in 0..500 {
        server.cli(&["SET", &format!("session:{i}"), &format!("value {i}")]);
    }
    server.cli(&["RPUSH", "queue", "a", "b", "c"]);
    server.cli(&["-n", "2", "HSET", "cfg", "mode", "dark"]);
    let cfg = config(
        &env,
        &format!(
            "[services.cache]\ntier = \"supporting\"\n[[services.cache.sources]]\nkind = \"redis\"\nport = {port}\npassword_file = \"{PASSWORD_FILE}\"\nrdb_path = \"{dir}/dump.rdb\"\nstop = \"REDISCLI_AUTH=$(cat {PASSWORD_FILE}) redis-cli --no-auth-warning -p {port} SHUTDOWN NOSAVE; sleep 0.3\"\nstart = \"{start}\"\n",
            port = server.port,
            dir = server.dir.display(),
            start = server.launch_command(),
        ),
    );
    lb(&env, &cfg)
        .args(["backup", "cache"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 databases with 502 keys"));
    lb(&env, &cfg).args(["drill", "cache"]).assert().success();

    server.cli(&["FLUSHALL"]);
    server.cli(&["SET", "after", "backup"]);
    lb(&env, &cfg)
        .args(["restore", "cache", "--live", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("502 keys"));
    assert_eq!(server.cli(&["GET", "session:417"]), "value 417");
    assert_eq!(server.cli(&["LRANGE", "queue", "0", "-1"]), "a\nb\nc");
    assert_eq!(server.cli(&["-n", "2", "HGET", "cfg", "mode"]), "dark");
    assert_eq!(server.cli(&["EXISTS", "after"]), "0");
}

#[test]
fn command_stream_round_trips_bit_for_bit_and_a_failing_command_records_nothing() {
    let env = Env::new();
    let data = env.path("vzdump.vma");
    std::fs::write(&data, common::bytes(7, 6 << 20)).unwrap();
    let out = env.path("restored.vma");
    let cfg = config(
        &env,
        &format!(
            "[services.vm100]\ntier = \"important\"\n[[services.vm100.sources]]\nkind = \"command\"\nname = \"vzdump\"\ncommand = \"cat {}\"\nrestore_command = \"cat > {}\"\ncheck_command = \"test -s ${{LIFEBOAT_RESTORED:-{}}}\"\n[services.broken]\ntier = \"important\"\nsources = [{{ kind = \"command\", command = \"head -c 100000 {}; exit 3\" }}]\n",
            data.display(), out.display(), out.display(), data.display()
        ),
    );
    lb(&env, &cfg).args(["backup", "vm100"]).assert().success();
    lb(&env, &cfg).args(["drill", "vm100"]).assert().success();
    lb(&env, &cfg)
        .args(["restore", "vm100", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(std::fs::read(&data).unwrap(), std::fs::read(&out).unwrap());

    // A check that fails after a live restore fails the command.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "check_command = \"test -s",
            "check_command = \"false && test -s",
        ),
    )
    .unwrap();
    let o = lb(&env, &cfg)
        .args(["restore", "vm100", "--live", "--yes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("check found differences"));
    std::fs::write(&cfg, text).unwrap();

    let o = lb(&env, &cfg).args(["backup", "broken"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken") && err.contains("exited with status 3"),
        "{err}"
    );
    assert!(snapshots(&env, &cfg, "broken").is_empty());
    verify_clean(&env, &cfg);
}

fn qemu(args: &[&str]) {
    let s = Std::new(args[0])
        .args(&args[1..])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}; {START}", args[0]));
    assert!(s.success(), "{args:?}");
}

#[test]
fn qcow2_image_round_trips_and_a_changed_night_adds_little() {
    let env = Env::new();
    let img = env.path("vm/disk.qcow2");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    let i = img.to_str().unwrap();
    // A 256 MiB disk with 24 MiB of data (and a patterned 8 MiB) in it.
    let raw = env.path("raw.img");
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(256 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&common::bytes(3, 24 << 20), 32 << 20)
        .unwrap();
    f.write_all_at(&vec![0x5a; 8 << 20], 100 << 20).unwrap();
    drop(f);
    qemu(&[
        "qemu-img",
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        i,
    ]);
    let cfg = config(
        &env,
        &format!("[services.homeassistant-vm]\ntier = \"important\"\nsources = [{{ kind = \"vm-image\", path = \"{i}\" }}]\n"),
    );
    lb(&env, &cfg)
        .args(["backup", "homeassistant-vm"])
        .assert()
        .success();
    let first = snapshots(&env, &cfg, "homeassistant-vm")[0]["stats"]["bytes_added"]
        .as_u64()
        .unwrap();
    assert!(
        first < 40 << 20,
        "zero blocks cost nothing: {first} bytes added for 32 MiB of data"
    );

    // Night two: one megabyte changed.
    qemu(&["qemu-io", "-f", "qcow2", "-c", "write -P 0x77 40M 1M", i]);
    let golden = env.path("golden.qcow2");
    std::fs::copy(&img, &golden).unwrap();
    lb(&env, &cfg)
        .args(["backup", "homeassistant-vm"])
        .assert()
        .success();
    let snaps = snapshots(&env, &cfg, "homeassistant-vm");
    let second = snaps[1]["stats"]["bytes_added"].as_u64().unwrap();
    assert!(second < 6 << 20, "a 1 MiB change added {second} bytes");

    lb(&env, &cfg)
        .args(["drill", "homeassistant-vm"])
        .assert()
        .success();
    qemu(&["qemu-io", "-f", "qcow2", "-c", "write -P 0x00 0 200M", i]);
    lb(&env, &cfg)
        .args(["restore", "homeassistant-vm", "--live", "--yes"])
        .assert()
        .success();
    qemu(&["qemu-img", "compare", "-q", i, golden.to_str().unwrap()]);
    let info = Std::new("qemu-img")
        .args(["info", "--output=json", i])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("\"format\": \"qcow2\""));
}

#[test]
fn secrets_are_flagged_and_restored_owner_only() {
    let env = Env::new();
    let dir = env.path("vaultwarden");
    std::fs::create_dir_all(&dir).unwrap();
    let dotenv = dir.join(".env");
    std::fs::write(&dotenv, "ADMIN_TOKEN=hunter2\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = config(
        &env,
        &format!("[services.vaultwarden]\ntier = \"critical\"\nsources = [{{ kind = \"secrets\", paths = [\"{}\"] }}]\n", dotenv.display()),
    );
    lb(&env, &cfg)
        .args(["backup", "vaultwarden"])
        .assert()
        .success();
    std::fs::remove_file(&dotenv).unwrap();
    lb(&env, &cfg)
        .args(["restore", "vaultwarden", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&dotenv).unwrap(),
        "ADMIN_TOKEN=hunter2\n"
    );
    let mode = std::fs::metadata(&dotenv).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// The example config's `immich-db` stanza, pointed at a test database and
/// repository, backs up and restores as written.
#[test]
fn the_example_immich_db_service_backs_up_and_restores() {
    let db = unique("lb_immich");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE assets (id serial PRIMARY KEY, path text); INSERT INTO assets (path) SELECT 'upload/' || g || '.jpg' FROM generate_series(1, 5000) g")
        .unwrap();
    let env = Env::new();
    env.init(&env.path("repo"));
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/lifeboat.example.toml"
    ))
    .unwrap();
    let mut text = example
        .replace("/mnt/backup/lifeboat", env.path("repo").to_str().unwrap())
        .replace(
            "/etc/lifeboat/keys/admin.key",
            env.path("admin.key").to_str().unwrap(),
        )
        .replace("/var/lib/lifeboat", env.path("state").to_str().unwrap())
        .replace("/var/cache/lifeboat", env.path("cache").to_str().unwrap())
        .replace("/var/log/lifeboat", env.path("logs").to_str().unwrap())
        .replace("database = \"immich\"", &format!("database = \"{db}\""))
        .replace("user = \"postgres\"", "user = \"lifeboat_test\"")
        .replace("/etc/lifeboat/secrets/immich-db.password", PASSWORD_FILE);
    assert_ne!(text, example);
    text = text.replace("env:LIFEBOAT_HC_BACKUP", "http://127.0.0.1:9/ping");
    let cfg = env.path("lifeboat.toml");
    std::fs::write(&cfg, text).unwrap();
    let lbx = || {
        let mut c = lb(&env, &cfg);
        c.env("LIFEBOAT_USB_KEY_FILE", env.path("usb.key"));
        c
    };
    lbx().args(["backup", "immich-db"]).assert().success();
    pg(&db).batch_execute("DROP TABLE assets").unwrap();
    lbx()
        .args(["restore", "immich-db", "--live", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("5000 rows"));
    let n: i64 = pg(&db)
        .query_one("SELECT count(*) FROM assets", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 5000);
    let mut admin = pg("postgres");
    for r in admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&format!("{db}%")],
        )
        .unwrap()
    {
        let d: String = r.get(0);
        admin
            .batch_execute(&format!("DROP DATABASE \"{d}\" WITH (FORCE)"))
            .unwrap();
    }
}

/// The database-corruption runbook, driven at a real terminal (tmux):
/// a bad migration drops a table after two nights of backups; the admin
/// picks the first night's restore point, answers the runbook's questions,
/// and the database comes back as it was that night, checked.
#[test]
fn db_corruption_runbook_restores_postgres_from_a_chosen_point_in_tmux() {
    let tmux_ok = Std::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(tmux_ok, "tmux is needed for this test; {START}");
    let db = unique("lb_rb");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let bench = |args: &[&str]| {
        let ok = Std::new("pgbench")
            .args(["-h", "127.0.0.1", "-U", "lifeboat_test"])
            .args(args)
            .arg(&db)
            .env("PGPASSWORD", password())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("pgbench: {e}; {START}"));
        assert!(ok.success());
    };
    bench(&["-i", "-q", "-s", "1"]);
    bench(&["-t", "200"]);
    let env = Env::new();
    let marker = env.path("app-stopped");
    let cfg = config(
        &env,
        &pg_service(&db).replace(
            "[[services.immich-db.sources]]",
            &format!(
                "stop = \"touch {m}\"\nstart = \"rm -f {m}\"\n[[services.immich-db.sources]]",
                m = marker.display()
            ),
        ),
    );
    // Night one, more work, night two.
    lb(&env, &cfg)
        .args(["backup", "immich-db"])
        .assert()
        .success();
    let night_one = pg_counts(&db);
    bench(&["-t", "300"]);
    lb(&env, &cfg)
        .args(["backup", "immich-db"])
        .assert()
        .success();
    let snaps = snapshots(&env, &cfg, "immich-db");
    assert_eq!(snaps.len(), 2);
    let first = snaps
        .iter()
        .min_by_key(|s| s["time"].as_str().unwrap().to_string())
        .unwrap()["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The bad migration.
    pg(&db)
        .batch_execute(
            "DROP TABLE pgbench_history; ALTER TABLE pgbench_accounts DROP COLUMN filler",
        )
        .unwrap();

    let socket = format!("lifeboat-db-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let out = Std::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Std::new("tmux")
                .args(["-L", &self.0, "kill-server"])
                .status();
        }
    }
    let _kill = Kill(socket.clone());
    let script = format!(
        "env LIFEBOAT_KEY_DIR={keys} LIFEBOAT_CACHE_DIR={cache} HOME={home} {bin} --config {cfg} recover db-corruption --service immich-db --point {first} --runbooks {rb}; echo RECOVER-EXITED $?; sleep 600",
        keys = env.path("keys").display(),
        cache = env.path("cache").display(),
        home = env.path("home").display(),
        bin = assert_cmd::cargo::cargo_bin("lifeboat").display(),
        cfg = cfg.display(),
        rb = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks"),
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "40",
        &script,
    ]);
    let wait_for = |what: &str| -> String {
        let start = std::time::Instant::now();
        loop {
            let s = tmux(&["capture-pane", "-p", "-t", "t", "-S", "-200"]);
            if s.contains(what) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "waited for {what:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The plan names only the database, and nothing happens until the
    // service's name is typed.
    let s = wait_for("Type `immich-db` to start");
    assert!(s.contains("postgres `immich`: database"), "{s}");
    assert!(!s.contains("files"), "db-corruption restores no files: {s}");
    assert!(!marker.exists(), "nothing ran before the confirmation");
    tmux(&["send-keys", "-t", "t", "-l", "immich-db"]);
    tmux(&["send-keys", "-t", "t", "Enter"]);
    // Restored, checked and started again; the runbook asks the admin to
    // look at the application.
    let s = wait_for("[Enter done, a abort] >");
    assert!(s.contains("check: ✓"), "{s}");
    assert!(!marker.exists(), "the application was started again");
    for (table, n) in pg_counts(&db) {
        let want = night_one.iter().find(|(t, _)| *t == table).unwrap().1;
        assert_eq!(n, want, "{table} is as it was on night one");
    }
    tmux(&["send-keys", "-t", "t", "Enter"]);
    wait_for("Tell the users");
    tmux(&["send-keys", "-t", "t", "Enter"]);
    let s = wait_for("RECOVER-EXITED");
    assert!(
        s.contains("succeeded") && s.contains("RECOVER-EXITED 0"),
        "{s}"
    );

    let mut admin = pg("postgres");
    for r in admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&format!("{db}%")],
        )
        .unwrap()
    {
        let d: String = r.get(0);
        admin
            .batch_execute(&format!("DROP DATABASE \"{d}\" WITH (FORCE)"))
            .unwrap();
    }
}
