//! docs/format.md is the last line of defence: tests/format_reader.py, an
//! independent reader written from that document alone, must restore a
//! repository the real binary wrote exactly as `lifeboat restore` does —
//! files, a secret, a symlink, a non-UTF-8 name and a database source's
//! `.lifeboat/` artifact. A format change the document does not follow
//! fails here.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const READER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/format_reader.py");
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/format.md");

/// Runs the reader; its stdout, or a failure with its stderr.
fn reader(env: &Env, args: &[&OsStr]) -> String {
    let out = Command::new("python3")
        .arg(READER)
        .args(args)
        .current_dir(env.dir.path())
        .output()
        .expect("python3 runs (install it with scripts/test-deps.sh)");
    assert!(
        out.status.success(),
        "tests/format_reader.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the reader prints UTF-8")
}

fn require_python_deps() {
    let ok = Command::new("python3")
        .args(["-c", "import pyrage, zstandard, blake3"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the format-document test needs python3 with pyrage, zstandard and blake3: \
         run `pip install pyrage zstandard blake3` (scripts/test-deps.sh does it)"
    );
}

/// A service with all three kinds of source the document must describe.
fn service(env: &Env) -> (PathBuf, PathBuf, PathBuf) {
    let files = env.path("srv/app");
    fs::create_dir_all(files.join("sub")).unwrap();
    fs::write(files.join("small.txt"), b"hello\n").unwrap();
    // Several chunks, some compressible and some not.
    fs::write(files.join("sub/big.bin"), bytes(11, 3_000_000)).unwrap();
    fs::write(files.join("empty"), b"").unwrap();
    fs::write(
        files.join(OsStr::from_bytes(b"caf\xe9.txt")),
        b"latin-1 name\n",
    )
    .unwrap();
    fs::set_permissions(files.join("small.txt"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("sub/big.bin", files.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", files.join("dangling")).unwrap();
    fs::set_permissions(files.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();

    let secrets = env.path("srv/app-secrets");
    fs::create_dir_all(&secrets).unwrap();
    fs::write(secrets.join(".env"), b"DB_PASSWORD=hunter2\n").unwrap();
    fs::set_permissions(secrets.join(".env"), fs::Permissions::from_mode(0o644)).unwrap();

    let db = env.path("srv/db/app.sqlite");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO items (body) VALUES ('one'), ('two'), ('three');",
    )
    .unwrap();
    drop(c);
    for p in [&files, &secrets] {
        for e in walk(p) {
            age_file(&e);
        }
    }
    (files, secrets, db)
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

/// The version in the document's title, `# Lifeboat repository format, version N`.
fn documented_version() -> u64 {
    let doc = fs::read_to_string(DOC).unwrap();
    let title = doc.lines().next().unwrap_or_default();
    title
        .strip_prefix("# Lifeboat repository format, version ")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("docs/format.md must start with its version, not {title:?}"))
}

#[test]
fn an_independent_reader_written_from_the_format_document_restores_what_lifeboat_restores() {
    require_python_deps();
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let (files, secrets, db) = service(&env);
    let cfg = env.path("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            r#"state_dir = "{state}"
cache_dir = "{cache}"
[repositories.local]
path = "{repo}"
key_file = "{key}"
[services.app]
tier = "important"
[[services.app.sources]]
kind = "files"
paths = ["{files}"]
[[services.app.sources]]
kind = "secrets"
paths = ["{secrets}"]
[[services.app.sources]]
name = "db"
kind = "sqlite"
path = "{db}"
"#,
            state = env.path("state").display(),
            cache = env.path("cache").display(),
            repo = repo.display(),
            key = key.display(),
            files = files.display(),
            secrets = secrets.display(),
            db = db.display(),
        ),
    )
    .unwrap();
    env.lb()
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "app"])
        .assert()
        .success();

    // The reader reads the version the document describes, and the
    // repository is that version: a bump without a new document fails.
    let supported: u64 = reader(&env, &[OsStr::new("--supported-version")])
        .trim()
        .parse()
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
    assert_eq!(
        supported,
        documented_version(),
        "tests/format_reader.py vs docs/format.md"
    );
    assert_eq!(
        config["version"].as_u64(),
        Some(supported),
        "the repository's format version is not the documented one: update docs/format.md and tests/format_reader.py"
    );

    let list = reader(
        &env,
        &[repo.as_os_str(), key.as_os_str(), OsStr::new("list")],
    );
    let snaps: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(snaps.len(), 1, "{list}");
    let snap = &snaps[0];
    assert_eq!(snap["service"], "app");
    let sources = snap["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "{snap}");
    assert_eq!(sources[0]["kind"], "sqlite");
    assert_eq!(
        sources[0]["files"],
        serde_json::json!([".lifeboat/db/app.sqlite"])
    );
    assert_eq!(sources[0]["facts"]["counts"]["items"], 3);
    let id = snap["id"].as_str().unwrap();

    let by_reader = env.path("by-reader");
    let out = reader(
        &env,
        &[
            repo.as_os_str(),
            key.as_os_str(),
            OsStr::new("restore"),
            OsStr::new(id),
            by_reader.as_os_str(),
        ],
    );
    assert!(out.contains(".env"), "the secret was not flagged: {out}");
    let by_lifeboat = env.path("by-lifeboat");
    env.lbk()
        .args(["restore", id, "--repo"])
        .arg(&repo)
        .arg("--target")
        .arg(&by_lifeboat)
        .assert()
        .success();

    // Byte for byte and mode for mode, every entry below the targets.
    let names = |p: &Path| {
        let mut v: Vec<_> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&by_lifeboat), names(&by_reader));
    for n in names(&by_lifeboat) {
        assert_same_tree(&by_lifeboat.join(&n), &by_reader.join(&n));
    }
    // And both are what was backed up, with the document's special cases.
    assert_same_tree(&files, &restored(&by_reader, &files));
    let env_file = restored(&by_reader, &secrets).join(".env");
    assert_eq!(fs::read(&env_file).unwrap(), b"DB_PASSWORD=hunter2\n");
    assert_eq!(
        fs::metadata(&env_file).unwrap().permissions().mode() & 0o7777,
        0o600,
        "a secret is restored 0600 whatever its mode was"
    );
    assert_eq!(
        fs::read_link(restored(&by_reader, &files).join("link")).unwrap(),
        Path::new("sub/big.bin")
    );
    let copy = rusqlite::Connection::open(by_reader.join(".lifeboat/db/app.sqlite")).unwrap();
    let n: u64 = copy
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}
