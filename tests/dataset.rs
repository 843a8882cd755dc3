//! The shared benchmark dataset (a homelab-like tree: photos, a SQL dump,
//! a sparse VM image, thousands of configs) round-trips bit for bit across
//! two nights, and the second night adds little.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

fn dataset_py() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/bench/dataset.py"
    ));
    assert!(
        p.exists(),
        "{} is missing: the tests expect the shared/ folder beside the repository checkout",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) {
    let st = cmd
        .status()
        .expect("python3 is needed to generate the dataset (apt-get install python3)");
    assert!(st.success(), "{cmd:?} failed");
}

#[test]
fn dataset_round_trips_across_two_nights() {
    let env = Env::new();
    let data = env.path("data");
    let night1 = env.path("night1");
    // SCALE 0.02: ~28 MiB, same shape as the benchmark's 1.4 GiB.
    run(Command::new("python3")
        .arg(dataset_py())
        .args(["gen"])
        .arg(&data)
        .args(["20240601", "0.02"]));
    run(Command::new("cp").arg("-a").arg(&data).arg(&night1));
    let repo = env.path("repo");
    env.init(&repo);
    let backup = |_: &str| -> serde_json::Value {
        let out = env
            .lbk()
            .args(["backup", "--json", "--repo"])
            .arg(&repo)
            .arg(&data)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    };
    let first = backup("night 1");
    run(Command::new("python3")
        .arg(dataset_py())
        .args(["mutate"])
        .arg(&data)
        .args(["20240601", "0.02"]));
    let second = backup("night 2");
    let total = second["stats"]["bytes"].as_u64().unwrap();
    let added = second["stats"]["bytes_added"].as_u64().unwrap();
    assert!(
        added * 100 < total * 15,
        "night 2 added {added} of {total} bytes"
    );
    assert!(
        first["stats"]["bytes_added"].as_u64().unwrap() < total,
        "compression and zero blocks save space"
    );

    for (snap, expect) in [(&first, &night1), (&second, &data)] {
        let target = env.path(&format!("out-{}", snap["short_id"].as_str().unwrap()));
        env.lbk()
            .args(["restore", snap["id"].as_str().unwrap(), "--target"])
            .arg(&target)
            .arg("--repo")
            .arg(&repo)
            .assert()
            .success();
        // night1 was copied from data, so both restore to data's path.
        assert_same_tree(expect, &restored(&target, &data));
    }
}
