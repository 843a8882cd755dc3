//! Several writers at once, and locks as leases: stale ones go by
//! themselves, jobs wait for live ones, a read-only repository is read
//! without one.

mod common;

use common::*;
use lifeboat::repo::lock::{Lock, LockInfo, LockOptions, Mode};
use lifeboat::repo::{Backend, Kind, LocalBackend};
use predicates::prelude::*;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[test]
fn two_backups_into_one_repository_at_once_both_succeed() {
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let (a, b) = (env.path("a"), env.path("b"));
    for (dir, seed) in [(&a, 1u64), (&b, 2u64)] {
        fs::create_dir_all(dir).unwrap();
        for i in 0..10 {
            fs::write(dir.join(format!("f{i}")), bytes(seed * 100 + i, 1_500_000)).unwrap();
        }
        // Shared content across both: dedup must not confuse the writers.
        fs::write(dir.join("common"), bytes(999, 2_000_000)).unwrap();
    }
    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    let spawn = |name: &str, dir: &std::path::Path| {
        std::process::Command::new(&bin)
            .args(["backup", "--quiet", "--name", name, "--repo"])
            .arg(&repo)
            .arg(dir)
            .env("LIFEBOAT_KEY", &key)
            .env("LIFEBOAT_CACHE_DIR", env.path(&format!("cache-{name}")))
            .spawn()
            .unwrap()
    };
    let (mut pa, mut pb) = (spawn("a", &a), spawn("b", &b));
    assert!(pa.wait().unwrap().success());
    assert!(pb.wait().unwrap().success());
    env.lb()
        .args(["verify", "--read-data", "--repo"])
        .arg(&repo)
        .env("LIFEBOAT_KEY", &key)
        .assert()
        .success();
    for (name, dir) in [("a", &a), ("b", &b)] {
        let out = env.path(&format!("out-{name}"));
        env.lb()
            .args(["restore", &format!("{name}:latest"), "--target"])
            .arg(&out)
            .arg("--repo")
            .arg(&repo)
            .env("LIFEBOAT_KEY", &key)
            .assert()
            .success();
        assert_same_tree(dir, &restored(&out, dir));
    }
}

/// A repository with one small backup in it, and data to back up.
struct Site {
    env: Env,
    repo: PathBuf,
    data: PathBuf,
}

impl Site {
    fn new() -> Site {
        let env = Env::new();
        let repo = env.path("repo");
        env.init(&repo);
        let data = env.path("data");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("f"), bytes(5, 300_000)).unwrap();
        fs::write(data.join("g"), b"small\n").unwrap();
        Site { env, repo, data }
    }

    fn backup(&self) -> assert_cmd::Command {
        let mut c = self.env.lbk();
        c.args(["backup", "--name", "files", "--repo"])
            .arg(&self.repo)
            .arg(&self.data);
        c
    }

    fn put_lock(&self, name: &str, raw: &[u8]) {
        LocalBackend::new(&self.repo)
            .put(Kind::Locks, name, raw)
            .unwrap();
    }

    fn remove_lock(&self, name: &str) {
        LocalBackend::new(&self.repo)
            .remove(Kind::Locks, name)
            .unwrap();
    }

    fn locks(&self) -> Vec<String> {
        LocalBackend::new(&self.repo)
            .list(Kind::Locks)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    fn hold(&self, mode: Mode, operation: &str) -> Lock {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&self.repo));
        let opts = LockOptions {
            wait: Duration::ZERO,
            ..Default::default()
        };
        Lock::take(backend, mode, operation, &opts, &|_| {}).unwrap()
    }
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("these tests need /proc/sys/kernel/random/boot_id")
        .trim()
        .to_string()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A lock as a prune on `host` would have written it.
fn prune_lock(host: &str, pid: u32, start_time: Option<u64>, refreshed: SystemTime) -> LockInfo {
    // Machine id and pid namespace are this process's, as for a prune
    // run beside the tests.
    LockInfo {
        host: host.into(),
        pid,
        boot_id: Some(boot_id()),
        start_time,
        created: rfc3339(refreshed),
        refreshed: rfc3339(refreshed),
        ..LockInfo::ours(Mode::Exclusive, "prune")
    }
}

fn dead_pid() -> u32 {
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    pid
}

/// Field 22 of /proc/self/stat, as the lock records it.
fn own_start_time() -> u64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn a_stale_lock_of_a_dead_process_is_removed_and_the_backup_succeeds() {
    let site = Site::new();
    let pid = dead_pid();
    let lock = prune_lock(
        &lifeboat::paths::hostname(),
        pid,
        Some(1),
        SystemTime::now(),
    );
    site.put_lock("deadbeef", &serde_json::to_vec(&lock).unwrap());
    site.backup().assert().success().stderr(
        predicate::str::contains(format!(
            "warning: removed a stale repository lock held by pid {pid}"
        ))
        .and(predicate::str::contains(format!(
            "process {pid} is no longer running"
        ))),
    );
    assert!(site.locks().is_empty(), "left: {:?}", site.locks());
    // So does a lock from before this host last booted.
    let mut old_boot = prune_lock(&lifeboat::paths::hostname(), 1, Some(1), SystemTime::now());
    old_boot.boot_id = Some("00000000-0000-0000-0000-000000000000".into());
    site.put_lock("0bb00700", &serde_json::to_vec(&old_boot).unwrap());
    site.backup()
        .assert()
        .success()
        .stderr(predicate::str::contains("this host has restarted"));
    assert!(site.locks().is_empty());
}

#[test]
fn a_lock_whose_pid_now_belongs_to_another_process_is_stale() {
    let site = Site::new();
    // This test's own pid is alive, but it started at another time than
    // the lock says: the pid was reused.
    let me = std::process::id();
    let reused = prune_lock(
        &lifeboat::paths::hostname(),
        me,
        Some(own_start_time() + 1),
        SystemTime::now(),
    );
    site.put_lock("5eed5eed", &serde_json::to_vec(&reused).unwrap());
    site.backup().assert().success().stderr(
        predicate::str::contains(format!("held by pid {me}"))
            .and(predicate::str::contains("is another program now")),
    );
    assert!(site.locks().is_empty());
}

#[test]
fn a_damaged_lock_is_removed_with_a_warning_and_unlock_all_succeeds() {
    let site = Site::new();
    site.put_lock("badbad01", b"{\"host\": \"nas-01\", \"pid\": ");
    site.env
        .lb()
        .args(["unlock", "--all", "--repo"])
        .arg(&site.repo)
        .assert()
        .success()
        .stdout(predicate::str::contains("removed damaged lock badbad01"));
    assert!(site.locks().is_empty());
    // A job meeting one removes it itself, and says so.
    site.put_lock("badbad02", b"\x00\x01 not json");
    site.backup()
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: removed a damaged repository lock badbad02",
        ));
    assert!(site.locks().is_empty());
    // JSON that names no holder is not a lock either.
    site.put_lock("badbad03", br#"{"operation":"prune","mode":"exclusive"}"#);
    site.backup()
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "removed a damaged repository lock badbad03",
        ));
    assert!(site.locks().is_empty());
}

/// A lock as the first Lifeboat wrote it: one `time`, `exclusive`, no
/// refreshes.
fn first_format_lock(pid: u32, time: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "host": lifeboat::paths::hostname(),
        "pid": pid,
        "time": rfc3339(time),
        "exclusive": true,
        "operation": "prune",
    }))
    .unwrap()
}

#[test]
fn locks_of_older_and_newer_lifeboats_are_judged_by_their_lease_not_removed() {
    let site = Site::new();
    let me = std::process::id();
    site.put_lock("01d01d01", &first_format_lock(me, SystemTime::now()));
    site.backup()
        .args(["--retry-lock", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "the repository is locked: an exclusive lock for prune held by pid {me}"
        )));
    assert_eq!(site.locks(), ["01d01d01"], "a live old lock stays");
    site.remove_lock("01d01d01");

    let lapsed = SystemTime::now() - lifeboat::repo::lock::LEASE - Duration::from_secs(60);
    site.put_lock("01d01d02", &first_format_lock(me, lapsed));
    site.backup()
        .args(["--retry-lock", "0"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("removed a stale repository lock held by pid")
                .and(predicate::str::contains("lease ran out")),
        );
    assert!(site.locks().is_empty());

    // A newer Lifeboat's lock, with a field this one does not know.
    let mut newer = serde_json::to_value(prune_lock(
        &lifeboat::paths::hostname(),
        me,
        Some(own_start_time()),
        SystemTime::now(),
    ))
    .unwrap();
    newer["lease_secs"] = 600.into();
    site.put_lock("0e0e0e0e", &serde_json::to_vec(&newer).unwrap());
    site.backup()
        .args(["--retry-lock", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!("held by pid {me}")));
    assert_eq!(site.locks(), ["0e0e0e0e"]);
}

#[test]
fn a_dead_pid_on_another_machine_or_pid_namespace_with_our_host_name_is_not_stale() {
    let site = Site::new();
    let pid = dead_pid();
    // A cloned VM: same host name, its own machine id.
    let mut clone = prune_lock(
        &lifeboat::paths::hostname(),
        pid,
        Some(1),
        SystemTime::now(),
    );
    clone.machine_id = Some("0123456789abcdef0123456789abcdef".into());
    // A container with host networking: same host and boot, its own pids.
    let mut container = clone.clone();
    container.machine_id = LockInfo::ours(Mode::Read, "t").machine_id;
    container.pid_ns = Some("pid:[1]".into());
    for (name, lock) in [("c1011e00", &clone), ("c0ffee00", &container)] {
        site.put_lock(name, &serde_json::to_vec(lock).unwrap());
        site.backup()
            .args(["--retry-lock", "0"])
            .assert()
            .failure()
            .stderr(predicate::str::contains(format!("held by pid {pid}")));
        assert_eq!(site.locks(), [name], "a live lock was removed");
        site.remove_lock(name);
    }
}

#[test]
fn a_live_lock_blocks_with_retry_lock_0_and_other_hosts_locks_wait_for_their_lease() {
    let site = Site::new();
    let held = site.hold(Mode::Exclusive, "prune");
    let me = std::process::id();
    let started = Instant::now();
    site.backup()
        .args(["--retry-lock", "0"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains(format!(
                "the repository is locked: an exclusive lock for prune held by pid {me}"
            ))
            .and(predicate::str::contains(
                "hint: wait for that job to finish",
            )),
        );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no waiting with 0"
    );
    // `unlock` keeps a live lock.
    site.env
        .lb()
        .args(["unlock", "--repo"])
        .arg(&site.repo)
        .assert()
        .success()
        .stderr(predicate::str::contains("1 lock(s)").and(predicate::str::contains("were kept")));
    drop(held);
    assert!(site.locks().is_empty(), "a lock is removed when dropped");

    // Another host's lock inside its lease cannot be judged: it blocks,
    // and only `unlock --all` removes it.
    let fresh = prune_lock("nas-01", 4242, Some(7), SystemTime::now());
    site.put_lock("cafebabe", &serde_json::to_vec(&fresh).unwrap());
    site.backup()
        .args(["--retry-lock", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("held by pid 4242 on nas-01"));
    site.env
        .lb()
        .args(["unlock", "--all", "--repo"])
        .arg(&site.repo)
        .assert()
        .success();
    // Once its lease has run out it is stale anywhere.
    let lapsed = prune_lock(
        "nas-01",
        4242,
        Some(7),
        SystemTime::now() - lifeboat::repo::lock::LEASE - Duration::from_secs(60),
    );
    site.put_lock("cafef00d", &serde_json::to_vec(&lapsed).unwrap());
    site.backup()
        .args(["--retry-lock", "0"])
        .assert()
        .success()
        .stderr(predicate::str::contains("lease ran out"));

    // Shared locks do not exclude each other; exclusive ones do.
    let read = site.hold(Mode::Read, "restore");
    let write = site.hold(Mode::Write, "backup");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&site.repo));
    let now = LockOptions {
        wait: Duration::ZERO,
        ..Default::default()
    };
    assert!(Lock::take(backend.clone(), Mode::Exclusive, "prune", &now, &|_| {}).is_err());
    drop((read, write));
    assert!(Lock::take(backend, Mode::Exclusive, "prune", &now, &|_| {}).is_ok());
}

#[test]
fn a_backup_started_during_a_prune_waits_and_succeeds() {
    let site = Site::new();
    let prune = site.hold(Mode::Exclusive, "prune");
    let mut child = site
        .env
        .lb_process()
        .env("LIFEBOAT_KEY", site.env.path("admin.key"))
        .args(["backup", "--name", "files", "--repo"])
        .arg(&site.repo)
        .arg(&site.data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "the backup ended without waiting: {seen}");
        seen.push_str(&line);
        if line.contains("waiting up to") {
            break;
        }
    }
    assert!(
        seen.contains("waiting up to 30m for an exclusive lock for prune held by pid"),
        "{seen}"
    );
    // The prune finishes: the backup goes on by itself.
    drop(prune);
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(out.status.success(), "{seen}{rest}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 files"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(site.locks().is_empty());
}

#[test]
fn after_kill_9_of_a_prune_the_next_backup_succeeds_without_unlock() {
    // On object storage, behind a proxy that never answers the prune's
    // deletes: the prune is killed while it certainly holds its lock.
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port, Faults::StallDeletes);
    let env = Env::new();
    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("old"), bytes(11, 2_000_000)).unwrap();
    let url = format!("s3://{S3_BUCKET}/k9/repo");
    let lb = |endpoint: &str| {
        let mut c = env.lb_process();
        c.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("LIFEBOAT_KEY", env.path("k.key"))
            .args(["--repo", &url]);
        c
    };
    let run = |c: &mut std::process::Command| {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let direct = server.endpoint();
    run(lb(&direct)
        .args(["init", "--key-file"])
        .arg(env.path("k.key")));
    run(lb(&direct).args(["backup", "--name", "files"]).arg(&data));
    fs::remove_file(data.join("old")).unwrap();
    fs::write(data.join("new"), bytes(12, 500_000)).unwrap();
    run(lb(&direct).args(["backup", "--name", "files"]).arg(&data));
    run(lb(&direct).args(["forget", "--keep-last", "1", "files"]));

    let mut prune = lb(&proxy.endpoint())
        .arg("prune")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.faults() == 0 {
        if let Ok(Some(status)) = prune.try_wait() {
            panic!("the prune ended ({status}) before it deleted anything");
        }
        assert!(
            Instant::now() < deadline,
            "the prune never deleted anything"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let locks = server.objects("k9/repo/locks");
    let held = fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0);
    assert_eq!(held, 1, "the prune holds its lock while it deletes");
    prune.kill().unwrap();
    prune.wait().unwrap();

    // The next backup (as a timer would start it) removes the dead
    // prune's lock itself.
    fs::write(data.join("newer"), b"after the crash\n").unwrap();
    let out = run(lb(&direct).args(["backup", "--name", "files"]).arg(&data));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("removed a stale repository lock held by pid")
            && err.contains("for prune")
            && err.contains("is no longer running"),
        "{err}"
    );
    run(lb(&direct).args(["verify", "--read-data"]));
    let t = env.path("t");
    run(lb(&direct)
        .args(["restore", "files:latest", "--target"])
        .arg(&t));
    assert_same_tree(&data, &restored(&t, &data));
}

/// A read-only bind mount of a directory, undone when dropped.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(source: &Path, at: &Path) -> ReadOnlyMount {
        fs::create_dir_all(at).unwrap();
        let need =
            "this test needs to bind-mount a directory read-only (root, `mount --bind -o ro`)";
        let ok = std::process::Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(source)
            .arg(at)
            .status()
            .unwrap_or_else(|e| panic!("{need}: running mount: {e}"));
        assert!(ok.success(), "{need}: mount exited {ok}");
        let mount = ReadOnlyMount(at.to_path_buf());
        if fs::write(at.join(".probe"), b"x").is_ok() {
            // Older mounts ignore `ro` on the first bind.
            let _ = fs::remove_file(at.join(".probe"));
            let ok = std::process::Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(at)
                .status()
                .unwrap();
            assert!(ok.success(), "{need}: remount exited {ok}");
        }
        assert!(
            fs::write(at.join(".probe"), b"x").is_err(),
            "{need}: {} is still writable",
            at.display()
        );
        mount
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn restore_and_verify_with_no_lock_from_a_read_only_repository() {
    let site = Site::new();
    site.backup().assert().success();
    let ro = site.env.path("ro-repo");
    let _mount = ReadOnlyMount::new(&site.repo, &ro);

    let t = site.env.path("t");
    site.env
        .lbk()
        .args(["restore", "--no-lock", "files:latest", "--repo"])
        .arg(&ro)
        .arg("--target")
        .arg(&t)
        .assert()
        .success();
    assert_same_tree(&site.data, &restored(&t, &site.data));
    site.env
        .lbk()
        .args(["verify", "--read-data", "--no-lock", "--repo"])
        .arg(&ro)
        .assert()
        .success();
    site.env
        .lbk()
        .args(["ls", "--no-lock", "files:latest", "--repo"])
        .arg(&ro)
        .assert()
        .success();

    // Without --no-lock: said plainly, with the way out.
    for args in [
        &["verify"][..],
        &["restore", "files:latest", "--target"][..],
    ] {
        let mut c = site.env.lbk();
        c.args(args);
        if args.len() > 1 {
            c.arg(site.env.path("t2"));
        }
        c.arg("--repo").arg(&ro).assert().failure().stderr(
            predicate::str::contains(format!("the repository at {} is read-only", ro.display()))
                .and(predicate::str::contains("hint: pass --no-lock")),
        );
    }
    // A job that writes refuses --no-lock rather than running unlocked.
    site.backup()
        .arg("--no-lock")
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "--no-lock is only for operations that read",
        ));
}

#[test]
fn health_shows_other_hosts_locks_and_warns_once_their_lease_ran_out() {
    let site = Site::new();
    let config = site.env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            r#"
state_dir = "{state}"
[repositories.local]
path = "{repo}"
key_file = "{key}"

[services.files]
tier = "important"
repository = "local"
sources = [{{ kind = "files", paths = ["{data}"] }}]
"#,
            state = site.env.path("state").display(),
            repo = site.repo.display(),
            key = site.env.path("admin.key").display(),
            data = site.data.display(),
        ),
    )
    .unwrap();
    let lapsed = prune_lock(
        "nas-01",
        4242,
        None,
        SystemTime::now() - Duration::from_secs(2 * 3600),
    );
    site.put_lock("0a0a0a0a", &serde_json::to_vec(&lapsed).unwrap());
    let fresh = prune_lock("nas-02", 77, None, SystemTime::now());
    site.put_lock("0b0b0b0b", &serde_json::to_vec(&fresh).unwrap());
    let out = site
        .env
        .lb()
        .arg("--config")
        .arg(&config)
        .args(["health", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let locks = report["locks"].as_array().expect("a locks list");
    let by_host = |h: &str| {
        locks
            .iter()
            .find(|l| l["host"] == h)
            .unwrap_or_else(|| panic!("no lock of {h} in {report}"))
    };
    assert_eq!(by_host("nas-01")["state"], "warning", "{report}");
    assert!(by_host("nas-01")["age_secs"].as_u64().unwrap() >= 7200);
    assert_eq!(by_host("nas-02")["state"], "ok", "{report}");
    let alerts = report["alerts"].to_string();
    assert!(
        alerts.contains("nas-01") && alerts.contains("lease"),
        "{alerts}"
    );
    assert!(!alerts.contains("nas-02"), "{alerts}");
    // Health only looks: both locks are still there.
    assert_eq!(site.locks().len(), 2);
    // And people see them too.
    site.env
        .lb()
        .arg("--config")
        .arg(&config)
        .arg("health")
        .assert()
        .stdout(predicate::str::contains("held by pid 4242 on nas-01"));
}
