//! Probes through the real binary: a drill runs the service's probes
//! against its sandbox (real PostgreSQL and MariaDB on loopback, real
//! files, real commands) and fails naming the probe that failed.

mod common;

use common::db::{mariadb, pg, unique, PASSWORD_FILE};
use common::Env;
use std::fs;
use std::path::{Path, PathBuf};

/// A config with one repository and `services`; returns its path.
fn config(env: &Env, services: &str) -> PathBuf {
    let key = env.init(&env.path("repo"));
    let path = env.path("lifeboat.toml");
    fs::write(
        &path,
        format!(
            "cache_dir = \"{}\"\nstate_dir = \"{}\"\n[repositories.local]\npath = \"{}\"\nkey_file = \"{}\"\n{services}",
            env.path("cache").display(),
            env.path("state").display(),
            env.path("repo").display(),
            key.display()
        ),
    )
    .unwrap();
    path
}

fn lb(env: &Env, config: &Path, args: &[&str]) -> (bool, String) {
    let out = env
        .lb()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn pg_databases(prefix: &str) -> Vec<String> {
    pg("postgres")
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&format!("{prefix}%")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_sql_probe_expecting_a_row_the_point_lacks_fails_the_drill_and_names_the_probe() {
    let env = Env::new();
    let db = unique("lb_probe_pg");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE users (name text, role text); INSERT INTO users VALUES ('alice', 'admin'), ('carol', 'user');")
        .unwrap();
    let cfg = config(
        &env,
        &format!(
            r#"[services.app]
tier = "critical"
[[services.app.sources]]
kind = "postgres"
name = "db"
database = "{db}"
host = "127.0.0.1"
user = "lifeboat_test"
password_file = "{PASSWORD_FILE}"
[[services.app.probes]]
kind = "sql"
name = "users exist"
query = "SELECT count(*) FROM users"
expect = ">= 1"
[[services.app.probes]]
kind = "sql"
name = "bob is there"
query = "SELECT name, role FROM users"
expect_row = ["bob", "admin"]
timeout = "20s"
"#
        ),
    );
    let (ok, text) = lb(&env, &cfg, &["backup", "app"]);
    assert!(ok, "{text}");
    let (ok, text) = lb(&env, &cfg, &["drill", "app"]);
    assert!(!ok, "a failed probe fails the drill: {text}");
    assert!(text.contains("probe `bob is there` (sql) failed"), "{text}");
    assert!(
        text.contains("expected a row (bob, admin); the query returned 2 rows"),
        "{text}"
    );
    assert!(
        text.contains("✓ probe `users exist` (sql): passed: returned 2 (>= 1)"),
        "{text}"
    );
    // The copy the probes queried is gone; the live database is untouched.
    assert_eq!(pg_databases(&db), vec![db.clone()], "{text}");
    let n: i64 = pg(&db)
        .query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    // The record keeps what was probed.
    let (ok, json) = lb(&env, &cfg, &["report", "drills", "--json"]);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let probes = &v["drills"][0]["probes"];
    assert_eq!(probes[0]["state"], "pass", "{json}");
    assert_eq!(probes[1]["name"], "bob is there", "{json}");
    assert_eq!(probes[1]["state"], "fail", "{json}");
    assert_eq!(v["drills"][0]["result"], "failed", "{json}");

    // With bob added and backed up, the same drill passes.
    pg(&db)
        .batch_execute("INSERT INTO users VALUES ('bob', 'admin')")
        .unwrap();
    let (ok, text) = lb(&env, &cfg, &["backup", "app"]);
    assert!(ok, "{text}");
    let (ok, text) = lb(&env, &cfg, &["drill", "app"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "✓ probe `bob is there` (sql): passed: found the row (bob, admin) among 3 rows"
        ),
        "{text}"
    );
    pg("postgres")
        .batch_execute(&format!("DROP DATABASE {db}"))
        .unwrap();
}

#[test]
fn a_sql_probe_queries_the_restored_mariadb_copy() {
    let env = Env::new();
    let db = unique("lb_probe_my");
    mariadb(&format!(
        "CREATE DATABASE {db}; CREATE TABLE {db}.orders (id int PRIMARY KEY, total int); INSERT INTO {db}.orders VALUES (1, 10), (2, 32);"
    ));
    let cfg = config(
        &env,
        &format!(
            r#"[services.shop]
tier = "important"
[[services.shop.sources]]
kind = "mysql"
name = "db"
database = "{db}"
host = "127.0.0.1"
user = "lifeboat_test"
password_file = "{PASSWORD_FILE}"
[[services.shop.probes]]
kind = "sql"
name = "revenue"
query = "SELECT sum(total) FROM orders"
expect = "= 42"
[[services.shop.probes]]
kind = "sql"
name = "order 3"
query = "SELECT id FROM orders WHERE id = 3"
"#
        ),
    );
    let (ok, text) = lb(&env, &cfg, &["backup", "shop"]);
    assert!(ok, "{text}");
    let (ok, text) = lb(&env, &cfg, &["drill", "shop"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("✓ probe `revenue` (sql): passed: returned 42 (= 42)"),
        "{text}"
    );
    assert!(
        text.contains(
            "probe `order 3` (sql) failed: expected at least one row; the query returned none"
        ),
        "{text}"
    );
    let left = mariadb(&format!("SHOW DATABASES LIKE '{db}%'"));
    assert_eq!(left, db, "the probed copy is dropped: {text}");
    mariadb(&format!("DROP DATABASE {db}"));
}

#[test]
fn a_file_probe_on_json_truncated_in_the_restore_point_fails() {
    let env = Env::new();
    let live = env.path("live");
    fs::create_dir_all(&live).unwrap();
    let doc =
        serde_json::json!({"users": (0..200).map(|i| format!("user{i}")).collect::<Vec<_>>()})
            .to_string();
    fs::write(live.join("settings.json"), &doc).unwrap();
    // The application was writing it when the backup ran.
    fs::write(live.join("state.json"), &doc[..doc.len() / 2]).unwrap();
    let cfg = config(
        &env,
        &format!(
            r#"[services.app]
tier = "critical"
sources = [{{ kind = "files", paths = ["{l}"] }}]
[[services.app.probes]]
kind = "file"
name = "settings parse"
path = "{l}/settings.json"
parse = "json"
min_size = "1 KiB"
[[services.app.probes]]
kind = "file"
name = "state parses"
path = "{l}/state.json"
parse = "json"
"#,
            l = live.display()
        ),
    );
    let (ok, text) = lb(&env, &cfg, &["backup", "app"]);
    assert!(ok, "{text}");
    // Live, the file is whole again: the probe judges the restore point.
    fs::write(live.join("state.json"), &doc).unwrap();
    let (ok, text) = lb(&env, &cfg, &["drill", "app"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("✓ probe `settings parse` (file): passed: present"),
        "{text}"
    );
    assert!(
        text.contains("probe `state parses` (file) failed: not valid JSON"),
        "{text}"
    );
}

#[test]
fn a_command_probe_sees_the_sandbox_variables() {
    let env = Env::new();
    let live = env.path("live");
    fs::create_dir_all(&live).unwrap();
    fs::write(live.join("marker.txt"), "restored").unwrap();
    let sqlite = live.join("app.sqlite");
    rusqlite::Connection::open(&sqlite)
        .unwrap()
        .execute_batch("CREATE TABLE t (x int); INSERT INTO t VALUES (7);")
        .unwrap();
    let seen = env.path("seen.txt");
    let cfg = config(
        &env,
        &format!(
            r#"[services.app]
tier = "critical"
[[services.app.sources]]
kind = "files"
paths = ["{l}"]
exclude = ["*.sqlite"]
[[services.app.sources]]
kind = "sqlite"
name = "db"
path = "{db}"
[[services.app.probes]]
kind = "command"
name = "sees the sandbox"
command = "test -f {{{{sandbox.dir}}}}{l}/marker.txt && test -s {{{{sandbox.database}}}} && printf '%s\n%s\n%s\n' {{{{sandbox.dir}}}} \"$LIFEBOAT_SANDBOX_DIR\" \"$LIFEBOAT_SANDBOX_DATABASE\" > {seen} && echo all there"
[[services.app.probes]]
kind = "sql"
name = "seven"
query = "SELECT x FROM t"
expect = "= 7"
"#,
            l = live.display(),
            db = sqlite.display(),
            seen = seen.display()
        ),
    );
    let (ok, text) = lb(&env, &cfg, &["backup", "app"]);
    assert!(ok, "{text}");
    let (ok, text) = lb(&env, &cfg, &["drill", "app"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("✓ probe `sees the sandbox` (command): passed: exit 0: all there"),
        "{text}"
    );
    assert!(text.contains("✓ probe `seven` (sql): passed"), "{text}");
    let seen = fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 3, "{seen}");
    assert_eq!(
        lines[0], lines[1],
        "the text and the environment agree: {seen}"
    );
    assert!(
        lines[0].starts_with(env.path("state").to_str().unwrap()) && lines[0].ends_with("/restore"),
        "{seen}"
    );
    assert!(lines[2].ends_with("/db.sqlite"), "{seen}");
    // The sandbox is gone afterwards.
    assert!(!Path::new(lines[0]).exists(), "{seen}");
}

#[test]
fn a_probe_with_a_mistake_is_a_located_config_error() {
    let env = Env::new();
    let cfg = config(
        &env,
        "[services.app]\ntier = \"critical\"\nsources = [{ kind = \"files\", paths = [\"/srv\"] }]\n[[services.app.probes]]\nkind = \"sql\"\nquery = \"SELECT 1\"\n[[services.app.probes]]\nkind = \"command\"\ncommand = \"echo {{sandbox.nope}}\"\n",
    );
    let (ok, text) = lb(&env, &cfg, &["config", "check"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("lifeboat.toml:9:1: service `app`: say which database an sql probe queries"),
        "{text}"
    );
    assert!(
        text.contains(
            "service `app`: `command` uses {{sandbox.nope}}, which is not a sandbox variable"
        ),
        "{text}"
    );
}

#[test]
fn http_and_tcp_probes_ask_the_app_sandbox_start_runs_on_the_restored_data() {
    let env = Env::new();
    let live = env.path("live");
    fs::create_dir_all(&live).unwrap();
    fs::write(live.join("index.html"), "hello from the backup").unwrap();
    let pids = env.path("app.pid");
    let cfg = config(
        &env,
        &format!(
            r#"[services.web]
tier = "important"
sources = [{{ kind = "files", paths = ["{l}"] }}]
sandbox_start = "echo $$ > {pids}; cd {{{{sandbox.dir}}}}{l} && exec python3 -m http.server {{{{sandbox.port}}}} --bind 127.0.0.1"
sandbox_timeout = "30s"
[[services.web.probes]]
kind = "tcp"
name = "listens"
address = "127.0.0.1:{{{{sandbox.port}}}}"
[[services.web.probes]]
kind = "http"
name = "home page"
url = "http://127.0.0.1:{{{{sandbox.port}}}}/index.html"
contains = "from the backup"
[[services.web.probes]]
kind = "http"
name = "missing page"
url = "http://127.0.0.1:{{{{sandbox.port}}}}/gone.html"
"#,
            l = live.display(),
            pids = pids.display()
        ),
    );
    let (ok, text) = lb(&env, &cfg, &["backup", "web"]);
    assert!(ok, "{text}");
    fs::write(live.join("index.html"), "changed since").unwrap();
    let (ok, text) = lb(&env, &cfg, &["drill", "web"]);
    assert!(!ok, "{text}");
    assert!(text.contains("✓ probe `listens` (tcp): passed"), "{text}");
    assert!(
        text.contains("✓ probe `home page` (http): passed: GET http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("probe `missing page` (http) failed: GET http://127.0.0.1:")
            && text.contains("answered 404, expected 2xx or 3xx"),
        "{text}"
    );
    // The app was stopped with the drill.
    let pid: i32 = fs::read_to_string(&pids).unwrap().trim().parse().unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the sandbox app {pid} is still running"
    );
}
