//! Running without anyone watching: schedules that systemd accepts, metrics
//! that Prometheus accepts, health that notices a breach at once.

mod common;

use common::*;
use predicates::prelude::*;
use std::fs;
use std::process::{Command, Stdio};

fn tool(name: &str, package: &str) {
    let ok = Command::new(name)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{name} is needed for this test: run scripts/test-deps.sh (or apt-get install {package})"
    );
}

fn write_config(env: &Env, extra: &str) -> std::path::PathBuf {
    let repo = env.path("repo");
    let src = env.path("srv/app");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("data.db"), bytes(1, 100_000)).unwrap();
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            "state_dir = {:?}\n{extra}\n[repositories.local]\npath = {repo:?}\nkey_file = {:?}\n\n\
             [services.app]\ntier = \"critical\"\nsources = [{{ kind = \"files\", paths = [{src:?}] }}]\n",
            env.path("state"),
            env.path("admin.key")
        ),
    )
    .unwrap();
    if !repo.exists() {
        env.init(&repo);
    }
    config
}

const SCHEDULE: &str = "[schedule]\nbackup = \"daily 02:00\"\nverify = \"weekly sun 03:00\"\ndrill = \"monthly first-sun 04:00\"\nprune = \"weekly sun 05:00\"\ncopy = \"daily 06:00\"\nrandomized_delay = \"30m\"\n";

#[test]
fn systemd_units_pass_systemd_analyze_and_cron_lines_say_the_same() {
    tool("systemd-analyze", "systemd");
    let env = Env::new();
    let config = write_config(&env, SCHEDULE);
    let units = env.path("units");
    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    env.lb()
        .args(["schedule", "systemd", "--write"])
        .arg(&units)
        .arg("--config")
        .arg(&config)
        .assert()
        .success();
    let mut files: Vec<_> = fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 10, "a service and a timer per job");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let timer = fs::read_to_string(units.join("lifeboat-drill.timer")).unwrap();
    assert!(
        timer.contains("OnCalendar=Sun *-*-01..07 04:00:00")
            && timer.contains("Persistent=true")
            && timer.contains("RandomizedDelaySec=1800"),
        "{timer}"
    );
    let service = fs::read_to_string(units.join("lifeboat-backup.service")).unwrap();
    assert!(
        service.contains(&format!(
            "ExecStart={} --quiet --config {} backup --all",
            bin.display(),
            config.display()
        )),
        "{service}"
    );
    let copy = fs::read_to_string(units.join("lifeboat-copy.service")).unwrap();
    assert!(
        copy.contains(&format!("--config {} copy\n", config.display())),
        "{copy}"
    );

    env.lb()
        .args(["schedule", "cron", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("0 2 * * * sleep $(shuf -i 0-1800 -n 1) && ")
                .and(predicate::str::contains(
                    "0 4 1-7 * * [ \"$(date +\\%u)\" = 7 ] && ",
                ))
                .and(predicate::str::contains("0 3 * * 0 ")),
        );
    // A schedule that is not one gets a located error.
    let bad = write_config(&env, "[schedule]\nbackup = \"every night\"\n");
    env.lb()
        .args(["schedule", "cron", "--config"])
        .arg(&bad)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "lifeboat.toml:3:10: schedule.backup: \"every night\" is not a schedule",
        ));
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_textfile_passes_promtool_and_carries_the_figures() {
    tool("promtool", "prometheus");
    let env = Env::new();
    let config = write_config(&env, "");
    env.lb()
        .args(["backup", "app", "--config"])
        .arg(&config)
        .assert()
        .success();
    let textfile = env.path("node-exporter/lifeboat.prom");
    fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    env.lb()
        .args(["metrics", "--textfile"])
        .arg(&textfile)
        .arg("--config")
        .arg(&config)
        .assert()
        .success();
    let text = fs::read_to_string(&textfile).unwrap();
    promtool_check(&text);
    for m in [
        "lifeboat_last_backup_timestamp_seconds{service=\"app\"",
        "lifeboat_last_backup_added_bytes{",
        "lifeboat_repository_size_bytes{repository=\"local\"}",
        "lifeboat_health_state{service=\"app\",tier=\"critical\"",
        "lifeboat_health_overall_state",
    ] {
        assert!(text.contains(m), "{m} missing:\n{text}");
    }
    // Never drilled nor verified: a warning (1) for the service.
    assert!(
        text.lines()
            .any(|l| l.starts_with("lifeboat_health_state{service=\"app\"") && l.ends_with(" 1")),
        "{text}"
    );
    let leftovers: Vec<_> = fs::read_dir(textfile.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "written atomically, no temp file left: {leftovers:?}"
    );
}

#[test]
fn health_notices_a_breached_rpo_at_the_next_evaluation_and_thresholds_are_configurable() {
    let env = Env::new();
    // An RPO so short that any backup is already too old.
    let config = write_config(&env, "");
    let text = fs::read_to_string(&config).unwrap().replace(
        "tier = \"critical\"\n",
        "tier = \"critical\"\nrpo = \"1ns\"\n",
    );
    fs::write(&config, text).unwrap();
    env.lb()
        .args(["backup", "app", "--config"])
        .arg(&config)
        .assert()
        .success();
    let out = env
        .lb()
        .args(["health", "--json", "--config"])
        .arg(&config)
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["services"][0]["backup"]["state"], "breach", "{r}");

    // Capacity: with the warning at 0 % any storage warns; with a breach at 0 % it breaches.
    let health_of = |extra: &str| -> serde_json::Value {
        let env2 = Env::new();
        let c = write_config(&env2, extra);
        let out = env2
            .lb()
            .args(["health", "--json", "--config"])
            .arg(&c)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        health_of("[health]\ncapacity_warn_percent = 0.0\n")["repositories"][0]["state"],
        "warning"
    );
    assert_eq!(
        health_of("[health]\ncapacity_warn_percent = 0.0\ncapacity_breach_percent = 0.0\n")
            ["repositories"][0]["state"],
        "breach"
    );
    let env3 = Env::new();
    let bad = write_config(
        &env3,
        "[health]\ncapacity_warn_percent = 90.0\ncapacity_breach_percent = 80.0\n",
    );
    env3.lb()
        .args(["health", "--config"])
        .arg(&bad)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("the warning not above the breach"));
}
