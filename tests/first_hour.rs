//! The first hour, as a new user has it: the binary installed into a
//! prefix of its own, run from an empty directory outside the source tree
//! with a fresh HOME — no `runbooks/`, no example config, nothing copied by
//! hand.

mod common;

use common::tmux::Tmux;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

struct Installed {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    work: PathBuf,
    home: PathBuf,
}

impl Installed {
    /// A copy of the built binary in PREFIX/bin, and an empty working
    /// directory with its own HOME.
    fn new() -> Installed {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("prefix/bin/lifeboat");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        common::install_executable(&assert_cmd::cargo::cargo_bin("lifeboat"), &bin);
        let work = dir.path().join("work");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        Installed {
            _dir: dir,
            bin,
            work,
            home,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .current_dir(&self.work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("TMPDIR", self.work.join("tmp"));
        std::fs::create_dir_all(self.work.join("tmp")).unwrap();
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lifeboat {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn config_init_to_restore_with_nothing_copied_by_hand() {
    let lb = Installed::new();
    let data = lb.work.join("Photos");
    std::fs::create_dir_all(data.join("2026")).unwrap();
    std::fs::write(data.join("2026/notes.txt"), "the first hour").unwrap();
    std::fs::write(data.join("big.bin"), common::bytes(7, 300_000)).unwrap();

    // With no config, the error says how to get one.
    let none = lb.run(&["snapshots"]);
    assert!(!none.status.success());
    assert!(
        text(&none).contains("lifeboat config init"),
        "{}",
        text(&none)
    );
    assert!(!text(&none).contains("config/lifeboat.example.toml"));

    let out = lb.ok(&["config", "init", "--path", data.to_str().unwrap()]);
    let config = lb.home.join(".config/lifeboat/lifeboat.toml");
    assert!(out.contains(&config.display().to_string()), "{out}");
    assert!(
        out.contains("lifeboat init"),
        "the next step is named: {out}"
    );
    // A second init does not overwrite what the admin may have edited.
    let again = lb.run(&["config", "init", "--path", data.to_str().unwrap()]);
    assert!(!again.status.success() && text(&again).contains("already exists"));

    // Before `init`, the check names the key that is not there yet.
    let check = lb.run(&["config", "check"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(text(&check).contains("does not exist"), "{}", text(&check));

    let out = lb.ok(&["init"]);
    let key = lb.home.join(".config/lifeboat/keys/local.key");
    assert!(
        out.contains(&key.display().to_string()),
        "init writes the configured key_file: {out}"
    );
    assert!(key.exists());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions())
            & 0o777,
        0o600
    );
    // Now only what the admin must decide is left: how to stop the
    // service before a runbook restores it.
    let check = lb.run(&["config", "check"]);
    let all = text(&check);
    assert!(!all.contains("does not exist"), "{all}");
    assert!(all.contains("`stop` command, but it has none"), "{all}");

    lb.ok(&["backup", "--all"]);
    let snaps = lb.ok(&["snapshots"]);
    assert!(snaps.contains("photos"), "{snaps}");
    let found = lb.ok(&["find", "notes.txt"]);
    assert!(found.contains("2026/notes.txt"), "{found}");

    let target = lb.work.join("restored");
    lb.ok(&["restore", "photos", "--target", target.to_str().unwrap()]);
    let back = common::restored(&target, &data);
    assert_eq!(
        std::fs::read_to_string(back.join("2026/notes.txt")).unwrap(),
        "the first hour"
    );
    assert_eq!(
        std::fs::read(back.join("big.bin")).unwrap(),
        common::bytes(7, 300_000)
    );
    // Nothing was written into the working directory but what was asked.
    let mut left: Vec<String> = std::fs::read_dir(&lb.work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["Photos", "restored", "tmp"]);
}

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap();
}

#[test]
fn config_check_reports_five_planted_problems_at_once() {
    let lb = Installed::new();
    let repo = lb.work.join("repo");
    let key = lb.work.join("admin.key");
    let out = lb.run(&[
        "init",
        "--repo",
        repo.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let port = common::free_port();
    let cfg = lb.work.join("lifeboat.toml");
    write(
        &cfg,
        &format!(
            r#"state_dir = "{work}/state"

[repositories.local]
path = "{repo}"
key_file = "{work}/missing.key"

[services.photos]
tier = "important"
rpo = "soon"
sources = [{{ kind = "files", paths = ["{work}/no-such-dir"] }}]

[services.immich-db]
tier = "critical"
sources = [{{ kind = "postgres", database = "immich", host = "127.0.0.1", port = {port}, user = "immich" }}]
"#,
            work = lb.work.display(),
            repo = repo.display(),
        ),
    );
    let out = lb.run(&["--config", cfg.to_str().unwrap(), "config", "check"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let expect = [
        ("missing key file", "missing.key does not exist"),
        ("missing source path", "no-such-dir does not exist"),
        ("unreachable database", "immich-db"),
        ("missing stop command", "`stop` command, but it has none"),
        ("bad duration", "lifeboat.toml:9:7"),
    ];
    for (what, needle) in expect {
        assert!(all.contains(needle), "{what}: {needle:?} not in:\n{all}");
    }
    assert!(
        all.contains(&format!("{port}")) || all.contains("connect"),
        "the database problem says it could not connect:\n{all}"
    );

    let out = lb.run(&[
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "config",
        "check",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("config check --json");
    assert_eq!(v["ok"], false);
    let problems = v["problems"].as_array().unwrap();
    assert!(problems.len() >= 5, "{v}");
    assert!(problems
        .iter()
        .all(|p| p["at"].is_string() && p["problem"].is_string()));
}

#[test]
fn demo_reaches_the_recover_screen_with_every_shipped_runbook() {
    let lb = Installed::new();
    let script = format!(
        "cd {work} && env -i PATH=\"$PATH\" HOME={home} TMPDIR={work}/tmp TERM=xterm {bin} demo; echo LIFEBOAT-EXITED $?; sleep 600",
        work = lb.work.display(),
        home = lb.home.display(),
        bin = lb.bin.display()
    );
    std::fs::create_dir_all(lb.work.join("tmp")).unwrap();
    let t = Tmux::start("first-hour", 120, 40, &script);
    t.wait_for("Needs action", Duration::from_secs(120));
    t.keys(&["3"]);
    let titles = [
        "Back up a service now",
        "A database is corrupted",
        "Files deleted or overwritten",
        "A host or its disk is lost",
        "The monthly restore drill",
        "Ransomware",
        "Undo a restore",
        "A lost or overwritten .env",
        "The whole site is lost",
        "A virtual machine is lost",
    ];
    let screen = t.wait_for(titles[0], Duration::from_secs(20));
    for title in titles {
        assert!(screen.contains(title), "{title:?} missing:\n{screen}");
    }
    assert!(!screen.contains("cannot read runbooks"), "{screen}");
    t.keys(&["q"]);
    t.wait_for("LIFEBOAT-EXITED 0", Duration::from_secs(20));
}

#[test]
fn bash_completion_loads_and_completes_subcommands() {
    let lb = Installed::new();
    let script = format!(
        r#"source <("{bin}" completions bash) || exit 9
COMP_WORDS=(lifeboat sn); COMP_CWORD=1; COMP_LINE="lifeboat sn"; COMP_POINT=11
_lifeboat lifeboat sn lifeboat
echo "${{COMPREPLY[@]}}"
COMP_WORDS=(lifeboat config ""); COMP_CWORD=2; COMP_LINE="lifeboat config "; COMP_POINT=16
_lifeboat lifeboat "" config
echo "${{COMPREPLY[@]}}""#,
        bin = lb.bin.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .env("HOME", &lb.home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("snapshots"), "{stdout}");
    let config = lines.next().unwrap_or_default();
    assert!(
        config.contains("init") && config.contains("check"),
        "{stdout}"
    );
    // The internal job runner is not offered.
    let script = String::from_utf8(lb.run(&["completions", "bash"]).stdout).unwrap();
    assert!(
        !script.contains("job-run"),
        "hidden commands are not completed"
    );
}

#[test]
fn the_man_page_renders() {
    let lb = Installed::new();
    let page = lb.work.join("lifeboat.1");
    std::fs::write(&page, lb.run(&["man"]).stdout).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man is needed: run scripts/test-deps.sh (apt-get install man-db)");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    for needle in [
        "lifeboat",
        "SYNOPSIS",
        "--config",
        "EXIT STATUS",
        "completions",
    ] {
        assert!(
            shown.contains(needle),
            "{needle:?} not in the man page:\n{shown}"
        );
    }
}

#[test]
fn health_is_unknown_when_it_cannot_read_and_errors_speak_json() {
    let lb = Installed::new();
    let data = lb.work.join("docs");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "a").unwrap();
    lb.ok(&["config", "init", "--path", data.to_str().unwrap()]);
    lb.ok(&["init"]);
    lb.ok(&["backup", "--all"]);

    let m = lb.ok(&["--json", "metrics"]);
    let families: serde_json::Value = serde_json::from_str(&m).expect("metrics --json");
    let points = families
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "lifeboat_restore_points")
        .expect("lifeboat_restore_points");
    assert_eq!(points["samples"][0]["value"], 1.0, "{points}");
    assert_eq!(points["samples"][0]["labels"]["service"], "docs");

    // A mistyped repository name is not taken for a directory.
    let out = lb.run(&["--json", "--repo", "lcoal", "snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("did you mean `local`"),
        "{err}"
    );
    assert!(!lb.work.join("lcoal").exists());

    // Without its key, the repository cannot be read: that is unknown (3),
    // not a breach, and nobody is told the service was never backed up.
    let key = lb.home.join(".config/lifeboat/keys/local.key");
    std::fs::rename(&key, lb.work.join("elsewhere.key")).unwrap();
    let out = lb.run(&["health"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("overall: unknown"), "{all}");
    assert!(all.contains("cannot judge docs"), "{all}");
    assert!(!all.contains("never backed up"), "{all}");
    let out = lb.run(&["--json", "health"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["services"][0]["state"], "unknown");
    // With the key given, it is judged again.
    let out = lb.run(&[
        "--key",
        lb.work.join("elsewhere.key").to_str().unwrap(),
        "health",
    ]);
    assert_ne!(out.status.code(), Some(3), "{}", text(&out));
    // Every line of the table fits 80 columns.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        assert!(
            line.chars().count() <= 80,
            "{line:?} is wider than 80 columns"
        );
    }
}

#[test]
fn a_live_sqlite_file_inside_a_files_source_is_named_or_stored_once() {
    let lb = Installed::new();
    let data = lb.work.join("vw/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("config.json"), "{}").unwrap();
    let db = data.join("db.sqlite3");
    // An open connection in WAL mode, as Vaultwarden keeps it.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
        .unwrap();
    assert!(data.join("db.sqlite3-wal").exists());
    lb.ok(&[
        "config",
        "init",
        "--path",
        data.to_str().unwrap(),
        "--service",
        "vaultwarden",
    ]);
    lb.ok(&["init"]);
    // Files only: the database is backed up, but the admin is told.
    let out = lb.run(&["backup", "vaultwarden"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("db.sqlite3 is a SQLite database in use") && all.contains("kind = \"sqlite\""),
        "{all}"
    );
    // With its own source, the raw file (and its WAL) is not stored again.
    let config = lb.home.join(".config/lifeboat/lifeboat.toml");
    let text_cfg = std::fs::read_to_string(&config).unwrap();
    let with_sqlite = text_cfg.replace(
        "sources = [{ kind = \"files\"",
        &format!(
            "sources = [{{ kind = \"sqlite\", path = \"{}\" }}, {{ kind = \"files\"",
            db.display()
        ),
    );
    assert_ne!(with_sqlite, text_cfg);
    std::fs::write(&config, with_sqlite).unwrap();
    let out = lb.run(&["backup", "vaultwarden"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("in use"), "{all}");
    let listing = lb.ok(&["ls", "vaultwarden:latest"]);
    assert!(listing.contains(".lifeboat/sqlite/db.sqlite3"), "{listing}");
    assert!(listing.contains("config.json"), "{listing}");
    assert!(
        !listing.contains("data/db.sqlite3"),
        "the raw, possibly torn copy is not stored:\n{listing}"
    );
    drop(conn);
}

#[test]
fn the_config_keeps_its_key_and_says_what_is_missing() {
    let lb = Installed::new();
    let data = lb.work.join("docs");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a"), "a").unwrap();
    lb.ok(&["config", "init", "--path", data.to_str().unwrap()]);
    lb.ok(&["init"]);
    lb.ok(&["backup", "--all"]);
    // The configured repository, given by its path, still opens with the
    // configured key.
    let repo = lb.home.join(".local/share/lifeboat/repository");
    let out = lb.ok(&["snapshots", "--repo", repo.to_str().unwrap()]);
    assert!(out.contains("docs"), "{out}");
    // A usage error under --json is JSON.
    let out = lb.run(&["--json", "snapshots", "--latest", "zero"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON usage error");
    assert!(v["error"].as_str().unwrap().contains("--latest"), "{v}");
    // The key gone, the repository there: the hint does not send the
    // admin to `init`, which would refuse.
    let key = lb.home.join(".config/lifeboat/keys/local.key");
    std::fs::remove_file(&key).unwrap();
    let out = lb.run(&["snapshots"]);
    let all = text(&out);
    assert!(all.contains("local.key does not exist"), "{all}");
    assert!(all.contains("the repository exists"), "{all}");
    // Health for a monitor that reads stdout, with no config at all.
    std::fs::remove_file(lb.home.join(".config/lifeboat/lifeboat.toml")).unwrap();
    let out = lb.run(&["--json", "health"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "unknown");
}
