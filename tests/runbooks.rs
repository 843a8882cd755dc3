//! Runbooks end to end through the real binary: `runbook check` finds
//! problems by line, the shipped runbooks pass against the example config,
//! `recover` restores one deleted file through a detached job, a drill of
//! every service records its measured time, and a restore survives its
//! terminal being killed (tmux).

mod common;

use common::Env;
use predicates::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A small homelab: three services of three tiers, backed up once.
struct Lab {
    env: Env,
    config: PathBuf,
}

impl Lab {
    fn new(big: usize) -> Lab {
        let env = Env::new();
        let repo = env.path("repo");
        let key = env.init(&repo);
        for (svc, files) in [("docs", 4), ("photos", 3), ("configs", 2)] {
            let dir = env.path(&format!("live/{svc}/data"));
            fs::create_dir_all(&dir).unwrap();
            for i in 0..files {
                let len = if i == 0 {
                    big.max(1000)
                } else {
                    1000 + i * 777
                };
                fs::write(
                    dir.join(format!("file{i}.bin")),
                    common::bytes(i as u64 + 7, len),
                )
                .unwrap();
            }
        }
        let config = env.path("lifeboat.toml");
        let marker = env.path("stopped-marker");
        fs::write(
            &config,
            format!(
                r#"cache_dir = "{cache}"
state_dir = "{state}"

[repositories.local]
path = "{repo}"
key_file = "{key}"

[services.docs]
tier = "critical"
rto = "1h"
stop = "touch {marker}"
start = "rm -f {marker}"
[[services.docs.sources]]
kind = "files"
paths = ["{live}/docs/data"]

[services.photos]
tier = "important"
[[services.photos.sources]]
kind = "files"
paths = ["{live}/photos/data"]

[services.configs]
tier = "supporting"
[[services.configs.sources]]
kind = "files"
paths = ["{live}/configs/data"]
"#,
                cache = env.path("cache").display(),
                state = env.path("state").display(),
                repo = repo.display(),
                key = key.display(),
                live = env.path("live").display(),
                marker = marker.display(),
            ),
        )
        .unwrap();
        let lab = Lab { env, config };
        lab.lb().args(["backup", "--all"]).assert().success();
        lab
    }

    fn lb(&self) -> assert_cmd::Command {
        let mut c = self.env.lb();
        c.arg("--config").arg(&self.config);
        c
    }
}

fn shipped() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks")
}

#[test]
fn runbook_check_names_file_and_line_for_each_problem() {
    let lab = Lab::new(1000);
    let dir = lab.env.path("rb");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("bad.md"),
        "+++\nid = \"bad\"\ntitle = \"Bad\"\n+++\n\n## One\n\n```lifeboat\nrestore\nexplode now\n```\n\n```sh\necho {{service.nmae}}\n```\n",
    )
    .unwrap();
    fs::write(
        dir.join("broken.md"),
        "+++\nid = \"broken\"\ntitle = Broken\n+++\n\n## One\n",
    )
    .unwrap();
    fs::write(
        dir.join("kinds.md"),
        "+++\nid = \"kinds\"\ntitle = \"K\"\napplies_to = { kinds = [\"floppy\"], services = [\"nope\"] }\n+++\n\n## One\n\n```lifeboat\nrestore from=offsite\n```\n",
    )
    .unwrap();
    let out = lab
        .lb()
        .args(["runbook", "check", "--runbooks"])
        .arg(&dir)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let d = dir.display();
    for want in [
        format!("{d}/bad.md:10: unknown action `explode`"),
        format!("{d}/bad.md:14: undefined variable `{{{{service.nmae}}}}`"),
        format!("{d}/broken.md:3: front matter:"),
        format!("{d}/kinds.md:4: unknown source kind `floppy`"),
        format!("{d}/kinds.md:4: applies to service `nope`"),
        format!("{d}/kinds.md:10: from=offsite: no repository `offsite`"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(out.lines().count(), 6, "{out}");
}

#[test]
fn shipped_runbooks_pass_against_the_example_config() {
    let env = Env::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/lifeboat.example.toml");
    env.lb()
        .env("LIFEBOAT_USB_KEY_FILE", "/etc/lifeboat/keys/usb.key")
        .env("LIFEBOAT_HC_BACKUP", "https://hc-ping.com/00000000-example")
        .args([
            "runbook",
            "check",
            "--config",
            example,
            "--runbooks",
            shipped(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("11 runbooks: ok"));
}

#[test]
fn files_deleted_runbook_restores_one_deleted_file() {
    let lab = Lab::new(300_000);
    let victim = lab.env.path("live/docs/data/file2.bin");
    let original = fs::read(&victim).unwrap();
    let neighbour = lab.env.path("live/docs/data/file1.bin");
    fs::remove_file(&victim).unwrap();
    // A later change to another file must survive: only the path is restored.
    fs::write(&neighbour, b"edited after the backup").unwrap();

    let out = lab
        .lb()
        .args([
            "recover",
            "files-deleted",
            "--service",
            "docs",
            "--point",
            "latest",
            "--yes",
            "--runbooks",
            shipped(),
            "--input",
        ])
        .arg(format!("path={}", victim.display()))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), original);
    assert_eq!(fs::read(&neighbour).unwrap(), b"edited after the backup");
    for want in [
        "preflight docs: ✓ credentials",
        "step 2/3 Restore the path …",
        "check: ✓ 1 files of docs match restore point",
        "succeeded in",
        "report: ",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // Nothing left behind beside the live data.
    let left: Vec<_> = fs::read_dir(lab.env.path("live/docs/data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The report, markdown and JSON, in the state directory.
    let reports = lab.env.path("state/reports");
    let names: Vec<String> = fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".md")) && names.iter().any(|n| n.ends_with(".json")),
        "{names:?}"
    );
    // And `jobs` lists it as succeeded.
    lab.lb()
        .args(["jobs"])
        .assert()
        .success()
        .stdout(predicate::str::contains("succeeded").and(predicate::str::contains("docs")));
}

#[test]
fn a_failed_step_stops_the_run_and_leaves_data_alone() {
    let lab = Lab::new(1000);
    // photos has no stop command: the ransomware runbook cannot stop it.
    lab.lb()
        .args([
            "recover",
            "ransomware",
            "--service",
            "photos",
            "--yes",
            "--runbooks",
            shipped(),
        ])
        .assert()
        .failure()
        .stdout(predicate::str::contains("✗ service stopped"))
        .stderr(predicate::str::contains(
            "preflight failed; nothing was changed",
        ));
    // A missing input is named before anything starts.
    lab.lb()
        .args([
            "recover",
            "files-deleted",
            "--service",
            "docs",
            "--yes",
            "--runbooks",
            shipped(),
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("needs --input path="));
}

#[test]
fn a_drill_of_every_service_records_its_measured_rto() {
    let lab = Lab::new(200_000);
    let out = lab
        .lb()
        .args([
            "recover",
            "monthly-drill",
            "--all",
            "--yes",
            "--runbooks",
            shipped(),
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    // Most critical first.
    let order: Vec<usize> = ["== docs", "== photos", "== configs"]
        .iter()
        .map(|s| out.find(s).unwrap_or_else(|| panic!("{s} missing:\n{out}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    for svc in ["docs", "photos", "configs"] {
        let rec =
            fs::read_to_string(lab.env.path(&format!("state/records/drill-{svc}.jsonl"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(rec.lines().last().unwrap()).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert!(
            v["duration_ms"].as_u64().is_some() && v["rto_ms"].as_u64().unwrap() > 0,
            "{v}"
        );
        eprintln!(
            "drill {svc}: {} ms (RTO {} ms)",
            v["duration_ms"], v["rto_ms"]
        );
    }
    assert_eq!(lab.env.path("state/records").read_dir().unwrap().count(), 3);
    // Health now sees every service drilled.
    let h = lab.lb().args(["health", "--json"]).output().unwrap();
    let h = String::from_utf8_lossy(&h.stdout);
    assert!(!h.contains("never drilled"), "{h}");
}

#[test]
fn one_job_per_service_and_a_cancelled_job_stops_cleanly() {
    let lab = Lab::new(1000);
    // A runbook that waits before it restores anything.
    let rb = lab.env.path("rb");
    fs::create_dir_all(&rb).unwrap();
    fs::write(
        rb.join("slow.md"),
        "+++\nid = \"slow\"\ntitle = \"Slow\"\n+++\n\n## Wait\n\n```sh\nsleep 30\n```\n\n## Restore\n\n```lifeboat\nrestore\n```\n",
    )
    .unwrap();
    let out = lab
        .lb()
        .args([
            "--json",
            "recover",
            "slow",
            "--service",
            "docs",
            "--yes",
            "--detach",
            "--runbooks",
        ])
        .arg(&rb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["job"]
        .as_str()
        .unwrap()
        .to_string();
    let state = lab.env.path("state");
    let start = Instant::now();
    while !journal_lines(&state)
        .iter()
        .any(|l| l["line"] == "$ sleep 30")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the job did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second restore of the same service is refused while the first runs.
    lab.lb()
        .args([
            "recover",
            "slow",
            "--service",
            "docs",
            "--yes",
            "--runbooks",
        ])
        .arg(&rb)
        .assert()
        .failure()
        .stdout(
            predicate::str::contains("another job (")
                .and(predicate::str::contains("is already working on docs")),
        );
    lab.lb().args(["jobs", "cancel", &id]).assert().success();
    let start = Instant::now();
    let finished = loop {
        let lines = journal_lines(&state);
        if let Some(f) = lines
            .iter()
            .find(|l| l["event"] == "finished" && l["outcome"] == "cancelled")
        {
            break f.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not cancelled: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(finished["t"].is_u64());
    // The restore never ran: nothing staged, nothing touched.
    let left: Vec<_> = fs::read_dir(lab.env.path("live/docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["data"]);
    lab.lb()
        .args(["jobs"])
        .assert()
        .success()
        .stdout(predicate::str::contains("cancelled"));
}

#[test]
fn cancelling_mid_restore_leaves_no_staging_and_no_half_copy() {
    // Big enough that the restore outlasts the half second a cancelled
    // job waits for its step to notice.
    let lab = Lab::new(192 << 20);
    let data = lab.env.path("live/docs/data");
    let before: Vec<(std::ffi::OsString, Vec<u8>)> = fs::read_dir(&data)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), fs::read(e.path()).unwrap())
        })
        .collect();
    fs::remove_dir_all(&data).unwrap();
    let out = lab
        .lb()
        .args([
            "--json",
            "recover",
            "files-deleted",
            "--service",
            "docs",
            "--yes",
            "--detach",
            "--runbooks",
            shipped(),
            "--input",
        ])
        .arg(format!("path={}", data.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = lab.env.path("state");
    let start = Instant::now();
    while !journal_lines(&state)
        .iter()
        .any(|l| l["event"] == "progress")
    {
        assert!(start.elapsed() < Duration::from_secs(30), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGTERM straight away (what `jobs cancel` sends), to land mid-restore.
    let pid = journal_lines(&state)
        .iter()
        .find(|l| l["event"] == "started")
        .and_then(|l| l["pid"].as_u64())
        .unwrap();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    loop {
        let lines = journal_lines(&state);
        if let Some(f) = lines.iter().find(|l| l["event"] == "finished") {
            assert_eq!(f["outcome"], "cancelled", "{lines:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait for the process to be gone, then look.
    let start = Instant::now();
    while lab
        .lb()
        .arg("jobs")
        .output()
        .unwrap()
        .stdout
        .windows(7)
        .any(|w| w == b"running")
    {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<String> = fs::read_dir(lab.env.path("live/docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
    // All or nothing: the copy was either swapped in whole, or never.
    if data.exists() {
        eprintln!("the cancel landed after the swap: the restored copy is complete");
        for (name, bytes) in &before {
            assert!(&fs::read(data.join(name)).unwrap() == bytes, "{name:?}");
        }
        assert_eq!(fs::read_dir(&data).unwrap().count(), before.len());
    } else {
        eprintln!("the cancel landed mid-restore: nothing was swapped in");
    }
}

// ── The terminal dies; the job does not ─────────────────────────────────

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }
    fn start(&self, name: &str, script: &str) {
        assert!(self
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "80",
                "-y",
                "24",
                script
            ])
            .status()
            .unwrap()
            .success());
    }
    fn keys(&self, name: &str, keys: &[&str]) {
        for k in keys {
            assert!(self
                .cmd()
                .args(["send-keys", "-t", name, k])
                .status()
                .unwrap()
                .success());
        }
    }
    fn literal(&self, name: &str, text: &str) {
        assert!(self
            .cmd()
            .args(["send-keys", "-t", name, "-l", text])
            .status()
            .unwrap()
            .success());
    }
    fn screen(&self, name: &str) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn wait_for(&self, name: &str, what: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen(name);
            if s.contains(what) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for {what:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

fn journal_lines(state: &Path) -> Vec<serde_json::Value> {
    let dir = state.join("jobs");
    let Ok(rd) = fs::read_dir(&dir) else {
        return vec![];
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .flat_map(|e| {
            fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect()
}

#[test]
fn recover_on_a_terminal_asks_at_each_checkbox() {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tmux is needed for this test: run scripts/test-deps.sh (or apt-get install tmux)"
    );
    let lab = Lab::new(1000);
    let victim = lab.env.path("live/docs/data/file3.bin");
    let original = fs::read(&victim).unwrap();
    fs::remove_file(&victim).unwrap();
    let t = Tmux {
        socket: format!("lifeboat-ask-{}", std::process::id()),
    };
    let script = format!(
        "env LIFEBOAT_KEY_DIR={keys} HOME={home} {bin} --config {cfg} recover files-deleted --service docs --runbooks {rb} --input path={victim}; echo RECOVER-EXITED $?; sleep 600",
        keys = lab.env.path("keys").display(),
        home = lab.env.path("home").display(),
        bin = assert_cmd::cargo::cargo_bin("lifeboat").display(),
        cfg = lab.config.display(),
        rb = shipped(),
        victim = victim.display(),
    );
    // The plan first, and nothing starts until the service name is typed:
    // a wrong name changes nothing and starts no job.
    t.start("wrong", &script);
    let s = t.wait_for("wrong", "Type `docs` to start", Duration::from_secs(30));
    assert!(
        s.contains("write") && s.contains("file3.bin"),
        "the plan is shown: {s}"
    );
    t.literal("wrong", "dosc");
    t.keys("wrong", &["Enter"]);
    let s = t.wait_for("wrong", "RECOVER-EXITED", Duration::from_secs(30));
    assert!(
        s.contains("not confirmed") && s.contains("RECOVER-EXITED 1"),
        "{s}"
    );
    assert!(!victim.exists(), "nothing happens without the name");
    assert!(
        journal_lines(&lab.env.path("state")).is_empty(),
        "no job was started"
    );
    t.start("t", &script);
    t.wait_for("t", "Type `docs` to start", Duration::from_secs(30));
    assert!(!victim.exists(), "nothing happens before the name is typed");
    t.literal("t", "docs");
    t.keys("t", &["Enter"]);
    t.wait_for("t", "[Enter done, a abort] >", Duration::from_secs(30));
    assert!(!victim.exists(), "nothing happens before the answer");
    t.keys("t", &["Enter"]);
    // The second checkbox, after the restore and the check.
    let s = t.wait_for("t", "Open the restored file", Duration::from_secs(30));
    assert!(s.contains("check: ✓"), "{s}");
    assert_eq!(fs::read(&victim).unwrap(), original);
    t.keys("t", &["Enter"]);
    let s = t.wait_for("t", "RECOVER-EXITED", Duration::from_secs(30));
    assert!(
        s.contains("succeeded") && s.contains("RECOVER-EXITED 0"),
        "{s}"
    );
}

#[test]
fn a_restore_started_in_the_console_survives_its_terminal_being_killed() {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tmux is needed for this test: run scripts/test-deps.sh (or apt-get install tmux)"
    );
    // Big enough that the restore is still running when the terminal goes.
    let lab = Lab::new(96 << 20);
    let data = lab.env.path("live/docs/data");
    let before = lab.env.path("before");
    fs::create_dir_all(&before).unwrap();
    for e in fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), before.join(e.file_name())).unwrap();
    }
    fs::remove_dir_all(&data).unwrap();
    // The console finds runbooks beside the config.
    let rb = lab.env.path("runbooks");
    fs::create_dir_all(&rb).unwrap();
    for e in fs::read_dir(shipped()).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), rb.join(e.file_name())).unwrap();
    }

    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    let t = Tmux {
        socket: format!("lifeboat-runbook-{}", std::process::id()),
    };
    let console = format!(
        "env LIFEBOAT_KEY_DIR={keys} HOME={home} NO_COLOR=1 {bin} --config {cfg}; echo CONSOLE-EXITED $?; sleep 600",
        keys = lab.env.path("keys").display(),
        home = lab.env.path("home").display(),
        bin = bin.display(),
        cfg = lab.config.display(),
    );
    // Killing the only session would take the tmux server with it.
    t.start("keep", "sleep 600");
    t.start("first", &console);
    t.wait_for("first", "docs", Duration::from_secs(30));
    t.keys("first", &["3"]);
    t.wait_for("first", "what happened?", Duration::from_secs(10));
    // The list searches on `/`; Enter ends the search, Enter chooses.
    t.keys("first", &["/"]);
    t.literal("first", "deleted");
    t.wait_for(
        "first",
        "Files deleted or overwritten",
        Duration::from_secs(10),
    );
    t.keys("first", &["Enter", "Enter"]);
    t.wait_for("first", "which services?", Duration::from_secs(10));
    t.keys("first", &["Enter"]);
    // The restore point first: the path is then checked against it.
    let s = t.wait_for("first", "POINT", Duration::from_secs(10));
    assert!(s.contains("unverified"), "{s}");
    t.keys("first", &["Enter"]);
    t.wait_for(
        "first",
        "The deleted file or directory",
        Duration::from_secs(10),
    );
    t.literal("first", &data.display().to_string());
    t.keys("first", &["Enter"]);
    let s = t.wait_for("first", "All clear", Duration::from_secs(20));
    assert!(
        s.contains("✓ docs: credentials") && s.contains("free space"),
        "{s}"
    );
    t.keys("first", &["Enter"]);
    t.wait_for("first", "Type docs:", Duration::from_secs(10));
    t.literal("first", "docs");
    t.keys("first", &["Enter"]);
    // The first step is a checkbox: the job waits for a key.
    t.wait_for("first", "Enter when done", Duration::from_secs(20));
    t.keys("first", &["Enter"]);
    let state = lab.env.path("state");
    let start = Instant::now();
    while !journal_lines(&state)
        .iter()
        .any(|l| l["event"] == "step" && l["index"] == 1 && l["state"] == "running")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            t.screen("first")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The terminal goes away mid-restore, as a dropped SSH session would.
    assert!(t
        .cmd()
        .args(["kill-session", "-t", "first"])
        .status()
        .unwrap()
        .success());
    let killed_at = now_ms();

    // Reopen: the console finds the job and re-attaches its progress pane;
    // it has restored and checked, and waits on the last checkbox.
    t.start("second", &console);
    let s = t.wait_for("second", "Open the restored file", Duration::from_secs(60));
    assert!(
        s.contains("✓ 2. Restore the path") && s.contains("? 3. Check it"),
        "{s}"
    );
    assert!(s.contains("4 files of docs match restore point"), "{s}");
    t.keys("second", &["Enter"]);
    let s = t.wait_for("second", "Recovered in", Duration::from_secs(20));
    assert!(s.contains("✓ check docs:") && s.contains("report:"), "{s}");
    // The report itself is shown in the pane, rendered (no markdown marks).
    let s = t.wait_for("second", "─ report", Duration::from_secs(10));
    assert!(s.contains("runbook files-deleted, started"), "{s}");
    assert!(!s.contains("# Files deleted"), "{s}");

    let lines = journal_lines(&state);
    let restored_at = lines
        .iter()
        .find(|l| l["event"] == "step" && l["index"] == 1 && l["state"] == "done")
        .and_then(|l| l["t"].as_u64())
        .expect("the restore step finished");
    eprintln!(
        "the restore step ended {} ms after its terminal was killed",
        restored_at as i64 - killed_at as i64
    );
    let finished = lines
        .iter()
        .find(|l| l["event"] == "finished")
        .expect("finished");
    assert_eq!(finished["outcome"], "success");
    assert!(
        finished["t"].as_u64().unwrap() > killed_at,
        "the job outlived its terminal"
    );
    let mut names = 0;
    for e in fs::read_dir(&before).unwrap() {
        let e = e.unwrap();
        names += 1;
        assert!(
            fs::read(e.path()).unwrap() == fs::read(data.join(e.file_name())).unwrap(),
            "{:?} differs",
            e.file_name()
        );
    }
    assert_eq!(fs::read_dir(&data).unwrap().count(), names);
    // Detach, back out to Health, quit.
    t.keys("second", &["Escape"]);
    t.wait_for("second", "what happened?", Duration::from_secs(10));
    t.keys("second", &["Escape"]);
    t.wait_for("second", "Services", Duration::from_secs(10));
    t.keys("second", &["q"]);
    t.wait_for("second", "CONSOLE-EXITED 0", Duration::from_secs(10));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The site is gone, on-site repository included: the site-lost runbook
/// finds the restore point in the off-site copy and brings the data back,
/// never touching the lost storage.
#[test]
fn site_lost_restores_from_the_offsite_copy_when_the_local_repository_is_gone() {
    let env = Env::new();
    let live = env.path("live/docs/data");
    fs::create_dir_all(&live).unwrap();
    for i in 0..3 {
        fs::write(
            live.join(format!("f{i}.bin")),
            common::bytes(40 + i, 200_000),
        )
        .unwrap();
    }
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
            "cache_dir = \"{c}\"\nstate_dir = \"{s}\"\n[repositories.local]\npath = \"{r}\"\nkey_file = \"{k}\"\n[repositories.offsite]\npath = \"{o}\"\nkey_file = \"{k}\"\ncopy_of = \"local\"\n[services.docs]\ntier = \"critical\"\nrepository = \"local\"\nsources = [{{ kind = \"files\", paths = [\"{l}\"] }}]\n",
            c = env.path("cache").display(),
            s = env.path("state").display(),
            r = env.path("repo").display(),
            o = env.path("offsite").display(),
            k = key.display(),
            l = live.display(),
        ),
    )
    .unwrap();
    let lb = || {
        let mut c = env.lb();
        c.arg("--config").arg(&config);
        c
    };
    lb().args(["backup", "docs"]).assert().success();
    lb().args(["copy"]).assert().success();
    let before: Vec<Vec<u8>> = (0..3)
        .map(|i| fs::read(live.join(format!("f{i}.bin"))).unwrap())
        .collect();
    // The fire.
    fs::remove_dir_all(env.path("repo")).unwrap();
    fs::remove_dir_all(env.path("live")).unwrap();

    let out = lb()
        .args([
            "recover",
            "site-lost",
            "--all",
            "--point",
            "latest",
            "--yes",
            "--runbooks",
            shipped(),
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("repository offsite opens"), "{text}");
    for (i, want) in before.iter().enumerate() {
        assert_eq!(&fs::read(live.join(format!("f{i}.bin"))).unwrap(), want);
    }
    assert!(
        !env.path("repo").exists(),
        "the lost repository was not recreated"
    );
}

/// A shell step that starts a daemon keeping its output open (as
/// `pg_ctl start` without -l does) ends when the command itself ends.
#[test]
fn a_shell_step_ends_when_its_command_does_even_if_a_daemon_keeps_its_output() {
    let lab = Lab::new(1000);
    let dir = lab.env.path("rb");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("daemon.md"),
        "+++\nid = \"daemon\"\ntitle = \"Start a daemon\"\n+++\n\n## Start it\n\n```sh {timeout=60s}\nsleep 30 &\necho started\n```\n",
    )
    .unwrap();
    let t = Instant::now();
    lab.lb()
        .args([
            "recover",
            "daemon",
            "--service",
            "docs",
            "--yes",
            "--runbooks",
        ])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("started"));
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
}

/// A backup started through a runbook is a job like any other: it takes a
/// new restore point of the service and says which.
#[test]
fn backup_now_runbook_takes_a_new_restore_point() {
    let lab = Lab::new(1000);
    fs::write(
        lab.env.path("live/docs/data/new.txt"),
        b"written before the upgrade",
    )
    .unwrap();
    let out = lab
        .lb()
        .args([
            "recover",
            "backup-now",
            "--service",
            "docs",
            "--yes",
            "--runbooks",
            shipped(),
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("backed up docs: restore point"), "{out}");
    let snaps = lab
        .lb()
        .args(["--json", "snapshots", "docs"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&snaps.stdout);
    assert_eq!(
        text.matches("\"service\":\"docs\"").count()
            + text.matches("\"service\": \"docs\"").count(),
        2,
        "{text}"
    );
    let newest = lab.lb().args(["ls", "docs:latest"]).output().unwrap();
    assert!(String::from_utf8_lossy(&newest.stdout).contains("new.txt"));
}

#[test]
fn ctrl_c_leaves_the_job_running_and_stopping_after_the_restore_is_no_failure() {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tmux is needed for this test: run scripts/test-deps.sh (or apt-get install tmux)"
    );
    let lab = Lab::new(1000);
    let victim = lab.env.path("live/docs/data/file2.bin");
    let original = fs::read(&victim).unwrap();
    fs::remove_file(&victim).unwrap();
    let t = Tmux {
        socket: format!("lifeboat-ctrlc-{}", std::process::id()),
    };
    let script = format!(
        "cd {dir} && env LIFEBOAT_KEY_DIR={keys} HOME={home} {bin} --config {cfg} recover files-deleted --service docs --runbooks {rb} --input path={victim}; echo RECOVER-EXITED $?; sleep 600",
        dir = lab.env.path("").display(),
        keys = lab.env.path("keys").display(),
        home = lab.env.path("home").display(),
        bin = assert_cmd::cargo::cargo_bin("lifeboat").display(),
        cfg = lab.config.display(),
        rb = shipped(),
        victim = victim.display(),
    );
    // Ctrl-C at the first question: the follower says how to get back,
    // the job goes on waiting.
    t.start("a", &script);
    let s = t.wait_for("a", "Type `docs` to start", Duration::from_secs(30));
    assert!(
        s.contains("UTC") && s.contains("ago;"),
        "the point's time and age: {s}"
    );
    t.literal("a", "docs");
    t.keys("a", &["Enter"]);
    t.wait_for("a", "[Enter done, a abort] >", Duration::from_secs(30));
    t.keys("a", &["C-c"]);
    let s = t.wait_for("a", "RECOVER-EXITED", Duration::from_secs(30));
    assert!(s.contains("goes on without this terminal"), "{s}");
    assert!(
        s.contains("lifeboat jobs attach") && s.contains("RECOVER-EXITED 130"),
        "{s}"
    );
    let jobs = || {
        let out = lab
            .env
            .lb()
            .arg("--config")
            .arg(&lab.config)
            .args(["--json", "jobs"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let j = jobs()[0].clone();
    assert!(
        j["finished"].is_null() && !j["lost"].as_bool().unwrap(),
        "{j}"
    );
    let id = j["id"].as_str().unwrap().to_string();

    // Re-attached: the restore happens, then the admin stops at the last
    // checkbox. The data stays restored and the job is not a failure.
    let attach = format!(
        "cd {dir} && env LIFEBOAT_KEY_DIR={keys} HOME={home} {bin} --config {cfg} jobs attach {id}; echo ATTACH-EXITED $?; sleep 600",
        dir = lab.env.path("").display(),
        keys = lab.env.path("keys").display(),
        home = lab.env.path("home").display(),
        bin = assert_cmd::cargo::cargo_bin("lifeboat").display(),
        cfg = lab.config.display(),
    );
    t.start("b", &attach);
    t.wait_for("b", "[Enter done, a abort] >", Duration::from_secs(30));
    t.keys("b", &["Enter"]);
    t.wait_for("b", "Open the restored file", Duration::from_secs(30));
    assert_eq!(fs::read(&victim).unwrap(), original);
    t.literal("b", "a");
    t.keys("b", &["Enter"]);
    let s = t.wait_for("b", "ATTACH-EXITED", Duration::from_secs(30));
    assert!(s.contains("was stopped by you"), "{s}");
    let j = jobs()[0].clone();
    assert_eq!(j["finished"][0], "aborted", "{j}");
    assert_eq!(
        fs::read(&victim).unwrap(),
        original,
        "what was restored stays"
    );
}
