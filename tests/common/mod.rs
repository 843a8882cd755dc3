//! Shared helpers for the integration tests: isolated key and cache
//! directories, the real binary, and a strict tree comparison.
#![allow(dead_code)]

use assert_cmd::Command;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The real binary, with keys and caches inside this test's directory.
    pub fn lb(&self) -> Command {
        let mut c = Command::cargo_bin("lifeboat").expect("binary");
        c.env("LIFEBOAT_KEY_DIR", self.path("keys"))
            .env("LIFEBOAT_CACHE_DIR", self.path("cache"))
            .env("HOME", self.path("home"))
            .env_remove("LIFEBOAT_REPO")
            .env_remove("LIFEBOAT_KEY")
            .env_remove("LIFEBOAT_CONFIG");
        c
    }

    /// The binary with the admin key made by [`Env::init`].
    pub fn lbk(&self) -> Command {
        let mut c = self.lb();
        c.env("LIFEBOAT_KEY", self.path("admin.key"));
        c
    }

    /// `lifeboat init --repo DIR --key-file KEY`; returns the key path.
    pub fn init(&self, repo: &Path) -> PathBuf {
        let key = self.path("admin.key");
        self.lb()
            .args(["init", "--repo"])
            .arg(repo)
            .arg("--key-file")
            .arg(&key)
            .assert()
            .success();
        key
    }

    pub fn repo(&self, repo: &Path, key: &Path) -> lifeboat::repo::Repository {
        lifeboat::repo::Repository::open(
            Box::new(lifeboat::repo::LocalBackend::new(repo)),
            lifeboat::repo::KeySource::File(key.to_path_buf()),
        )
        .expect("open repository")
    }

    pub fn backup_opts(&self, service: &str, paths: &[&Path]) -> lifeboat::engine::BackupOptions {
        let mut o = lifeboat::engine::BackupOptions::new(
            service,
            paths.iter().map(|p| p.to_path_buf()).collect(),
        );
        o.cache_dir = self.path("cache");
        o
    }
}

/// Where a backed-up absolute path lands under a restore target.
pub fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("absolute source"))
}

/// Asserts two trees are identical: names, kinds, contents, modes, mtimes
/// and symlink targets.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let ma = fs::symlink_metadata(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let mb = fs::symlink_metadata(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert_eq!(ma.file_type(), mb.file_type(), "kind of {}", b.display());
    assert_eq!(
        ma.permissions().mode() & 0o7777,
        mb.permissions().mode() & 0o7777,
        "mode of {}",
        b.display()
    );
    if !ma.file_type().is_symlink() {
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {}",
            b.display()
        );
    }
    if ma.file_type().is_symlink() {
        assert_eq!(
            fs::read_link(a).unwrap(),
            fs::read_link(b).unwrap(),
            "target of {}",
            b.display()
        );
    } else if ma.is_file() {
        assert!(
            fs::read(a).unwrap() == fs::read(b).unwrap(),
            "content of {}",
            b.display()
        );
    } else if ma.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        assert_eq!(na, nb, "entries of {}", b.display());
        for n in na {
            assert_same_tree(&a.join(&n), &b.join(&n));
        }
    }
}

/// Deterministic pseudo-random bytes, half compressible text, half noise.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / 65536) % 2 == 0 {
            out.extend_from_slice(format!("row {} value {}\n", x % 1000, x % 97).as_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Sets a file's mtime into the past so the files cache trusts it.
pub fn age_file(p: &Path) {
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}
