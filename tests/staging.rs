//! What a restore stages beside its target never piles up: a killed
//! restore's staging is removed (and said) by the next one, and two
//! restores racing for one target leave one result and no staging.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn staging_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lifeboat-staging"))
        .collect()
}

fn backed_up(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..40u64 {
        fs::write(src.join(format!("f{i}")), bytes(i, 2_000_000)).unwrap();
    }
    let repo = env.path("repo");
    env.init(&repo);
    env.lbk()
        .args(["backup", "--repo"])
        .arg(&repo)
        .arg(&src)
        .assert()
        .success();
    repo
}

#[test]
fn a_killed_restores_staging_is_removed_by_the_next_one() {
    let env = Env::new();
    let repo = backed_up(&env);
    let target = env.path("out/t");
    fs::create_dir_all(env.path("out")).unwrap();
    let mut child = env
        .lb_process()
        .env("LIFEBOAT_KEY", env.path("admin.key"))
        .args(["restore", "--repo"])
        .arg(&repo)
        .arg("latest")
        .arg("--target")
        .arg(&target)
        .spawn()
        .unwrap();
    // Kill it once it has staged something: the staging directory is the
    // event, and nothing else announces it.
    let start = Instant::now();
    while staging_in(&env.path("out")).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the restore never staged"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("the restore finished before it could be killed; give it more data");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(staging_in(&env.path("out")).len(), 1, "killed mid-restore");

    let out = env
        .lbk()
        .args(["restore", "--repo"])
        .arg(&repo)
        .arg("latest")
        .arg("--target")
        .arg(&target)
        .assert()
        .success()
        .get_output()
        .clone();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("left by interrupted restore"), "{said}");
    assert!(staging_in(&env.path("out")).is_empty());
    assert_same_tree(&env.path("src"), &restored(&target, &env.path("src")));
}

#[test]
fn two_restores_into_one_target_leave_one_result_and_no_staging() {
    let env = Env::new();
    let repo = backed_up(&env);
    let target = env.path("out/t");
    fs::create_dir_all(env.path("out")).unwrap();
    let run = || {
        env.lb_process()
            .env("LIFEBOAT_KEY", env.path("admin.key"))
            .args(["restore", "--repo"])
            .arg(&repo)
            .arg("latest")
            .arg("--target")
            .arg(&target)
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        (a.join().unwrap(), b.join().unwrap())
    });
    let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert!(ok >= 1, "{a:?}\n{b:?}");
    for o in [&a, &b].iter().filter(|o| !o.status.success()) {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("was not changed"),
            "the loser says nothing changed: {e}"
        );
    }
    assert!(staging_in(&env.path("out")).is_empty());
    assert_same_tree(&env.path("src"), &restored(&target, &env.path("src")));
}
