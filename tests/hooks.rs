//! `before_backup` / `after_backup` through the real binary: in order,
//! around captures that run before the files are read, `after_backup`
//! told the outcome and run even when the backup fails, timeouts kill.

mod common;

use common::Env;
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn config(env: &Env, service: &str) -> PathBuf {
    let path = env.path("lifeboat.toml");
    let text = format!(
        "state_dir = \"{state}\"\ncache_dir = \"{cache}\"\n[repositories.local]\npath = \"{repo}\"\nkey_file = \"{key}\"\n{service}",
        state = env.path("state").display(),
        cache = env.path("cache").display(),
        repo = env.path("repo").display(),
        key = env.path("admin.key").display(),
    );
    fs::write(&path, text).unwrap();
    env.init(&env.path("repo"));
    path
}

fn lb(env: &Env, cfg: &Path) -> assert_cmd::Command {
    let mut c = env.lb();
    c.arg("--config").arg(cfg);
    c
}

fn log(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn points(env: &Env) -> Vec<lifeboat::repo::Snapshot> {
    let repo = env.repo(&env.path("repo"), &env.path("admin.key"));
    repo.list_snapshots().unwrap().0
}

#[test]
fn hooks_run_in_order_around_captures_that_come_before_the_files() {
    let env = Env::new();
    let files = env.path("data");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("a.txt"), "a").unwrap();
    let log_path = env.path("hooks.log");
    // The command source is configured after the files, yet must run
    // before them: the file it writes into the tree is in the restore point.
    let cfg = config(
        &env,
        &format!(
            r#"[services.app]
tier = "important"
before_backup = "echo before $LIFEBOAT_SERVICE >> {log}"
after_backup = "echo after $LIFEBOAT_SERVICE $LIFEBOAT_BACKUP_STATUS $LIFEBOAT_SNAPSHOT >> {log}"
[[services.app.sources]]
kind = "files"
paths = ["{files}"]
[[services.app.sources]]
kind = "command"
name = "dump"
command = "echo capture >> {log}; echo dumped > {files}/from-capture; echo the dump"
"#,
            log = log_path.display(),
            files = files.display()
        ),
    );
    lb(&env, &cfg).args(["backup", "app"]).assert().success();
    let snaps = points(&env);
    assert_eq!(snaps.len(), 1);
    let id = &snaps[0].id;
    assert_eq!(
        log(&log_path),
        vec![
            "before app".to_string(),
            "capture".to_string(),
            format!("after app success {id}")
        ]
    );
    let repo = env.repo(&env.path("repo"), &env.path("admin.key"));
    let (index, _) = repo.load_index().unwrap();
    let tree = repo.read_tree(&index, &snaps[0]).unwrap();
    let want = format!("{}/from-capture", files.display());
    assert!(
        tree.iter().any(|n| format!("/{}", n.path) == want),
        "the capture ran after the files were read: {want} is not in the restore point"
    );
}

#[test]
fn a_failing_before_backup_stops_the_backup_and_after_backup_still_runs() {
    let env = Env::new();
    let files = env.path("data");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("a.txt"), "a").unwrap();
    let log_path = env.path("hooks.log");
    let cfg = config(
        &env,
        &format!(
            r#"[services.app]
tier = "important"
before_backup = "echo before >> {log}; echo app is not ready >&2; exit 3"
after_backup = "echo after $LIFEBOAT_BACKUP_STATUS >> {log}"
[[services.app.sources]]
kind = "files"
paths = ["{files}"]
"#,
            log = log_path.display(),
            files = files.display()
        ),
    );
    lb(&env, &cfg)
        .args(["backup", "app"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("before_backup hook failed"))
        .stderr(predicate::str::contains("app is not ready"))
        .stderr(predicate::str::contains("the backup did not run"));
    assert_eq!(log(&log_path), vec!["before", "after failure"]);
    assert!(
        points(&env).is_empty(),
        "no restore point after a failed before_backup"
    );
}

#[test]
fn after_backup_runs_when_the_backup_itself_fails() {
    let env = Env::new();
    let log_path = env.path("hooks.log");
    let cfg = config(
        &env,
        &format!(
            r#"[services.app]
tier = "important"
before_backup = "echo before >> {log}"
after_backup = "echo after $LIFEBOAT_BACKUP_STATUS >> {log}"
[[services.app.sources]]
kind = "command"
name = "dump"
command = "echo the dump failed >&2; exit 1"
"#,
            log = log_path.display(),
        ),
    );
    lb(&env, &cfg).args(["backup", "app"]).assert().code(1);
    assert_eq!(log(&log_path), vec!["before", "after failure"]);
    assert!(points(&env).is_empty());
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_what_it_started() {
    let env = Env::new();
    let files = env.path("data");
    fs::create_dir_all(&files).unwrap();
    let pid_file = env.path("child.pid");
    let cfg = config(
        &env,
        &format!(
            r#"[services.app]
tier = "important"
hook_timeout = "1s"
before_backup = "sleep 60 & echo $! > {pid}; wait"
[[services.app.sources]]
kind = "files"
paths = ["{files}"]
"#,
            pid = pid_file.display(),
            files = files.display()
        ),
    );
    let started = Instant::now();
    lb(&env, &cfg)
        .args(["backup", "app"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did not finish within 1s"))
        .stderr(predicate::str::contains("hook_timeout"));
    assert!(started.elapsed() < Duration::from_secs(20));
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The hook's own child went with it: poll until it is gone (reaped by init).
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            Instant::now() < deadline,
            "the hook's `sleep` {pid} survived the timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(points(&env).is_empty());
}

#[test]
fn an_empty_hook_is_a_config_error_with_its_place() {
    let env = Env::new();
    let files = env.path("data");
    fs::create_dir_all(&files).unwrap();
    let cfg = config(
        &env,
        &format!(
            "[services.app]\ntier = \"important\"\nbefore_backup = \"  \"\n[[services.app.sources]]\nkind = \"files\"\npaths = [\"{}\"]\n",
            files.display()
        ),
    );
    lb(&env, &cfg)
        .args(["config", "check"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("lifeboat.toml:8:"))
        .stderr(predicate::str::contains("`before_backup` is empty"));
}
