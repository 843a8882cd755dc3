//! kill -9 at any moment of a backup leaves a repository that verifies
//! clean (with --read-data), and the next backup completes.

mod common;

use common::*;
use predicates::prelude::*;
use std::fs;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

#[test]
fn kill_minus_nine_during_backup_never_damages_the_repository() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Enough data for a backup to take a while: many packs, many files.
    for i in 0..48u64 {
        fs::write(
            src.join(format!("f{i:02}.bin")),
            bytes(i, 3_000_000 + (i as usize) * 7919),
        )
        .unwrap();
    }
    for i in 0..400u64 {
        fs::write(src.join(format!("small{i:03}.txt")), bytes(1000 + i, 2000)).unwrap();
    }
    let repo = env.path("repo");
    env.init(&repo);

    // How long an uninterrupted backup takes, into a throwaway repository.
    let probe = env.path("probe");
    env.lb()
        .args(["init", "--repo"])
        .arg(&probe)
        .arg("--key-file")
        .arg(env.path("admin.key"))
        .assert()
        .success();
    let t = Instant::now();
    env.lb()
        .args(["backup", "--no-cache", "--repo"])
        .arg(&probe)
        .arg(&src)
        .env("LIFEBOAT_KEY", env.path("admin.key"))
        .assert()
        .success();
    let full = t.elapsed();

    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    // Kills spread over the backup's length. A backup that resumes from
    // what an earlier one left, or a machine that got faster, can finish
    // before its kill: then the later kills come sooner, so every point
    // of the backup is still hit.
    let mut killed_midway = 0;
    let mut scale = 1.0;
    for k in (1..=12u32).cycle().take(36) {
        if killed_midway >= 12 {
            break;
        }
        let delay = full.mul_f64(scale * k as f64 / 13.0);
        let mut child = StdCommand::new(&bin)
            .args(["backup", "--no-cache", "--quiet", "--repo"])
            .arg(&repo)
            .arg(&src)
            .env("LIFEBOAT_KEY_DIR", env.path("keys"))
            .env("LIFEBOAT_CACHE_DIR", env.path("cache"))
            .env("LIFEBOAT_KEY", env.path("admin.key"))
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            None => killed_midway += 1,
            Some(_) => scale /= 2.0,
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Leftover temp files and locks are allowed; damage is not.
        env.lb()
            .args(["verify", "--read-data", "--repo"])
            .arg(&repo)
            .env("LIFEBOAT_KEY", env.path("admin.key"))
            .timeout(Duration::from_secs(120))
            .assert()
            .success();
    }
    assert!(
        killed_midway >= 12,
        "only {killed_midway} kills landed mid-backup (full backup took {full:?})"
    );

    env.lb()
        .args(["backup", "--repo"])
        .arg(&repo)
        .arg(&src)
        .env("LIFEBOAT_KEY", env.path("admin.key"))
        .assert()
        .success();
    let out = env.path("out");
    env.lb()
        .args(["restore", "latest", "--target"])
        .arg(&out)
        .arg("--repo")
        .arg(&repo)
        .env("LIFEBOAT_KEY", env.path("admin.key"))
        .assert()
        .success();
    assert_same_tree(&src, &restored(&out, &src));

    // Prune clears what the killed backups left: unindexed packs and
    // half-written temp files.
    env.lb()
        .args(["unlock", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    env.lb()
        .args(["prune", "--repo"])
        .arg(&repo)
        .env("LIFEBOAT_KEY", env.path("admin.key"))
        .assert()
        .success();
    let mut stack = vec![repo.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            assert!(
                !p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".tmp-"),
                "left behind: {}",
                p.display()
            );
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    env.lb()
        .args(["verify", "--read-data", "--repo"])
        .arg(&repo)
        .env("LIFEBOAT_KEY", env.path("admin.key"))
        .assert()
        .success()
        .stdout(predicates::str::contains("unreferenced").not());
}
