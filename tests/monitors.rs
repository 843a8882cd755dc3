//! Monitors hear about every job — over real HTTP on loopback — and no
//! secret reaches a log file, the terminal or a ping.

mod common;

use common::*;
use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A tiny HTTP server that records what it receives and answers with the
/// queued statuses (then 200). Bounded: it stops after 500 requests or
/// when dropped.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let statuses: Arc<Mutex<VecDeque<u16>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2, stop2) = (seen.clone(), statuses.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut served = 0;
            while !stop2.load(Ordering::Relaxed) && served < 500 {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                served += 1;
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, target) = (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                );
                let mut headers = Vec::new();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                s2.lock().unwrap().push(Request {
                    method,
                    target,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let status = st2.lock().unwrap().pop_front().unwrap_or(200);
                let mut w = stream;
                let _ = write!(
                    w,
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
                );
            }
        });
        Recorder {
            port,
            seen,
            statuses,
            stop,
        }
    }

    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const HC_TOKEN: &str = "0b9c0e7e-hc-secret-token";
const ENV_SECRET: &str = "s3cr3t-do-not-log-4242";

fn setup(env: &Env, port: u16) -> std::path::PathBuf {
    let repo = env.path("repo");
    env.init(&repo);
    let src = env.path("srv/app");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join(".env"), format!("DB_PASSWORD={ENV_SECRET}\n")).unwrap();
    fs::write(src.join("data.db"), bytes(3, 50_000)).unwrap();
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            "state_dir = {state:?}\nlog_dir = {logs:?}\n\
             [[monitors]]\nkind = \"healthchecks\"\nurl = \"env:TEST_HC_URL\"\n\
             [[monitors]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             [[monitors]]\nkind = \"ntfy\"\nurl = \"http://127.0.0.1:{port}/ntfy/lifeboat\"\n\
             [[monitors]]\nkind = \"uptime-kuma\"\nurl = \"http://127.0.0.1:{port}/api/push/kumatoken\"\njobs = [\"backup\"]\n\
             [repositories.local]\npath = {repo:?}\nkey_file = {key:?}\n\
             [services.app]\ntier = \"critical\"\nsources = [{{ kind = \"files\", paths = [{src:?}] }}]\n",
            state = env.path("state"),
            logs = env.path("logs"),
            key = env.path("admin.key"),
        ),
    )
    .unwrap();
    config
}

#[test]
fn every_kind_of_monitor_hears_start_success_and_failure() {
    let server = Recorder::start();
    let env = Env::new();
    let config = setup(&env, server.port);
    let hc = format!("http://127.0.0.1:{}/ping/{HC_TOKEN}", server.port);
    let mut outputs = Vec::new();

    // Success. The first start ping gets a 503 and is retried.
    server.statuses.lock().unwrap().push_back(503);
    let out = env
        .lb()
        .env("TEST_HC_URL", &hc)
        .args(["backup", "app", "--config"])
        .arg(&config)
        .assert()
        .success()
        .get_output()
        .clone();
    outputs.push(out);
    let seen = server.take();
    let starts: Vec<&Request> = seen
        .iter()
        .filter(|r| {
            r.target
                .starts_with(&format!("/ping/{HC_TOKEN}/start?rid="))
        })
        .collect();
    assert_eq!(starts.len(), 2, "the 503 was retried: {seen:#?}");
    let rid = starts[0].target.rsplit("rid=").next().unwrap().to_string();
    let ok = seen
        .iter()
        .find(|r| r.target == format!("/ping/{HC_TOKEN}?rid={rid}"))
        .expect("success ping with the same run id");
    assert_eq!(ok.method, "POST");
    assert!(
        ok.body.contains("app ") && ok.body.contains(" new in "),
        "{}",
        ok.body
    );
    let hooks: Vec<serde_json::Value> = seen
        .iter()
        .filter(|r| r.target == "/hook")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(
        hooks
            .iter()
            .map(|h| h["event"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["start", "success"]
    );
    assert!(hooks
        .iter()
        .all(|h| h["job"] == "backup" && h["run_id"] == rid.as_str()));
    assert!(seen
        .iter()
        .any(|r| r.method == "GET" && r.target.starts_with("/api/push/kumatoken?status=up&msg=")));
    assert!(
        !seen.iter().any(|r| r.target.starts_with("/ntfy")),
        "ntfy only hears about failures"
    );

    // Failure: the source is gone.
    fs::rename(env.path("srv/app"), env.path("srv/moved")).unwrap();
    let out = env
        .lb()
        .env("TEST_HC_URL", &hc)
        .args(["backup", "app", "--config"])
        .arg(&config)
        .assert()
        .code(1)
        .get_output()
        .clone();
    outputs.push(out);
    let seen = server.take();
    let fail = seen
        .iter()
        .find(|r| r.target.starts_with(&format!("/ping/{HC_TOKEN}/fail?rid=")))
        .expect("fail ping");
    assert!(
        fail.body.contains("backup of app failed") && fail.body.contains("No such file"),
        "the log tail: {}",
        fail.body
    );
    let ntfy = seen
        .iter()
        .find(|r| r.target == "/ntfy/lifeboat")
        .expect("ntfy on failure");
    assert!(ntfy
        .headers
        .iter()
        .any(|(k, v)| k == "title" && v.starts_with("Lifeboat backup failed on ")));
    assert!(ntfy
        .headers
        .iter()
        .any(|(k, v)| k == "priority" && v == "high"));
    assert!(seen
        .iter()
        .any(|r| r.target.starts_with("/api/push/kumatoken?status=down")));
    let hook: serde_json::Value =
        serde_json::from_str(&seen.iter().rfind(|r| r.target == "/hook").unwrap().body).unwrap();
    assert_eq!(hook["event"], "fail");
    fs::rename(env.path("srv/moved"), env.path("srv/app")).unwrap();

    // A drill pings too, but Uptime Kuma only listens to backups.
    let out = env
        .lb()
        .env("TEST_HC_URL", &hc)
        .args(["drill", "app", "--config"])
        .arg(&config)
        .assert()
        .success()
        .get_output()
        .clone();
    outputs.push(out);
    let seen = server.take();
    assert!(seen
        .iter()
        .any(|r| r.target.starts_with(&format!("/ping/{HC_TOKEN}?rid="))));
    assert!(!seen.iter().any(|r| r.target.starts_with("/api/push")));

    // No secret in any log line, on the terminal, or in a ping body.
    let key = fs::read_to_string(env.path("admin.key")).unwrap();
    let key_secret = key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY"))
        .unwrap()
        .to_string();
    let mut produced = String::new();
    for o in &outputs {
        produced.push_str(&String::from_utf8_lossy(&o.stdout));
        produced.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    let mut log_text = String::new();
    for e in fs::read_dir(env.path("logs")).unwrap() {
        log_text.push_str(&fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(
        log_text.contains("\"message\":\"backup finished\"")
            && log_text.contains("\"outcome\":\"failed\""),
        "jobs log start, end and outcome:\n{log_text}"
    );
    for r in seen.iter() {
        produced.push_str(&r.body);
    }
    for secret in [ENV_SECRET, key_secret.as_str()] {
        assert!(
            !produced.contains(secret) && !log_text.contains(secret),
            "{secret} leaked"
        );
    }
    assert!(
        !log_text.contains(HC_TOKEN) && !produced.contains(HC_TOKEN),
        "the ping URL's token leaked"
    );
}

#[test]
fn a_monitor_that_is_down_never_fails_the_backup() {
    // Bind and drop: a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new();
    let config = setup(&env, port);
    let hc = format!("http://127.0.0.1:{port}/ping/{HC_TOKEN}");
    let out = env
        .lb()
        .env("TEST_HC_URL", &hc)
        .args(["backup", "app", "--config"])
        .arg(&config)
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("could not ping http://127.0.0.1:{port}/… (cannot connect); the backup itself is not affected")), "{err}");
    assert!(!err.contains(HC_TOKEN));
}

/// A job started from the console (here: the backup-now runbook, in a real
/// terminal) pings the monitors and writes log lines as a CLI backup does.
#[test]
fn a_job_started_from_the_console_pings_and_logs_like_a_cli_job() {
    let tmux_ok = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        tmux_ok,
        "tmux is needed for this test: run scripts/test-deps.sh (or apt-get install tmux)"
    );
    let server = Recorder::start();
    let env = Env::new();
    let config = setup(&env, server.port);
    env.lb()
        .args(["backup", "app", "--config"])
        .arg(&config)
        .env(
            "TEST_HC_URL",
            format!("http://127.0.0.1:{}/ping/{HC_TOKEN}", server.port),
        )
        .assert()
        .success();
    server.take();
    // The console reads runbooks beside its config.
    let rb = env.path("runbooks");
    fs::create_dir_all(&rb).unwrap();
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks/backup-now.md"),
        rb.join("backup-now.md"),
    )
    .unwrap();
    let socket = format!("lifeboat-mon-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let out = std::process::Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux")
                .args(["-L", &self.0, "kill-server"])
                .status();
        }
    }
    let _kill = Kill(socket.clone());
    let console = format!(
        "cd {dir} && env LIFEBOAT_KEY_DIR={keys} HOME={home} NO_COLOR=1 TEST_HC_URL=http://127.0.0.1:{port}/ping/{HC_TOKEN} {bin} --config {cfg}; sleep 600",
        dir = env.path("").display(),
        keys = env.path("keys").display(),
        home = env.path("home").display(),
        port = server.port,
        bin = assert_cmd::cargo::cargo_bin("lifeboat").display(),
        cfg = config.display(),
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "c",
        "-x",
        "80",
        "-y",
        "24",
        &console,
    ]);
    let wait_for = |what: &str| {
        let start = std::time::Instant::now();
        loop {
            let s = tmux(&["capture-pane", "-p", "-t", "c"]);
            if s.contains(what) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "waited for {what:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("app");
    tmux(&["send-keys", "-t", "c", "3"]);
    wait_for("what happened?");
    // The list searches on `/`; Enter ends the search, Enter chooses.
    tmux(&["send-keys", "-t", "c", "/"]);
    tmux(&["send-keys", "-t", "c", "-l", "backup"]);
    wait_for("Back up a service now");
    tmux(&["send-keys", "-t", "c", "Enter", "Enter"]);
    wait_for("which services?");
    tmux(&["send-keys", "-t", "c", "Enter"]);
    wait_for("POINT");
    tmux(&["send-keys", "-t", "c", "Enter"]);
    wait_for("All clear");
    tmux(&["send-keys", "-t", "c", "Enter"]);
    wait_for("Type app:");
    tmux(&["send-keys", "-t", "c", "-l", "app"]);
    tmux(&["send-keys", "-t", "c", "Enter"]);
    wait_for("Enter when done");
    tmux(&["send-keys", "-t", "c", "Enter"]);
    wait_for("Recovered in");

    let seen = server.take();
    let hooks: Vec<serde_json::Value> = seen
        .iter()
        .filter(|r| r.target == "/hook")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(
        hooks
            .iter()
            .map(|h| h["event"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["start", "success"],
        "{seen:#?}"
    );
    assert!(hooks.iter().all(|h| h["job"] == "backup"), "{hooks:?}");
    assert!(
        seen.iter().any(|r| r
            .target
            .starts_with(&format!("/ping/{HC_TOKEN}/start?rid="))),
        "the healthchecks start ping: {seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.target.starts_with("/api/push/kumatoken?status=up")),
        "uptime kuma hears about backups: {seen:#?}"
    );
    // JSON log lines, as a CLI job writes them.
    let logs: String = fs::read_dir(env.path("logs"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let finished: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "job finished" && l["fields"]["job"] == "backup")
        .collect();
    assert_eq!(
        finished.len(),
        2,
        "the CLI backup and the console's job: {logs}"
    );
    assert!(finished.iter().all(|l| l["fields"]["outcome"] == "success"));
    assert!(!logs.contains(ENV_SECRET) && !logs.contains(HC_TOKEN));
}
