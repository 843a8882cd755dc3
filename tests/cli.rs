//! The binary as an admin meets it: help, bad configs, services from a
//! config, JSON output.

mod common;

use common::*;
use predicates::prelude::*;
use std::fs;

#[test]
fn every_command_has_help() {
    let env = Env::new();
    for cmd in [
        "init",
        "backup",
        "snapshots",
        "ls",
        "restore",
        "verify",
        "keys",
        "unlock",
        "config",
    ] {
        env.lb()
            .args([cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage: lifeboat"));
    }
    env.lb().arg("--help").assert().success();
}

#[test]
fn the_example_config_is_valid() {
    let env = Env::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lifeboat.example.toml");
    // The file itself is right; its world (keys, paths, servers) is
    // somebody else's, so only located problems would be the example's.
    let out = env
        .lb()
        .env("LIFEBOAT_USB_KEY_FILE", "/etc/lifeboat/keys/usb.key")
        .env("LIFEBOAT_HC_BACKUP", "https://hc-ping.com/00000000-example")
        .args(["--json", "config", "check", "--config", example])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let located: Vec<&serde_json::Value> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["at"].as_str().unwrap().contains("lifeboat.example.toml:"))
        .collect();
    assert!(located.is_empty(), "{located:?}");
    let config = lifeboat::config::Config::load(std::path::Path::new(example)).unwrap();
    assert_eq!((config.repositories.len(), config.services.len()), (3, 9));
}

#[test]
fn bad_configs_get_one_located_line() {
    let env = Env::new();
    let cases = [
        (
            "unknown_key.toml",
            "unknown_key.toml:6:1: unknown field `schedule`",
        ),
        ("syntax.toml", "syntax.toml:7:1: invalid array"),
        (
            "unknown_kind.toml",
            "unknown_kind.toml:6:21: service `paperless`: unknown source kind `ftp`",
        ),
        (
            "bad_duration.toml",
            "bad_duration.toml:6:7: \"fast\" is not a duration",
        ),
        (
            "which_repository.toml",
            "which_repository.toml:6:1: service `paperless`: say which repository it uses",
        ),
        (
            "bad_glob.toml",
            "bad_glob.toml:6:59: service `paperless`: exclude pattern",
        ),
        (
            "bad_check.toml",
            "bad_check.toml:6:65: service `paperless`: check \"thorough\" is not one of",
        ),
    ];
    for (file, expected) in cases {
        let path = format!(
            "{}/tests/invalid_configs/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let out = env
            .lb()
            .args(["config", "check", "--config", &path])
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8(out).unwrap();
        assert!(
            err.contains(expected),
            "{file}: expected {expected:?} in\n{err}"
        );
        assert!(
            err.lines().next().unwrap().starts_with(&path),
            "{file}: the problem, located, first:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        // Any other command stops at the first problem, with a hint.
        let out = env
            .lb()
            .args(["snapshots", "--config", &path])
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8(out).unwrap();
        assert!(err.contains(expected), "{file}: {err}");
        assert!(
            err.lines().next().unwrap().starts_with("error: /"),
            "{file}: one clear first line:\n{err}"
        );
        assert!(err.contains("hint: fix the file"), "{err}");
    }
}

#[test]
fn services_from_a_config_back_up_restore_and_list_as_json() {
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let docs = env.path("srv/paperless");
    fs::create_dir_all(docs.join("media")).unwrap();
    fs::write(docs.join("media/scan.pdf"), bytes(3, 200_000)).unwrap();
    fs::write(docs.join("media/scan.tmp"), b"partial").unwrap();
    let configs = env.path("opt/stacks");
    fs::create_dir_all(&configs).unwrap();
    fs::write(configs.join("docker-compose.yml"), b"services: {}\n").unwrap();
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            "[repositories.local]\npath = {repo:?}\nkey_file = {key:?}\n\n\
             [services.paperless]\ntier = \"critical\"\nsources = [{{ kind = \"files\", paths = [{docs:?}], exclude = [\"*.tmp\"] }}]\n\n\
             [services.configs]\ntier = \"supporting\"\nsources = [{{ kind = \"files\", paths = [{configs:?}] }}]\n"
        ),
    )
    .unwrap();
    env.lb()
        .args(["backup", "--all", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(predicate::str::contains("paperless ").and(predicate::str::contains("configs ")));
    env.lb()
        .args(["backup", "nosuch", "--config"])
        .arg(&config)
        .assert()
        .failure()
        .stderr(predicate::str::contains("no service named `nosuch`"));

    let out = env
        .lb()
        .args(["snapshots", "paperless", "--json", "--config"])
        .arg(&config)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let list: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["service"], "paperless");
    assert_eq!(
        list[0]["stats"]["files"], 1,
        "the excluded .tmp is not counted"
    );

    env.lb()
        .args(["ls", "paperless:latest", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("scan.pdf").and(predicate::str::contains("scan.tmp").not()),
        );
    let target = env.path("restore");
    env.lb()
        .args(["restore", "paperless:latest", "--target"])
        .arg(&target)
        .arg("--config")
        .arg(&config)
        .assert()
        .success();
    assert_eq!(
        fs::read(restored(&target, &docs.join("media/scan.pdf"))).unwrap(),
        bytes(3, 200_000)
    );
    // Non-empty target: refused with guidance, untouched.
    env.lb()
        .args(["restore", "paperless:latest", "--target"])
        .arg(&target)
        .arg("--config")
        .arg(&config)
        .assert()
        .failure()
        .stderr(predicate::str::contains("is not empty").and(predicate::str::contains("--force")));
}

#[test]
fn ad_hoc_use_reads_repository_and_key_from_the_environment() {
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.path("k.key");
    env.lb()
        .env("LIFEBOAT_REPO", &repo)
        .env("LIFEBOAT_KEY", &key)
        .arg("init")
        .assert()
        .success();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("before-upgrade.sql"), bytes(9, 10_000)).unwrap();
    env.lb()
        .env("LIFEBOAT_REPO", &repo)
        .env("LIFEBOAT_KEY", &key)
        .args(["backup"])
        .arg(&src)
        .assert()
        .success();
    let out = env
        .lb()
        .env("LIFEBOAT_REPO", &repo)
        .env("LIFEBOAT_KEY", &key)
        .args(["backup", "--json"])
        .arg(&src)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let snap: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(snap["service"], "adhoc");
    // Piped output carries no progress-bar noise.
    let out = env
        .lb()
        .env("LIFEBOAT_REPO", &repo)
        .env("LIFEBOAT_KEY", &key)
        .args(["backup"])
        .arg(&src)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = env.path("t");
    let id = snap["short_id"].as_str().unwrap();
    env.lb()
        .env("LIFEBOAT_REPO", &repo)
        .env("LIFEBOAT_KEY", &key)
        .args(["restore", id, "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_same_tree(&src, &restored(&target, &src));
    env.lb()
        .env("LIFEBOAT_REPO", &repo)
        .env("LIFEBOAT_KEY", &key)
        .args(["restore", "zzzz", "--target"])
        .arg(&target)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "no restore point matches \"zzzz\"",
        ));
    env.lb()
        .env("LIFEBOAT_REPO", &repo)
        .env("LIFEBOAT_KEY", &key)
        .args(["verify", "--read-data=150%"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("at most 100"));
    env.lb()
        .env("LIFEBOAT_REPO", &repo)
        .env("LIFEBOAT_KEY", &key)
        .args(["verify", "--read-data=50%"])
        .assert()
        .success();
    env.lb()
        .args(["snapshots"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("pass --repo DIR"));
}

#[test]
fn health_and_drill_from_the_command_line() {
    let env = Env::new();
    let dir = env.path("demo");
    let out = env
        .lb()
        .args(["demo", "--no-tui", "--dir"])
        .arg(&dir)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let config = String::from_utf8(out).unwrap().trim().to_string();
    assert!(config.ends_with("lifeboat.toml"), "{config}");

    // The demo has a breach (Home Assistant's backups stopped): exit code 2.
    let out = env
        .lb()
        .args(["health", "--json", "--config", &config])
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let state = |name: &str| {
        report["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("vaultwarden"), "ok");
    assert_eq!(state("paperless"), "warning");
    assert_eq!(state("homeassistant"), "breach");
    env.lb()
        .args(["health", "--config", &config])
        .assert()
        .code(2)
        .stdout(
            predicate::str::contains("✗ homeassistant: last backup 3d")
                .and(predicate::str::contains("overall: breach")),
        );

    // Drilling Paperless records a measured time-to-restore; its warning goes.
    env.lb()
        .args(["drill", "paperless", "--config", &config])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("drill paperless (")
                .and(predicate::str::contains("against an RTO of 8h")),
        );
    let out = env
        .lb()
        .args(["health", "--json", "--config", &config])
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let paperless = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "paperless")
        .unwrap()
        .clone();
    assert_eq!(paperless["state"], "ok", "{paperless}");
    // Nothing of the drill's sandbox is left behind.
    let sandboxes = dir.join("state/sandboxes");
    assert!(fs::read_dir(&sandboxes)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true));

    // Backing up Home Assistant now brings it inside its RPO.
    env.lb()
        .args(["backup", "homeassistant", "--config", &config])
        .assert()
        .success();
    let out = env
        .lb()
        .args(["health", "--json", "--config", &config])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        report["state"], "warning",
        "only Home Assistant's never-drilled warning is left: {report}"
    );
    // No config at all: unknown (3), with guidance.
    env.lb().args(["health"]).assert().code(3).stderr(
        predicate::str::contains("no config found").and(predicate::str::contains("config init")),
    );
}

#[test]
fn an_empty_config_is_not_a_healthy_one_and_zero_targets_are_refused() {
    let env = Env::new();
    let empty = env.path("empty.toml");
    fs::write(&empty, "# nothing yet\n").unwrap();
    env.lb()
        .args(["backup", "--all", "--config"])
        .arg(&empty)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "no services are configured in {}",
            empty.display()
        )));
    env.lb()
        .args(["health", "--config"])
        .arg(&empty)
        .assert()
        .code(3)
        .stdout(
            predicate::str::contains("no services are configured")
                .and(predicate::str::contains("overall: unknown")),
        );

    let repo = env.path("repo");
    let service = |line: &str| {
        format!(
            "[services.app]\ntier = \"critical\"\nrepository = \"r\"\n{line}\n\
             sources = [{{ kind = \"files\", paths = [\"/srv\"] }}]\n"
        )
    };
    for (toml, what) in [
        (service("rpo = \"0s\""), "an RPO of \"0s\" can never be met"),
        (service("rto = \"0s\""), "an RTO of \"0s\" can never be met"),
        (
            "[tiers.critical]\nrpo = \"0s\"\n".to_string(),
            "an RPO of \"0s\" can never be met",
        ),
    ] {
        let text = format!("[repositories.r]\npath = {repo:?}\n\n{toml}");
        // The value's own place: its line, column 7 (after `rpo = `).
        let line = text.lines().position(|l| l.contains("\"0s\"")).unwrap() + 1;
        let config = env.path("zero.toml");
        fs::write(&config, &text).unwrap();
        env.lb()
            .args(["config", "check", "--config"])
            .arg(&config)
            .assert()
            .failure()
            .stderr(
                predicate::str::contains(format!("zero.toml:{line}:7:"))
                    .and(predicate::str::contains(what)),
            );
    }
}
