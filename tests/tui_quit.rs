//! Quitting never waits for the network: the console over a repository
//! whose object store never answers (a fault proxy in front of a real S3
//! server that stalls every request) still leaves within a second of `q`,
//! with the inventory's read still hanging.

mod common;

use common::tmux::Tmux;
use common::{FaultProxy, Faults, S3Server, S3_BUCKET, S3_KEY_ID, S3_SECRET};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
fn q_returns_within_a_second_with_a_request_in_flight() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port, Faults::StallAll);
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).display().to_string();
    std::fs::create_dir_all(p("home")).unwrap();
    std::fs::create_dir_all(p("data")).unwrap();
    std::fs::write(p("s3-secret"), S3_SECRET).unwrap();
    std::fs::write(
        p("lifeboat.toml"),
        format!(
            r#"state_dir = "{state}"
[repositories.remote]
url = "s3://{S3_BUCKET}/stalled"
endpoint = "{endpoint}"
region = "us-east-1"
path_style = true
access_key_id = "{S3_KEY_ID}"
secret_access_key = "file:{secret}"
key_file = "{key}"

[services.files]
tier = "important"
repository = "remote"
sources = [{{ kind = "files", paths = ["{data}"] }}]
"#,
            state = p("state"),
            endpoint = proxy.endpoint(),
            secret = p("s3-secret"),
            key = p("admin.key"),
            data = p("data"),
        ),
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    // The shell stamps the moment the console has exited, in nanoseconds.
    let script = format!(
        "cd {tmp} && env NO_COLOR=1 HOME={home} LIFEBOAT_KEY_DIR={tmp}/keys {bin} --config {cfg}; echo LIFEBOAT-EXITED $? $(date +%s%N); sleep 600",
        tmp = tmp.path().display(),
        home = p("home"),
        bin = bin.display(),
        cfg = p("lifeboat.toml"),
    );
    let t = Tmux::start("quit", 80, 24, &script);
    t.wait_for("loading the inventory…", Duration::from_secs(30));
    // The inventory's first request has reached the store and hangs.
    let start = Instant::now();
    while proxy.faults() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the console never asked the store anything: {:?}",
            proxy.request_lines()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    t.keys(&["q"]);
    let s = t.wait_for("LIFEBOAT-EXITED", Duration::from_secs(30));
    let line = s
        .lines()
        .find(|l| l.contains("LIFEBOAT-EXITED"))
        .unwrap()
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.get(1), Some(&"0"), "{s}");
    let exited = Duration::from_nanos(fields[2].parse().unwrap());
    let took = exited.saturating_sub(sent);
    assert!(
        took < Duration::from_secs(1),
        "q took {took:?} with a request in flight"
    );
    // The request was still hanging when the console left.
    assert!(proxy.faults() >= 1);
    eprintln!("quit took {took:?} with a stalled request");
}
