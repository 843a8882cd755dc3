//! Honest drills through the real binary: random restore points, drills
//! from the off-site copy (shown by health), and the evidence export.

mod common;

use common::Env;
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

struct Site {
    env: Env,
    config: PathBuf,
    live: PathBuf,
}

/// A files service `docs` in `local`, with `offsite` a copy of it.
fn site() -> Site {
    let env = Env::new();
    let live = env.path("live");
    fs::create_dir_all(&live).unwrap();
    let key = env.init(&env.path("repo"));
    env.lb()
        .args(["init", "--repo"])
        .arg(env.path("offsite"))
        .arg("--key-file")
        .arg(&key)
        .assert()
        .success();
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            r#"cache_dir = "{c}"
state_dir = "{s}"
[repositories.local]
path = "{r}"
key_file = "{k}"
[repositories.offsite]
path = "{o}"
key_file = "{k}"
copy_of = "local"
[services.docs]
tier = "critical"
repository = "local"
retention = {{ last = 20 }}
sources = [{{ kind = "files", paths = ["{l}"] }}]
[[services.docs.probes]]
kind = "file"
name = "index"
path = "{l}/index.txt"
"#,
            c = env.path("cache").display(),
            s = env.path("state").display(),
            r = env.path("repo").display(),
            o = env.path("offsite").display(),
            k = key.display(),
            l = live.display(),
        ),
    )
    .unwrap();
    Site { env, config, live }
}

impl Site {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .env
            .lb()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "lifeboat {args:?}: {text}");
        text
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        // `health` exits 1 for its warnings (never verified): still JSON.
        let text = if args[0] == "health" {
            self.run(&all).1
        } else {
            self.ok(&all)
        };
        serde_json::from_str(text.lines().find(|l| l.starts_with('{')).unwrap_or(&text))
            .unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn backup(&self, n: usize) {
        fs::write(self.live.join("index.txt"), format!("version {n}\n")).unwrap();
        self.ok(&["backup", "docs"]);
    }
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn random_drills_over_ten_points_pick_more_than_one_point() {
    let s = site();
    for n in 0..10 {
        s.backup(n);
    }
    let points: BTreeSet<String> = ids(&s.json(&["snapshots", "--repo", "local"]))
        .into_iter()
        .collect();
    assert_eq!(points.len(), 10);
    let mut drilled = Vec::new();
    for _ in 0..5 {
        let v = s.json(&["drill", "docs", "--point", "random"]);
        assert_eq!(v["report"]["ok"], true, "{v}");
        let id = v["report"]["snapshot"].as_str().unwrap().to_string();
        assert!(points.contains(&id), "{id} is one of the service's points");
        drilled.push(id);
    }
    let distinct: BTreeSet<&String> = drilled.iter().collect();
    assert!(
        distinct.len() > 1,
        "five random drills all took {drilled:?}"
    );
    // Never the same point twice running.
    assert!(drilled.windows(2).all(|w| w[0] != w[1]), "{drilled:?}");
    let report = s.json(&["report", "drills", "--since", "1d"]);
    let rows = report["drills"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{report}");
    assert!(
        rows.iter()
            .all(|r| r["chosen"] == "random" && r["repository"] == "local"),
        "{report}"
    );
}

#[test]
fn a_drill_from_the_offsite_copy_is_recorded_and_shown_by_health() {
    let s = site();
    s.backup(1);
    s.ok(&["copy"]);
    let v = s.json(&["health"]);
    assert!(v["services"][0]["last_offsite_drill"].is_null(), "{v}");

    let text = s.ok(&["drill", "docs", "--repo", "offsite"]);
    assert!(text.contains("off-site from offsite"), "{text}");
    assert!(text.contains("✓ probe `index` (file): passed"), "{text}");
    let v = s.json(&["health"]);
    let d = &v["services"][0]["last_offsite_drill"];
    assert_eq!(d["repository"], "offsite", "{v}");
    assert_eq!(d["ok"], true, "{v}");
    let text = s.run(&["health"]).1;
    assert!(
        text.contains("off-site in offsite: current, drilled ok"),
        "{text}"
    );

    // The evidence, for people and for machines.
    s.ok(&["drill", "docs"]);
    let md = s.ok(&["report", "drills", "--since", "90d"]);
    assert!(md.starts_with("# Restore drills since "), "{md}");
    assert!(
        md.contains("| time | service | point | repository | duration / RTO | probes | result |"),
        "{md}"
    );
    assert!(md.contains("| offsite (off-site) |"), "{md}");
    assert!(md.contains("| 1/1 passed | passed |"), "{md}");
    let v = s.json(&["report", "drills"]);
    let rows = v["drills"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["offsite"], true, "{v}");
    assert_eq!(rows[1]["offsite"], false, "{v}");
    for r in rows {
        for k in [
            "service",
            "point",
            "point_time",
            "time",
            "duration_ms",
            "rto_ms",
            "probes",
            "result",
        ] {
            assert!(!r[k].is_null(), "{k} in {r}");
        }
    }
    // An old drill falls outside a short window.
    let v = s.json(&["report", "drills", "--since", "1s", "nosuchservice"]);
    assert_eq!(v["drills"].as_array().unwrap().len(), 0, "{v}");
}
