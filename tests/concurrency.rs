//! Several writers at once, and locks that explain themselves.

mod common;

use common::*;
use lifeboat::repo::lock::{Lock, LockInfo};
use lifeboat::repo::{Backend, Kind, LocalBackend};
use predicates::prelude::*;
use std::fs;

#[test]
fn two_backups_into_one_repository_at_once_both_succeed() {
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let (a, b) = (env.path("a"), env.path("b"));
    for (dir, seed) in [(&a, 1u64), (&b, 2u64)] {
        fs::create_dir_all(dir).unwrap();
        for i in 0..10 {
            fs::write(dir.join(format!("f{i}")), bytes(seed * 100 + i, 1_500_000)).unwrap();
        }
        // Shared content across both: dedup must not confuse the writers.
        fs::write(dir.join("common"), bytes(999, 2_000_000)).unwrap();
    }
    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    let spawn = |name: &str, dir: &std::path::Path| {
        std::process::Command::new(&bin)
            .args(["backup", "--quiet", "--name", name, "--repo"])
            .arg(&repo)
            .arg(dir)
            .env("LIFEBOAT_KEY", &key)
            .env("LIFEBOAT_CACHE_DIR", env.path(&format!("cache-{name}")))
            .spawn()
            .unwrap()
    };
    let (mut pa, mut pb) = (spawn("a", &a), spawn("b", &b));
    assert!(pa.wait().unwrap().success());
    assert!(pb.wait().unwrap().success());
    env.lb()
        .args(["verify", "--read-data", "--repo"])
        .arg(&repo)
        .env("LIFEBOAT_KEY", &key)
        .assert()
        .success();
    for (name, dir) in [("a", &a), ("b", &b)] {
        let out = env.path(&format!("out-{name}"));
        env.lb()
            .args(["restore", &format!("{name}:latest"), "--target"])
            .arg(&out)
            .arg("--repo")
            .arg(&repo)
            .env("LIFEBOAT_KEY", &key)
            .assert()
            .success();
        assert_same_tree(dir, &restored(&out, dir));
    }
}

#[test]
fn stale_and_live_exclusive_locks_are_explained() {
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let backend = LocalBackend::new(&repo);

    // A prune that died: same host, its pid is gone.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let lock = LockInfo {
        host: lifeboat::paths::hostname(),
        pid: dead_pid,
        time: "2026-01-01T03:00:00Z".into(),
        exclusive: true,
        operation: "prune".into(),
    };
    backend
        .put(Kind::Locks, "deadbeef", &serde_json::to_vec(&lock).unwrap())
        .unwrap();
    env.lb()
        .args(["backup", "--repo"])
        .arg(&repo)
        .arg(&src)
        .env("LIFEBOAT_KEY", &key)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains(format!(
                "an exclusive lock for prune held by pid {dead_pid}"
            ))
            .and(predicate::str::contains("no longer running"))
            .and(predicate::str::contains("lifeboat unlock")),
        );
    env.lb()
        .args(["unlock", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("removed"));
    env.lb()
        .args(["backup", "--repo"])
        .arg(&repo)
        .arg(&src)
        .env("LIFEBOAT_KEY", &key)
        .assert()
        .success();

    // Another host's lock cannot be confirmed stale: kept unless --all.
    let lock = LockInfo {
        host: "nas-01".into(),
        pid: 4242,
        time: "2026-01-01T03:00:00Z".into(),
        exclusive: true,
        operation: "prune".into(),
    };
    backend
        .put(Kind::Locks, "cafebabe", &serde_json::to_vec(&lock).unwrap())
        .unwrap();
    env.lb()
        .args(["backup", "--repo"])
        .arg(&repo)
        .arg(&src)
        .env("LIFEBOAT_KEY", &key)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("on nas-01")
                .and(predicate::str::contains("check it is still running")),
        );
    env.lb()
        .args(["unlock", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stderr(predicate::str::contains("were kept"));
    env.lb()
        .args(["unlock", "--all", "--repo"])
        .arg(&repo)
        .assert()
        .success();

    // Two exclusive takers: the second is refused while the first holds it.
    let first = Lock::exclusive(&backend, "prune").unwrap();
    let second = Lock::exclusive(&backend, "prune");
    assert!(second.is_err());
    drop(first);
    assert!(Lock::exclusive(&backend, "prune").is_ok());
    assert!(
        backend.list(Kind::Locks).unwrap().is_empty(),
        "locks are removed when dropped"
    );
}
