//! A backup that could not read everything still makes its restore point,
//! but says so: every skipped entry counted and named in the restore
//! point, exit code 3, and `health` warns. A failing disk is simulated by
//! a preloaded shim (tests/fixtures/failing_io.c) that makes `read` fail
//! with EIO part-way through chosen files and `opendir` fail on a chosen
//! directory (we run as root, so permissions cannot make one unreadable).

mod common;

use common::*;
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

const FAILING: u64 = 6;

/// Builds the shim into the test's directory.
fn shim(env: &Env) -> PathBuf {
    let so = env.path("failing_io.so");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/failing_io.c");
    let st = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(st.success(), "cc failed to build the shim");
    so
}

/// Large files fail to read after their first 7 MiB (several chunks
/// already on their way to the workers: the race that once made this an
/// internal error), a directory cannot be listed, and
/// a FIFO is skipped as a special file, which is not a read error.
#[test]
fn unreadable_entries_make_an_incomplete_restore_point_exit_3_and_warn() {
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let src = env.path("srv/app");
    fs::create_dir_all(src.join("unlistable-dir")).unwrap();
    fs::write(src.join("unlistable-dir/inside.txt"), b"never read").unwrap();
    fs::write(src.join("ok.txt"), bytes(1, 10_000)).unwrap();
    fs::write(src.join("also-ok.bin"), bytes(2, 5 << 20)).unwrap();
    for i in 0..FAILING {
        fs::write(
            src.join(format!("failing-disk-{i}.bin")),
            bytes(10 + i, 10 << 20),
        )
        .unwrap();
    }
    let fifo = std::ffi::CString::new(src.join("a.fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            "[repositories.local]\npath = {repo:?}\nkey_file = {key:?}\n\n\
             [services.app]\ntier = \"critical\"\nsources = [{{ kind = \"files\", paths = [{src:?}] }}]\n"
        ),
    )
    .unwrap();
    let so = shim(&env);

    let out = env
        .lb()
        .env("LD_PRELOAD", &so)
        .env("LIFEBOAT_TEST_FAIL_READ", "failing-disk-")
        .env("LIFEBOAT_TEST_FAIL_AFTER", (7 << 20).to_string())
        .env("LIFEBOAT_TEST_FAIL_OPENDIR", "unlistable-dir")
        .args(["backup", "--all", "--json", "--config"])
        .arg(&config)
        .assert()
        .code(3)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stats = &snap["stats"];
    assert_eq!(stats["unreadable"], FAILING + 1, "{stats}\n{stderr}");
    assert_eq!(stats["skipped"], FAILING + 2, "the FIFO too: {stats}");
    let listed: Vec<&str> = stats["unreadable_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for i in 0..FAILING {
        let name = format!("failing-disk-{i}.bin");
        assert!(
            listed
                .iter()
                .any(|l| l.contains(&name) && l.contains("Input/output error")),
            "{listed:?}"
        );
        assert!(stderr.contains(&name), "{stderr}");
    }
    assert!(
        listed
            .iter()
            .any(|l| l.contains("unlistable-dir") && l.contains("Permission denied")),
        "{listed:?}"
    );
    assert!(!listed.iter().any(|l| l.contains("a.fifo")), "{listed:?}");
    assert!(!stderr.contains("internal error"), "{stderr}");

    // Everything that could be read restores; the failed files are absent,
    // never half-written; the unlistable directory is there, empty.
    let target = env.path("restore");
    env.lb()
        .args(["restore", "app:latest", "--target"])
        .arg(&target)
        .arg("--config")
        .arg(&config)
        .assert()
        .success();
    let back = restored(&target, &src);
    assert_eq!(fs::read(back.join("ok.txt")).unwrap(), bytes(1, 10_000));
    assert_eq!(
        fs::read(back.join("also-ok.bin")).unwrap(),
        bytes(2, 5 << 20)
    );
    for i in 0..FAILING {
        assert!(!back.join(format!("failing-disk-{i}.bin")).exists());
    }
    assert!(back.join("unlistable-dir").is_dir());
    assert!(fs::read_dir(back.join("unlistable-dir"))
        .unwrap()
        .next()
        .is_none());

    env.lb()
        .args(["health", "--config"])
        .arg(&config)
        .assert()
        .stdout(predicate::str::contains(format!(
            "newest restore point of app is incomplete ({} entries skipped",
            FAILING + 1
        )));

    // Once the disk reads again, the next restore point is complete.
    env.lb()
        .args(["backup", "--all", "--config"])
        .arg(&config)
        .assert()
        .code(0);
    env.lb()
        .args(["health", "--config"])
        .arg(&config)
        .assert()
        .stdout(predicate::str::contains("incomplete").not());
}
