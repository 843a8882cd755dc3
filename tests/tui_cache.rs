//! The console's background reads reuse what they opened: a second file
//! list from the same repository neither reopens it nor reloads its index,
//! on a local directory and on a real S3-compatible server; and reads from
//! object storage run on the process's one runtime, not on a thread each.
//! Times are printed for the record (`--nocapture`).

mod common;

use common::{S3Server, S3_BUCKET, S3_KEY_ID, S3_SECRET};
use lifeboat::config::Config;
use lifeboat::tui::app::{Cmd, Msg};
use lifeboat::tui::cache::Cache;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// 40 directories of 100 small files.
fn files(app: &Path) {
    for d in 0..40 {
        let dir = app.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f:03}.txt")), format!("{d} {f}")).unwrap();
        }
    }
}

fn list(config: &Config, cache: &Cache, repository: &str, snapshot: &str) -> Duration {
    let start = Instant::now();
    let msg = lifeboat::tui::execute(
        config,
        cache,
        &AtomicU64::new(0),
        Cmd::LoadTree {
            req: 1,
            service: "app".into(),
            repository: repository.into(),
            snapshot: snapshot.into(),
        },
    );
    let Some(Msg::Tree(_, Ok(tree))) = msg else {
        panic!("{msg:?}")
    };
    assert!(tree.nodes.len() > 4000, "{}", tree.nodes.len());
    start.elapsed()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn file_lists_from_s3_reuse_the_repository_and_start_no_thread_per_call() {
    let server = S3Server::start();
    let env = common::Env::new();
    let app = env.path("app");
    files(&app);
    std::fs::write(env.path("s3-secret"), format!("{S3_SECRET}\n")).unwrap();
    let config = env.path("lifeboat.toml");
    std::fs::write(
        &config,
        format!(
            "[repositories.s3]\nurl = \"s3://{S3_BUCKET}/tui\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\npath_style = true\n\
             access_key_id = \"env:LB_TEST_S3_ID\"\nsecret_access_key = \"file:{secret}\"\nkey_file = {key:?}\n\n\
             [services.app]\ntier = \"critical\"\nrepository = \"s3\"\nsources = [{{ kind = \"files\", paths = [{app:?}] }}]\n",
            endpoint = server.endpoint(),
            secret = env.path("s3-secret").display(),
            key = env.path("admin.key"),
        ),
    )
    .unwrap();
    let lb = || {
        let mut c = env.lb();
        c.arg("--config")
            .arg(&config)
            .env("LB_TEST_S3_ID", S3_KEY_ID);
        c
    };
    lb().args(["init", "--repo", "s3", "--key-file"])
        .arg(env.path("admin.key"))
        .assert()
        .success();
    for round in 0..2 {
        std::fs::write(app.join("changed.txt"), format!("round {round}")).unwrap();
        lb().args(["backup", "app"]).assert().success();
    }
    std::env::set_var("LB_TEST_S3_ID", S3_KEY_ID);
    let config = std::sync::Arc::new(Config::load(&config).unwrap());
    let inv = lifeboat::inventory::load(&config);
    let points: Vec<String> = inv.services[0]
        .restore_points
        .iter()
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(points.len(), 2, "{inv:?}");

    // As the console runs them: on the runtime's blocking threads.
    let rt = lifeboat::runtime::get().unwrap();
    let cache = std::sync::Arc::new(Cache::default());
    let on_console = |snapshot: &str, forget: bool| {
        let (config, cache, snapshot) = (config.clone(), cache.clone(), snapshot.to_string());
        rt.block_on(rt.spawn_blocking(move || {
            if forget {
                cache.forget();
            }
            list(&config, &cache, "s3", &snapshot)
        }))
        .unwrap()
    };
    let first = on_console(&points[0], false);
    let same_again = on_console(&points[0], false);
    let other_point = on_console(&points[1], false);
    let other_again = on_console(&points[1], false);
    println!(
        "S3 file list: first {first:?}, same point again {same_again:?}, another point of the same repository {other_point:?}, that again {other_again:?}"
    );
    assert_eq!(cache.opens(), 1, "one repository, opened once");
    // Each of these reopens the repository and reads from S3 again.
    let before = threads();
    let start = Instant::now();
    for _ in 0..10 {
        on_console(&points[1], true);
    }
    println!(
        "S3 file list, nothing kept: {:?} each",
        start.elapsed() / 10
    );
    assert_eq!(cache.opens(), 11);
    let grew = threads().saturating_sub(before);
    assert!(grew <= 2, "{grew} more threads after 10 rounds of S3 reads");
}

#[test]
fn a_second_file_list_reuses_the_open_repository() {
    let env = common::Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let app = env.path("app");
    files(&app);
    let config = env.path("lifeboat.toml");
    std::fs::write(
        &config,
        format!(
            "[repositories.local]\npath = {repo:?}\nkey_file = {key:?}\n\n\
             [services.app]\ntier = \"critical\"\nsources = [{{ kind = \"files\", paths = [{app:?}] }}]\n"
        ),
    )
    .unwrap();
    for round in 0..2 {
        std::fs::write(app.join("changed.txt"), format!("round {round}")).unwrap();
        env.lb()
            .arg("--config")
            .arg(&config)
            .args(["backup", "app"])
            .assert()
            .success();
    }
    let config = Config::load(&config).unwrap();
    let inv = lifeboat::inventory::load(&config);
    let points: Vec<String> = inv.services[0]
        .restore_points
        .iter()
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(points.len(), 2);
    let cache = Cache::default();
    let list = |snapshot: &str| list(&config, &cache, "local", snapshot);
    let first = list(&points[0]);
    let same_again = list(&points[0]);
    let other_point = list(&points[1]);
    let other_again = list(&points[1]);
    println!(
        "file list: first {first:?}, same point again {same_again:?}, another point of the same repository {other_point:?}, that again {other_again:?}"
    );
    assert_eq!(cache.opens(), 1, "one repository, opened once");
    // The same point again is kept whole: nothing is read or rebuilt.
    assert!(same_again * 100 < first, "{first:?} {same_again:?}");
    // After a job (or R) the repository is read afresh.
    cache.forget();
    list(&points[1]);
    assert_eq!(cache.opens(), 2);
}
