//! A flipped byte anywhere in the repository is found by verify, reported
//! with the restore points and files it affects, and other restore points
//! still restore.

mod common;

use common::*;
use predicates::prelude::*;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn files_in(dir: &Path) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_in(&p));
            } else {
                out.insert(p);
            }
        }
    }
    out
}

fn flip(p: &Path, at: usize) {
    let mut b = fs::read(p).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x40;
    fs::write(p, b).unwrap();
}

struct Setup {
    env: Env,
    repo: PathBuf,
    key: PathBuf,
    a: PathBuf,
    b: PathBuf,
    pack_a: PathBuf,
}

/// Two services backed up separately, so each has packs of its own.
fn setup() -> Setup {
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let (a, b) = (env.path("photos"), env.path("configs"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("IMG_0001.jpg"), bytes(1, 3_000_000)).unwrap();
    fs::write(b.join("compose.yml"), bytes(2, 50_000)).unwrap();
    env.lbk()
        .args(["backup", "--name", "photos", "--repo"])
        .arg(&repo)
        .arg(&a)
        .assert()
        .success();
    let packs_a = files_in(&repo.join("data"));
    env.lbk()
        .args(["backup", "--name", "configs", "--repo"])
        .arg(&repo)
        .arg(&b)
        .assert()
        .success();
    let pack_a = packs_a.into_iter().next().unwrap();
    Setup {
        env,
        repo,
        key,
        a,
        b,
        pack_a,
    }
}

#[test]
fn a_flipped_byte_in_a_pack_is_reported_with_what_it_affects() {
    let s = setup();
    let env = &s.env;
    env.lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(&s.repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("no problems found"));
    let len = fs::metadata(&s.pack_a).unwrap().len() as usize;
    flip(&s.pack_a, len / 2);

    // The structural check cannot see inside the data; reading it does.
    let out = env
        .lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let pack_name = s.pack_a.file_name().unwrap().to_string_lossy().to_string();
    assert!(out.contains(&format!("PROBLEM data/{pack_name}")), "{out}");
    assert!(out.contains("damaged chunk"), "{out}");
    assert!(
        out.contains(&format!("(photos): {}/IMG_0001.jpg", s.a.display())),
        "{out}"
    );
    assert!(!out.contains("compose.yml"), "{out}");

    // JSON says the same for machines.
    let json = env
        .lbk()
        .args(["verify", "--read-data", "--json", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 1);
    assert_eq!(v["good_snapshots"].as_array().unwrap().len(), 1);

    // The other service still restores; the damaged one fails clearly and
    // leaves no half-written target.
    let ok = env.path("ok");
    env.lbk()
        .args(["restore", "configs:latest", "--target"])
        .arg(&ok)
        .arg("--repo")
        .arg(&s.repo)
        .assert()
        .success();
    assert_same_tree(&s.b, &restored(&ok, &s.b));
    let bad = env.path("bad");
    env.lbk()
        .args(["restore", "photos:latest", "--target"])
        .arg(&bad)
        .arg("--repo")
        .arg(&s.repo)
        .assert()
        .failure()
        .stderr(predicate::str::contains("IMG_0001.jpg").and(predicate::str::contains("damaged")));
    assert!(!bad.exists());
    let _ = &s.key;
}

#[test]
fn a_damaged_pack_header_trailer_index_or_snapshot_is_reported() {
    // The pack's age header: the whole pack is unreadable, found even without --read-data.
    let s = setup();
    flip(&s.pack_a, 40);
    let out = s
        .env
        .lbk()
        .args(["verify", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("trailer unreadable")
            && out.contains("(photos): every file")
            && out.contains("damaged"),
        "{out}"
    );

    // The last bytes (the trailer): the structural check sees it.
    let s = setup();
    let len = fs::metadata(&s.pack_a).unwrap().len() as usize;
    flip(&s.pack_a, len - 30);
    s.env
        .lbk()
        .args(["verify", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure()
        .stdout(predicate::str::contains("PROBLEM data/"));

    // An index file.
    let s = setup();
    let index = files_in(&s.repo.join("index")).into_iter().next().unwrap();
    flip(&index, 200);
    s.env
        .lbk()
        .args(["verify", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure()
        .stdout(predicate::str::contains("PROBLEM index/"));

    // A snapshot summary: listed as unreadable, others still listed.
    let s = setup();
    let snaps: Vec<_> = files_in(&s.repo.join("snapshots")).into_iter().collect();
    flip(&snaps[0], 150);
    s.env
        .lbk()
        .args(["verify", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure()
        .stdout(predicate::str::contains("PROBLEM snapshots/"));
    s.env
        .lbk()
        .args(["snapshots", "--repo"])
        .arg(&s.repo)
        .assert()
        .success()
        .stderr(predicate::str::contains("is unreadable"))
        .stdout(predicate::str::contains("photos").or(predicate::str::contains("configs")));

    // The config itself: every command says so instead of guessing.
    let s = setup();
    fs::write(s.repo.join("config"), b"{ not json").unwrap();
    s.env
        .lbk()
        .args(["snapshots", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure()
        .stderr(predicate::str::contains("config").and(predicate::str::contains("damaged")));
}

#[test]
fn partial_read_data_rotates_until_every_pack_was_read() {
    let s = setup();
    let env = &s.env;
    // Enough packs to slice: several more services' worth.
    for i in 0..6u64 {
        let d = env.path(&format!("more{i}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("blob"), bytes(100 + i, 400_000)).unwrap();
        env.lbk()
            .args(["backup", "--name", &format!("more{i}"), "--repo"])
            .arg(&s.repo)
            .arg(&d)
            .assert()
            .success();
    }
    let total = files_in(&s.repo.join("data")).len();
    let state = env.path("state");
    let mut read = 0;
    for _ in 0..4 {
        let out = env
            .lbk()
            .env("LIFEBOAT_STATE_DIR", &state)
            .args(["verify", "--read-data=25%", "--json", "--repo"])
            .arg(&s.repo)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let r: serde_json::Value = serde_json::from_slice(&out).unwrap();
        read += r["packs_read"].as_u64().unwrap() as usize;
    }
    assert_eq!(
        read, total,
        "four quarter-reads cover each of the {total} packs exactly once"
    );
}

/// The short id of the newest restore point of `service`.
fn latest_short_id(env: &Env, repo: &Path, service: &str) -> String {
    let out = env
        .lbk()
        .args(["snapshots", "--json", "--repo"])
        .arg(repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .rfind(|s| s["service"] == service)
        .unwrap()["short_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn good_snapshots(env: &Env, repo: &Path) -> Vec<String> {
    let out = env
        .lbk()
        .args(["verify", "--read-data", "--json", "--repo"])
        .arg(repo)
        .assert()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v["good_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_backup_after_a_lost_pack_stores_its_chunks_again() {
    // One pack deleted; the next backup (files cache and all) must not
    // point at it.
    let s = setup();
    let env = &s.env;
    fs::remove_file(&s.pack_a).unwrap();
    env.lbk()
        .args(["backup", "--name", "photos", "--repo"])
        .arg(&s.repo)
        .arg(&s.a)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: 1 indexed pack(s) are missing from the repository; their chunks will be stored again (run `lifeboat repair index`)",
        ));
    let t = env.path("t1");
    env.lbk()
        .args(["restore", "photos:latest", "--target"])
        .arg(&t)
        .arg("--repo")
        .arg(&s.repo)
        .assert()
        .success();
    assert_same_tree(&s.a, &restored(&t, &s.a));
    let new = latest_short_id(env, &s.repo, "photos");
    assert!(good_snapshots(env, &s.repo).contains(&new));

    // The whole data/ directory gone, and no files cache: the same.
    let s = setup();
    let env = &s.env;
    fs::remove_dir_all(s.repo.join("data")).unwrap();
    env.lbk()
        .args(["backup", "--no-cache", "--name", "configs", "--repo"])
        .arg(&s.repo)
        .arg(&s.b)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: 2 indexed pack(s) are missing from the repository",
        ));
    let t = env.path("t2");
    env.lbk()
        .args(["restore", "configs:latest", "--target"])
        .arg(&t)
        .arg("--repo")
        .arg(&s.repo)
        .assert()
        .success();
    assert_same_tree(&s.b, &restored(&t, &s.b));
    let new = latest_short_id(env, &s.repo, "configs");
    assert!(good_snapshots(env, &s.repo).contains(&new));
}

#[test]
fn chunks_verify_found_damaged_are_stored_again_by_the_next_backup() {
    let s = setup();
    let env = &s.env;
    let len = fs::metadata(&s.pack_a).unwrap().len() as usize;
    flip(&s.pack_a, len / 2);
    env.lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure()
        .stdout(predicate::str::contains("damaged chunk"));
    let old = latest_short_id(env, &s.repo, "photos");
    let packs_before = files_in(&s.repo.join("data")).len();

    // The same data again, files cache included: the damaged chunk is
    // stored anew rather than deduplicated against.
    env.lbk()
        .args(["backup", "--name", "photos", "--repo"])
        .arg(&s.repo)
        .arg(&s.a)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "verify found damaged will be stored again",
        ));
    assert_eq!(files_in(&s.repo.join("data")).len(), packs_before + 1);
    let t = env.path("t");
    env.lbk()
        .args(["restore", "photos:latest", "--target"])
        .arg(&t)
        .arg("--repo")
        .arg(&s.repo)
        .assert()
        .success();
    assert_same_tree(&s.a, &restored(&t, &s.a));
    // A good copy exists now: the new point, and the old one that shares
    // the chunk, both verify (the damaged pack itself is still reported).
    let new = latest_short_id(env, &s.repo, "photos");
    let good = good_snapshots(env, &s.repo);
    assert!(good.contains(&new) && good.contains(&old), "{good:?}");
    // A third backup finds nothing left to store again.
    env.lbk()
        .args(["backup", "--name", "photos", "--repo"])
        .arg(&s.repo)
        .arg(&s.a)
        .assert()
        .success()
        .stderr(predicate::str::contains("stored again").not());
}

#[test]
fn a_copy_to_a_destination_that_lost_a_pack_sends_its_chunks_again() {
    let s = setup();
    let env = &s.env;
    let dst = env.path("offsite");
    env.init(&dst);
    let copy = |what: &str| {
        env.lbk()
            .args(["copy", what, "--from"])
            .arg(&s.repo)
            .arg("--to")
            .arg(&dst)
            .assert()
            .success()
            .get_output()
            .clone()
    };
    copy("photos");
    let dst_packs: Vec<PathBuf> = files_in(&dst.join("data")).into_iter().collect();
    assert_eq!(dst_packs.len(), 1);
    fs::remove_file(&dst_packs[0]).unwrap();

    // A new restore point sharing the photo: the destination lacks it now.
    fs::write(s.a.join("IMG_0002.jpg"), bytes(9, 100_000)).unwrap();
    env.lbk()
        .args(["backup", "--name", "photos", "--repo"])
        .arg(&s.repo)
        .arg(&s.a)
        .assert()
        .success();
    let out = copy("photos");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("destination: 1 indexed pack(s) are missing from the repository"),
        "{stderr}"
    );
    let t = env.path("t");
    env.lbk()
        .args(["restore", "photos:latest", "--target"])
        .arg(&t)
        .arg("--repo")
        .arg(&dst)
        .assert()
        .success();
    assert_same_tree(&s.a, &restored(&t, &s.a));
}

#[test]
fn a_pack_whose_header_verify_cannot_open_is_stored_again_too() {
    let s = setup();
    let env = &s.env;
    flip(&s.pack_a, 40);
    env.lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(&s.repo)
        .assert()
        .failure();
    env.lbk()
        .args(["backup", "--name", "photos", "--repo"])
        .arg(&s.repo)
        .arg(&s.a)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "verify found damaged will be stored again",
        ));
    let t = env.path("t");
    env.lbk()
        .args(["restore", "photos:latest", "--target"])
        .arg(&t)
        .arg("--repo")
        .arg(&s.repo)
        .assert()
        .success();
    assert_same_tree(&s.a, &restored(&t, &s.a));
}
