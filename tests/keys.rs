//! Writing needs no secret that can read: a write-only key backs up but
//! cannot restore; a break-glass key added later opens old snapshots too.

mod common;

use common::*;
use predicates::prelude::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn init_writes_a_private_identity_and_prints_its_recipient() {
    let env = Env::new();
    let repo = env.path("repo");
    let out = env
        .lb()
        .args(["init", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let recipient = out
        .lines()
        .find_map(|l| l.strip_prefix("admin recipient: "))
        .expect("recipient printed");
    assert!(recipient.starts_with("age1"), "{out}");
    let keys: Vec<_> = fs::read_dir(env.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        fs::metadata(&keys[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&keys[0]).unwrap();
    assert!(text.contains(recipient) && text.contains("AGE-SECRET-KEY-1"));
    // The key never lands in the repository or on stdout.
    assert!(!out.contains("AGE-SECRET-KEY"));
    let secret = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY"))
        .unwrap();
    for e in walk(&repo) {
        assert!(
            !String::from_utf8_lossy(&fs::read(&e).unwrap()).contains(secret),
            "{}",
            e.display()
        );
    }
    // Without --key, the default key directory is found by repository id.
    env.lb()
        .args(["snapshots", "--repo"])
        .arg(&repo)
        .assert()
        .success();
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}

#[test]
fn write_only_key_backs_up_but_cannot_restore() {
    let env = Env::new();
    let repo = env.path("repo");
    let admin = env.init(&repo);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("secret.txt"), b"only the admin may read this").unwrap();

    let wo = env.path("host.key");
    env.lb()
        .args(["keys", "write-only", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&admin)
        .arg("--out")
        .arg(&wo)
        .assert()
        .success();
    assert_eq!(
        fs::metadata(&wo).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!fs::read_to_string(&wo).unwrap().contains(
        &fs::read_to_string(&admin)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string()
    ));

    // Backing up (twice, so dedup reads the index) works with the write-only key.
    for _ in 0..2 {
        env.lb()
            .args(["backup", "--repo"])
            .arg(&repo)
            .arg("--key")
            .arg(&wo)
            .arg(&src)
            .assert()
            .success();
    }
    // Listing works (summaries are metadata) ...
    env.lb()
        .args(["snapshots", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&wo)
        .assert()
        .success()
        .stdout(predicate::str::contains("adhoc"));
    // ... restoring, listing files and verifying do not.
    let target = env.path("out");
    for args in [
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
        vec!["ls", "latest"],
        vec!["verify"],
    ] {
        env.lb()
            .args(&args)
            .arg("--repo")
            .arg(&repo)
            .arg("--key")
            .arg(&wo)
            .assert()
            .failure()
            .stderr(
                predicate::str::contains("is a write-only key").and(predicate::str::contains(
                    "hint: restore and verify need the repository's age identity",
                )),
            );
    }
    assert!(!target.exists());
    // The admin restores what the write-only host backed up.
    env.lb()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .arg("--repo")
        .arg(&repo)
        .arg("--key")
        .arg(&admin)
        .assert()
        .success();
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn break_glass_key_opens_snapshots_made_before_it_was_added() {
    let env = Env::new();
    let repo = env.path("repo");
    let admin = env.init(&repo);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), bytes(7, 100_000)).unwrap();
    env.lb()
        .args(["backup", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&admin)
        .arg(&src)
        .assert()
        .success();

    // A second identity, as a colleague would generate it with age-keygen.
    let glass = age::x25519::Identity::generate();
    let glass_file = env.path("glass.key");
    use age::secrecy::ExposeSecret;
    fs::write(
        &glass_file,
        format!("{}\n", glass.to_string().expose_secret()),
    )
    .unwrap();
    // Before it is added it opens nothing.
    env.lb()
        .args(["snapshots", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&glass_file)
        .assert()
        .failure()
        .stderr(predicate::str::contains("no key in"));
    env.lb()
        .args(["keys", "add"])
        .arg(glass.to_public().to_string())
        .arg("--repo")
        .arg(&repo)
        .arg("--key")
        .arg(&admin)
        .assert()
        .success();
    env.lb()
        .args(["keys", "list", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&admin)
        .assert()
        .success()
        .stdout(predicate::str::contains("break-glass"));
    let target = env.path("out");
    env.lb()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .arg("--repo")
        .arg(&repo)
        .arg("--key")
        .arg(&glass_file)
        .assert()
        .success();
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn a_key_for_another_repository_is_refused_clearly() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    let key_a = env.init(&a);
    let other = Env::new();
    other.init(&b);
    env.lb()
        .args(["snapshots", "--repo"])
        .arg(&b)
        .arg("--key")
        .arg(&key_a)
        .assert()
        .failure()
        .stderr(predicate::str::contains("no key in").and(predicate::str::contains("hint:")));
    env.lb()
        .args(["snapshots", "--repo"])
        .arg(env.path("nothing-here"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("is not a Lifeboat repository"));
}

/// The admin key object's path and its JSON.
fn admin_key_object(repo: &std::path::Path) -> (std::path::PathBuf, serde_json::Value) {
    fs::read_dir(repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .find(|(_, v)| v["label"] == "admin")
        .expect("an admin key object")
}

#[test]
fn init_suggests_a_break_glass_key_as_the_remedy_for_a_damaged_key_object() {
    let env = Env::new();
    env.lb()
        .args(["init", "--repo"])
        .arg(env.path("repo"))
        .assert()
        .success()
        .stdout(
            predicate::str::contains("lifeboat keys add age1")
                .and(predicate::str::contains("damaged")),
        );
    let usage = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/usage.md")).unwrap();
    assert!(
        usage.contains("a second key is also the remedy for a damaged"),
        "docs/usage.md must say what to do about a damaged key object"
    );
}

#[test]
fn a_damaged_key_object_is_named_and_a_break_glass_key_still_opens_the_repository() {
    let env = Env::new();
    let repo = env.path("repo");
    let admin = env.init(&repo);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), bytes(5, 50_000)).unwrap();
    env.lbk()
        .args(["backup", "--repo"])
        .arg(&repo)
        .arg(&src)
        .assert()
        .success();
    let glass = age::x25519::Identity::generate();
    let glass_file = env.path("glass.key");
    use age::secrecy::ExposeSecret;
    fs::write(
        &glass_file,
        format!("{}\n", glass.to_string().expose_secret()),
    )
    .unwrap();
    env.lbk()
        .args(["keys", "add"])
        .arg(glass.to_public().to_string())
        .arg("--repo")
        .arg(&repo)
        .assert()
        .success();

    let (path, obj) = admin_key_object(&repo);
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    let original = fs::read(&path).unwrap();
    let sealed = hex::decode(obj["sealed"].as_str().unwrap()).unwrap();
    let at = |needle: &[u8]| {
        sealed
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("age header line")
            + needle.len()
            + 3
    };
    // One flipped byte in each part of the sealed key: the recipient
    // stanza, its wrapped file key, the header MAC, the payload; and one
    // that breaks the JSON around it.
    let body = sealed.iter().position(|b| *b == b'\n').unwrap() + 1;
    let body = body + sealed[body..].iter().position(|b| *b == b'\n').unwrap() + 3;
    let cases: Vec<(&str, Vec<u8>)> = {
        let flip = |i: usize, base64: bool| {
            let mut s = sealed.clone();
            s[i] = if base64 {
                if s[i] == b'A' {
                    b'B'
                } else {
                    b'A'
                }
            } else {
                s[i] ^ 0x01
            };
            let mut o = obj.clone();
            o["sealed"] = serde_json::Value::String(hex::encode(s));
            serde_json::to_vec_pretty(&o).unwrap()
        };
        vec![
            ("stanza", flip(at(b"-> X25519 "), true)),
            ("wrapped key", flip(body, true)),
            ("header MAC", flip(at(b"--- "), true)),
            ("payload", flip(sealed.len() - 5, false)),
            ("JSON", {
                let mut o = original.clone();
                o[0] = b'[';
                o
            }),
        ]
    };
    for (what, damaged) in cases {
        fs::write(&path, &damaged).unwrap();
        let out = env
            .lbk()
            .args(["snapshots", "--repo"])
            .arg(&repo)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{what}: opened with a damaged key object"
        );
        assert!(
            err.contains(&format!("the key object keys/{name} is damaged")),
            "{what}: {err}"
        );
        assert!(!err.contains("no key in"), "{what}: {err}");
        assert!(
            err.contains("keys add"),
            "{what}: the hint names the remedy: {err}"
        );
        // The break-glass key has its own key object and still opens it all.
        env.lb()
            .args(["snapshots", "--repo"])
            .arg(&repo)
            .arg("--key")
            .arg(&glass_file)
            .assert()
            .success();
    }
    let target = env.path("out");
    env.lb()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .arg("--repo")
        .arg(&repo)
        .arg("--key")
        .arg(&glass_file)
        .assert()
        .success();
    assert_same_tree(&src, &restored(&target, &src));
    // The remedy in docs/usage.md: remove the damaged object, add the key again.
    fs::remove_file(&path).unwrap();
    let recipient = obj["recipient"].as_str().unwrap();
    env.lb()
        .args(["keys", "add", recipient, "--label", "admin", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&glass_file)
        .assert()
        .success();
    env.lb()
        .args(["snapshots", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&admin)
        .assert()
        .success();
}

fn keys_json(env: &Env, repo: &std::path::Path) -> Vec<serde_json::Value> {
    let out = env
        .lbk()
        .args(["keys", "list", "--json", "--repo"])
        .arg(repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn glass_key(env: &Env) -> (std::path::PathBuf, String) {
    use age::secrecy::ExposeSecret;
    let glass = age::x25519::Identity::generate();
    let file = env.path("glass.key");
    fs::write(&file, format!("{}\n", glass.to_string().expose_secret())).unwrap();
    (file, glass.to_public().to_string())
}

#[test]
fn keys_list_shows_every_key_and_revoke_stops_a_write_only_key_and_keeps_the_last_admin() {
    let env = Env::new();
    let repo = env.path("repo");
    let admin = env.init(&repo);
    let wo = env.path("web1.key");
    env.lbk()
        .args(["keys", "write-only", "--label", "web1", "--out"])
        .arg(&wo)
        .arg("--repo")
        .arg(&repo)
        .assert()
        .success();
    // The key file holds only the key's own identity: its secrets live in
    // its key object, which revoking removes.
    let text = fs::read_to_string(&wo).unwrap();
    assert!(
        text.contains("\"identity\"") && !text.contains("chunk_key"),
        "{text}"
    );
    let keys = keys_json(&env, &repo);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let kind = |k: &str| keys.iter().find(|v| v["kind"] == k).unwrap().clone();
    assert_eq!(kind("admin")["label"], "admin");
    let w = kind("write-only");
    assert_eq!(w["label"], "web1");
    assert!(w["created"].as_str().unwrap().starts_with("20"), "{w}");
    let wo_id = w["id"].as_str().unwrap().to_string();
    let admin_id = kind("admin")["id"].as_str().unwrap().to_string();
    env.lbk()
        .args(["keys", "list", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("write-only")
                .and(predicate::str::contains("web1"))
                .and(predicate::str::contains(&wo_id[..8])),
        );

    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"one").unwrap();
    let backup_with = |key: &std::path::Path| {
        env.lb()
            .args(["backup", "--repo"])
            .arg(&repo)
            .arg("--key")
            .arg(key)
            .arg(&src)
            .assert()
    };
    backup_with(&wo).success();
    env.lbk()
        .args(["keys", "revoke", &wo_id[..8], "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("can no longer back up"));
    backup_with(&wo).failure().stderr(
        predicate::str::contains("was revoked").and(predicate::str::contains("keys write-only")),
    );
    // The last key that can read is never removed.
    env.lbk()
        .args(["keys", "revoke", &admin_id, "--repo"])
        .arg(&repo)
        .assert()
        .failure()
        .stderr(predicate::str::contains("last key that can read"));
    env.lbk()
        .args(["keys", "revoke", "ffffffffffff", "--repo"])
        .arg(&repo)
        .assert()
        .failure()
        .stderr(predicate::str::contains("keys list"));
    // With a break-glass key in place, the admin key can go, and the
    // output says what its holder could still decrypt.
    let (glass, recipient) = glass_key(&env);
    env.lbk()
        .args(["keys", "add", &recipient, "--repo"])
        .arg(&repo)
        .assert()
        .success();
    env.lbk()
        .args(["keys", "revoke", &admin_id[..12], "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("can still decrypt everything written before")
                .and(predicate::str::contains("keys rotate")),
        );
    env.lb()
        .args(["snapshots", "--repo"])
        .arg(&repo)
        .arg("--key")
        .arg(&admin)
        .assert()
        .failure()
        .stderr(predicate::str::contains("no key in"));
    let target = env.path("out");
    env.lb()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .arg("--repo")
        .arg(&repo)
        .arg("--key")
        .arg(&glass)
        .assert()
        .success();
    assert_same_tree(&src, &restored(&target, &src));
}

/// A write-only key file as Lifeboat wrote them before key objects for
/// write-only keys: its secrets inside, from the admin key object.
fn legacy_write_only_key(repo: &std::path::Path, admin: &std::path::Path) -> String {
    let (_, obj) = admin_key_object(repo);
    let id: age::x25519::Identity = fs::read_to_string(admin)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY"))
        .unwrap()
        .parse()
        .unwrap();
    let sealed = hex::decode(obj["sealed"].as_str().unwrap()).unwrap();
    let plain = age::decrypt(&id, &sealed).unwrap();
    let master: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
    serde_json::json!({
        "lifeboat_key": "write-only",
        "repository": config["id"],
        "meta_identity": master["meta_identity"],
        "chunk_key": master["chunk_key"],
    })
    .to_string()
}

#[test]
fn rotate_then_back_up_and_restore_old_and_new_snapshots() {
    let env = Env::new();
    let repo = env.path("repo");
    let admin = env.init(&repo);
    let (glass, recipient) = glass_key(&env);
    env.lbk()
        .args(["keys", "add", &recipient, "--repo"])
        .arg(&repo)
        .assert()
        .success();
    let wo = env.path("web1.key");
    env.lbk()
        .args(["keys", "write-only", "--out"])
        .arg(&wo)
        .arg("--repo")
        .arg(&repo)
        .assert()
        .success();
    let legacy = env.path("legacy.key");
    fs::write(&legacy, legacy_write_only_key(&repo, &admin)).unwrap();

    let old_src = env.path("old");
    fs::create_dir_all(&old_src).unwrap();
    fs::write(old_src.join("a"), bytes(1, 300_000)).unwrap();
    fs::write(old_src.join("b"), b"before the rotation").unwrap();
    let backup = |key: &std::path::Path, src: &std::path::Path| {
        env.lb()
            .args(["backup", "--repo"])
            .arg(&repo)
            .arg("--key")
            .arg(key)
            .arg(src)
            .assert()
    };
    backup(&admin, &old_src).success();
    backup(&legacy, &old_src).success();
    let config_before = fs::read_to_string(repo.join("config")).unwrap();
    let key_objects_before: Vec<_> = fs::read_dir(repo.join("keys"))
        .unwrap()
        .map(|e| fs::read(e.unwrap().path()).unwrap())
        .collect();

    env.lbk()
        .args(["keys", "rotate", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("generation 2").and(predicate::str::contains(
                "re-sealed 2 admin/break-glass and 1 write-only",
            )),
        );
    let config_after = fs::read_to_string(repo.join("config")).unwrap();
    let recipients = |c: &str| {
        let v: serde_json::Value = serde_json::from_str(c).unwrap();
        (
            v["data_recipient"].clone(),
            v["meta_recipient"].clone(),
            v["id"].clone(),
        )
    };
    let (d0, m0, id0) = recipients(&config_before);
    let (d1, m1, id1) = recipients(&config_after);
    assert!(
        d0 != d1 && m0 != m1 && id0 == id1,
        "new recipients, same repository"
    );
    for obj in key_objects_before {
        let still = fs::read_dir(repo.join("keys"))
            .unwrap()
            .any(|e| fs::read(e.unwrap().path()).unwrap() == obj);
        assert!(!still, "every key object was re-sealed");
    }

    // The write-only key keeps working; the one with its secrets inside is
    // told to be re-issued.
    let new_src = env.path("new");
    fs::create_dir_all(&new_src).unwrap();
    fs::write(new_src.join("c"), bytes(2, 200_000)).unwrap();
    backup(&wo, &new_src).success();
    backup(&legacy, &new_src).failure().stderr(
        predicate::str::contains("predates").and(predicate::str::contains("keys write-only")),
    );
    backup(&admin, &old_src).success();

    // Old and new restore points restore, with either admin key.
    let snaps = env
        .lbk()
        .args(["snapshots", "--json", "--repo"])
        .arg(&repo)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let snaps: serde_json::Value = serde_json::from_slice(&snaps).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 4, "{snaps:?}");
    let first = snaps[0]["id"].as_str().unwrap().to_string();
    let newest_wo = snaps[2]["id"].as_str().unwrap().to_string();
    for (i, (id, src, key)) in [
        (&first, &old_src, &admin),
        (&first, &old_src, &glass),
        (&newest_wo, &new_src, &glass),
        (&newest_wo, &new_src, &admin),
    ]
    .into_iter()
    .enumerate()
    {
        let target = env.path(&format!("out{i}"));
        env.lb()
            .args(["restore", id, "--target"])
            .arg(&target)
            .arg("--repo")
            .arg(&repo)
            .arg("--key")
            .arg(key)
            .assert()
            .success();
        assert_same_tree(src, &restored(&target, src));
    }
    env.lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    // Prune repacks across generations: forget the first two, keep the rest.
    env.lbk()
        .args(["forget", "adhoc", "--keep-last", "2", "--prune", "--repo"])
        .arg(&repo)
        .assert()
        .success();
    env.lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(&repo)
        .assert()
        .success();

    // The independent reader of docs/format.md reads both generations.
    let reader = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/format_reader.py");
    let newest = snaps[3]["id"].as_str().unwrap().to_string();
    for (i, (id, src)) in [(&newest_wo, &new_src), (&newest, &old_src)]
        .into_iter()
        .enumerate()
    {
        let target = env.path(&format!("py{i}"));
        let out = std::process::Command::new("python3")
            .arg(reader)
            .arg(&repo)
            .arg(&admin)
            .args(["restore", id])
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same_tree(src, &restored(&target, src));
    }
}
