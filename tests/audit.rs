//! `lifeboat audit` through the real binary, against the PostgreSQL and
//! MariaDB servers on loopback: databases created outside the config, a
//! files source that went from 1,000 files to none, a service never backed
//! up, and an `.env` no source covers; then `health` carries the alert.

mod common;

use common::db::{mariadb, pg, unique, PASSWORD_FILE};
use common::Env;
use std::fs;

/// Drops the databases the test made, pass or fail.
struct Dbs {
    pg: Vec<String>,
    my: Vec<String>,
}

impl Drop for Dbs {
    fn drop(&mut self) {
        for d in &self.pg {
            let _ = pg("postgres").batch_execute(&format!("DROP DATABASE IF EXISTS {d}"));
        }
        for d in &self.my {
            let _ = std::panic::catch_unwind(|| mariadb(&format!("DROP DATABASE IF EXISTS {d}")));
        }
    }
}

#[test]
fn audit_finds_what_no_backup_covers_and_what_went_empty() {
    let env = Env::new();
    let (pg_backed, pg_stray) = (unique("audit_pg_cfg"), unique("audit_pg_stray"));
    let (my_backed, my_stray) = (unique("audit_my_cfg"), unique("audit_my_stray"));
    let _dbs = Dbs {
        pg: vec![pg_backed.clone(), pg_stray.clone()],
        my: vec![my_backed.clone(), my_stray.clone()],
    };
    for d in [&pg_backed, &pg_stray] {
        pg("postgres")
            .batch_execute(&format!("CREATE DATABASE {d}"))
            .unwrap();
    }
    mariadb(&format!(
        "CREATE DATABASE {my_backed}; CREATE DATABASE {my_stray}"
    ));

    let srv = env.path("srv");
    let data = srv.join("files/data");
    fs::create_dir_all(&data).unwrap();
    for i in 0..1000 {
        fs::write(data.join(format!("f{i:04}.txt")), format!("file {i}")).unwrap();
    }
    fs::write(srv.join("files/.env"), "TOKEN=x\n").unwrap();
    fs::create_dir_all(srv.join("other")).unwrap();
    fs::write(srv.join("other/.env"), "TOKEN=y\n").unwrap();

    let cfg = env.path("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            r#"state_dir = "{state}"
cache_dir = "{cache}"
[audit]
roots = ["{srv}"]
[repositories.local]
path = "{repo}"
key_file = "{key}"
[services.shop]
tier = "critical"
[[services.shop.sources]]
kind = "postgres"
database = "{pg_backed}"
host = "127.0.0.1"
user = "lifeboat_test"
password_file = "{PASSWORD_FILE}"
[[services.shop.sources]]
kind = "mysql"
database = "{my_backed}"
host = "127.0.0.1"
user = "lifeboat_test"
password_file = "{PASSWORD_FILE}"
[services.files]
tier = "important"
[[services.files.sources]]
kind = "files"
name = "data"
paths = ["{data}"]
[[services.files.sources]]
kind = "secrets"
paths = ["{env_file}"]
"#,
            state = env.path("state").display(),
            cache = env.path("cache").display(),
            srv = srv.display(),
            repo = env.path("repo").display(),
            key = env.path("admin.key").display(),
            data = data.display(),
            env_file = srv.join("files/.env").display(),
        ),
    )
    .unwrap();
    env.init(&env.path("repo"));
    let lb = || {
        let mut c = env.lb();
        c.arg("--config").arg(&cfg);
        c
    };
    lb().args(["backup", "files"]).assert().success();
    for i in 0..1000 {
        fs::remove_file(data.join(format!("f{i:04}.txt"))).unwrap();
    }
    lb().args(["backup", "files"]).assert().success();

    let out = lb().args(["audit", "--json"]).assert().code(1);
    let report: serde_json::Value =
        serde_json::from_slice(&out.get_output().stdout).expect("audit --json prints JSON");
    let findings = report["findings"].as_array().expect("findings");
    let has = |kind: &str, what: &str| {
        findings
            .iter()
            .any(|f| f["kind"] == kind && f["what"].as_str().is_some_and(|w| w.ends_with(what)))
    };
    let listed = serde_json::to_string_pretty(&report).unwrap();
    assert!(
        has("unprotected-database", &format!("/{pg_stray}")),
        "{listed}"
    );
    assert!(
        has("unprotected-database", &format!("/{my_stray}")),
        "{listed}"
    );
    for (backed, sys) in [
        (&pg_backed, "/template1"),
        (&my_backed, "/information_schema"),
    ] {
        assert!(
            !has("unprotected-database", &format!("/{backed}")),
            "{listed}"
        );
        assert!(!has("unprotected-database", sys), "{listed}");
    }
    let empty = findings
        .iter()
        .find(|f| f["kind"] == "silently-empty")
        .unwrap_or_else(|| panic!("no silently-empty finding: {listed}"));
    assert_eq!(empty["service"], "files");
    assert_eq!(empty["source"], "data");
    let msg = empty["message"].as_str().unwrap();
    assert!(
        msg.contains("captured 0 files") && msg.contains("1000 files"),
        "{msg}"
    );
    assert!(
        !findings
            .iter()
            .any(|f| f["kind"] == "silently-empty" && f["source"] == "secrets"),
        "{listed}"
    );
    assert!(has("no-restore-point", "shop"), "{listed}");
    assert!(has("env-file", "other/.env"), "{listed}");
    assert!(!has("env-file", "files/.env"), "{listed}");

    // The last audit is health's business too.
    let out = lb().args(["health", "--json"]).assert();
    let health: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(
        health["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["message"].as_str().unwrap().starts_with("audit (")),
        "{health}"
    );
}

#[test]
fn audit_of_a_covered_setup_is_clean_and_says_so() {
    let env = Env::new();
    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "a").unwrap();
    let cfg = env.path("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[repositories.local]\npath = \"{}\"\nkey_file = \"{}\"\n[services.app]\ntier = \"important\"\n[[services.app.sources]]\nkind = \"files\"\npaths = [\"{}\"]\n",
            env.path("state").display(),
            env.path("repo").display(),
            env.path("admin.key").display(),
            data.display()
        ),
    )
    .unwrap();
    env.init(&env.path("repo"));
    let lb = || {
        let mut c = env.lb();
        c.arg("--config").arg(&cfg);
        c
    };
    lb().args(["backup", "app"]).assert().success();
    lb().args(["audit", "--no-docker"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "nothing found outside the backups",
        ));
}
