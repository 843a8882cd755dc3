//! Backup → restore reproduces a tree bit for bit: contents, modes, mtimes,
//! symlinks, odd names. Random trees via proptest, plus the files cache.

mod common;

use common::*;
use lifeboat::engine::{backup, restore, RestoreOptions};
use lifeboat::progress::Reporter;
use proptest::prelude::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
struct Item {
    parent: u8,
    name: u8,
    kind: u8,
    size: u32,
    mode: u8,
    mtime: u32,
}

fn item() -> impl Strategy<Value = Item> {
    (
        any::<u8>(),
        any::<u8>(),
        0u8..8,
        prop_oneof![
            Just(0u32),
            1u32..200,
            1000u32..20_000,
            250_000u32..2_500_000
        ],
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(|(parent, name, kind, size, mode, mtime)| Item {
            parent,
            name,
            kind,
            size,
            mode,
            mtime,
        })
}

fn name_for(i: &Item) -> Vec<u8> {
    match i.name % 7 {
        0 => format!("with space {}", i.name).into_bytes(),
        1 => format!("ünïcødé-{}", i.name).into_bytes(),
        2 => vec![b'b', b'a', b'd', 0xff, b'0' + i.name % 10], // not UTF-8
        3 => format!(".hidden{}", i.name).into_bytes(),
        _ => format!("n{}", i.name).into_bytes(),
    }
}

/// Builds a tree from the items and returns its root.
fn build(root: &Path, items: &[Item]) {
    fs::create_dir_all(root).unwrap();
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut all: Vec<(PathBuf, u32)> = Vec::new();
    for (k, it) in items.iter().enumerate() {
        let parent = dirs[it.parent as usize % dirs.len()].clone();
        let p = parent.join(OsStr::from_bytes(&name_for(it)));
        if fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        match it.kind {
            0..=4 => {
                fs::write(&p, bytes(k as u64 + it.size as u64, it.size as usize)).unwrap();
                let mode = [0o644, 0o600, 0o755, 0o400, 0o4755, 0o640][it.mode as usize % 6];
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            }
            5 | 6 => {
                fs::create_dir(&p).unwrap();
                let mode = [0o755, 0o700, 0o750][it.mode as usize % 3];
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                dirs.push(p.clone());
            }
            _ => {
                let target: &[u8] = match it.mode % 3 {
                    0 => b"../elsewhere/file",
                    1 => b"/etc/passwd",
                    _ => b"dangling\xfe",
                };
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).unwrap();
            }
        }
        all.push((p, it.mtime));
    }
    // Times last, deepest first, so creating children does not change them.
    all.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, m) in all {
        let t = filetime::FileTime::from_unix_time(
            1_000_000_000 + (m % 600_000_000) as i64,
            m % 1_000_000_000,
        );
        filetime::set_symlink_file_times(&p, t, t).unwrap();
    }
    age_file(root);
}

fn under(
    repo: &lifeboat::repo::Repository,
    snap: &lifeboat::repo::Snapshot,
    src: &Path,
) -> Vec<lifeboat::repo::tree::Node> {
    let (index, _) = repo.load_index().unwrap();
    let prefix = src.strip_prefix("/").unwrap().display().to_string();
    repo.read_tree(&index, snap)
        .unwrap()
        .into_iter()
        .filter(|n| n.path.starts_with(&prefix))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(items in proptest::collection::vec(item(), 1..40)) {
        let env = Env::new();
        let src = env.path("src");
        build(&src, &items);
        let repo_dir = env.path("repo");
        let key = env.init(&repo_dir);
        let repo = env.repo(&repo_dir, &key);
        let snap = backup(&repo, &env.backup_opts("prop", &[&src]), &Reporter::silent()).unwrap();
        let target = env.path("out");
        restore(&repo, &snap, &RestoreOptions::new(&target), &Reporter::silent()).unwrap();
        assert_same_tree(&src, &restored(&target, &src));

        // Nothing changed: the second backup reads no file and records the
        // same entries (the tempdir above the source may change, and may).
        let again = backup(&repo, &env.backup_opts("prop", &[&src]), &Reporter::silent()).unwrap();
        prop_assert_eq!(again.stats.files_unchanged, again.stats.files);
        prop_assert_eq!(under(&repo, &snap, &src), under(&repo, &again, &src));
    }
}

#[test]
fn files_cache_skips_unchanged_files_but_notices_changes() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        let p = src.join(format!("f{i}"));
        fs::write(&p, bytes(i, 5000 + i as usize * 100)).unwrap();
        age_file(&p);
    }
    age_file(&src);
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let repo = env.repo(&repo_dir, &key);
    let opts = env.backup_opts("cache", &[&src]);
    let first = backup(&repo, &opts, &Reporter::silent()).unwrap();
    assert_eq!(first.stats.files_unchanged, 0);
    let second = backup(&repo, &opts, &Reporter::silent()).unwrap();
    assert_eq!(second.stats.files_unchanged, 20);

    // Same size, same mtime, different content: ctime gives it away.
    let p = src.join("f3");
    let mut content = fs::read(&p).unwrap();
    content[10] ^= 0xff;
    fs::write(&p, &content).unwrap();
    age_file(&p);
    let third = backup(&repo, &opts, &Reporter::silent()).unwrap();
    assert_eq!(third.stats.files_unchanged, 19);
    let target = env.path("out");
    restore(
        &repo,
        &third,
        &RestoreOptions::new(&target),
        &Reporter::silent(),
    )
    .unwrap();
    assert_eq!(fs::read(restored(&target, &p)).unwrap(), content);

    // Without the cache, everything is read again and the result is the same.
    let mut no_cache = opts.clone();
    no_cache.use_files_cache = false;
    let fourth = backup(&repo, &no_cache, &Reporter::silent()).unwrap();
    assert_eq!(fourth.stats.files_unchanged, 0);
    assert_eq!(under(&repo, &fourth, &src), under(&repo, &third, &src));
}

#[test]
fn excludes_match_names_and_paths() {
    let env = Env::new();
    let src = env.path("src");
    for p in [
        "keep/a.txt",
        "keep/b.tmp",
        "cache/x",
        "deep/cache/y",
        "app/logs/old.log",
        "app/data/z",
    ] {
        let p = src.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"x").unwrap();
    }
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let repo = env.repo(&repo_dir, &key);
    let mut opts = env.backup_opts("ex", &[&src]);
    opts.excludes = vec!["*.tmp".into(), "cache/".into(), "app/logs".into()];
    let snap = backup(&repo, &opts, &Reporter::silent()).unwrap();
    let (index, _) = repo.load_index().unwrap();
    let paths: Vec<String> = repo
        .read_tree(&index, &snap)
        .unwrap()
        .into_iter()
        .map(|n| n.path)
        .collect();
    let rel = |s: &str| format!("{}/{s}", src.strip_prefix("/").unwrap().display());
    assert!(paths.contains(&rel("keep/a.txt")));
    assert!(paths.contains(&rel("app/data/z")));
    for gone in ["keep/b.tmp", "cache", "deep/cache", "app/logs"] {
        assert!(
            !paths.contains(&rel(gone)),
            "{gone} should be excluded: {paths:?}"
        );
    }
}

#[test]
fn restore_of_selected_paths_and_into_non_empty_targets() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("docs/invoice.pdf"), bytes(1, 30_000)).unwrap();
    fs::write(src.join("other.txt"), b"other").unwrap();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let repo = env.repo(&repo_dir, &key);
    let snap = backup(&repo, &env.backup_opts("sel", &[&src]), &Reporter::silent()).unwrap();

    let target = env.path("out");
    let mut opts = RestoreOptions::new(&target);
    let wanted = src.join("docs/invoice.pdf");
    opts.include = vec![wanted.display().to_string()];
    restore(&repo, &snap, &opts, &Reporter::silent()).unwrap();
    assert_eq!(
        fs::read(restored(&target, &wanted)).unwrap(),
        bytes(1, 30_000)
    );
    assert!(!restored(&target, &src.join("other.txt")).exists());

    // A non-empty target is refused, and left exactly as it was.
    let err = restore(
        &repo,
        &snap,
        &RestoreOptions::new(&target),
        &Reporter::silent(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<lifeboat::Error>(),
            Some(lifeboat::Error::TargetNotEmpty { .. })
        ),
        "{err:#}"
    );
    assert!(!restored(&target, &src.join("other.txt")).exists());

    // With force, what is replaced is kept as a rollback point.
    fs::write(restored(&target, &wanted), b"edited since").unwrap();
    let mut force = RestoreOptions::new(&target);
    force.force = true;
    let report = restore(&repo, &snap, &force, &Reporter::silent()).unwrap();
    assert_same_tree(&src, &restored(&target, &src));
    let rollback = report.rollback.expect("rollback kept");
    let old = rollback.join(wanted.strip_prefix("/").unwrap().iter().next().unwrap());
    assert!(old.exists(), "rollback at {}", old.display());
    let leftovers: Vec<_> = fs::read_dir(env.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn restoring_a_missing_path_says_so() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let repo = env.repo(&repo_dir, &key);
    let snap = backup(&repo, &env.backup_opts("m", &[&src]), &Reporter::silent()).unwrap();
    let mut opts = RestoreOptions::new(env.path("out"));
    opts.include = vec!["/no/such/file".into()];
    let err = restore(&repo, &snap, &opts, &Reporter::silent()).unwrap_err();
    assert!(
        format!("{err:#}").contains("\"no/such/file\" is not in restore point"),
        "{err:#}"
    );
    assert!(!env.path("out").exists());
}

/// A restore that cannot fit is refused before anything is written.
#[test]
fn a_restore_that_does_not_fit_is_refused_up_front() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), bytes(5, 4_000_000)).unwrap();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let repo = env.repo(&repo_dir, &key);
    let snap = backup(&repo, &env.backup_opts("fit", &[&src]), &Reporter::silent()).unwrap();
    // A 1 MiB filesystem to restore into (tests run as root, as CI does).
    let small = env.path("small");
    fs::create_dir_all(&small).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "this test mounts a 1 MiB tmpfs and needs root (CI runs as root)"
    );
    let target = small.join("restore");
    let result = restore(
        &repo,
        &snap,
        &RestoreOptions::new(&target),
        &Reporter::silent(),
    )
    .map(|_| ());
    let written = fs::read_dir(&small).unwrap().count();
    let _ = std::process::Command::new("umount").arg(&small).status();
    let msg = format!("{:#}", result.unwrap_err());
    assert!(
        msg.contains("free; restoring restore point") && msg.contains("needs 3.8 MiB"),
        "{msg}"
    );
    assert_eq!(written, 0, "nothing was written");
}
