//! Forget thins restore points by policy; prune reclaims their space and
//! survives kill -9 at any point.

mod common;

use common::*;
use predicates::prelude::*;
use std::fs;
use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

fn du(p: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

/// Three nights: each replaces most of the files, so older restore points
/// own most of the repository.
fn three_nights(env: &Env, src: &Path, repo: &Path, files: u64, size: usize) {
    fs::create_dir_all(src).unwrap();
    for night in 0..3u64 {
        for i in 0..files {
            // A quarter of the files never change; the rest are new each night.
            let seed = if i % 4 == 0 { i } else { night * 1000 + i };
            fs::write(src.join(format!("f{i:03}.bin")), bytes(seed, size)).unwrap();
        }
        env.lbk()
            .args(["backup", "--name", "svc", "--repo"])
            .arg(repo)
            .arg(src)
            .assert()
            .success();
    }
}

#[test]
fn forget_by_policy_then_prune_reclaims_space_and_keeps_the_rest_restorable() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let src = env.path("src");
    three_nights(&env, &src, &repo, 12, 1_500_000);

    // A dry run says what would go and changes nothing.
    env.lbk()
        .args(["forget", "svc", "--keep-last", "1", "--dry-run", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("keep 1 of 3 restore points (1 last)")
                .and(predicate::str::contains("  forget  "))
                .and(predicate::str::contains("last 1")),
        );
    let out = env
        .lbk()
        .args(["snapshots", "--json", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let before = du(&repo.join("data"));
    env.lbk()
        .args(["forget", "svc", "--keep-last", "1", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("forgot 2 restore point(s)"));
    env.lbk()
        .args(["prune", "--dry-run", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("would prune"));
    assert_eq!(du(&repo.join("data")), before, "a dry run deletes nothing");
    let out = env
        .lbk()
        .args(["prune", "--json", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let after = du(&repo.join("data"));
    assert!(
        after * 10 < before * 6,
        "two of three nights' unique data reclaimed: {before} -> {after}"
    );
    assert!(r["reclaimed"].as_u64().unwrap() > 0, "{r}");

    env.lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    let target = env.path("out");
    env.lbk()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .arg("--repo")
        .arg(&repo)
        .assert()
        .success();
    assert_same_tree(&src, &restored(&target, &src));
    // Pruning again finds nothing left to do.
    let out = env
        .lbk()
        .args(["prune", "--json", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["reclaimed"], 0, "{r}");
}

#[test]
fn the_seed_policies_are_expressible_in_the_config() {
    let env = Env::new();
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        "[tiers.critical]\nretention = { daily = 7, weekly = 4, monthly = 12 }\n\
         [repositories.local]\npath = \"/r\"\n\
         [services.vaultwarden]\ntier = \"critical\"\nsources = [{ kind = \"files\", paths = [\"/srv/vw\"] }]\n\
         [services.proxmox]\ntier = \"important\"\nretention = { last = 14 }\nsources = [{ kind = \"files\", paths = [\"/var/lib/vz/dump\"] }]\n",
    )
    .unwrap();
    let c = lifeboat::config::Config::load(&config).unwrap();
    let p = lifeboat::engine::retention::Policy {
        daily: 7,
        weekly: 4,
        monthly: 12,
        ..Default::default()
    };
    assert_eq!(c.service("vaultwarden").unwrap().retention, p);
    assert_eq!(
        c.service("proxmox").unwrap().retention,
        lifeboat::engine::retention::Policy {
            last: 14,
            ..Default::default()
        }
    );
    fs::write(&config, "[repositories.local]\npath = \"/r\"\n[services.a]\ntier = \"critical\"\nretention = { dayly = 7 }\nsources = [{ kind = \"files\", paths = [\"/a\"] }]\n").unwrap();
    env.lb()
        .args(["config", "check", "--config"])
        .arg(&config)
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown field `dayly`"));
}

#[test]
fn kill_minus_nine_during_prune_never_damages_the_repository() {
    let env = Env::new();
    let pristine = env.path("pristine");
    env.init(&pristine);
    let src = env.path("src");
    three_nights(&env, &src, &pristine, 40, 2_000_000);
    env.lbk()
        .args(["forget", "svc", "--keep-last", "1", "--repo"])
        .arg(&pristine)
        .assert()
        .success();

    let copy = |to: &Path| {
        let _ = fs::remove_dir_all(to);
        assert!(StdCommand::new("cp")
            .arg("-a")
            .arg(&pristine)
            .arg(to)
            .status()
            .unwrap()
            .success());
    };
    // How long a whole prune takes.
    let probe = env.path("probe");
    copy(&probe);
    let t = Instant::now();
    env.lbk()
        .args(["prune", "--repo"])
        .arg(&probe)
        .assert()
        .success();
    let full = t.elapsed();

    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    let repo = env.path("repo");
    let mut killed_midway = 0;
    for k in 1..=8u32 {
        copy(&repo);
        let mut child = StdCommand::new(&bin)
            .args(["prune", "--quiet", "--repo"])
            .arg(&repo)
            .env("LIFEBOAT_KEY", env.path("admin.key"))
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(f64::from(k) / 9.0));
        if child.try_wait().unwrap().is_none() {
            killed_midway += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The killed prune's exclusive lock is stale (its pid is gone).
        env.lbk()
            .args(["unlock", "--repo"])
            .arg(&repo)
            .assert()
            .success();
        env.lbk()
            .args(["verify", "--read-data", "--repo"])
            .arg(&repo)
            .timeout(Duration::from_secs(120))
            .assert()
            .success();
        // A later prune finishes the job.
        env.lbk()
            .args(["prune", "--repo"])
            .arg(&repo)
            .assert()
            .success();
        env.lbk()
            .args(["verify", "--read-data", "--repo"])
            .arg(&repo)
            .assert()
            .success();
    }
    assert!(
        killed_midway >= 5,
        "only {killed_midway} kills landed mid-prune (a whole prune took {full:?})"
    );
    let target = env.path("out");
    env.lbk()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .arg("--repo")
        .arg(&repo)
        .assert()
        .success();
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn forget_keeps_each_set_of_paths_as_its_own_history() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let (notes, big) = (env.path("notes"), env.path("big"));
    for d in [&notes, &big] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("f"), d.display().to_string()).unwrap();
    }
    // Two ad-hoc backups of notes, then one of an unrelated directory: all
    // three are recorded as `adhoc`.
    for d in [&notes, &notes, &big] {
        env.lbk()
            .args(["backup", "--repo"])
            .arg(&repo)
            .arg(d)
            .assert()
            .success();
    }
    let out = env
        .lbk()
        .args(["--json", "forget", "adhoc", "--keep-last", "1", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let points = v["restore_points"].as_array().unwrap();
    let kept = points.iter().filter(|p| p["keep"] == true).count();
    assert_eq!(
        (points.len(), kept),
        (3, 2),
        "the newest of each directory stays: {v}"
    );
    // The only backup of `big` still restores.
    let target = env.path("t");
    env.lbk()
        .args(["restore", "--repo"])
        .arg(&repo)
        .arg("adhoc:latest")
        .arg("--target")
        .arg(&target)
        .assert()
        .success();
    assert!(restored(&target, &big).join("f").exists());
}
