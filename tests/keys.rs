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
