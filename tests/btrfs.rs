//! `snapshot = "btrfs"` through the real binary, on a loop-mounted Btrfs
//! image: the backup reads one point in time while a writer keeps changing
//! the tree, records the original paths, and leaves no snapshot behind.

mod common;

use common::Env;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A Btrfs filesystem in an image file, mounted until dropped (also when
/// the test fails).
struct Btrfs {
    mount: PathBuf,
    loop_dev: String,
}

impl Btrfs {
    fn new(env: &Env) -> Btrfs {
        assert!(
            Command::new("mkfs.btrfs").arg("--version").output().is_ok(),
            "mkfs.btrfs not found: run scripts/test-deps.sh (installs btrfs-progs)"
        );
        let img = env.path("btrfs.img");
        fs::File::create(&img)
            .and_then(|f| f.set_len(256 << 20))
            .unwrap();
        run(Command::new("mkfs.btrfs").arg("-q").arg(&img));
        let loop_dev = run(Command::new("losetup").args(["-f", "--show"]).arg(&img));
        let mount = env.path("mnt");
        fs::create_dir_all(&mount).unwrap();
        let fs = Btrfs { mount, loop_dev };
        run(Command::new("mount").arg(&fs.loop_dev).arg(&fs.mount));
        fs
    }

    fn subvolumes(&self) -> String {
        run(Command::new("btrfs")
            .args(["subvolume", "list"])
            .arg(&self.mount))
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mount)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(&self.loop_dev)
            .status();
    }
}

fn config(env: &Env, data: &Path) -> PathBuf {
    let path = env.path("lifeboat.toml");
    let text = format!(
        r#"state_dir = "{state}"
cache_dir = "{cache}"
[repositories.local]
path = "{repo}"
key_file = "{key}"
[services.app]
tier = "important"
[[services.app.sources]]
kind = "files"
paths = ["{data}"]
exclude = ["*.tmp"]
snapshot = "btrfs"
"#,
        state = env.path("state").display(),
        cache = env.path("cache").display(),
        repo = env.path("repo").display(),
        key = env.path("admin.key").display(),
        data = data.display(),
    );
    fs::write(&path, text).unwrap();
    env.init(&env.path("repo"));
    path
}

/// Replaced whole (written beside, synced, renamed over), so each file is
/// always one complete value, as a crash-safe application writes it. A
/// snapshot is only crash-consistent: without the sync, Btrfs can take it
/// after the rename but before the new data is on disk, and the snapshot
/// then holds the file empty, exactly as a power cut would have left it.
fn put(dir: &Path, name: &str, n: u64) {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = fs::File::create(&tmp).unwrap();
    f.write_all(format!("{n}\n").repeat(2048).as_bytes())
        .unwrap();
    f.sync_data().unwrap();
    fs::rename(&tmp, dir.join(name)).unwrap();
}

fn value(p: &Path) -> u64 {
    let text = fs::read_to_string(p).unwrap();
    let first = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("{} is empty", p.display()));
    assert!(text.lines().all(|l| l == first), "{} is torn", p.display());
    first.parse().unwrap()
}

#[test]
fn a_btrfs_snapshot_backs_up_one_point_in_time_and_is_deleted() {
    let env = Env::new();
    let fs_ = Btrfs::new(&env);
    let data = fs_.mount.join("data");
    let middle = data.join("m");
    fs::create_dir_all(&middle).unwrap();
    // Files read between `a` and `z` give the writer time to move on
    // while a backup of the live tree would be reading them.
    for i in 0..300 {
        let f = middle.join(format!("{i:03}"));
        fs::write(&f, common::bytes(i, 64 << 10)).unwrap();
        common::age_file(&f);
    }
    put(&data, "a", 0);
    put(&data, "z", 0);
    // Another backup's transient snapshot inside the tree is never walked.
    fs::create_dir_all(data.join(".lifeboat-snapshot-1-0000beef/x")).unwrap();
    // One left by a backup that died is deleted by the next run.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let stale = fs_
        .mount
        .join(format!(".lifeboat-snapshot-{dead_pid}-0000dead"));
    run(Command::new("btrfs")
        .args(["subvolume", "snapshot", "-r"])
        .arg(&fs_.mount)
        .arg(&stale));
    assert!(fs_.subvolumes().contains("0000dead"));
    let cfg = config(&env, &data);

    // `a` is written before `z`: a point-in-time view has a == z or
    // a == z + 1, while a live read of `a` then, later, `z` sees z > a.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, rounds, data) = (stop.clone(), rounds.clone(), data.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                put(&data, "a", n);
                put(&data, "z", n);
                rounds.store(n, Ordering::Relaxed);
            }
        })
    };
    let before = rounds.load(Ordering::Relaxed);
    let out = env
        .lb()
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "app"])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let during = rounds.load(Ordering::Relaxed) - before;
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(during > 10, "the writer barely ran ({during} rounds)");

    let repo = env.repo(&env.path("repo"), &env.path("admin.key"));
    let points = repo.list_snapshots().unwrap().0;
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].paths, vec![data.display().to_string()]);

    let target = env.path("restored");
    env.lb()
        .arg("--config")
        .arg(&cfg)
        .args(["restore", "app", "--target"])
        .arg(&target)
        .assert()
        .success();
    let restored = common::restored(&target, &data);
    let (a, z) = (value(&restored.join("a")), value(&restored.join("z")));
    assert!(
        a == z || a == z + 1,
        "not one point in time: a = {a}, z = {z} (writer ran {during} rounds)"
    );
    assert_eq!(fs::read_dir(restored.join("m")).unwrap().count(), 300);
    assert!(!restored.join(".lifeboat-snapshot-1-0000beef").exists());
    // Restored under the original path, nothing else beside it.
    let top: Vec<_> = fs::read_dir(target.join(fs_.mount.strip_prefix("/").unwrap()))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from("data")]);

    // Recorded by the original paths, so the files cache still hits.
    env.lb()
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "app"])
        .assert()
        .success();
    let points = repo.list_snapshots().unwrap().0;
    let latest = points.iter().max_by_key(|p| p.time.clone()).unwrap();
    assert!(
        latest.stats.files_unchanged >= 300,
        "files cache missed: {:?}",
        latest.stats
    );

    let subvolumes = fs_.subvolumes();
    assert!(subvolumes.is_empty(), "snapshots left behind: {subvolumes}");
    let leftovers: Vec<_> = fs::read_dir(&fs_.mount)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".lifeboat-snapshot-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_btrfs_snapshot_of_a_path_not_on_btrfs_is_a_clear_error() {
    let env = Env::new();
    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), "x").unwrap();
    let cfg = config(&env, &data);
    let out = env
        .lb()
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "app"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "backup succeeded: {err}");
    for want in [
        "service `app`",
        "source `files`",
        &data.display().to_string(),
        "is not on a Btrfs filesystem",
        "hint:",
    ] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    let repo = env.repo(&env.path("repo"), &env.path("admin.key"));
    assert!(repo.list_snapshots().unwrap().0.is_empty());
}

#[test]
fn an_unknown_snapshot_kind_is_a_located_config_error() {
    let env = Env::new();
    let path = env.path("lifeboat.toml");
    fs::write(
        &path,
        "[repositories.local]\npath = \"/r\"\n\n[services.app]\ntier = \"important\"\n\
         sources = [{ kind = \"files\", paths = [\"/srv\"], snapshot = \"lvm\" }]\n",
    )
    .unwrap();
    let out = env
        .lb()
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let want = format!(
        "{}:6:59: service `app`: snapshot \"lvm\" is not supported",
        path.display()
    );
    assert!(err.contains(&want), "expected {want:?} in\n{err}");
}
