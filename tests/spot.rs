//! `verify --spot SERVICE` through the real binary: files changed since
//! the backup are expected; content that changed behind an old mtime, and
//! old files the backup lacks, are differences.

mod common;

use common::{age_file, Env};
use predicates::prelude::*;
use std::fs;

#[test]
fn spot_check_tells_changed_since_from_differences() {
    let env = Env::new();
    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
    for i in 0..20 {
        let p = data.join(format!("f{i:02}"));
        fs::write(&p, format!("content {i}")).unwrap();
        age_file(&p);
    }
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
    lb().args(["verify", "--spot", "app", "--sample", "50"])
        .assert()
        .success()
        .stdout(predicate::str::contains("20 of 20 live files"))
        .stdout(predicate::str::contains("20 the same"));

    // Changed now: expected. Same size, other bytes, mtime put back: the
    // backup no longer holds what the disk does (bit rot, a tool that
    // keeps mtimes). An old file the backup never saw: missing.
    fs::write(data.join("f00"), "changed now").unwrap();
    fs::write(data.join("f01"), "CONTENT 1").unwrap();
    age_file(&data.join("f01"));
    fs::write(data.join("old-but-new"), "x").unwrap();
    age_file(&data.join("old-but-new"));
    let out = lb()
        .args(["--json", "verify", "--spot", "app", "--sample", "100"])
        .assert()
        .code(1);
    let r: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(r["sampled"], 21, "{r}");
    assert_eq!(r["same"], 18, "{r}");
    let changed: Vec<&str> = r["changed_since"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(changed, vec![data.join("f00").to_str().unwrap()], "{r}");
    let diffs = r["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 2, "{r}");
    assert!(diffs[0]["path"].as_str().unwrap().ends_with("/f01"));
    assert!(diffs[0]["why"]
        .as_str()
        .unwrap()
        .contains("content differs"));
    assert!(diffs[1]["path"].as_str().unwrap().ends_with("/old-but-new"));
    assert!(diffs[1]["why"]
        .as_str()
        .unwrap()
        .contains("not in the restore point"));

    // A sample smaller than the tree compares only that many.
    lb().args(["verify", "--spot", "app", "--sample", "5"])
        .assert()
        .stdout(predicate::str::contains("5 of 21 live files"));
}

#[test]
fn spot_check_of_a_service_never_backed_up_says_what_to_do() {
    let env = Env::new();
    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
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
    env.lb()
        .arg("--config")
        .arg(&cfg)
        .args(["verify", "--spot", "app"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no restore point"))
        .stderr(predicate::str::contains("lifeboat backup app"));
}
