//! The daily look-around commands (find, diff, stats, dump, tags, filters)
//! through the built binary, from a directory of its own with a fresh HOME,
//! against a repository made with `init` and `backup`.

mod common;

use common::{bytes, Env};
use predicates::prelude::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const SECRET: &str = "API_TOKEN=hunter2-Zx81";

/// A repository, a config with two services backing up the same tree
/// (`app` also has a secrets source), and the tree itself.
struct Fixture {
    env: Env,
    config: PathBuf,
    app: PathBuf,
    secrets: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let env = Env::new();
        let repo = env.path("repo");
        let key = env.init(&repo);
        let app = env.path("srv/app");
        fs::create_dir_all(app.join("data/old")).unwrap();
        fs::write(app.join("config.yml"), b"listen: 8080\n").unwrap();
        fs::write(app.join("data/app.sqlite3"), bytes(1, 100_000)).unwrap();
        fs::write(app.join("data/old/archive.sqlite3"), bytes(2, 50_000)).unwrap();
        fs::write(app.join("data/notes.txt"), b"remember the milk\n").unwrap();
        fs::write(app.join(".env"), format!("{SECRET}\n")).unwrap();
        let secrets = env.path("srv/secrets");
        fs::create_dir_all(&secrets).unwrap();
        fs::write(secrets.join("token"), format!("{SECRET}\n")).unwrap();
        let config = env.path("lifeboat.toml");
        fs::write(
            &config,
            format!(
                "[repositories.local]\npath = {repo:?}\nkey_file = {key:?}\n\n\
                 [services.app]\ntier = \"critical\"\nsources = [{{ kind = \"files\", paths = [{app:?}] }}, {{ kind = \"secrets\", paths = [{secrets:?}] }}]\n\n\
                 [services.mirror]\ntier = \"supporting\"\nsources = [{{ kind = \"files\", paths = [{app:?}] }}]\n"
            ),
        )
        .unwrap();
        Fixture {
            env,
            config,
            app,
            secrets,
        }
    }

    fn lb(&self) -> assert_cmd::Command {
        let mut c = self.env.lb();
        c.arg("--config").arg(&self.config);
        c
    }

    fn backup(&self, args: &[&str]) -> String {
        let out = self
            .lb()
            .arg("backup")
            .args(args)
            .arg("--json")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let snap: Value = serde_json::from_slice(&out).unwrap();
        snap["id"].as_str().unwrap().to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self
            .lb()
            .args(args)
            .arg("--json")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out)))
    }

    /// The binary under a pseudo-terminal (`script`), so its stdout is a
    /// TTY; returns (exit code, everything it printed).
    fn in_terminal(&self, args: &[&str]) -> (i32, String) {
        self.in_terminal_of(None, args)
    }

    /// The same, on a terminal `cols` wide when given.
    fn in_terminal_of(&self, cols: Option<u16>, args: &[&str]) -> (i32, String) {
        let bin = assert_cmd::cargo::cargo_bin("lifeboat");
        let line = std::iter::once(bin.display().to_string())
            .chain(["--config".into(), self.config.display().to_string()])
            .chain(args.iter().map(|a| a.to_string()))
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let line = match cols {
            Some(n) => format!("stty cols {n} rows 24; {line}"),
            None => line,
        };
        let proto = self.env.lb_process();
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &line, "/dev/null"])
            .current_dir(self.env.dir.path())
            .stdin(std::process::Stdio::null());
        for (k, v) in proto.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        let out = c.output().expect("running script(1)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

fn paths_of(found: &Value) -> Vec<String> {
    let mut v: Vec<String> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn under(root: &Path, rel: &str) -> String {
    format!("{}/{rel}", root.display())
}

#[test]
fn find_matches_names_globs_at_any_depth_and_across_restore_points() {
    let f = Fixture::new();
    let first = f.backup(&["app"]);
    let unchanged = f.backup(&["app"]);
    fs::write(f.app.join("data/app.sqlite3"), bytes(3, 120_000)).unwrap();
    let second = f.backup(&["app"]);

    let found = f.json(&["find", "app.sqlite3"]);
    let rows = found.as_array().unwrap();
    assert_eq!(rows.len(), 3, "one match per restore point: {found}");
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![first.as_str(), unchanged.as_str(), second.as_str()],
        "oldest first"
    );
    assert_eq!(rows[0]["size"], 100_000);
    assert_eq!(rows[1]["size"], 100_000);
    assert_eq!(rows[2]["size"], 120_000);
    assert_eq!(rows[0]["service"], "app");
    assert_eq!(rows[0]["path"], under(&f.app, "data/app.sqlite3"));

    let p = paths_of(&f.json(&["find", "*/config.yml", "--latest", "1"]));
    assert_eq!(p, vec![under(&f.app, "config.yml")]);
    let p = paths_of(&f.json(&["find", "data/*.sqlite3", "--latest", "1"]));
    assert_eq!(
        p,
        vec![under(&f.app, "data/app.sqlite3")],
        "`*` stays in one directory"
    );
    let p = paths_of(&f.json(&["find", "data/**/*.sqlite3", "--latest", "1"]));
    assert_eq!(
        p,
        vec![
            under(&f.app, "data/app.sqlite3"),
            under(&f.app, "data/old/archive.sqlite3")
        ],
        "`**` spans directories"
    );
    let anchored = format!("{}/**/notes.txt", f.env.dir.path().display());
    assert_eq!(
        paths_of(&f.json(&["find", &anchored, "--latest", "1"])).len(),
        1
    );
    assert!(
        paths_of(&f.json(&["find", "/notes.txt"])).is_empty(),
        "a leading / anchors at the root"
    );

    f.lb()
        .args(["find", "*.sqlite3"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains(&first[..8])
                .and(predicate::str::contains("archive.sqlite3"))
                .and(predicate::str::contains(
                    "6 matching entries in 3 restore points of 3 searched",
                )),
        );
    f.lb()
        .args(["find", "x", "--service", "nosuch"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown service `nosuch`"));
}

#[test]
fn diff_names_added_removed_and_changed_paths() {
    let f = Fixture::new();
    let a = f.backup(&["app"]);
    fs::write(f.app.join("data/new.txt"), b"new\n").unwrap();
    fs::remove_file(f.app.join("data/notes.txt")).unwrap();
    fs::write(f.app.join("data/app.sqlite3"), bytes(9, 100_000)).unwrap(); // same size
    let cfg = f.app.join("config.yml");
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o600)).unwrap();
    let b = f.backup(&["app"]);

    let d = f.json(&["diff", &a[..10], &b]);
    assert_eq!(
        d["added"],
        serde_json::json!([under(&f.app, "data/new.txt")])
    );
    assert_eq!(
        d["removed"],
        serde_json::json!([under(&f.app, "data/notes.txt")])
    );
    let changed: Vec<(String, Vec<String>)> = d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["what"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let what = |rel: &str| {
        changed
            .iter()
            .find(|(p, _)| *p == under(&f.app, rel))
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| panic!("{rel} not reported changed: {changed:?}"))
    };
    assert!(what("data/app.sqlite3").contains(&"content".to_string()));
    assert!(!what("data/app.sqlite3").contains(&"size".to_string()));
    assert!(what("config.yml").contains(&"mode".to_string()));
    assert!(!what("config.yml").contains(&"content".to_string()));
    assert!(
        changed.iter().all(|(p, _)| p.starts_with('/')),
        "paths start with /"
    );
    assert!(
        !changed.iter().any(|(p, _)| p.ends_with("archive.sqlite3")),
        "an untouched file is not changed"
    );
    // data/ changed only because entries in it did: noise, unless asked.
    let data_dir = under(&f.app, "data");
    assert!(!changed.iter().any(|(p, _)| *p == data_dir), "{changed:?}");
    let all = f.json(&["diff", &a, &b, "--metadata"]);
    assert!(
        all["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == data_dir.as_str() && c["what"] == serde_json::json!(["mtime"])),
        "--metadata shows it: {all}"
    );

    f.lb()
        .args(["diff", "app:latest", &a[..8]])
        .assert()
        .success()
        .stdout(predicate::str::contains("+ ").and(predicate::str::contains(" removed, ")));
    f.lb().args(["diff", &a, &b]).assert().success().stdout(
        predicate::str::contains(format!("+ {}", under(&f.app, "data/new.txt")))
            .and(predicate::str::contains(format!(
                "- {}",
                under(&f.app, "data/notes.txt")
            )))
            .and(predicate::str::contains(format!(
                "1 added, 1 removed, {} changed",
                changed.len()
            ))),
    );
    f.lb()
        .args(["diff", "nosuch:latest", &b])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown service `nosuch`"));
}

/// Sum of the sizes of the regular files under `dirs`, and their number.
fn tree_size(dirs: &[&Path]) -> (u64, u64) {
    let mut out = (0, 0);
    for d in dirs {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                let (n, b) = tree_size(&[&e.path()]);
                out.0 += n;
                out.1 += b;
            } else if m.is_file() {
                out.0 += 1;
                out.1 += m.len();
            }
        }
    }
    out
}

#[test]
fn stats_add_up_to_what_was_backed_up_and_see_dedup() {
    let f = Fixture::new();
    // Noise does not compress: what stats shows saved is deduplication.
    let mut noise = vec![0u8; 3 << 19];
    blake3::Hasher::new()
        .update(b"daily_cli noise")
        .finalize_xof()
        .fill(&mut noise);
    fs::write(f.app.join("data/blob.bin"), &noise).unwrap();
    f.backup(&["app"]);
    f.backup(&["mirror"]);
    let (app_files, app_bytes) = tree_size(&[&f.app, &f.secrets]);
    let (mirror_files, mirror_bytes) = tree_size(&[&f.app]);

    let s = f.json(&["stats"]);
    let r = &s["repositories"][0];
    let app = &r["services"]["app"];
    let mirror = &r["services"]["mirror"];
    assert_eq!(app["restore_points"], 1);
    assert_eq!(app["files"], app_files);
    assert_eq!(
        app["raw_bytes"], app_bytes,
        "raw bytes are the files' sizes"
    );
    assert_eq!(mirror["raw_bytes"], mirror_bytes);
    assert_eq!(mirror["files"], mirror_files);
    assert_eq!(r["total"]["raw_bytes"], app_bytes + mirror_bytes);
    assert_eq!(r["total"]["restore_points"], 2);
    // The mirror's data is all in the app's: no new chunks, none stored twice.
    assert_eq!(r["total"]["chunks"], app["chunks"]);
    assert_eq!(r["total"]["stored_bytes"], app["stored_bytes"]);
    let ratio = |v: &Value| v["dedup_ratio"].as_f64().unwrap();
    assert!(ratio(&r["total"]) > 1.8, "same data twice: {}", r["total"]);
    assert!(
        ratio(app) < 1.5 && ratio(app) > 0.9,
        "one copy of mostly noise: {app}"
    );
    assert!(
        r["storage_bytes"].as_u64().unwrap() >= app["stored_bytes"].as_u64().unwrap(),
        "storage holds at least the stored chunks"
    );

    let only = f.json(&["stats", "--service", "mirror"]);
    let only = &only["repositories"][0];
    assert_eq!(only["services"].as_object().unwrap().len(), 1);
    assert_eq!(only["total"]["raw_bytes"], mirror_bytes);
    f.lb()
        .args(["stats"])
        .assert()
        .success()
        .stdout(predicate::str::contains("mirror").and(predicate::str::contains("DEDUP")));
    f.lb()
        .args(["stats", "--service", "nosuch"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown service `nosuch`"));
}

#[test]
fn dump_streams_a_file_exactly_and_keeps_secrets_off_the_terminal() {
    let f = Fixture::new();
    let big = bytes(42, 3 << 20);
    fs::write(f.app.join("data/big.bin"), &big).unwrap();
    let id = f.backup(&["app"]);

    let out = f
        .lb()
        .args(["dump", &id[..8]])
        .arg(under(&f.app, "data/big.bin"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(
        out == big,
        "dump is byte-exact ({} of {} bytes)",
        out.len(),
        big.len()
    );

    let env_file = under(&f.app, ".env");
    let token = under(&f.secrets, "token");
    for secret in [&env_file, &token] {
        let (code, text) = f.in_terminal(&["dump", "app", secret]);
        assert_eq!(code, 1, "refused on a terminal: {text}");
        assert!(
            text.contains("is a secret") && text.contains("--force"),
            "{text}"
        );
        assert!(
            !text.contains(SECRET),
            "the secret stayed off the screen: {text}"
        );
        // Piped, it is the admin's file to write.
        f.lb()
            .args(["dump", "app:latest", secret])
            .assert()
            .success()
            .stdout(format!("{SECRET}\n"));
    }
    let (code, text) = f.in_terminal(&["dump", "app", &env_file, "--force"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(SECRET), "{text}");
    // Not a secret: a terminal gets it.
    let (code, text) = f.in_terminal(&["dump", "app", &under(&f.app, "config.yml")]);
    assert_eq!((code, text.contains("listen: 8080")), (0, true), "{text}");

    f.lb()
        .args(["dump", "app"])
        .arg(under(&f.app, "data"))
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("is a directory")
                .and(predicate::str::contains("lifeboat restore")),
        );
    f.lb()
        .args(["dump", "app", "/no/such/file"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not in restore point"));
    f.lb()
        .args(["dump", "nosuch:latest", "/x"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown service `nosuch`"));
}

#[test]
fn tags_filters_and_unknown_services() {
    let f = Fixture::new();
    let tagged = f.backup(&["app", "--tag", "nightly", "--tag", "pre-upgrade"]);
    let plain = f.backup(&["app"]);
    f.backup(&["mirror"]);

    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let list = f.json(&["snapshots", "--tag", "nightly"]);
    assert_eq!(ids(&list), vec![tagged.clone()]);
    assert_eq!(
        list[0]["tags"],
        serde_json::json!(["nightly", "pre-upgrade"])
    );

    f.lb()
        .args(["tag", &plain[..8], "--add", "keep", "--add", "nightly"])
        .assert()
        .success()
        .stdout(predicate::str::contains("tags keep, nightly"));
    f.lb()
        .args(["tag", &tagged, "--remove", "nightly"])
        .assert()
        .success();
    assert_eq!(
        ids(&f.json(&["snapshots", "--tag", "nightly"])),
        vec![plain.clone()],
        "the id survives retagging"
    );
    assert_eq!(
        ids(&f.json(&["snapshots", "--tag", "pre-upgrade"])),
        vec![tagged.clone()]
    );
    assert_eq!(
        ids(&f.json(&["snapshots", "--tag", "keep,nightly"])),
        vec![plain.clone()],
        "a,b needs both"
    );
    assert!(ids(&f.json(&["snapshots", "--tag", "keep,pre-upgrade"])).is_empty());
    assert_eq!(
        ids(&f.json(&["snapshots", "--tag", "keep", "--tag", "pre-upgrade"])).len(),
        2,
        "a repeated --tag accepts either"
    );
    f.lb()
        .args(["tag", &plain, "--add", "keep"])
        .assert()
        .success()
        .stdout(predicate::str::contains("(unchanged)"));
    // The rewritten snapshot still restores.
    f.lb()
        .args(["restore", &plain, "--target"])
        .arg(f.env.path("restored"))
        .assert()
        .success();
    f.lb()
        .args(["snapshots", "--tag", "nope"])
        .assert()
        .success()
        .stdout(predicate::str::contains("(no restore points match)"));

    // Filters.
    let latest = f.json(&["snapshots", "--latest", "1"]);
    let mut services: Vec<&str> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    services.sort();
    assert_eq!(services, vec!["app", "mirror"], "newest of each service");
    assert!(ids(&latest).contains(&plain));
    assert_eq!(
        ids(&f.json(&["snapshots", "--service", "app", "--latest", "1"])),
        vec![plain.clone()]
    );
    assert_eq!(ids(&f.json(&["snapshots", "app"])).len(), 2);
    let host = lifeboat::paths::hostname();
    assert_eq!(ids(&f.json(&["snapshots", "--host", &host])).len(), 3);
    assert!(ids(&f.json(&["snapshots", "--host", "elsewhere"])).is_empty());

    // Rejected before anything is read.
    f.lb()
        .args(["snapshots", "--latest", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--latest"));
    f.lb()
        .args(["tag", &plain, "--add", "two words"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("whitespace"));
    f.lb()
        .args(["backup", "app", "--tag", &"x".repeat(65)])
        .assert()
        .failure()
        .stderr(predicate::str::contains("longer than 64 bytes"));
    f.lb()
        .args(["snapshots", "--tag", ""])
        .assert()
        .failure()
        .stderr(predicate::str::contains("empty"));
    for args in [
        vec!["snapshots", "nosuch"],
        vec!["snapshots", "--service", "nosuch"],
        vec!["tag", "nosuch:latest", "--add", "x"],
    ] {
        f.lb()
            .args(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("unknown service `nosuch`"));
    }
    f.lb()
        .args(["snapshots", "--service", "ap"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did you mean `app`"));
}

#[test]
fn mistyped_names_get_a_suggestion() {
    let f = Fixture::new();
    let id = f.backup(&["mirror"]);
    let target = f.env.path("t");
    let t = target.to_str().unwrap();
    for args in [
        vec!["restore", "mirorr", "--target", t],
        vec!["dump", "mirorr", "/x"],
        vec!["tag", "mirorr", "--add", "x"],
        vec!["ls", "mirorr"],
    ] {
        f.lb()
            .args(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "no restore point matches \"mirorr\" (did you mean `mirror`?)",
            ));
    }
    // An id prefix that matches nothing is not a name.
    let wrong = if id.starts_with('0') {
        "fffff"
    } else {
        "00000"
    };
    f.lb()
        .args(["ls", wrong])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did you mean").not());
    f.lb()
        .args(["snapshots", "--service", "miror"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did you mean `mirror`"));
    f.lb()
        .args(["recover", "files-delted"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did you mean `files-deleted`"));
}

/// The length of each line of `text` in characters (an ellipsis is one).
fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn tables_fit_an_80_column_terminal_and_print_whole_values_off_one() {
    let f = Fixture::new();
    let deep = f.app.join("data/a/rather/deep/directory/tree/that/goes/on");
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("the-file-we-look-for.sqlite3"), bytes(5, 1000)).unwrap();
    f.backup(&[
        "app",
        "--tag",
        "nightly,before-the-big-upgrade,keep-forever",
    ]);
    f.backup(&["mirror"]);
    let whole = deep
        .join("the-file-we-look-for.sqlite3")
        .display()
        .to_string();
    for args in [vec!["snapshots"], vec!["find", "*.sqlite3"], vec!["stats"]] {
        let (code, text) = f.in_terminal_of(Some(80), &args);
        // `script` ends lines with \r\n.
        let text = text.replace('\r', "");
        assert!(code == 0 && text.lines().count() > 2, "{args:?}: {text}");
        assert!(widest(&text) <= 80, "{args:?} on 80 columns:\n{text}");
    }
    let (_, text) = f.in_terminal_of(Some(80), &["find", "*.sqlite3"]);
    assert!(
        text.contains("…the-file-we-look-for.sqlite3"),
        "a cut path keeps its file name: {text}"
    );
    let (_, text) = f.in_terminal_of(Some(200), &["snapshots"]);
    assert!(
        text.contains("nightly,before-the-big-upgrade,keep-forever"),
        "a wide terminal gets whole values: {text}"
    );
    // Off a terminal: whole paths and tags, for scripts.
    f.lb()
        .args(["find", "*.sqlite3"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&whole).and(predicate::str::contains("…").not()));
    f.lb()
        .args(["snapshots"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "nightly,before-the-big-upgrade,keep-forever",
        ));
    // A restore's summary breaks into lines that fit.
    let target = f.env.path("restored-into-a-directory-with-a-long-name");
    let out = f
        .lb()
        .args(["restore", "app", "--target"])
        .arg(&target)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(widest(&out) <= 80, "{out}");
    assert!(
        out.contains("every file matches its recorded hash"),
        "{out}"
    );
}

/// Runs the binary with stdout a pipe whose reader is already gone.
fn into_closed_pipe(f: &Fixture, args: &[&str]) -> std::process::Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe(2) writes two new descriptors into `fds`, each owned
    // exactly once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let mut c = f.env.lb_process();
    c.arg("--config").arg(&f.config).args(args);
    c.stdout(writer).stderr(std::process::Stdio::piped());
    c.output().unwrap()
}

#[test]
fn a_closed_pipe_ends_dump_completions_and_man_quietly() {
    let f = Fixture::new();
    fs::write(f.app.join("data/big.bin"), bytes(7, 2 << 20)).unwrap();
    f.backup(&["app"]);
    let big = under(&f.app, "data/big.bin");
    for args in [
        vec!["dump", "app", big.as_str()],
        vec!["completions", "zsh"],
        vec!["man"],
    ] {
        let out = into_closed_pipe(&f, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} ends quietly: {stderr}");
    }
}

/// A stdout that fails (a full disk) is an error with a hint, not a
/// panic with a backtrace.
#[test]
fn a_full_output_disk_is_an_error_not_a_panic() {
    let f = Fixture::new();
    f.backup(&["app"]);
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut c = f.env.lb_process();
    c.arg("--config").arg(&f.config).arg("snapshots");
    c.stdout(full).stderr(std::process::Stdio::piped());
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn quiet_init_still_says_where_the_admin_key_is() {
    let env = Env::new();
    let key = env.path("new.key");
    env.lb()
        .args(["init", "-q", "--repo"])
        .arg(env.path("r"))
        .arg("--key-file")
        .arg(&key)
        .assert()
        .success()
        .stdout(format!("admin key: {}\n", key.display()));
}

#[test]
fn metrics_leave_out_the_services_of_an_unreadable_repository() {
    let f = Fixture::new();
    f.backup(&["app"]);
    fs::write(
        f.env.path("repo/config"),
        b"not a repository config any more",
    )
    .unwrap();
    let out = f.lb().arg("metrics").assert().success();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.get_output().stdout).into_owned(),
        String::from_utf8_lossy(&out.get_output().stderr).into_owned(),
    );
    assert!(
        stderr.contains("warning: repository local cannot be read: "),
        "{stderr}"
    );
    assert!(!stdout.contains("lifeboat_restore_points{"), "{stdout}");
    let state = stdout
        .lines()
        .find(|l| l.starts_with("lifeboat_health_state{service=\"app\""));
    assert!(state.is_some_and(|l| l.ends_with(" 3")), "{stdout}");
}
