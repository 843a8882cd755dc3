//! Databases come back exactly, and the check after a restore proves it:
//! each test runs the built binary against the real servers on loopback
//! (`scripts/test-deps.sh` starts them and creates the `lifeboat_test`
//! login) and fails saying so when one cannot be reached.

mod common;

use common::db::{mariadb, password, pg, unique, PASSWORD_FILE, START};
use common::Env;
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::time::{Duration, Instant};

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

/// Runs a command that must fail, returning what it printed (stdout,
/// then stderr).
fn fails(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "expected a failure: {said}");
    said
}

fn mysql_service(service: &str, db: &str) -> String {
    format!("[services.{service}]\ntier = \"important\"\n[[services.{service}.sources]]\nkind = \"mysql\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"lifeboat_test\"\npassword_file = \"{PASSWORD_FILE}\"\n")
}

fn collation_of(db: &str) -> String {
    mariadb(&format!(
        "SELECT CONCAT(default_character_set_name, ' ', default_collation_name) FROM information_schema.schemata WHERE schema_name = '{db}'"
    ))
}

#[test]
fn mariadb_keeps_the_database_collation_live_and_under_a_new_name() {
    let db = unique("lb_coll");
    mariadb(&format!(
        "CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE {db};
         CREATE TABLE words (id INT PRIMARY KEY, w VARCHAR(40));
         INSERT INTO words VALUES (1, 'Straße'), (2, 'strasse'), (3, 'ǅemal');"
    ));
    let env = Env::new();
    let cfg = config(&env, &mysql_service("wiki-db", &db));
    lb(&env, &cfg)
        .args(["backup", "wiki-db"])
        .assert()
        .success();
    let facts = &snapshots(&env, &cfg, "wiki-db")[0]["sources"][0]["facts"];
    assert_eq!(
        facts["objects"]["database default character set and collation"],
        "utf8mb4 utf8mb4_unicode_ci",
        "{facts}"
    );

    // A drill loads into a database of another name, and its check
    // compares that database's collation with the recorded one.
    lb(&env, &cfg)
        .args(["drill", "wiki-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok:"));

    // Live, into a database that is gone: created with the collation.
    mariadb(&format!("DROP DATABASE {db}"));
    lb(&env, &cfg)
        .args(["restore", "wiki-db", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(collation_of(&db), "utf8mb4 utf8mb4_unicode_ci");
    assert_eq!(
        mariadb(&format!("SELECT COUNT(*) FROM {db}.words")),
        "3",
        "the rows are back"
    );

    // Live, over a database whose default was changed: set back.
    mariadb(&format!(
        "ALTER DATABASE {db} CHARACTER SET latin1 COLLATE latin1_swedish_ci"
    ));
    lb(&env, &cfg)
        .args(["restore", "wiki-db", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(collation_of(&db), "utf8mb4 utf8mb4_unicode_ci");
    let kept = mariadb(&format!("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{db}_lifeboat_old_%'"));
    assert!(!kept.is_empty(), "the replaced tables are kept");
    assert_eq!(
        collation_of(&kept),
        "latin1 latin1_swedish_ci",
        "the kept copy keeps what the live database had"
    );
    mariadb(&format!("DROP DATABASE {db}; DROP DATABASE {kept}"));
}

/// Views, triggers and routines are recorded and compared by a drill,
/// whatever the database is called there.
#[test]
fn mariadb_drill_compares_views_triggers_and_routines() {
    let db = unique("lb_objs");
    mariadb(&format!(
        "CREATE DATABASE {db}; USE {db};
         CREATE TABLE t (id INT PRIMARY KEY, v INT);
         CREATE TABLE audit (id INT);
         CREATE VIEW big AS SELECT id FROM t WHERE v > 10;
         CREATE TRIGGER t_ins AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (NEW.id);
         CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
         INSERT INTO t VALUES (1, 5), (2, 50);"
    ));
    let env = Env::new();
    let cfg = config(&env, &mysql_service("shop-db", &db));
    lb(&env, &cfg)
        .args(["backup", "shop-db"])
        .assert()
        .success();
    let facts = &snapshots(&env, &cfg, "shop-db")[0]["sources"][0]["facts"];
    for name in ["view big", "trigger t.t_ins", "function twice"] {
        assert!(facts["objects"][name].is_string(), "{name} in {facts}");
    }
    lb(&env, &cfg)
        .args(["drill", "shop-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok:"));
    mariadb(&format!("DROP DATABASE {db}"));
}

fn pg_service(service: &str, db: &str, user: &str, password_file: &Path, extra: &str) -> String {
    format!(
        "[services.{service}]\ntier = \"critical\"\n[[services.{service}.sources]]\nkind = \"postgres\"\nname = \"main\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"{user}\"\npassword_file = \"{}\"\n{extra}",
        password_file.display()
    )
}

/// Drops `db` and every copy a restore made of it.
fn drop_pg_databases(db: &str) {
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

/// A directory holding fake tools, first on PATH; returns that PATH.
fn fake_tool(env: &Env, name: &str, script: &str) -> String {
    let dir = env.path("fake-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

/// Where a tool really is, so a fake one can call it.
fn real_tool(name: &str) -> String {
    let out = Std::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!path.is_empty(), "`{name}` is not installed; {START}");
    path
}

/// Functions, triggers, large objects and materialized views are recorded,
/// come back from a drill as they were, and a restored copy missing any
/// of them fails the check. The copy is tampered with between
/// `pg_restore` and the check by a `pg_restore` wrapper on PATH.
#[test]
fn postgres_check_catches_a_lost_function_trigger_large_object_or_matview() {
    let db = unique("lb_objs");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute(
            "CREATE TABLE items (id serial PRIMARY KEY, price int, seen timestamptz);
             INSERT INTO items (price) SELECT g FROM generate_series(1, 500) g;
             CREATE FUNCTION total(lo int, hi int) RETURNS bigint LANGUAGE sql
               AS 'SELECT sum(price) FROM items WHERE price BETWEEN lo AND hi';
             CREATE PROCEDURE bump(n int) LANGUAGE sql AS 'UPDATE items SET price = price + n';
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
               AS 'BEGIN NEW.seen := now(); RETURN NEW; END';
             CREATE TRIGGER items_touch BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch();
             CREATE MATERIALIZED VIEW expensive AS SELECT id FROM items WHERE price > 400;
             SELECT lo_from_bytea(0, 'a scanned invoice');
             SELECT lo_from_bytea(0, convert_to(repeat('receipt ', 20000), 'UTF8'));",
        )
        .unwrap();
    let env = Env::new();
    let cfg = config(
        &env,
        &pg_service(
            "shop-db",
            &db,
            "lifeboat_test",
            Path::new(PASSWORD_FILE),
            "",
        ),
    );
    lb(&env, &cfg)
        .args(["backup", "shop-db"])
        .assert()
        .success();
    let facts = &snapshots(&env, &cfg, "shop-db")[0]["sources"][0]["facts"];
    let objects = &facts["objects"];
    for name in [
        "function public.total(lo integer, hi integer)",
        "procedure public.bump(IN n integer)",
        "trigger items_touch on public.items",
    ] {
        assert!(objects[name].is_string(), "{name} in {facts}");
    }
    assert_eq!(objects["materialized view public.expensive"], "populated");
    assert_eq!(objects["large objects"], "2 objects, 160017 bytes");
    assert_eq!(facts["minimums"]["sequence public.items_id_seq"], 500);

    // Restored as it was, the copy passes.
    lb(&env, &cfg)
        .args(["drill", "shop-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok:"));

    let real = real_tool("pg_restore");
    for (tamper, reported) in [
        (
            "DROP FUNCTION total(int, int)",
            "function public.total(lo integer, hi integer): missing after restore",
        ),
        (
            "DROP TRIGGER items_touch ON items",
            "trigger items_touch on public.items: missing after restore",
        ),
        (
            "SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata",
            "large objects: 1 object, 160000 bytes after restore, 2 objects, 160017 bytes recorded",
        ),
        (
            "REFRESH MATERIALIZED VIEW expensive WITH NO DATA",
            "materialized view public.expensive: not populated after restore, populated recorded",
        ),
        (
            "SELECT setval('items_id_seq', 3)",
            "sequence public.items_id_seq: 3 after restore, at least 500 recorded",
        ),
    ] {
        let path = fake_tool(
            &env,
            "pg_restore",
            &format!(
                "{real} \"$@\" || exit $?\nfor a in \"$@\"; do [ \"$prev\" = --dbname ] && db=$a; prev=$a; done\npsql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U lifeboat_test --no-password -d \"$db\" -c \"{tamper}\" >/dev/null"
            ),
        );
        let said = fails(lb(&env, &cfg).env("PATH", &path).args(["drill", "shop-db"]));
        assert!(
            said.contains("FAILED") && said.contains(reported),
            "after `{tamper}`, {reported:?} not in: {said}"
        );
    }
    drop_pg_databases(&db);
}

/// A private redis-server (the real binary) on a free port, with its data
/// in this test's directory; the shared server on 6379 is never touched.
struct RedisServer {
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    fn start(dir: PathBuf) -> RedisServer {
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

    fn launch_command(&self) -> String {
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
    fn stop_command(&self) -> String {
        format!(
            "pid=$(cat {dir}/redis.pid); REDISCLI_AUTH=$(cat {PASSWORD_FILE}) redis-cli --no-auth-warning -p {port} SHUTDOWN NOSAVE; while kill -0 $pid 2>/dev/null; do sleep 0.05; done",
            dir = self.dir.display(),
            port = self.port
        )
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

    /// Sends SETs in bulk (`redis-cli --pipe`).
    fn set_all(&self, pairs: impl Iterator<Item = (String, Vec<u8>)>) {
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

/// The live restore's check counts keys only once the restarted server
/// has loaded the whole RDB, however long that takes.
#[test]
fn redis_live_restore_of_25k_keys_and_a_10_mib_value_passes_its_check_every_time() {
    let env = Env::new();
    let server = RedisServer::start(env.path("redis"));
    server.set_all((0..25_000).map(|i| {
        (
            format!("session:{i}"),
            format!("user {i} logged in").into_bytes(),
        )
    }));
    server.set_all(std::iter::once((
        "blob".to_string(),
        common::bytes(11, 10 << 20),
    )));
    assert_eq!(server.cli(&["DBSIZE"]), "25001");
    let cfg = config(
        &env,
        &format!(
            "[services.cache]\ntier = \"supporting\"\n[[services.cache.sources]]\nkind = \"redis\"\nport = {port}\npassword_file = \"{PASSWORD_FILE}\"\nrdb_path = \"{dir}/dump.rdb\"\nstop = \"{stop}\"\nstart = \"{start}\"\n",
            port = server.port,
            dir = server.dir.display(),
            stop = server.stop_command().replace('"', "\\\""),
            start = server.launch_command(),
        ),
    );
    lb(&env, &cfg)
        .args(["backup", "cache"])
        .assert()
        .success()
        .stdout(predicate::str::contains("25001 keys"));
    for round in 1..=5 {
        server.cli(&["FLUSHALL"]);
        server.cli(&["SET", "written", "after the backup"]);
        let out = lb(&env, &cfg)
            .args(["restore", "cache", "--live", "--yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("25001 keys"),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(server.cli(&["DBSIZE"]), "25001", "round {round}");
        assert_eq!(server.cli(&["STRLEN", "blob"]), (10 << 20).to_string());
    }
}

/// Drops a role (and what it owns) when the test ends, pass or fail:
/// roles outlive the test's databases.
struct DropRole(String);

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

/// `globals = true` backs up for a login that is not a superuser: roles
/// without their password hashes, which the restore point says.
#[test]
fn postgres_globals_back_up_for_a_login_that_is_not_a_superuser() {
    let role = unique("lb_app");
    let secret = format!("pw-{:08x}", rand::random::<u32>());
    let _cleanup = DropRole(role.clone());
    let db = unique("lb_glob");
    let mut admin = pg("postgres");
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{secret}'"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db} OWNER {role}"))
        .unwrap();
    pg(&db)
        .batch_execute(&format!(
            "SET ROLE {role}; CREATE TABLE notes (id int); INSERT INTO notes SELECT generate_series(1, 10)"
        ))
        .unwrap();
    let env = Env::new();
    let pw = env.path("app.password");
    std::fs::write(&pw, format!("{secret}\n")).unwrap();
    let cfg = config(
        &env,
        &format!(
            "{}{}",
            pg_service("app-db", &db, &role, &pw, "globals = true\n"),
            pg_service(
                "admin-db",
                &db,
                "lifeboat_test",
                Path::new(PASSWORD_FILE),
                "globals = true\n"
            )
        ),
    );
    lb(&env, &cfg)
        .args(["backup", "app-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("without role passwords"));
    lb(&env, &cfg)
        .args(["backup", "admin-db"])
        .assert()
        .success();

    let globals = |service: &str| -> (serde_json::Value, String) {
        let snap = snapshots(&env, &cfg, service).remove(0);
        let out = env.path(&format!("out-{service}"));
        lb(&env, &cfg)
            .args(["restore", snap["id"].as_str().unwrap(), "--target"])
            .arg(&out)
            .assert()
            .success();
        let sql = std::fs::read_to_string(out.join(".lifeboat/main/globals.sql")).unwrap();
        (snap["sources"][0]["facts"].clone(), sql)
    };
    let (facts, sql) = globals("app-db");
    assert_eq!(
        facts["notes"]["globals"], "without role passwords (the login is not a superuser)",
        "{facts}"
    );
    assert!(sql.contains(&format!("CREATE ROLE {role}")), "{sql}");
    assert!(!sql.contains("SCRAM-SHA-256$"), "no password hashes: {sql}");
    assert_eq!(facts["counts"]["public.notes"], 10);
    // A superuser's globals keep the password hashes, and say nothing.
    let (facts, sql) = globals("admin-db");
    assert!(facts["notes"]["globals"].is_null(), "{facts}");
    assert!(sql.contains("SCRAM-SHA-256$"), "{sql}");
}

/// A live restore into a database that no longer exists creates it, and
/// says nothing about a previous database kept aside: there is none.
#[test]
fn postgres_live_restore_into_a_missing_database_claims_no_kept_copy() {
    let db = unique("lb_gone");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 42)")
        .unwrap();
    let env = Env::new();
    let cfg = config(
        &env,
        &pg_service("app-db", &db, "lifeboat_test", Path::new(PASSWORD_FILE), ""),
    );
    lb(&env, &cfg).args(["backup", "app-db"]).assert().success();
    pg("postgres")
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .unwrap();
    // In a terminal, as an admin runs it: the plan, then the name typed.
    let t = common::tmux::Tmux::start(
        "fidelity-gone",
        150,
        50,
        &format!(
            "cd {dir} && env LIFEBOAT_KEY_DIR={keys} LIFEBOAT_CACHE_DIR={cache} HOME={home} {bin} --config {cfg} restore app-db --live; echo EXITED $?; sleep 600",
            dir = env.path("").display(),
            keys = env.path("keys").display(),
            cache = env.path("cache").display(),
            home = env.path("home").display(),
            bin = env!("CARGO_BIN_EXE_lifeboat"),
            cfg = cfg.display(),
        ),
    );
    let plan = t.wait_for("Type the service name", Duration::from_secs(60));
    assert!(
        plan.contains("nothing is there now") && !plan.contains("_lifeboat_old"),
        "the plan keeps nothing aside: {plan}"
    );
    t.literal("app-db");
    t.keys(&["Enter"]);
    let said = t.wait_for("EXITED", Duration::from_secs(120));
    assert!(said.contains("EXITED 0"), "{said}");
    assert!(
        said.contains(&format!("database `{db}` created (there was none)")),
        "{said}"
    );
    assert!(
        !said.contains("_lifeboat_old") && !said.contains("kept as"),
        "no previous database was kept: {said}"
    );
    let n: i64 = pg(&db)
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 42);
    let leftovers: i64 = pg("postgres")
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            &[&format!("{db}_lifeboat%")],
        )
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0);
    drop_pg_databases(&db);
}

/// Every `.lifeboat-cred-*` file under `dir`, at any depth.
fn credential_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with(".lifeboat-cred-") {
            out.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(credential_files(&p));
        }
    }
    out
}

/// A `kill -9` while `pg_dump` runs leaves its password file behind; it
/// is in a private directory under the state dir, never the shared
/// temporary directory, and the next run removes it.
#[test]
fn a_password_file_left_by_a_killed_backup_is_removed_by_the_next_run() {
    use std::os::unix::fs::PermissionsExt;
    let db = unique("lb_cred");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let env = Env::new();
    let cfg = config(
        &env,
        &pg_service("app-db", &db, "lifeboat_test", Path::new(PASSWORD_FILE), ""),
    );
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let started = env.path("pg_dump.pid");
    let slow = fake_tool(
        &env,
        "pg_dump",
        &format!("echo $$ > {}.new && mv {0}.new {0}\nexec sleep 300", started.display()),
    );
    let mut backup = env
        .lb_process()
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "app-db"])
        .env("PATH", &slow)
        .env("TMPDIR", &tmp)
        .env_remove("XDG_RUNTIME_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(
            backup.try_wait().unwrap().is_none(),
            "the backup ended before pg_dump started"
        );
        assert!(Instant::now() < deadline, "pg_dump was never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pg_dump: i32 = std::fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let during = credential_files(env.dir.path());
    assert_eq!(during.len(), 1, "pg_dump's password file: {during:?}");
    let private = env.path("state/credentials");
    assert_eq!(during[0].parent(), Some(private.as_path()));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&private), 0o700);
    assert_eq!(mode(&during[0]), 0o600);
    assert!(credential_files(&tmp).is_empty());

    backup.kill().unwrap(); // SIGKILL: nothing gets to clean up
    backup.wait().unwrap();
    // SAFETY: a plain signal to the fake pg_dump this test started.
    unsafe { libc::kill(pg_dump, libc::SIGKILL) };
    assert_eq!(
        credential_files(env.dir.path()),
        during,
        "the killed run left its file"
    );

    lb(&env, &cfg)
        .env("TMPDIR", &tmp)
        .env_remove("XDG_RUNTIME_DIR")
        .args(["backup", "app-db"])
        .assert()
        .success();
    assert_eq!(credential_files(env.dir.path()), Vec::<PathBuf>::new());
    drop_pg_databases(&db);
}
