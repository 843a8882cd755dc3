//! Off-site repositories on a real S3-compatible server (s3s-fs on
//! loopback, installed by scripts/test-deps.sh), and `lifeboat copy`.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A site: a local repository, an off-site one in the bucket, a config
/// naming both, and some data to protect.
struct Site {
    env: Env,
    data: PathBuf,
    config: PathBuf,
}

struct Offsite<'a> {
    endpoint: &'a str,
    /// Extra lines for `[repositories.offsite]`.
    extra: &'a str,
}

impl Site {
    fn new(server: &S3Server, offsite: Offsite<'_>) -> Site {
        let env = Env::new();
        let data = env.path("srv");
        fs::create_dir_all(data.join("app/db")).unwrap();
        fs::write(data.join("app/db/main.sqlite"), bytes(1, 3_000_000)).unwrap();
        fs::write(data.join("app/.env"), b"TOKEN=abc\n").unwrap();
        fs::write(data.join("app/empty"), b"").unwrap();
        fs::write(data.join("notes.txt"), bytes(2, 200_000)).unwrap();
        std::os::unix::fs::symlink("app/db/main.sqlite", data.join("current")).unwrap();
        fs::set_permissions(
            data.join("app/.env"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let site = Site {
            config: env.path("lifeboat.toml"),
            data,
            env,
        };
        fs::write(site.env.path("s3-secret"), format!("{S3_SECRET}\n")).unwrap();
        site.write_config(server, offsite);
        site.init("local");
        site.init("offsite");
        site
    }

    fn write_config(&self, _server: &S3Server, offsite: Offsite<'_>) {
        let p = |s: &str| self.env.path(s).display().to_string();
        fs::write(
            &self.config,
            format!(
                r#"
state_dir = "{state}"
[repositories.local]
path = "{repo}"
key_file = "{key}"

[repositories.offsite]
url = "s3://{S3_BUCKET}/offsite"
endpoint = "{endpoint}"
region = "us-east-1"
path_style = true
access_key_id = "env:LB_TEST_S3_ID"
secret_access_key = "file:{secret}"
key_file = "{key}"
copy_of = "local"
{extra}

[services.files]
tier = "important"
repository = "local"
sources = [{{ kind = "files", paths = ["{data}"] }}]
"#,
                state = p("state"),
                repo = p("repo"),
                key = p("admin.key"),
                secret = p("s3-secret"),
                endpoint = offsite.endpoint,
                extra = offsite.extra,
                data = self.data.display(),
            ),
        )
        .unwrap();
    }

    fn lb(&self) -> assert_cmd::Command {
        let mut c = self.env.lb();
        c.arg("--config")
            .arg(&self.config)
            .env("LB_TEST_S3_ID", S3_KEY_ID);
        c
    }

    fn init(&self, repo: &str) {
        self.lb()
            .args(["init", "--repo", repo, "--key-file"])
            .arg(self.env.path("admin.key"))
            .assert()
            .success();
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        self.json_with_exit(args, true)
    }

    /// `lifeboat health` exits non-zero for warnings, which these sites have
    /// (never verified, never drilled): read its JSON whatever the code.
    fn health(&self) -> serde_json::Value {
        self.json_with_exit(&["health"], false)
    }

    fn json_with_exit(&self, args: &[&str], must_succeed: bool) -> serde_json::Value {
        let out = self.lb().arg("--json").args(args).output().unwrap();
        assert!(
            !must_succeed || out.status.success(),
            "lifeboat {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "lifeboat {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn backup(&self) -> serde_json::Value {
        self.json(&["backup", "files"])
    }

    fn copy(&self) -> serde_json::Value {
        self.json(&["copy"])["report"].clone()
    }

    fn restore_from(&self, repo: &str, target: &str) -> PathBuf {
        let t = self.env.path(target);
        self.lb()
            .args(["restore", "--repo", repo, "files:latest", "--target"])
            .arg(&t)
            .assert()
            .success();
        restored(&t, &self.data)
    }

    fn verify_read_data(&self, repo: &str) {
        let r = self.json(&["verify", "--read-data", "--repo", repo]);
        assert_eq!(
            r["problems"],
            serde_json::json!([]),
            "verify of {repo}: {r}"
        );
        assert!(r["packs_read"].as_u64().unwrap() > 0, "{r}");
    }
}

fn no_secret_in(what: &str, text: &[u8]) {
    assert!(
        !String::from_utf8_lossy(text).contains(S3_SECRET),
        "the S3 secret leaked into {what}"
    );
}

/// Every file under `dir`, read, must not hold the secret.
fn no_secret_under(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            no_secret_under(&p);
        } else if let Ok(b) = fs::read(&p) {
            no_secret_in(&p.display().to_string(), &b);
        }
    }
}

#[test]
fn backup_copy_to_s3_and_restore_from_it_bit_for_bit() {
    let server = S3Server::start();
    // A pass-through proxy, to see which requests each command makes.
    let proxy = FaultProxy::start(server.port, Faults::None);
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &proxy.endpoint(),
            extra: "",
        },
    );
    site.backup();

    let first = site.copy();
    assert_eq!(first["copied"].as_array().unwrap().len(), 1, "{first}");
    assert!(first["chunks_sent"].as_u64().unwrap() > 0);
    assert!(
        first["packs_read_back"].as_u64().unwrap() > 0,
        "copy reads back what it sent: {first}"
    );
    // What each source chunk became is remembered for the next copy.
    let remembered = fs::read_dir(site.env.path("cache"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).into_iter().flatten())
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().starts_with("copy-")
        })
        .count();
    assert_eq!(remembered, 1);
    // Nothing new: nothing sent.
    let again = site.copy();
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["already_there"], 1);
    assert_eq!(again["chunks_sent"], 0);

    // Listing restore points reads snapshot objects, never packs.
    let before = proxy.request_lines().len();
    let snaps = site.json(&["snapshots", "--repo", "offsite"]);
    assert_eq!(snaps.as_array().map(|a| a.len()), Some(1), "{snaps}");
    let listing: Vec<String> = proxy.request_lines()[before..].to_vec();
    assert!(!listing.is_empty());
    assert!(
        listing
            .iter()
            .all(|l| !(l.starts_with("GET ") && l.contains("/data/"))),
        "listing snapshots downloaded packs: {listing:?}"
    );

    // The site is lost: restore straight from the bucket.
    let out = site.restore_from("offsite", "restored");
    assert_same_tree(&site.data, &out);
    site.verify_read_data("offsite");

    // A drill from the off-site copy works the same way.
    site.lb()
        .args(["drill", "files", "--repo", "offsite"])
        .assert()
        .success();

    // Off-site lag: current right after the copy, behind after a new backup.
    let h = site.health();
    let off = &h["services"][0]["offsite"][0];
    assert_eq!(off["repository"], "offsite", "{h}");
    // The drill from the copy is part of its line.
    assert!(
        off["check"]["text"]
            .as_str()
            .unwrap()
            .starts_with("current, drilled ok"),
        "{h}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    fs::write(site.data.join("notes.txt"), bytes(3, 100_000)).unwrap();
    site.backup();
    let h = site.health();
    let off = &h["services"][0]["offsite"][0];
    assert!(off["lag_secs"].as_u64().unwrap() >= 1, "{h}");
    assert!(
        off["check"]["text"]
            .as_str()
            .unwrap()
            .contains(" behind, drilled ok"),
        "{h}"
    );
    let bucket = h["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["repository"] == "offsite")
        .unwrap();
    assert_eq!(
        bucket["state"], "ok",
        "no capacity to judge in a bucket: {h}"
    );
    let metrics = site.lb().arg("metrics").output().unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.lines().any(
            |l| l.starts_with("lifeboat_offsite_lag_seconds{service=\"files\"")
                && l.contains("repository=\"offsite\"}")
        ),
        "{metrics}"
    );
    // The second copy sends only the changed file's chunks and a new tree.
    let third = site.copy();
    assert_eq!(third["copied"].as_array().unwrap().len(), 1);
    assert!(third["chunks_present"].as_u64().unwrap() > 0, "{third}");
    let out = site.restore_from("offsite", "restored-2");
    assert_same_tree(&site.data, &out);

    // The secret never reaches output, logs or the state directory.
    let out = site.lb().args(["copy"]).output().unwrap();
    no_secret_in("copy's output", &out.stdout);
    no_secret_in("copy's errors", &out.stderr);
    no_secret_under(&site.env.path("state"));
    no_secret_under(&site.env.path("home"));
}

#[test]
fn backup_straight_to_s3_and_restore() {
    let server = S3Server::start();
    let env = Env::new();
    let data = env.path("data");
    fs::create_dir_all(data.join("d")).unwrap();
    fs::write(data.join("d/a"), bytes(7, 1_500_000)).unwrap();
    fs::write(data.join("b"), bytes(8, 10_000)).unwrap();
    let url = format!("s3://{S3_BUCKET}/direct/repo");
    // No config: the location and the AWS_* variables say everything.
    let lb = || {
        let mut c = env.lb();
        c.env("AWS_ENDPOINT_URL", server.endpoint())
            .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("LIFEBOAT_KEY", env.path("k.key"))
            .args(["--repo", &url]);
        c
    };
    lb().args(["init", "--key-file"])
        .arg(env.path("k.key"))
        .assert()
        .success();
    lb().args(["backup", "--name", "d"])
        .arg(&data)
        .assert()
        .success();
    // The objects are where docs/format.md puts them.
    assert!(server.objects("direct/repo/config").is_file());
    assert!(
        fs::read_dir(server.objects("direct/repo/data"))
            .unwrap()
            .count()
            > 0
    );
    let t = env.path("t");
    lb().args(["restore", "d:latest", "--target"])
        .arg(&t)
        .assert()
        .success();
    assert_same_tree(&data, &restored(&t, &data));
    lb().args(["verify", "--read-data"]).assert().success();
    // A bucket that does not exist is named as such, not retried for minutes.
    let started = Instant::now();
    env.lb()
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .args(["--repo", "s3://no-such-bucket/x", "init", "--key-file"])
        .arg(env.path("k3.key"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("hint: create the bucket first"));
    assert!(started.elapsed() < Duration::from_secs(20));
    // A second init at the same place refuses.
    lb().args(["init", "--key-file"])
        .arg(env.path("k2.key"))
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "already holds a Lifeboat repository",
        ));
}

#[test]
fn copy_resumes_after_kill_9_and_sends_only_what_is_missing() {
    let server = S3Server::start();
    // Slow enough that the copy is still sending when it is killed: at
    // 3 MiB/s a 16 MiB pack lands every ~5 s, and the first index file is
    // written after 10 s, with packs still to go.
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "bandwidth_limit = \"3MiB/s\"",
        },
    );
    // Noise, so it neither compresses nor deduplicates: about five packs.
    let mut noise = Vec::with_capacity(72 << 20);
    let mut x: u64 = 0x1234_5678_9abc_def1;
    while noise.len() < 72 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(site.data.join("app/db/big.img"), &noise).unwrap();
    drop(noise);
    let snap = site.backup();
    let stored = snap["stats"]["bytes_added"].as_u64().unwrap();

    let mut child = site
        .env
        .lb_process()
        .arg("--config")
        .arg(&site.config)
        .env("LB_TEST_S3_ID", S3_KEY_ID)
        .args(["--quiet", "copy"])
        .spawn()
        .unwrap();
    // Kill it once some of what it sent is indexed, long before the end.
    let index_dir = server.objects("offsite/index");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let indexed = fs::read_dir(&index_dir).map(|d| d.count()).unwrap_or(0);
        if indexed > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy finished before it could be interrupted"
        );
        assert!(
            Instant::now() < deadline,
            "the copy never wrote an index file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing half-copied is visible as a restore point.
    let snaps = site.json(&["snapshots", "--repo", "offsite"]);
    assert_eq!(snaps.as_array().map(|a| a.len()), Some(0), "{snaps}");

    // At full speed now: the rest, and the checks, need not wait.
    site.write_config(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    let resumed = site.copy();
    assert_eq!(resumed["copied"].as_array().unwrap().len(), 1, "{resumed}");
    eprintln!("stored {stored} bytes; the resumed copy: {resumed}");
    let sent = resumed["bytes_sent"].as_u64().unwrap();
    assert!(
        resumed["chunks_present"].as_u64().unwrap() > 0 && sent > 0 && sent < stored * 9 / 10,
        "the second run sent {sent} of {stored} bytes: {resumed}"
    );
    site.verify_read_data("offsite");
    let out = site.restore_from("offsite", "restored");
    assert_same_tree(&site.data, &out);
}

#[test]
fn backup_and_copy_survive_dropped_connections_and_5xx() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port, Faults::Transient(25));
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &proxy.endpoint(),
            extra: "",
        },
    );
    site.backup();
    let r = site.copy();
    assert_eq!(r["copied"].as_array().unwrap().len(), 1, "{r}");
    site.verify_read_data("offsite");
    let out = site.restore_from("offsite", "restored");
    assert_same_tree(&site.data, &out);
    // A backup straight into the bucket, through the same faults.
    site.lb()
        .args(["backup", "--repo", "offsite", "--name", "direct"])
        .arg(&site.data)
        .assert()
        .success();
    site.verify_read_data("offsite");
    let (faults, requests) = (proxy.faults(), proxy.request_lines().len());
    assert!(
        faults >= 8,
        "only {faults} faults in {requests} requests were injected"
    );
}

/// A reset in the middle of sending a pack is an ordinary network error:
/// retried, not the death of the process by SIGPIPE (exit 141, no message,
/// no ping, a lock left behind).
#[test]
fn a_connection_cut_mid_upload_is_retried_and_the_backup_succeeds() {
    let server = S3Server::start();
    const CUTS: u64 = 6;
    let proxy = FaultProxy::start(server.port, Faults::CutUploads(CUTS));
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &proxy.endpoint(),
            extra: "",
        },
    );
    // Several packs' worth, so the cuts land on more than one upload.
    for i in 0..4 {
        fs::write(site.data.join(format!("big{i}")), bytes(40 + i, 9_000_000)).unwrap();
    }
    let out = site
        .lb()
        .args(["backup", "--repo", "offsite", "--name", "direct"])
        .arg(&site.data)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "backup through cut uploads: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(proxy.faults(), CUTS, "every cut was made");
    // The copy uploads packs too.
    site.backup();
    let copy = site.lb().arg("copy").output().unwrap();
    assert_eq!(copy.status.code(), Some(0), "copy: {:?}", copy.status);
    let locks = server.objects("offsite/locks");
    let left = fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no lock left behind in {}", locks.display());
    site.verify_read_data("offsite");
    let t = site.env.path("t");
    site.lb()
        .args(["restore", "--repo", "offsite", "direct:latest", "--target"])
        .arg(&t)
        .assert()
        .success();
    assert_same_tree(&site.data, &restored(&t, &site.data));
}

/// With SIGPIPE ignored (see the test above), a reader that went away
/// (`lifeboat snapshots | head -c1`) must still end the program quietly:
/// no panic message, no error line.
#[test]
fn a_closed_stdout_ends_quietly() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), b"x").unwrap();
    env.lbk()
        .args(["backup", "--name", "svc", "--repo"])
        .arg(&repo)
        .arg(&data)
        .assert()
        .success();
    for json in [false, true] {
        // A pipe whose reader is gone before anything is written: every
        // write fails with EPIPE, however fast the program is.
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read, write) = unsafe {
            use std::os::fd::FromRawFd;
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        drop(read);
        let mut cmd = env.lb_process();
        cmd.env("LIFEBOAT_KEY", env.path("admin.key"))
            .args(["snapshots", "--repo"])
            .arg(&repo);
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(141) | Some(0)),
            "json={json}: {:?}: {err}",
            out.status
        );
        assert!(err.is_empty(), "json={json}: nothing on stderr, got: {err}");
    }
}

#[test]
fn a_store_that_stays_down_fails_within_the_deadline() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port, Faults::Down);
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    site.backup();
    // Then the store goes down.
    site.write_config(
        &server,
        Offsite {
            endpoint: &proxy.endpoint(),
            extra: "deadline = \"4s\"\n",
        },
    );
    let started = Instant::now();
    let out = site.lb().arg("copy").output().unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "retried up to the 4 s deadline, then gave up: {took:?}"
    );
    assert!(err.contains("the repository's deadline is 4s"), "{err}");
    assert!(
        proxy.faults() >= 3,
        "retried, with backoff: {}",
        proxy.faults()
    );
    no_secret_in("the error", &out.stderr);
}

#[test]
fn a_permanent_error_fails_the_copy_clearly_and_leaves_nothing_visible() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port, Faults::DenyPackUploads);
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &proxy.endpoint(),
            extra: "",
        },
    );
    site.backup();
    let started = Instant::now();
    let out = site.lb().arg("copy").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a refused upload is not worth retrying"
    );
    assert!(err.contains("copy local → offsite failed"), "{err}");
    assert!(err.contains("s3://lifeboat/offsite"), "{err}");
    assert!(err.contains("hint: check access_key_id"), "{err}");
    no_secret_in("the error", &out.stderr);
    no_secret_in("the output", &out.stdout);
    assert!(proxy.faults() > 0);
    // No restore point is visible in the destination (read past the proxy).
    site.write_config(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    let snaps = site.json(&["snapshots", "--repo", "offsite"]);
    assert_eq!(snaps.as_array().map(|a| a.len()), Some(0), "{snaps}");
    // With the store healthy again, the copy completes.
    assert_eq!(site.copy()["copied"].as_array().unwrap().len(), 1);
    site.verify_read_data("offsite");
}

#[test]
fn bad_s3_settings_are_config_errors_with_a_location() {
    let env = Env::new();
    let cfg = env.path("c.toml");
    fs::write(
        &cfg,
        "[repositories.off]\nurl = \"s3://\"\n[services.a]\ntier = \"critical\"\nsources = [{ kind = \"files\", paths = [\"/srv\"] }]\n",
    )
    .unwrap();
    env.lb()
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("c.toml:2:7: repository `off`"));
    fs::write(
        &cfg,
        "[repositories.local]\npath = \"/r\"\n[repositories.off]\nurl = \"s3://b/p\"\ncopy_of = \"nas\"\n",
    )
    .unwrap();
    env.lb()
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "copy_of must name another repository",
        ));
}

impl Site {
    /// Points the off-site repository at `endpoint` with extra settings.
    fn offsite_at(&self, server: &S3Server, endpoint: &str, extra: &str) {
        self.write_config(server, Offsite { endpoint, extra });
    }

    fn backup_direct(&self) -> std::process::Output {
        self.lb()
            .args(["backup", "--repo", "offsite", "--name", "direct"])
            .arg(&self.data)
            .output()
            .unwrap()
    }
}

fn count_under(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Every file under `dir` must not hold `needle`.
fn nothing_under_holds(dir: &Path, needle: &str) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            nothing_under_holds(&p, needle);
        } else if let Ok(b) = fs::read(&p) {
            assert!(
                !String::from_utf8_lossy(&b).contains(needle),
                "{needle:?} leaked into {}",
                p.display()
            );
        }
    }
}

#[test]
fn verify_stops_when_the_store_fails_and_records_could_not_check_not_damage() {
    let server = S3Server::start();
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    // Each backup straight into the bucket seals packs of its own.
    for i in 0..5 {
        fs::write(site.data.join(format!("f{i}")), bytes(60 + i, 400_000)).unwrap();
        let out = site.backup_direct();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let packs = fs::read_dir(server.objects("offsite/data"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .count();
    assert!(packs >= 5, "{packs} packs");
    // Trailers unreadable (the structural check), then whole packs
    // unreadable (the data check).
    for faults in [Faults::PackReadsDown, Faults::PackDownloadsDown] {
        let proxy = FaultProxy::start(server.port, faults);
        site.offsite_at(&server, &proxy.endpoint(), "deadline = \"2s\"\n");
        let started = Instant::now();
        let out = site
            .lb()
            .args(["verify", "--read-data", "--repo", "offsite"])
            .output()
            .unwrap();
        let took = started.elapsed();
        eprintln!("verify with {faults:?} on {packs} packs: {took:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let said = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(out.status.code(), Some(1), "{faults:?}: {said}");
        assert!(
            err.contains("could not check the repository"),
            "{faults:?}: {said}"
        );
        assert!(
            !said.contains("damaged chunk") && !said.contains("trailer unreadable"),
            "{faults:?}: a failing store is not damage: {said}"
        );
        // Three packs' deadlines (in parallel, for the data check), not
        // one per pack.
        assert!(
            took < Duration::from_secs(2 * packs as u64),
            "{faults:?}: {took:?}"
        );
        assert!(proxy.faults() > 0);
        assert_eq!(
            count_under(&server.objects("offsite/damage")),
            0,
            "{faults:?}"
        );
        let records = site.env.path("state/records");
        for e in fs::read_dir(&records).into_iter().flatten() {
            let text = fs::read_to_string(e.unwrap().path()).unwrap();
            assert!(
                !text.contains("\"ok\":false"),
                "{faults:?}: recorded a failed verify: {text}"
            );
        }
    }
    // With the store back, the same repository verifies clean.
    site.offsite_at(&server, &server.endpoint(), "");
    site.verify_read_data("offsite");
}

#[test]
fn short_reads_403s_missing_credentials_and_buckets_each_say_what_they_are() {
    let server = S3Server::start();
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    // Small metadata cut short on the way, every time: a storage error
    // that says so, not a wrong key or a damaged object.
    for what in ["/offsite/keys/", "/offsite/config"] {
        let proxy = FaultProxy::start(server.port, Faults::ShortBodies(what));
        site.offsite_at(&server, &proxy.endpoint(), "deadline = \"2s\"\n");
        let out = site
            .lb()
            .args(["snapshots", "--repo", "offsite"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("cut short"), "{what}: {err}");
        assert!(
            !err.contains("no key") && !err.contains("damaged") && !err.contains("not a Lifeboat"),
            "{what}: {err}"
        );
        assert!(proxy.faults() >= 2, "{what}: retried");
    }

    // No credentials anywhere: said at once, no request to the
    // instance-metadata address, no network hint.
    let started = Instant::now();
    let out = site
        .env
        .lb()
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_EC2_METADATA_ENDPOINT")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .args(["--repo", "s3://lifeboat/offsite", "snapshots"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no credentials are given"), "{err}");
    assert!(
        err.contains("hint: set access_key_id and secret_access_key"),
        "{err}"
    );
    assert!(
        !err.contains("169.254") && !err.contains("network"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // A bucket that is not there is named, with what to do.
    let out = site
        .env
        .lb()
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .args(["--repo", "s3://no-such-bucket/x", "snapshots"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the bucket no-such-bucket does not exist"),
        "{err}"
    );
    assert!(err.contains("hint: create the bucket first"), "{err}");
    assert!(
        !err.contains("lifeboat init") && !err.contains("not a Lifeboat"),
        "{err}"
    );
}

#[test]
fn a_provider_blip_of_5xx_is_ridden_out_within_the_deadline() {
    let server = S3Server::start();
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    let proxy = FaultProxy::start(server.port, Faults::DownFor(Duration::from_secs(3)));
    site.offsite_at(&server, &proxy.endpoint(), "deadline = \"30s\"\n");
    let out = site.backup_direct();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(proxy.faults() >= 3, "answered 503 {} times", proxy.faults());
    site.offsite_at(&server, &server.endpoint(), "");
    site.verify_read_data("offsite");
}

#[test]
fn an_access_key_id_echoed_by_the_server_reaches_no_output_or_log() {
    let server = S3Server::start();
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    let proxy = FaultProxy::start(server.port, Faults::EchoKeyId);
    site.offsite_at(&server, &proxy.endpoint(), "");
    let started = Instant::now();
    let out = site.backup_direct();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(proxy.faults() > 0);
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    // An access problem, said as one, and not retried.
    assert!(err.contains("bucket policy"), "{err}");
    assert!(!err.contains("network"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    for text in [&out.stderr, &out.stdout] {
        assert!(
            !String::from_utf8_lossy(text).contains(S3_KEY_ID),
            "the access key id leaked: {}",
            String::from_utf8_lossy(text)
        );
    }
    // The JSON log, the records and everything else the run left behind;
    // the config names the key only by `env:`.
    nothing_under_holds(site.env.dir.path(), S3_KEY_ID);
}

#[test]
fn a_stalled_download_is_cut_off_by_the_progress_timeout_and_retried() {
    let server = S3Server::start();
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    site.backup();
    site.copy();
    let proxy = FaultProxy::start(server.port, Faults::StallDownloadOnce);
    site.offsite_at(&server, &proxy.endpoint(), "progress_timeout = \"2s\"\n");
    let started = Instant::now();
    let out = site.restore_from("offsite", "restored");
    let took = started.elapsed();
    eprintln!("restore through one stalled download: {took:?}");
    assert_eq!(proxy.faults(), 1, "one download stalled");
    assert!(took < Duration::from_secs(60), "the restore took {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "it waited out the stall: {took:?}"
    );
    assert_same_tree(&site.data, &out);
}

#[test]
fn a_download_damaged_in_transit_is_fetched_again_not_called_damage() {
    let server = S3Server::start();
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    site.backup();
    site.copy();
    let proxy = FaultProxy::start(server.port, Faults::FlipDownloads(1));
    site.offsite_at(&server, &proxy.endpoint(), "");
    let out = site.restore_from("offsite", "restored");
    assert_eq!(proxy.faults(), 1);
    assert_same_tree(&site.data, &out);
    // The same fault under verify: no damage reported or recorded.
    let proxy = FaultProxy::start(server.port, Faults::FlipDownloads(1));
    site.offsite_at(&server, &proxy.endpoint(), "");
    site.verify_read_data("offsite");
    assert_eq!(proxy.faults(), 1);
    assert_eq!(count_under(&server.objects("offsite/damage")), 0);
    // Said in the log, as what it was.
    let mut logged = String::new();
    for e in fs::read_dir(site.env.path("state/logs"))
        .into_iter()
        .flatten()
    {
        logged.push_str(&fs::read_to_string(e.unwrap().path()).unwrap_or_default());
    }
    assert!(
        logged.contains("damaged in transit and fetched again"),
        "{logged}"
    );
}

#[test]
fn an_upload_damaged_on_the_way_is_refused_by_the_server_and_sent_again() {
    let server = S3Server::start();
    let site = Site::new(
        &server,
        Offsite {
            endpoint: &server.endpoint(),
            extra: "",
        },
    );
    let proxy = FaultProxy::start(server.port, Faults::FlipUploads(1));
    site.offsite_at(&server, &proxy.endpoint(), "");
    let out = site.backup_direct();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(proxy.faults(), 1, "one pack went up damaged");
    site.offsite_at(&server, &server.endpoint(), "");
    site.verify_read_data("offsite");
    let t = site.env.path("t");
    site.lb()
        .args(["restore", "--repo", "offsite", "direct:latest", "--target"])
        .arg(&t)
        .assert()
        .success();
    assert_same_tree(&site.data, &restored(&t, &site.data));
}
