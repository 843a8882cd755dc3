//! A damaged repository is repaired from what it still holds: the index is
//! rebuilt from the packs' trailers, restore points drop only what was
//! lost, and a rescue restore brings back every intact file. All through
//! the real binary, from a directory of its own with a fresh HOME.

mod common;

use common::*;
use predicates::prelude::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            // Temp files of an interrupted write are not objects.
            if p.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
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

fn backup(env: &Env, repo: &Path, name: &str, dir: &Path) {
    env.lbk()
        .args(["backup", "--name", name, "--repo"])
        .arg(repo)
        .arg(dir)
        .assert()
        .success();
}

fn restore_ok(env: &Env, repo: &Path, what: &str, target: &Path) {
    env.lbk()
        .args(["restore", what, "--target"])
        .arg(target)
        .arg("--repo")
        .arg(repo)
        .assert()
        .success();
}

fn verify_clean(env: &Env, repo: &Path) {
    env.lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("no problems found"));
}

/// One service backed up twice: the second backup adds eight files and
/// reuses the first backup's pack for `keep/a.bin` and `keep/b.bin`.
/// Returns (env, repo, source dir, the first backup's pack).
/// Every line of a command's summary fits an 80-column terminal.
fn assert_fits_80(out: &str) {
    for l in out.lines() {
        assert!(
            l.chars().count() <= 80,
            "{} columns: {l}\n{out}",
            l.chars().count()
        );
    }
}

fn two_backups_sharing_a_pack() -> (Env, PathBuf, PathBuf, PathBuf) {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let src = env.path("app");
    fs::create_dir_all(src.join("keep")).unwrap();
    fs::write(src.join("keep/a.bin"), bytes(1, 300_000)).unwrap();
    fs::write(src.join("keep/b.bin"), bytes(2, 200_000)).unwrap();
    backup(&env, &repo, "app", &src);
    let first: Vec<PathBuf> = files_in(&repo.join("data")).into_iter().collect();
    assert_eq!(first.len(), 1, "the first backup fits in one pack");
    fs::create_dir_all(src.join("more")).unwrap();
    for i in 0..8u64 {
        fs::write(
            src.join(format!("more/f{i}.dat")),
            bytes(10 + i, 50_000 + i as usize * 1000),
        )
        .unwrap();
    }
    backup(&env, &repo, "app", &src);
    (env, repo, src, first[0].clone())
}

#[test]
fn repair_index_rebuilds_a_damaged_index_file_and_everything_restores() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let (a, b) = (env.path("photos"), env.path("configs"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("IMG_0001.jpg"), bytes(1, 3_000_000)).unwrap();
    fs::write(b.join("compose.yml"), bytes(2, 50_000)).unwrap();
    backup(&env, &repo, "photos", &a);
    let photos_index: Vec<PathBuf> = files_in(&repo.join("index")).into_iter().collect();
    assert_eq!(photos_index.len(), 1);
    backup(&env, &repo, "configs", &b);
    flip(&photos_index[0], 200);

    // Before: the restore point whose packs the damaged file listed is lost.
    env.lbk()
        .args(["restore", "photos:latest", "--target"])
        .arg(env.path("before"))
        .arg("--repo")
        .arg(&repo)
        .assert()
        .failure();

    let out = env
        .lbk()
        .args(["repair", "index", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("rebuilt the index from 2 packs:"))
        .get_output()
        .stdout
        .clone();
    assert_fits_80(&String::from_utf8(out).unwrap());
    assert!(
        !photos_index[0].exists(),
        "the damaged index file is replaced"
    );
    verify_clean(&env, &repo);
    for (what, src) in [("photos:latest", &a), ("configs:latest", &b)] {
        let t = env.path(&format!("after-{}", what.replace(':', "-")));
        restore_ok(&env, &repo, what, &t);
        assert_same_tree(src, &restored(&t, src));
    }
}

#[test]
fn skip_damaged_restores_every_intact_file_and_names_the_rest() {
    let (env, repo, src, first_pack) = two_backups_sharing_a_pack();
    fs::remove_file(&first_pack).unwrap();

    // All or nothing: a plain restore fails, names the damage, writes nothing.
    let plain = env.path("plain");
    env.lbk()
        .args(["restore", "app:latest", "--target"])
        .arg(&plain)
        .arg("--repo")
        .arg(&repo)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("keep/a.bin").and(predicate::str::contains("--skip-damaged")),
        );
    assert!(!plain.exists());

    let rescue = env.path("rescue");
    let out = env
        .lbk()
        .args(["restore", "app:latest", "--skip-damaged", "--target"])
        .arg(&rescue)
        .arg("--repo")
        .arg(&repo)
        .assert()
        .code(3)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lost: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("not restored: "))
        .collect();
    assert_eq!(lost.len(), 2, "{stderr}");
    assert!(
        lost[0].contains("keep/a.bin") && lost[1].contains("keep/b.bin"),
        "{stderr}"
    );
    let got = restored(&rescue, &src);
    assert!(!got.join("keep/a.bin").exists() && !got.join("keep/b.bin").exists());
    for i in 0..8 {
        let f = format!("more/f{i}.dat");
        assert_eq!(
            fs::read(got.join(&f)).unwrap(),
            fs::read(src.join(&f)).unwrap(),
            "{f}"
        );
    }
    // Nothing half-written is left anywhere beside the target either.
    let beside: Vec<_> = fs::read_dir(env.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");

    // A rescue is into a directory only, never over the live service.
    env.lbk()
        .args([
            "restore",
            "app:latest",
            "--skip-damaged",
            "--live",
            "--repo",
        ])
        .arg(&repo)
        .assert()
        .failure()
        .stderr(predicate::str::contains("--live"));
}

#[test]
fn a_lost_pack_is_repaired_and_every_other_file_restores() {
    let (env, repo, src, first_pack) = two_backups_sharing_a_pack();
    fs::remove_file(&first_pack).unwrap();
    env.lbk()
        .args(["verify", "--repo"])
        .arg(&repo)
        .assert()
        .failure();

    // A lost pack leaves nothing to read: the index is rebuilt without it.
    env.lbk()
        .args(["repair", "index", "--repo"])
        .arg(&repo)
        .assert()
        .success();

    let snaps_before = files_in(&repo.join("snapshots"));
    // The first restore point's own file list was in the lost pack: it
    // cannot be repaired, only removed, and that is said, not done.
    let dry = env
        .lbk()
        .args(["repair", "snapshots", "--dry-run", "--repo"])
        .arg(&repo)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot repair restore point"))
        .get_output()
        .stdout
        .clone();
    let dry = String::from_utf8(dry).unwrap();
    assert!(
        dry.contains("would rewrite") && dry.contains("keep/a.bin") && dry.contains("keep/b.bin"),
        "{dry}"
    );
    assert!(!dry.contains("more/f0.dat"), "{dry}");
    assert_fits_80(&dry);
    assert_eq!(
        files_in(&repo.join("snapshots")),
        snaps_before,
        "a dry run changes nothing"
    );

    env.lbk()
        .args(["repair", "snapshots", "--repo"])
        .arg(&repo)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("1 rewritten"))
        .stderr(predicate::str::contains("--forget"));
    env.lbk()
        .args(["repair", "snapshots", "--forget", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("removed restore point")
                .and(predicate::str::contains("1 removed")),
        );
    let after = files_in(&repo.join("snapshots"));
    assert_eq!(after.len(), 1);
    assert!(
        after.is_disjoint(&snaps_before),
        "the originals are replaced"
    );
    verify_clean(&env, &repo);

    let t = env.path("after");
    restore_ok(&env, &repo, "app:latest", &t);
    let got = restored(&t, &src);
    for i in 0..8 {
        let f = format!("more/f{i}.dat");
        assert_eq!(
            fs::read(got.join(&f)).unwrap(),
            fs::read(src.join(&f)).unwrap(),
            "{f}"
        );
    }
    assert!(!got.join("keep/a.bin").exists());

    // The repaired restore points say so, and what they lost.
    let list = env
        .lbk()
        .args(["snapshots", "--json", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&list).unwrap();
    let snaps = v.as_array().unwrap();
    assert_eq!(snaps.len(), 1, "{v}");
    for s in snaps {
        assert!(
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "repaired"),
            "{s}"
        );
        let dropped: Vec<&str> = s["repaired"][0]["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(dropped.len(), 2, "{s}");
        assert!(dropped[0].ends_with("keep/a.bin") && dropped[1].ends_with("keep/b.bin"));
    }
}

#[test]
fn repair_index_with_read_data_drops_damaged_chunks_and_the_next_backup_stores_them() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let src = env.path("photos");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("IMG_0001.jpg"), bytes(7, 3_000_000)).unwrap();
    backup(&env, &repo, "photos", &src);
    let pack = files_in(&repo.join("data")).into_iter().next().unwrap();
    let len = fs::metadata(&pack).unwrap().len() as usize;
    flip(&pack, len / 2);

    env.lbk()
        .args(["repair", "index", "--read-data", "--repo"])
        .arg(&repo)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("damaged chunk"));
    env.lbk()
        .args(["repair", "snapshots", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    // The same data backed up again is stored again, and restores.
    backup(&env, &repo, "photos", &src);
    let t = env.path("t");
    restore_ok(&env, &repo, "photos:latest", &t);
    assert_same_tree(&src, &restored(&t, &src));
}

#[test]
fn repair_index_killed_midway_leaves_a_usable_repository() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let mut dirs = Vec::new();
    for i in 0..12u64 {
        let d = env.path(&format!("svc{i}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("data.bin"), bytes(100 + i, 100_000)).unwrap();
        backup(&env, &repo, &format!("svc{i}"), &d);
        dirs.push(d);
    }
    let old = files_in(&repo.join("index"));
    assert_eq!(old.len(), 12);
    // Killed as soon as the new index is written, while the old one is
    // being removed: both, or the new one alone, must serve.
    let mut child = env.lb_process();
    child
        .env("LIFEBOAT_KEY", env.path("admin.key"))
        .args(["repair", "index", "--repo"])
        .arg(&repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = child.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = files_in(&repo.join("index"));
        if now.iter().any(|f| !old.contains(f)) || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "repair index never wrote"
        );
        std::thread::yield_now();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!files_in(&repo.join("index")).is_empty());
    env.lbk()
        .args(["unlock", "--all", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    verify_clean(&env, &repo);
    for (i, d) in dirs.iter().enumerate() {
        let t = env.path(&format!("t{i}"));
        restore_ok(&env, &repo, &format!("svc{i}:latest"), &t);
        assert_same_tree(d, &restored(&t, d));
    }
    // And the repair, run again, finishes the job.
    env.lbk()
        .args(["repair", "index", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("rebuilt the index from 12 packs"));
    assert_eq!(files_in(&repo.join("index")).len(), 1);
}

/// `lifeboat --repo off` for a repository in an S3 bucket, reached
/// through `endpoint`, that gives up on a failing store after 2 s.
fn s3_lb(env: &Env, endpoint: &str) -> assert_cmd::Command {
    let p = |s: &str| env.path(s).display().to_string();
    fs::write(env.path("s3-secret"), format!("{S3_SECRET}\n")).unwrap();
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            r#"
[repositories.off]
url = "s3://{S3_BUCKET}/outage/repo"
endpoint = "{endpoint}"
region = "us-east-1"
path_style = true
access_key_id = "env:LB_TEST_S3_ID"
secret_access_key = "file:{secret}"
key_file = "{key}"
deadline = "2s"
"#,
            secret = p("s3-secret"),
            key = p("k.key"),
        ),
    )
    .unwrap();
    let mut c = env.lb();
    c.arg("--config")
        .arg(&config)
        .env("LB_TEST_S3_ID", S3_KEY_ID)
        .args(["--repo", "off"]);
    c
}

#[test]
fn repair_index_during_a_store_outage_stops_and_keeps_the_old_index() {
    let server = S3Server::start();
    let env = Env::new();
    let lb = |endpoint: &str| s3_lb(&env, endpoint);
    lb(&server.endpoint())
        .args(["init", "--key-file"])
        .arg(env.path("k.key"))
        .assert()
        .success();
    let (a, b) = (env.path("a"), env.path("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("one.bin"), bytes(31, 400_000)).unwrap();
    fs::write(b.join("two.bin"), bytes(32, 300_000)).unwrap();
    for (name, dir) in [("a", &a), ("b", &b)] {
        lb(&server.endpoint())
            .args(["backup", "--name", name])
            .arg(dir)
            .assert()
            .success();
    }
    let index_dir = server.objects("outage/repo/index");
    let old = files_in(&index_dir);
    assert_eq!(old.len(), 2);
    // Trailers unreadable (every pack GET fails), then whole packs
    // unreadable (what --read-data fetches): neither is damage.
    for (faults, args) in [
        (Faults::PackReadsDown, &["repair", "index"][..]),
        (
            Faults::PackDownloadsDown,
            &["repair", "index", "--read-data"][..],
        ),
    ] {
        let proxy = FaultProxy::start(server.port, faults);
        let out = lb(&proxy.endpoint()).args(args).assert().failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(proxy.faults() > 0, "{faults:?}");
        assert!(
            err.contains("the store failed") || err.contains("503") || err.contains("Unavailable"),
            "{faults:?}: {err}"
        );
        assert!(!err.contains("unreadable pack"), "{faults:?}: {err}");
        assert_eq!(files_in(&index_dir), old, "{faults:?}: the old index stays");
    }
    lb(&server.endpoint())
        .args(["verify", "--read-data"])
        .assert()
        .success();
    for (name, dir) in [("a", &a), ("b", &b)] {
        let t = env.path(&format!("t-{name}"));
        lb(&server.endpoint())
            .args(["restore", &format!("{name}:latest"), "--target"])
            .arg(&t)
            .assert()
            .success();
        assert_same_tree(dir, &restored(&t, dir));
    }
}

#[test]
fn repair_snapshots_refuses_while_an_index_file_is_damaged() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let (a, b) = (env.path("photos"), env.path("configs"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("IMG_0001.jpg"), bytes(41, 600_000)).unwrap();
    fs::write(b.join("compose.yml"), bytes(42, 50_000)).unwrap();
    backup(&env, &repo, "photos", &a);
    let photos_index: Vec<PathBuf> = files_in(&repo.join("index")).into_iter().collect();
    backup(&env, &repo, "configs", &b);
    flip(&photos_index[0], 200);
    let snaps = files_in(&repo.join("snapshots"));
    assert_eq!(snaps.len(), 2);
    for args in [
        &["repair", "snapshots"][..],
        &["repair", "snapshots", "--forget"][..],
        &["repair", "snapshots", "--dry-run"][..],
    ] {
        env.lbk()
            .args(args)
            .arg("--repo")
            .arg(&repo)
            .assert()
            .failure()
            .stderr(predicate::str::contains("lifeboat repair index"));
        assert_eq!(files_in(&repo.join("snapshots")), snaps, "{args:?}");
    }
    // The way out it names works, and loses nothing.
    env.lbk()
        .args(["repair", "index", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    env.lbk()
        .args(["repair", "snapshots", "--forget", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("0 rewritten, 0 removed"));
    assert_eq!(files_in(&repo.join("snapshots")), snaps);
    let t = env.path("t");
    restore_ok(&env, &repo, "photos:latest", &t);
    assert_same_tree(&a, &restored(&t, &a));
}

#[test]
fn repair_snapshots_killed_before_removing_the_original_finishes_on_the_next_run() {
    let (env, repo, _src, first_pack) = two_backups_sharing_a_pack();
    fs::remove_file(&first_pack).unwrap();
    env.lbk()
        .args(["repair", "index", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    let before = files_in(&repo.join("snapshots"));
    // Keep the originals aside, repair, then put them back: as if killed
    // after each replacement was stored but before its original went.
    let saved: Vec<(PathBuf, Vec<u8>)> = before
        .iter()
        .map(|p| (p.clone(), fs::read(p).unwrap()))
        .collect();
    env.lbk()
        .args(["repair", "snapshots", "--forget", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    let replacements = files_in(&repo.join("snapshots"));
    assert_eq!(replacements.len(), 1);
    for (p, b) in &saved {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b).unwrap();
    }
    env.lbk()
        .args(["repair", "snapshots", "--forget", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("1 rewritten, 1 removed"));
    assert_eq!(
        files_in(&repo.join("snapshots")),
        replacements,
        "no second replacement; the original is gone"
    );
}
