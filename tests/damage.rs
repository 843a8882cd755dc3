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

/// A damaged index file hides data that is still in its pack: verify must
/// not call that pack harmless, restore and prune point at `repair index`,
/// and find and stats go on with the restore points they can read.
#[test]
fn a_damaged_index_file_points_at_repair_and_the_rest_stays_searchable() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let (a, b) = (env.path("photos"), env.path("configs"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("IMG_0001.jpg"), bytes(1, 300_000)).unwrap();
    fs::write(b.join("compose.yml"), bytes(2, 5_000)).unwrap();
    let backup = |name: &str, dir: &Path| {
        env.lbk()
            .args(["backup", "--name", name, "--repo"])
            .arg(&repo)
            .arg(dir)
            .assert()
            .success();
    };
    backup("photos", &a);
    let photos_index = files_in(&repo.join("index"));
    assert_eq!(photos_index.len(), 1);
    backup("configs", &b);
    let photos_short = latest_short_id(&env, &repo, "photos");
    let damaged = photos_index.into_iter().next().unwrap();
    fs::write(&damaged, b"garbage").unwrap();
    let lb = |args: &[&str]| {
        let mut c = env.lbk();
        c.args(args).arg("--repo").arg(&repo);
        c
    };

    let out = lb(&["verify"]).assert().code(1).get_output().stdout.clone();
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("harmless"), "{out}");
    assert!(
        out.contains("an index file is damaged") && out.contains("`lifeboat repair index`"),
        "{out}"
    );

    let target = env.path("restored");
    lb(&[
        "restore",
        "photos:latest",
        "--target",
        target.to_str().unwrap(),
    ])
    .assert()
    .code(1)
    .stderr(
        predicate::str::contains("is not in the index")
            .and(predicate::str::contains("hint:"))
            .and(predicate::str::contains("`lifeboat repair index`")),
    );
    let packs = files_in(&repo.join("data"));
    lb(&["prune"]).assert().code(1).stderr(
        predicate::str::contains("hint:").and(predicate::str::contains("`lifeboat repair index`")),
    );
    assert_eq!(files_in(&repo.join("data")), packs, "prune changed nothing");

    let out = lb(&["find", "*"]).assert().code(3).get_output().clone();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("compose.yml"), "{stdout}");
    assert!(stdout.contains("1 restore point of 2 searched"), "{stdout}");
    assert!(
        stderr.contains("warning: not searched: ") && stderr.contains(&photos_short),
        "{stderr}"
    );
    let json = lb(&["find", "*", "--json"])
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let rows: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(
        !rows.as_array().unwrap().is_empty()
            && rows
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["service"] == "configs"),
        "{rows}"
    );
    lb(&["stats"]).assert().code(3).stderr(
        predicate::str::contains("left out of the totals")
            .and(predicate::str::contains(&photos_short)),
    );

    // Repaired, nothing is skipped any more.
    lb(&["repair", "index"]).assert().success();
    lb(&["find", "*"]).assert().success();
    let out = lb(&["prune"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("pruned 2 packs:"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
}

/// A pack cut short in its last 64 KiB segment loses only the chunks that
/// overlap that segment (and its trailer): verify, verify --read-data,
/// restore --skip-damaged and repair index --read-data all name exactly
/// those, and everything else restores byte for byte.
#[test]
fn a_pack_cut_short_in_its_last_segment_loses_only_what_overlaps_it() {
    use lifeboat::repo::index::ENTRY_LEN;
    const SEGMENT: u64 = 64 * 1024;
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let src = env.path("src");
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..400 {
        let dir = src.join(format!("d{}", i % 10));
        fs::create_dir_all(&dir).unwrap();
        // Noise, so the packs are as big as the files.
        let len = (next() % 100_001) as usize;
        let data: Vec<u8> = (0..len.div_ceil(8))
            .flat_map(|_| next().to_le_bytes())
            .take(len)
            .collect();
        fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
    }
    let lb = |args: &[&str]| {
        let mut c = env.lbk();
        c.args(args).arg("--repo").arg(&repo);
        c
    };
    lb(&["backup"]).arg(&src).assert().success();

    // Which chunks and files each pack's last segment holds.
    let r = env.repo(&repo, &key);
    let (index, _) = r.load_index().unwrap();
    let (snaps, _) = r.list_snapshots().unwrap();
    let nodes = r.read_tree(&index, &snaps[0]).unwrap();
    let (files, _) = r.load_index_files().unwrap();
    // (pack, its file count, damaged chunk ids, damaged file paths, cut)
    let mut candidates = Vec::new();
    for (p, entries) in files.iter().flat_map(|(_, packs)| packs) {
        let blobs_end = entries
            .iter()
            .map(|e| (e.offset + e.stored_len) as u64)
            .max();
        let plain = blobs_end.unwrap() + (entries.len() * ENTRY_LEN + 12) as u64;
        let last_start = (plain - 1) / SEGMENT * SEGMENT;
        let damaged: HashSet<_> = entries
            .iter()
            .filter(|e| (e.offset + e.stored_len) as u64 > last_start)
            .map(|e| e.id)
            .collect();
        if snaps[0].tree.iter().any(|t| damaged.contains(t)) {
            continue; // the file list itself: everything would be lost
        }
        let in_pack = |n: &&lifeboat::repo::tree::Node, ids: &HashSet<_>| {
            n.chunks.iter().any(|c| ids.contains(c))
        };
        let ids: HashSet<_> = entries.iter().map(|e| e.id).collect();
        let pack_files = nodes.iter().filter(|n| in_pack(n, &ids)).count();
        let lost: HashSet<String> = nodes
            .iter()
            .filter(|n| in_pack(n, &damaged))
            .map(|n| format!("/{}", n.path))
            .collect();
        // Inside the last segment's ciphertext (its plaintext plus a tag).
        let cut = 100.min(plain - last_start + 16 - 1);
        candidates.push((*p, pack_files, damaged, lost, cut));
    }
    drop(r);
    // Prefer a pack whose last segment holds file data, the larger the better.
    candidates.sort_by_key(|c| (c.3.is_empty(), std::cmp::Reverse(c.1)));
    let (pack, pack_files, damaged, lost, cut) = candidates.into_iter().next().unwrap();
    assert!(pack_files > 100, "{pack_files} files in the pack");
    let path = repo.join("data").join(&pack.hex()[..2]).join(pack.hex());
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(f.metadata().unwrap().len() - cut).unwrap();
    drop(f);

    let flagged = |args: &[&str]| -> HashSet<String> {
        let out = lb(args)
            .arg("--json")
            .assert()
            .code(1)
            .get_output()
            .stdout
            .clone();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let problems = v["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{v}");
        assert_eq!(problems[0]["object"], format!("data/{}", pack.hex()), "{v}");
        problems[0]["affects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().split_once(": ").unwrap().1.to_string())
            .collect()
    };
    let structural = flagged(&["verify"]);
    assert_eq!(
        structural, lost,
        "verify names exactly the files in the lost segment"
    );
    assert!(
        structural.len() * 10 < pack_files,
        "{} of {pack_files}",
        structural.len()
    );
    assert_eq!(flagged(&["verify", "--read-data"]), lost);

    // Every flagged file is unrestorable, every other one byte-exact.
    let target = env.path("rescued");
    let rescue = lb(&[
        "restore",
        "latest",
        "--skip-damaged",
        "--target",
        target.to_str().unwrap(),
    ])
    .assert();
    let rescue = if lost.is_empty() {
        rescue.success()
    } else {
        rescue.failure()
    };
    let stderr = String::from_utf8_lossy(&rescue.get_output().stderr).to_string();
    let mut restored_files = 0;
    for n in nodes
        .iter()
        .filter(|n| n.kind == lifeboat::repo::tree::NodeKind::File)
    {
        let (name, at) = (format!("/{}", n.path), target.join(&n.path));
        if lost.contains(&name) {
            assert!(!at.exists(), "{name} restored from a lost segment");
            assert!(
                stderr.contains(&format!("not restored: {name}")),
                "{stderr}"
            );
        } else {
            let original = fs::read(Path::new(&name)).unwrap();
            let got = fs::read(&at).unwrap_or_else(|e| panic!("{}: {e}\n{stderr}", at.display()));
            assert!(got == original, "{name} differs");
            restored_files += 1;
        }
    }
    assert_eq!(restored_files, 400 - lost.len());

    // repair index --read-data keeps exactly the chunks that read back.
    let out = lb(&["repair", "index", "--read-data", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let left_out: HashSet<String> = v["damaged_chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left_out, damaged.iter().map(|c| c.hex()).collect());
    assert_eq!(v["trailerless_packs"][0][0], pack.hex(), "{v}");
    assert!(v["unreadable_packs"].as_array().unwrap().is_empty(), "{v}");
    // Rebuilt, the index still finds everything else in the pack.
    let target = env.path("again");
    let again = lb(&[
        "restore",
        "latest",
        "--skip-damaged",
        "--target",
        target.to_str().unwrap(),
    ])
    .assert();
    let stderr = String::from_utf8_lossy(&again.get_output().stderr).to_string();
    assert_eq!(
        stderr.matches("not restored: ").count(),
        lost.len(),
        "{stderr}"
    );
}
