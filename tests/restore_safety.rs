//! Restores never make things worse: every way a restore could once make
//! an incident worse, through the real binary, against real PostgreSQL,
//! MariaDB and SQLite. Each test names the case it guards.

mod common;

use common::db::{mariadb, password, pg, unique, PASSWORD_FILE};
use common::Env;
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNBOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks");

/// A config with one local repository and the given services; the
/// repository is created.
fn config(env: &Env, services: &str) -> PathBuf {
    let path = env.path("lifeboat.toml");
    let text = format!(
        "state_dir = \"{state}\"\ncache_dir = \"{cache}\"\n[repositories.local]\npath = \"{repo}\"\nkey_file = \"{key}\"\n{services}",
        state = env.path("state").display(),
        cache = env.path("cache").display(),
        repo = env.path("repo").display(),
        key = env.path("admin.key").display(),
    );
    fs::write(&path, text).unwrap();
    env.init(&env.path("repo"));
    path
}

fn lb(env: &Env, cfg: &Path) -> assert_cmd::Command {
    let mut c = env.lb();
    c.arg("--config").arg(cfg);
    c
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn hash(p: &Path) -> String {
    blake3::hash(&fs::read(p).unwrap()).to_hex().to_string()
}

/// Every file under `root` (relative path → content hash).
fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, hash(&p)));
            }
        }
    }
    out.sort();
    out
}

fn names_containing(dir: &Path, what: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(what))
        .collect()
}

fn sqlite_rows(p: &Path) -> i64 {
    rusqlite::Connection::open(p)
        .unwrap()
        .query_row("SELECT count(*) FROM ciphers", [], |r| r.get(0))
        .unwrap()
}

/// Case 2: a Vaultwarden data directory with its SQLite database inside a
/// files source, with and without the recommended exclude.
#[test]
fn the_vaultwarden_layout_restores_live_with_its_database_and_excluded_paths_in_place() {
    for exclude in ["\nexclude = [\"db.sqlite3*\", \"icon_cache\"]", ""] {
        let env = Env::new();
        let data = env.path("vw/data");
        fs::create_dir_all(data.join("attachments")).unwrap();
        fs::write(data.join("attachments/a.bin"), common::bytes(1, 50_000)).unwrap();
        fs::write(data.join("config.json"), b"{\"domain\": \"https://vw\"}").unwrap();
        let db = data.join("db.sqlite3");
        {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL; CREATE TABLE ciphers (id INTEGER PRIMARY KEY, data TEXT);",
            )
            .unwrap();
            for i in 0..500 {
                c.execute(
                    "INSERT INTO ciphers (data) VALUES (?1)",
                    [format!("secret {i}")],
                )
                .unwrap();
            }
        }
        let cfg = config(
            &env,
            &format!(
                r#"[services.vaultwarden]
tier = "critical"
[[services.vaultwarden.sources]]
kind = "files"
paths = ["{data}"]{exclude}
[[services.vaultwarden.sources]]
kind = "sqlite"
name = "db"
path = "{db}"
"#,
                data = data.display(),
                db = db.display()
            ),
        );
        lb(&env, &cfg)
            .args(["backup", "vaultwarden"])
            .assert()
            .success();
        // After the backup: the vault gains rows, icons are cached (never
        // backed up when excluded), a file is damaged.
        let live = rusqlite::Connection::open(&db).unwrap();
        live.execute_batch("INSERT INTO ciphers (data) VALUES ('after the backup')")
            .unwrap();
        fs::create_dir_all(data.join("icon_cache")).unwrap();
        fs::write(data.join("icon_cache/github.png"), common::bytes(9, 4000)).unwrap();
        fs::write(data.join("config.json"), b"garbage").unwrap();
        let icons = tree(&data.join("icon_cache"));
        // The restore point's own SQLite copy, for comparison.
        lb(&env, &cfg)
            .args(["restore", "vaultwarden", ".lifeboat/db", "--target"])
            .arg(env.path("point"))
            .assert()
            .success();
        let point_copy = env.path("point/.lifeboat/db/db.sqlite3");

        let out = lb(&env, &cfg)
            .args(["restore", "vaultwarden", "--live", "--yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(live);
        assert!(db.exists(), "the database is there (exclude {exclude:?})");
        assert_eq!(
            hash(&db),
            hash(&point_copy),
            "the live database is the restore point's SQLite copy, byte for byte (exclude {exclude:?})"
        );
        assert_eq!(sqlite_rows(&db), 500);
        for companion in ["db.sqlite3-wal", "db.sqlite3-shm"] {
            assert!(
                !data.join(companion).exists(),
                "no stale {companion} beside the restored database"
            );
        }
        assert_eq!(
            fs::read(data.join("config.json")).unwrap(),
            b"{\"domain\": \"https://vw\"}"
        );
        if !exclude.is_empty() {
            assert_eq!(
                tree(&data.join("icon_cache")),
                icons,
                "an excluded path stays where it was"
            );
        }
        let parent = env.path("vw");
        assert!(
            names_containing(&parent, "staging").is_empty(),
            "no staging is left"
        );
        assert_eq!(
            names_containing(&parent, "lifeboat-kept").len(),
            1,
            "what was replaced is kept once"
        );
    }
}

/// Case 3: `--force` of one file replaces that file, not its directory.
#[test]
fn force_of_one_file_replaces_only_that_file() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..2000 {
        fs::write(src.join(format!("f{i:04}.txt")), format!("file {i}")).unwrap();
    }
    let repo = env.path("repo");
    env.init(&repo);
    env.lbk()
        .arg("--repo")
        .arg(&repo)
        .args(["backup", "--name", "docs"])
        .arg(&src)
        .assert()
        .success();
    let target = env.path("target");
    env.lbk()
        .arg("--repo")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .success();
    let dir = common::restored(&target, &src);
    fs::write(dir.join("f0007.txt"), b"damaged").unwrap();
    fs::write(dir.join("new-since.txt"), b"keep me").unwrap();
    let one = format!("{}/f0007.txt", src.display());
    for _ in 0..2 {
        // Twice within a second: each restore keeps its own copy.
        env.lbk()
            .arg("--repo")
            .arg(&repo)
            .args(["restore", "latest", &one, "--force", "--target"])
            .arg(&target)
            .assert()
            .success()
            .stdout(predicate::str::contains("lifeboat rollback"));
    }
    assert_eq!(fs::read(dir.join("f0007.txt")).unwrap(), b"file 7");
    assert_eq!(fs::read(dir.join("new-since.txt")).unwrap(), b"keep me");
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        2001,
        "every sibling stays"
    );
    let kept = names_containing(&env.path(""), "lifeboat-kept");
    assert_eq!(
        kept.len(),
        2,
        "each restore kept what it replaced: {kept:?}"
    );
    assert!(names_containing(&env.path(""), "staging").is_empty());
    // The first kept the damaged file, the second the first's restore.
    let mut contents: Vec<Vec<u8>> = kept
        .iter()
        .map(|k| fs::read(common::restored(&env.path(k), &src).join("f0007.txt")).unwrap())
        .collect();
    contents.sort();
    assert_eq!(contents, [b"damaged".to_vec(), b"file 7".to_vec()]);
}

fn pg_rows(db: &str) -> (i64, String) {
    let row = pg(db)
        .query_one(
            "SELECT count(*), coalesce(md5(string_agg(id::text || ':' || v, ',' ORDER BY id)), '') FROM t",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn pg_app(db: &str, files: &Path, marker: &Path) -> String {
    format!(
        r#"[services.app]
tier = "critical"
stop = "touch {marker}"
start = "rm -f {marker}"
[[services.app.sources]]
kind = "postgres"
name = "db"
database = "{db}"
host = "127.0.0.1"
user = "lifeboat_test"
password_file = "{PASSWORD_FILE}"
lock_timeout = "5s"
[[services.app.sources]]
kind = "files"
paths = ["{files}"]
"#,
        marker = marker.display(),
        files = files.display()
    )
}

fn drop_databases(prefix: &str) {
    let mut admin = pg("postgres");
    for r in admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&format!("{prefix}%")],
        )
        .unwrap()
    {
        let d: String = r.get(0);
        admin
            .batch_execute(&format!("DROP DATABASE \"{d}\" WITH (FORCE)"))
            .unwrap();
    }
}

fn databases(prefix: &str) -> Vec<String> {
    pg("postgres")
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
            &[&format!("{prefix}%")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Case 1 and rollback: db-corruption restores the database only, and a
/// rollback puts the database and files back as they were before.
#[test]
fn db_corruption_touches_no_files_and_rollback_puts_everything_back() {
    let db = unique("lb_safe");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'night one ' || g FROM generate_series(1, 3000) g")
        .unwrap();
    let env = Env::new();
    let files = env.path("app/files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("upload.pdf"), common::bytes(3, 20_000)).unwrap();
    let marker = env.path("app-stopped");
    let cfg = config(&env, &pg_app(&db, &files, &marker));
    lb(&env, &cfg).args(["backup", "app"]).assert().success();
    let night_one = pg_rows(&db);

    // A bad migration, and a file uploaded after the backup.
    pg(&db)
        .batch_execute(
            "UPDATE t SET v = 'migrated' WHERE id % 3 = 0; DELETE FROM t WHERE id > 2500",
        )
        .unwrap();
    fs::write(files.join("after-backup.pdf"), b"uploaded at noon").unwrap();
    let before = (pg_rows(&db), tree(&files));

    let out = lb(&env, &cfg)
        .args([
            "recover",
            "db-corruption",
            "--service",
            "app",
            "--yes",
            "--runbooks",
            RUNBOOKS,
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("plan: postgres `db`"),
        "the plan names the database: {said}"
    );
    assert!(!said.contains("plan: files"), "and no files: {said}");
    assert_eq!(pg_rows(&db), night_one, "the database is back at night one");
    assert_eq!(
        fs::read(files.join("after-backup.pdf")).unwrap(),
        b"uploaded at noon",
        "a file written after the backup stays"
    );
    assert!(
        names_containing(&env.path("app"), "lifeboat").is_empty(),
        "no copy of the files beside them"
    );
    assert!(!marker.exists(), "the application was started again");
    let job = said
        .lines()
        .find_map(|l| l.strip_prefix("job ").and_then(|r| r.split(':').next()))
        .unwrap()
        .to_string();
    assert_eq!(databases(&format!("{db}_lifeboat_old_")).len(), 1);

    // Health counts the checked restore as proof the service restores.
    let h = lb(&env, &cfg).args(["--json", "health"]).output().unwrap();
    let report = &json_lines(&h.stdout)[0];
    assert!(
        report["services"][0]["drill"]["text"]
            .as_str()
            .is_some_and(|t| !t.contains("never")),
        "{report}"
    );
    assert_eq!(report["kept"]["count"], 1, "{report}");

    // Rollback: the database as it was just before the restore; the
    // restored one is kept in turn.
    let out = lb(&env, &cfg)
        .args(["rollback", &job, "--yes", "--runbooks", RUNBOOKS])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (pg_rows(&db), tree(&files)),
        before,
        "rolled back by content"
    );
    assert!(!marker.exists(), "started again after the rollback");
    assert!(databases(&format!("{db}_lifeboat_old_")).is_empty());
    assert_eq!(databases(&format!("{db}_lifeboat_undone_")).len(), 1);
    drop_databases(&db);
}

/// A whole-service live restore and its rollback: files and database.
#[test]
fn rollback_of_a_live_restore_returns_files_and_database_by_content() {
    let db = unique("lb_roll");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g")
        .unwrap();
    let env = Env::new();
    let files = env.path("app/files");
    fs::create_dir_all(files.join("sub")).unwrap();
    fs::write(files.join("sub/a.bin"), common::bytes(5, 70_000)).unwrap();
    let marker = env.path("app-stopped");
    let cfg = config(&env, &pg_app(&db, &files, &marker));
    lb(&env, &cfg).args(["backup", "app"]).assert().success();
    pg(&db)
        .batch_execute("INSERT INTO t SELECT g, 'later' FROM generate_series(2001, 2100) g; UPDATE t SET v = 'changed' WHERE id < 10")
        .unwrap();
    fs::write(files.join("sub/a.bin"), b"edited").unwrap();
    fs::write(files.join("new.txt"), b"new").unwrap();
    let before = (pg_rows(&db), tree(&files));

    let out = lb(&env, &cfg)
        .args(["--json", "restore", "app", "--live", "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = &json_lines(&out.stdout)[0];
    let id = report["id"].as_str().unwrap().to_string();
    assert_ne!((pg_rows(&db), tree(&files)), before);

    lb(&env, &cfg)
        .args(["rollback", &id, "--yes", "--runbooks", RUNBOOKS])
        .assert()
        .success();
    assert_eq!((pg_rows(&db), tree(&files)), before);
    // The rollback can itself be listed and discarded.
    let l = lb(&env, &cfg)
        .args(["--json", "leftovers"])
        .output()
        .unwrap();
    let list = &json_lines(&l.stdout)[0];
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|x| x["restore"] != id.as_str()),
        "the restore's kept copies went back into place: {list}"
    );
    drop_databases(&db);
}

/// Case 9: kept copies are listed with their size, shown by health, and
/// removed on request; a kept secret stays private.
#[test]
fn leftovers_are_listed_shown_by_health_and_removed_on_request() {
    let env = Env::new();
    let app = env.path("srv/app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("data.bin"), common::bytes(2, 300_000)).unwrap();
    let secrets = env.path("srv/app-secrets");
    fs::create_dir_all(&secrets).unwrap();
    fs::write(secrets.join(".env"), b"DB_PASSWORD=hunter2\n").unwrap();
    let cfg = config(
        &env,
        &format!(
            r#"[services.app]
tier = "important"
[[services.app.sources]]
kind = "files"
paths = ["{app}"]
[[services.app.sources]]
kind = "secrets"
paths = ["{secrets}"]
"#,
            app = app.display(),
            secrets = secrets.display()
        ),
    );
    lb(&env, &cfg).args(["backup", "app"]).assert().success();
    fs::write(app.join("data.bin"), b"broken").unwrap();
    fs::write(secrets.join(".env"), b"DB_PASSWORD=wrong\n").unwrap();
    let out = lb(&env, &cfg)
        .args(["--json", "restore", "app", "--live", "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = json_lines(&out.stdout)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let l = lb(&env, &cfg)
        .args(["--json", "leftovers"])
        .output()
        .unwrap();
    let list = json_lines(&l.stdout)[0].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|x| x["restore"] == id.as_str()));
    assert!(list.iter().any(|x| x["bytes"].as_u64() == Some(6)));
    for x in &list {
        let at = PathBuf::from(x["at"].as_str().unwrap());
        assert!(at.exists(), "{at:?}");
        if at.to_string_lossy().contains("secrets") {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&at).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "kept secrets are private while they wait");
        }
    }
    let h = lb(&env, &cfg).args(["health"]).output().unwrap();
    let text = String::from_utf8_lossy(&h.stdout);
    assert!(
        text.contains("2 rollback copies kept by restores"),
        "{text}"
    );
    lb(&env, &cfg)
        .args(["leftovers", "remove", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed"));
    for x in &list {
        assert!(!Path::new(x["at"].as_str().unwrap()).exists());
    }
    let l = lb(&env, &cfg)
        .args(["--json", "leftovers"])
        .output()
        .unwrap();
    assert_eq!(json_lines(&l.stdout)[0], serde_json::json!([]));
}

fn job_ids(state: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(state.join("jobs")) else {
        return vec![];
    };
    rd.filter_map(|e| {
        e.ok()?
            .file_name()
            .to_str()?
            .strip_suffix(".jsonl")
            .map(str::to_owned)
    })
    .collect()
}

fn job_json(env: &Env, cfg: &Path) -> Vec<serde_json::Value> {
    let out = lb(env, cfg).args(["--json", "jobs"]).output().unwrap();
    json_lines(&out.stdout)[0].as_array().unwrap().clone()
}

/// Case 5: a cancelled PostgreSQL restore leaves no new database, starts
/// the service it stopped, records its real duration and a report.
#[test]
fn a_cancelled_postgres_restore_cleans_up_and_starts_the_service_again() {
    let db = unique("lb_cancel");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    // Big enough that the restore is still loading when the cancel lands.
    pg(&db)
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) || md5((g+1)::text) FROM generate_series(1, 600000) g; CREATE INDEX ON t (v)")
        .unwrap();
    let env = Env::new();
    let files = env.path("app/files");
    fs::create_dir_all(&files).unwrap();
    let marker = env.path("app-stopped");
    let cfg = config(&env, &pg_app(&db, &files, &marker));
    lb(&env, &cfg).args(["backup", "app"]).assert().success();
    pg(&db)
        .batch_execute("DELETE FROM t WHERE id > 1000")
        .unwrap();
    let before = pg_rows(&db);

    lb(&env, &cfg)
        .args([
            "recover",
            "db-corruption",
            "--service",
            "app",
            "--yes",
            "--detach",
            "--runbooks",
            RUNBOOKS,
        ])
        .assert()
        .success();
    let state = env.path("state");
    let start = Instant::now();
    // Wait for the new database to appear: the restore is under way.
    while databases(&format!("{db}_lifeboat_new_")).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the restore never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(marker.exists(), "the job stopped the service");
    let id = job_ids(&state).pop().unwrap();
    lb(&env, &cfg)
        .args(["jobs", "cancel", &id])
        .assert()
        .success();
    let view = loop {
        let j = job_json(&env, &cfg)
            .into_iter()
            .find(|j| j["id"] == id.as_str())
            .unwrap();
        if !j["finished"].is_null() {
            break j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the job did not stop: {j}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(view["finished"][0], "cancelled", "{view}");
    assert!(
        view["finished"][1].as_u64().unwrap() > 0,
        "a real duration: {view}"
    );
    assert!(
        view["finished"][2].is_string(),
        "a report was written: {view}"
    );
    let steps = view["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s[1] == "interrupted"),
        "the step that was cut short says so: {steps:?}"
    );
    assert!(steps.iter().all(|s| s[1] != "running"), "{steps:?}");
    assert!(
        databases(&format!("{db}_lifeboat_new_")).is_empty(),
        "the half-restored database was dropped"
    );
    assert!(databases(&format!("{db}_lifeboat_old_")).is_empty());
    assert_eq!(pg_rows(&db), before, "the live database is untouched");
    assert!(
        !marker.exists(),
        "the service this job stopped was started again"
    );
    drop_databases(&db);
}

/// Case 5, MariaDB: a swap that gives up on a lock leaves nothing behind.
#[test]
fn a_mariadb_swap_that_times_out_on_a_lock_leaves_nothing_behind() {
    let db = unique("lb_lock");
    mariadb(&format!(
        "CREATE DATABASE {db}; CREATE TABLE {db}.t (id int PRIMARY KEY, v text); INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b');"
    ));
    let env = Env::new();
    let cfg = config(
        &env,
        &format!(
            r#"[services.shop]
tier = "important"
[[services.shop.sources]]
kind = "mysql"
database = "{db}"
host = "127.0.0.1"
user = "lifeboat_test"
password_file = "{PASSWORD_FILE}"
lock_timeout = "2s"
"#
        ),
    );
    lb(&env, &cfg).args(["backup", "shop"]).assert().success();
    mariadb(&format!("INSERT INTO {db}.t VALUES (3, 'c')"));
    // An application holding a transaction open on the table.
    let mut holder = std::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-u", "lifeboat_test"])
        .env("MYSQL_PWD", password())
        .arg("-e")
        .arg(format!(
            "BEGIN; SELECT * FROM {db}.t FOR UPDATE; SELECT SLEEP(20); COMMIT;"
        ))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while mariadb(
        "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP%'",
    ) == "0"
    {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = lb(&env, &cfg)
        .args(["restore", "shop", "--live", "--yes"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("lock_timeout") && err.contains("left as it was"),
        "{err}"
    );
    let _ = holder.kill();
    let _ = holder.wait();
    let left = mariadb(&format!(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE '{db}_lifeboat%'"
    ));
    assert_eq!(left, "0", "neither an empty old nor a new database is left");
    assert_eq!(mariadb(&format!("SELECT COUNT(*) FROM {db}.t")), "3");
    mariadb(&format!("DROP DATABASE {db}"));
}

fn sqlite_db(p: &Path, rows: usize) {
    let c = rusqlite::Connection::open(p).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS ciphers (id INTEGER PRIMARY KEY, data TEXT);")
        .unwrap();
    for i in 0..rows {
        c.execute(
            "INSERT INTO ciphers (data) VALUES (?1)",
            [format!("row {i}")],
        )
        .unwrap();
    }
}

/// Sources that overlap in the ways real layouts do: a database added to
/// the config after the restore point, a database inside an excluded
/// directory, a path restore aimed at the database file itself, and the
/// kept copy of an earlier restore inside the tree.
#[test]
fn overlapping_sources_never_lose_what_another_source_owns() {
    let env = Env::new();
    let app = env.path("srv/app");
    fs::create_dir_all(app.join("db")).unwrap();
    fs::create_dir_all(app.join("db/tmp")).unwrap();
    fs::write(app.join("index.html"), b"v1").unwrap();
    fs::write(app.join("db/tmp/scratch"), b"excluded scratch").unwrap();
    let db = app.join("db/app.sqlite");
    sqlite_db(&db, 100);
    let files_only = format!(
        "[services.app]\ntier = \"important\"\n[[services.app.sources]]\nkind = \"files\"\npaths = [\"{}\"]\nexclude = [\"{}/db\"]\n",
        app.display(),
        app.display()
    );
    let cfg = config(&env, &files_only);
    // Night one: only the files are backed up (the database is excluded).
    lb(&env, &cfg).args(["backup", "app"]).assert().success();
    let first = json_lines(
        &lb(&env, &cfg)
            .args(["--json", "snapshots", "app"])
            .output()
            .unwrap()
            .stdout,
    )[0][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The database gets its own source; night two backs it up.
    fs::write(
        &cfg,
        fs::read_to_string(&cfg).unwrap()
            + &format!(
                "[[services.app.sources]]\nkind = \"sqlite\"\nname = \"db\"\npath = \"{}\"\n",
                db.display()
            ),
    )
    .unwrap();
    lb(&env, &cfg).args(["backup", "app"]).assert().success();
    sqlite_db(&db, 5);
    fs::write(app.join("index.html"), b"broken").unwrap();

    // Restoring night one (which has no database): the live database
    // stays, with its rows, and the page comes back.
    lb(&env, &cfg)
        .args(["restore", &first, "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(fs::read(app.join("index.html")).unwrap(), b"v1");
    assert_eq!(
        sqlite_rows(&db),
        105,
        "the database the point lacks is left alone"
    );
    assert_eq!(
        fs::read(app.join("db/tmp/scratch")).unwrap(),
        b"excluded scratch"
    );

    // Night two holds the database, inside the excluded directory: it is
    // restored there, the rest of the excluded directory stays.
    fs::write(app.join("index.html"), b"broken again").unwrap();
    lb(&env, &cfg)
        .args(["restore", "app", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(sqlite_rows(&db), 100);
    assert_eq!(
        fs::read(app.join("db/tmp/scratch")).unwrap(),
        b"excluded scratch"
    );

    // A one-path restore of the database file itself is the database
    // source's business.
    let out = lb(&env, &cfg)
        .args([
            "recover",
            "files-deleted",
            "--service",
            "app",
            "--yes",
            "--runbooks",
            RUNBOOKS,
        ])
        .arg(format!("--input=path={}", db.display()))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("is the data of the sqlite source `db`"),
        "{said}"
    );
    assert_eq!(sqlite_rows(&db), 100, "and nothing was touched");

    // A database-only restore keeps its old copy inside the tree; a later
    // whole restore leaves that kept copy where it is.
    lb(&env, &cfg)
        .args(["restore", "app", "--live", "--yes", "--kinds", "sqlite"])
        .assert()
        .success();
    let kept_db: Vec<String> = names_containing(&app.join("db"), "lifeboat-kept");
    assert_eq!(kept_db.len(), 1, "{kept_db:?}");
    lb(&env, &cfg)
        .args(["restore", "app", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(names_containing(&app.join("db"), "lifeboat-kept"), kept_db);
    // Every kept copy can still be listed and rolled back.
    let l = lb(&env, &cfg)
        .args(["--json", "leftovers"])
        .output()
        .unwrap();
    let list = json_lines(&l.stdout)[0].as_array().unwrap().clone();
    assert!(
        list.iter()
            .any(|x| x["at"].as_str().unwrap().ends_with(&kept_db[0])),
        "{list:?}"
    );
}
