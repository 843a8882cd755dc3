//! Databases come back exactly, and the check after a restore proves it:
//! each test runs the built binary against the real servers on loopback
//! (`scripts/test-deps.sh` starts them and creates the `lifeboat_test`
//! login) and fails saying so when one cannot be reached.

mod common;
#[path = "fidelity/support.rs"]
mod support;

use common::db::{mariadb, pg, unique, PASSWORD_FILE};
use common::{fake_tool, Env};
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

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
            "CREATE EXTENSION pgcrypto;
             CREATE TABLE items (id serial PRIMARY KEY, price int, seen timestamptz);
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
    assert_eq!(objects["extension pgcrypto"], "installed");
    assert!(
        objects
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains("digest")),
        "an extension's functions are the extension's: {objects}"
    );
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
        &format!(
            "echo $$ > {}.new && mv {0}.new {0}\nexec sleep 300",
            started.display()
        ),
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

/// A failing `pg_dump` is reported by its cause, even when detail, hint
/// and query lines follow it.
#[test]
fn a_failing_pg_dump_is_reported_by_its_first_error_line() {
    let db = unique("lb_dumpfail");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let env = Env::new();
    let cfg = config(
        &env,
        &pg_service("app-db", &db, "lifeboat_test", Path::new(PASSWORD_FILE), ""),
    );
    let path = fake_tool(
        &env,
        "pg_dump",
        "echo 'pg_dump: error: query failed: ERROR:  permission denied for table secrets' >&2\necho 'pg_dump: detail: Query was: LOCK TABLE public.secrets IN ACCESS SHARE MODE' >&2\necho 'pg_dump: hint: grant SELECT' >&2\necho 'pg_dump: hint: or dump as the owner' >&2\necho 'pg_dump: hint: see the docs' >&2\nexit 1",
    );
    let said = fails(lb(&env, &cfg).env("PATH", &path).args(["backup", "app-db"]));
    assert!(
        said.contains("pg_dump: error: query failed: ERROR:  permission denied for table secrets"),
        "{said}"
    );
    assert!(said.contains("see the docs"), "{said}");
    drop_pg_databases(&db);
}

/// Backing up and restoring a SQLite database in WAL mode, with the
/// application's connection open, leaves no `-wal`/`-shm` of Lifeboat's
/// copies in the cache or beside the database.
#[test]
fn sqlite_backup_and_live_restore_leave_no_scratch_wal_or_shm() {
    let env = Env::new();
    let live = env.path("app/db.sqlite3");
    std::fs::create_dir_all(live.parent().unwrap()).unwrap();
    let app = rusqlite::Connection::open(&live).unwrap();
    app.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO items (body) SELECT 'item ' || i FROM n;",
    )
    .unwrap();
    assert!(env.path("app/db.sqlite3-wal").exists(), "the WAL is in use");
    let cfg = config(
        &env,
        &format!("[services.sonarr]\ntier = \"supporting\"\nsources = [{{ kind = \"sqlite\", path = \"{}\" }}]\n", live.display()),
    );
    lb(&env, &cfg).args(["backup", "sonarr"]).assert().success();
    assert_eq!(scratch_files(env.dir.path()), Vec::<PathBuf>::new());
    drop(app);
    lb(&env, &cfg)
        .args(["restore", "sonarr", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(scratch_files(env.dir.path()), Vec::<PathBuf>::new());
    let n: i64 = rusqlite::Connection::open(&live)
        .unwrap()
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2000);
}

/// What `pg_restore -l` says of a dump's compression.
fn dump_compression(dump: &Path) -> String {
    let out = std::process::Command::new(real_tool("pg_restore"))
        .arg("-l")
        .arg(dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("Compression:"))
        .unwrap_or_default()
        .trim_start_matches(';')
        .trim()
        .to_string()
}

/// Dumps are taken uncompressed (so they deduplicate), and a restore point
/// from before, holding a compressed dump, still restores.
#[test]
fn postgres_dumps_are_uncompressed_and_older_compressed_ones_still_restore() {
    let db = unique("lb_z0");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE orders (id serial PRIMARY KEY, note text); INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 3000) g")
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
    // As releases before did: pg_dump with its default compression.
    let real = real_tool("pg_dump");
    let old = fake_tool(
        &env,
        "pg_dump",
        &format!("for a in \"$@\"; do shift; [ \"$a\" = --compress=0 ] || set -- \"$@\" \"$a\"; done\nexec {real} \"$@\""),
    );
    lb(&env, &cfg)
        .env("PATH", &old)
        .args(["backup", "shop-db"])
        .assert()
        .success();
    lb(&env, &cfg)
        .args(["backup", "shop-db"])
        .assert()
        .success();
    let snaps = snapshots(&env, &cfg, "shop-db");
    let dump_of = |snap: &serde_json::Value, dir: &str| {
        let target = env.path(dir);
        lb(&env, &cfg)
            .args(["restore", snap["id"].as_str().unwrap(), "--target"])
            .arg(&target)
            .assert()
            .success();
        target.join(format!(".lifeboat/main/{db}.pgdump"))
    };
    let (older, newer) = (dump_of(&snaps[0], "old"), dump_of(&snaps[1], "new"));
    let compressed = dump_compression(&older);
    assert!(
        !compressed.ends_with(": 0") && !compressed.ends_with("none"),
        "the older dump is compressed: {compressed}"
    );
    let plain = dump_compression(&newer);
    assert!(
        plain.ends_with(": 0") || plain.ends_with("none"),
        "the new dump is not: {plain}"
    );

    pg(&db).batch_execute("DELETE FROM orders").unwrap();
    lb(&env, &cfg)
        .args([
            "restore",
            snaps[0]["id"].as_str().unwrap(),
            "--live",
            "--yes",
        ])
        .assert()
        .success();
    let n: i64 = pg(&db)
        .query_one("SELECT count(*) FROM orders", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3000, "the compressed dump restored");
    drop_pg_databases(&db);
}

/// A SQLite database is stored in whole pages: rows inserted with random
/// keys change pages all over the file, and only those pages are new.
#[test]
fn sqlite_inserts_with_random_keys_add_only_the_pages_they_change() {
    let env = Env::new();
    let live = env.path("app/app.db");
    std::fs::create_dir_all(live.parent().unwrap()).unwrap();
    let app = rusqlite::Connection::open(&live).unwrap();
    app.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, body TEXT);",
    )
    .unwrap();
    let insert = |n: u32| {
        for _ in 0..n / 1000 {
            app.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                 INSERT INTO items (key, body) SELECT lower(hex(randomblob(16))), hex(randomblob(120)) FROM n;",
            )
            .unwrap();
        }
    };
    insert(40_000);
    let cfg = config(
        &env,
        &format!("[services.gitea]\ntier = \"important\"\nsources = [{{ kind = \"sqlite\", path = \"{}\" }}]\n", live.display()),
    );
    lb(&env, &cfg).args(["backup", "gitea"]).assert().success();
    insert(1_000);
    let rows: i64 = app
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    drop(app);
    lb(&env, &cfg).args(["backup", "gitea"]).assert().success();
    let snaps = snapshots(&env, &cfg, "gitea");
    let first = snaps[0]["stats"]["bytes_added"].as_u64().unwrap();
    let second = snaps[1]["stats"]["bytes_added"].as_u64().unwrap();
    // Content-defined chunks of a megabyte each held a changed page: the
    // second backup stored the whole database again.
    assert!(
        second * 4 < first,
        "{second} bytes added by 2.5 % more rows, {first} for the database"
    );

    std::fs::remove_file(&live).unwrap();
    lb(&env, &cfg)
        .args(["restore", "gitea", "--live", "--yes"])
        .assert()
        .success();
    let n: i64 = rusqlite::Connection::open(&live)
        .unwrap()
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, rows);
}

/// `check = "checksums"`: a row changed without changing any count fails
/// the check of a restored copy.
#[test]
fn postgres_checksums_catch_a_changed_row() {
    let db = unique("lb_sums");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE items (id serial PRIMARY KEY, note text, price numeric); INSERT INTO items (note, price) SELECT 'item ' || g, g * 1.5 FROM generate_series(1, 2000) g")
        .unwrap();
    let env = Env::new();
    let cfg = config(
        &env,
        &pg_service(
            "shop-db",
            &db,
            "lifeboat_test",
            Path::new(PASSWORD_FILE),
            "check = \"checksums\"\n",
        ),
    );
    lb(&env, &cfg)
        .args(["backup", "shop-db"])
        .assert()
        .success();
    let facts = &snapshots(&env, &cfg, "shop-db")[0]["sources"][0]["facts"];
    assert!(
        facts["objects"]["checksum public.items"].is_string(),
        "{facts}"
    );
    lb(&env, &cfg)
        .args(["drill", "shop-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok:"));

    let real = real_tool("pg_restore");
    let path = fake_tool(
        &env,
        "pg_restore",
        &format!(
            "{real} \"$@\" || exit $?\nfor a in \"$@\"; do [ \"$prev\" = --dbname ] && db=$a; prev=$a; done\npsql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U lifeboat_test --no-password -d \"$db\" -c \"UPDATE items SET price = 0 WHERE id = 7\" >/dev/null"
        ),
    );
    let said = fails(lb(&env, &cfg).env("PATH", &path).args(["drill", "shop-db"]));
    assert!(
        said.contains("FAILED") && said.contains("checksum public.items"),
        "{said}"
    );
    drop_pg_databases(&db);
}
