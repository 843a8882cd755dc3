//! The console's background reads reuse what they opened: a second file
//! list from the same repository neither reopens it nor reloads its index.
//! Times are printed for the record (`--nocapture`).

mod common;

use lifeboat::tui::app::{Cmd, Msg};
use std::time::Instant;

#[test]
fn a_second_file_list_reuses_the_open_repository() {
    let env = common::Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let app = env.path("app");
    for d in 0..40 {
        let dir = app.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f:03}.txt")), format!("{d} {f}")).unwrap();
        }
    }
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
    let config = lifeboat::config::Config::load(&config).unwrap();
    let inv = lifeboat::inventory::load(&config);
    let points: Vec<String> = inv.services[0]
        .restore_points
        .iter()
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(points.len(), 2);
    let cache = lifeboat::tui::cache::Cache::default();
    let latest = std::sync::atomic::AtomicU64::new(0);
    let list = |snapshot: &str| {
        let start = Instant::now();
        let msg = lifeboat::tui::execute(
            &config,
            &cache,
            &latest,
            Cmd::LoadTree {
                req: 1,
                service: "app".into(),
                repository: "local".into(),
                snapshot: snapshot.into(),
            },
        );
        let Some(Msg::Tree(_, Ok(tree))) = msg else {
            panic!("{msg:?}")
        };
        assert!(tree.nodes.len() > 4000, "{}", tree.nodes.len());
        start.elapsed()
    };
    let first = list(&points[0]);
    let same_again = list(&points[0]);
    let other_point = list(&points[1]);
    let other_again = list(&points[1]);
    println!(
        "file list: first {first:?}, same point again {same_again:?}, another point of the same repository {other_point:?}, that again {other_again:?}"
    );
    assert_eq!(cache.opens(), 1, "one repository, opened once");
    assert!(
        same_again < first && other_point < first,
        "{first:?} {same_again:?} {other_point:?}"
    );
    // After a job (or R) the repository is read afresh.
    cache.forget();
    list(&points[1]);
    assert_eq!(cache.opens(), 2);
}
