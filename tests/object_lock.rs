//! S3 Object Lock against a server that enforces it (moto's server mode,
//! tests/common/moto.rs): uploads carry locks, an attacker holding the S3
//! credentials cannot destroy what is locked, `locks recover` brings it
//! back, forget/prune wait for locks to run out, verify flags an object
//! stored without a lock, init refuses a bucket without Object Lock.

mod common;
#[path = "common/moto.rs"]
mod moto;

use common::*;
use moto::Moto;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

struct Site {
    env: Env,
    data: PathBuf,
    config: PathBuf,
}

impl Site {
    fn new(moto: &Moto, bucket: &str, lock: &str, retention: &str) -> Site {
        let env = Env::new();
        let data = env.path("srv");
        fs::create_dir_all(data.join("app")).unwrap();
        fs::write(data.join("app/db.sqlite"), bytes(1, 1_500_000)).unwrap();
        fs::write(data.join("app/.env"), b"TOKEN=abc\n").unwrap();
        let config = env.path("lifeboat.toml");
        let key = env.path("admin.key");
        fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n{}\n[services.files]\ntier = \"critical\"\nrepository = \"vault\"\nretention = {retention}\nsources = [{{ kind = \"files\", paths = [\"{}\"] }}]\n",
                env.path("state").display(),
                moto.repo_section("vault", bucket, &key, lock),
                data.display()
            ),
        )
        .unwrap();
        Site { env, data, config }
    }

    fn lb(&self) -> assert_cmd::Command {
        let mut c = self.env.lb();
        c.env("LIFEBOAT_CONFIG", &self.config);
        c
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.lb().arg("--json").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "lifeboat {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "lifeboat {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn snapshot_ids(&self) -> Vec<String> {
        let v = self.json(&["snapshots"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn restore(&self, id: &str, target: &str) -> PathBuf {
        let t = self.env.path(target);
        self.lb()
            .args(["restore", id, "--target"])
            .arg(&t)
            .assert()
            .success();
        restored(&t, &self.data)
    }
}

fn lock(days: f64, mode: &str) -> String {
    format!("object_lock = {{ mode = \"{mode}\", days = {days} }}")
}

/// Every lockable object's current version carries mode and retain-until.
const LOCK_REPORT: &str = "
out = {}
for o in s3.list_objects_v2(Bucket=bucket, Prefix='repo/').get('Contents', []):
    k = o['Key']
    if k.startswith('repo/locks/'):
        continue
    r = s3.head_object(Bucket=bucket, Key=k)
    u = r.get('ObjectLockRetainUntilDate')
    out[k] = [r.get('ObjectLockMode'), u.strftime('%Y-%m-%dT%H:%M:%SZ') if u else None]
print(json.dumps(out))
";

#[test]
fn an_attacker_with_delete_rights_cannot_destroy_locked_backups() {
    let moto = Moto::start();
    moto.bucket("vault", true);
    let site = Site::new(&moto, "vault", &lock(2.0, "compliance"), "{ last = 5 }");
    site.lb().arg("init").assert().success();
    // The backed-up host holds a write-only key.
    let wo = site.env.path("host.key");
    site.lb()
        .args(["keys", "write-only", "--out"])
        .arg(&wo)
        .assert()
        .success();
    let backup = |site: &Site| {
        site.lb()
            .env("LIFEBOAT_KEY", &wo)
            .args(["backup", "files"])
            .assert()
            .success();
    };
    backup(&site);
    let first = site.env.path("first");
    copy_tree(&site.data, &first);
    fs::write(site.data.join("app/db.sqlite"), bytes(2, 1_500_000)).unwrap();
    backup(&site);
    let ids = site.snapshot_ids();
    assert_eq!(ids.len(), 2);

    // Every object Lifeboat stored is locked for the configured 2 days
    // plus margin: between 2 and 2.3 days from now.
    let locks: serde_json::Value = serde_json::from_str(&moto.py("vault", LOCK_REPORT)).unwrap();
    let locks = locks.as_object().unwrap();
    assert!(locks.len() >= 8, "{locks:?}");
    let now = SystemTime::now();
    for (k, v) in locks {
        assert_eq!(v[0], "COMPLIANCE", "{k}: {v}");
        let until =
            humantime::parse_rfc3339_weak(v[1].as_str().unwrap().trim_end_matches("+00:00"))
                .unwrap();
        let left = until.duration_since(now).unwrap().as_secs_f64() / 86_400.0;
        assert!((1.99..2.31).contains(&left), "{k}: locked for {left} days");
    }

    // The attack, with the repository's own S3 credentials: overwrite every
    // object, delete every one, and try to delete every version (bypassing
    // governance too). Every locked version is refused.
    let out = moto.py(
        "vault",
        "
keys = [o['Key'] for o in s3.list_objects_v2(Bucket=bucket, Prefix='repo/').get('Contents', [])]
for k in keys:
    s3.put_object(Bucket=bucket, Key=k, Body=b'encrypted by ransomware')
refused = 0
for k in keys:
    s3.delete_object(Bucket=bucket, Key=k)
for v in s3.list_object_versions(Bucket=bucket, Prefix='repo/').get('Versions', []):
    try:
        s3.delete_object(Bucket=bucket, Key=v['Key'], VersionId=v['VersionId'], BypassGovernanceRetention=True)
    except Exception:
        refused += 1
left = s3.list_objects_v2(Bucket=bucket, Prefix='repo/').get('KeyCount', 0)
print(json.dumps({'keys': len(keys), 'refused': refused, 'left': left}))
",
    );
    let attack: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(attack["left"], 0, "{attack}");
    // Only the originals are locked (the attacker's overwrites are not).
    assert!(
        attack["refused"].as_u64().unwrap() >= locks.len() as u64,
        "{attack}"
    );
    // As far as the current objects go, the repository is gone.
    site.lb().arg("snapshots").assert().failure();

    // The admin's way back.
    let out = site.json(&["locks", "recover"]);
    assert_eq!(
        out["recovered"]["undeleted"].as_array().unwrap().len(),
        locks.len(),
        "{out}"
    );
    assert_eq!(site.snapshot_ids().len(), 2);
    let v = site.json(&["verify", "--read-data"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    // Oldest first, as `snapshots` lists them.
    assert_same_tree(&first, &site.restore(&ids[0], "old"));
    assert_same_tree(&site.data, &site.restore(&ids[1], "new"));
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `t` has passed (a lock running out is a time, not an event
/// anything signals), with a deadline.
fn wait_until(t: SystemTime) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while SystemTime::now() <= t {
        assert!(Instant::now() < deadline, "waited too long for {t:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn forget_and_prune_wait_for_locks_to_run_out() {
    let moto = Moto::start();
    moto.bucket("vault", true);
    // 10 seconds per lock (a fraction of a day), plus its 1 s margin.
    let site = Site::new(
        &moto,
        "vault",
        &lock(10.0 / 86_400.0, "governance"),
        "{ last = 1 }",
    );
    site.lb().arg("init").assert().success();
    site.lb().args(["backup", "files"]).assert().success();
    fs::write(site.data.join("app/db.sqlite"), bytes(3, 1_500_000)).unwrap();
    site.lb().args(["backup", "files"]).assert().success();
    let ids = site.snapshot_ids();
    // Oldest first, as `snapshots` lists them.
    let (oldest, newest) = (ids[0].clone(), ids[1].clone());
    let versions = || -> u64 {
        moto.py(
            "vault",
            "print(len([v for v in s3.list_object_versions(Bucket=bucket, Prefix='repo/').get('Versions', []) if not v['Key'].startswith('repo/locks/')]))",
        )
        .trim()
        .parse()
        .unwrap()
    };
    let before = versions();

    // The policy lets the oldest go, but it is locked: it stays, listed
    // with its date, and prune frees nothing.
    let out = site
        .lb()
        .args(["forget", "files", "--prune"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("locked until"), "{text}");
    assert_eq!(site.snapshot_ids().len(), 2, "{text}");
    // Nothing locked was deleted (prune adds a new index version).
    assert!(versions() >= before, "{text}");

    // Keep what the kept restore point needs locked for longer.
    let ext = site.json(&["locks", "extend"]);
    assert_eq!(ext["restore_points"], 1, "{ext}");
    assert_eq!(ext["left_to_expire"], 1, "{ext}");
    let st = site.json(&["locks", "status"]);
    assert!(st["locked_bytes"].as_u64().unwrap() > 1_000_000, "{st}");
    assert!(st["all_free"].as_str().is_some(), "{st}");
    let until = text
        .split("locked until ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .unwrap_or_else(|| panic!("no date in {text}"));

    // Once the oldest's lock has run out, forget drops it and prune
    // reclaims what only it needed, while the kept one stays locked.
    wait_until(until + Duration::from_secs(1));
    let out = site
        .lb()
        .args(["forget", "files", "--prune"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(site.snapshot_ids(), vec![newest.clone()], "{text}");
    let gone = moto.py(
        "vault",
        &format!(
            "print(len([v for v in s3.list_object_versions(Bucket=bucket, Prefix='repo/snapshots/{oldest}').get('Versions', [])]))"
        ),
    );
    assert_eq!(
        gone.trim(),
        "0",
        "the forgotten restore point's versions are deleted: {text}"
    );
    assert!(versions() < before, "{text}");
    // As the schedule does after each prune and backup.
    site.json(&["locks", "extend"]);
    let v = site.json(&["verify", "--read-data"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    assert_same_tree(&site.data, &site.restore(&newest, "kept"));
}

#[test]
fn init_refuses_a_bucket_without_object_lock_and_verify_flags_an_unlocked_object() {
    let moto = Moto::start();
    moto.bucket("plain", false);
    let site = Site::new(&moto, "plain", &lock(1.0, "governance"), "{ last = 3 }");
    let out = site.lb().arg("init").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("neither versioning nor Object Lock"), "{err}");
    assert!(
        err.contains("create a new bucket with Object Lock"),
        "{err}"
    );

    moto.bucket("vault", true);
    let site = Site::new(&moto, "vault", &lock(1.0, "governance"), "{ last = 3 }");
    site.lb().arg("init").assert().success();
    site.lb().args(["backup", "files"]).assert().success();
    let v = site.json(&["verify"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");

    // Someone stores a pack straight through the S3 API, with no lock.
    moto.py(
        "vault",
        "
k = [o['Key'] for o in s3.list_objects_v2(Bucket=bucket, Prefix='repo/data/')['Contents']][0]
body = s3.get_object(Bucket=bucket, Key=k)['Body'].read()
s3.put_object(Bucket=bucket, Key='repo/data/ff/' + 'f' * 64, Body=body)
",
    );
    let out = site.lb().args(["verify", "--json"]).output().unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert_eq!(
        problems[0]["object"],
        format!("data/{}", "f".repeat(64)),
        "{v}"
    );
    assert!(
        problems[0]["problem"]
            .as_str()
            .unwrap()
            .contains("no Object Lock"),
        "{v}"
    );
    let out = site
        .lb()
        .args(["locks", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["never_locked"].as_array().unwrap().len(), 1, "{st}");
}
