//! The local restore point cache (src/repo/snapshot_cache.rs): used when
//! the repository is unchanged, never trusted over it.

mod common;

use common::{Env, FaultProxy, Faults, S3Server, S3_BUCKET, S3_KEY_ID, S3_SECRET};
use serde_json::Value;
use std::fs;
use std::path::PathBuf;

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("a JSON list")
        .iter()
        .map(|s| s["id"].as_str().expect("an id").to_string())
        .collect();
    out.sort();
    out
}

/// A local repository with a few restore points, driven through the CLI.
struct Local {
    env: Env,
    repo: PathBuf,
}

impl Local {
    fn new(points: usize) -> Local {
        let env = Env::new();
        let repo = env.path("repo");
        env.init(&repo);
        fs::create_dir_all(env.path("data")).unwrap();
        let l = Local { env, repo };
        for i in 0..points {
            fs::write(l.env.path("data/f"), format!("version {i}")).unwrap();
            l.run(&[
                "backup",
                "--name",
                "files",
                l.env.path("data").to_str().unwrap(),
            ]);
        }
        l
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self
            .env
            .lbk()
            .arg("--repo")
            .arg(&self.repo)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lifeboat {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.run(&["--json", "snapshots"])).expect("JSON")
    }

    fn cache_file(&self) -> PathBuf {
        let config: Value =
            serde_json::from_slice(&fs::read(self.repo.join("config")).unwrap()).unwrap();
        self.env
            .path("cache")
            .join(config["id"].as_str().unwrap())
            .join("snapshots.cache")
    }

    fn objects(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.repo.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }
}

#[test]
fn second_listing_over_s3_reads_no_restore_point() {
    let server = S3Server::start();
    let proxy = FaultProxy::start(server.port, Faults::None);
    let env = Env::new();
    fs::create_dir_all(env.path("data")).unwrap();
    let url = format!("s3://{S3_BUCKET}/cache/repo");
    let lb = || {
        let mut c = env.lb();
        c.env("AWS_ENDPOINT_URL", proxy.endpoint())
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
    for i in 0..3 {
        fs::write(env.path("data/f"), format!("v{i}")).unwrap();
        lb().args(["backup", "--name", "files"])
            .arg(env.path("data"))
            .assert()
            .success();
    }
    let snapshot_gets = |from: usize| {
        proxy.request_lines()[from..]
            .iter()
            .filter(|l| l.starts_with("GET ") && l.contains("/snapshots/"))
            .filter(|l| !l.contains("list-type") && !l.contains("prefix="))
            .count()
    };
    let list = || {
        let out = lb().args(["--json", "snapshots"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let before = proxy.request_lines().len();
    let first = list();
    assert_eq!(ids(&first).len(), 3);
    assert_eq!(
        snapshot_gets(before),
        3,
        "without a cache every restore point is read once: {:?}",
        &proxy.request_lines()[before..]
    );
    let before = proxy.request_lines().len();
    let second = list();
    assert_eq!(ids(&second), ids(&first));
    assert_eq!(first, second, "the cached summaries are the same summaries");
    assert_eq!(
        snapshot_gets(before),
        0,
        "an unchanged repository is listed, not read: {:?}",
        &proxy.request_lines()[before..]
    );
    assert!(
        proxy.request_lines()[before..]
            .iter()
            .any(|l| l.contains("snapshots")),
        "the listing is still fetched fresh"
    );
}

#[test]
fn a_retagged_point_is_seen_and_a_forgotten_one_disappears() {
    let l = Local::new(3);
    let all = ids(&l.json());
    assert_eq!(all.len(), 3);
    assert!(
        l.cache_file().is_file(),
        "the first listing writes the cache"
    );

    // `tag` rewrites the object under the same name.
    l.run(&["tag", &all[1], "--add", "keep"]);
    let after = l.json();
    let tagged: Vec<&Value> = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tags"] == serde_json::json!(["keep"]))
        .collect();
    assert_eq!(tagged.len(), 1, "the new tag is seen: {after}");
    assert_eq!(tagged[0]["id"].as_str().unwrap(), all[1]);

    // A restore point removed behind the cache's back is gone at once.
    let gone = l.objects()[0].clone();
    fs::remove_file(l.repo.join("snapshots").join(&gone)).unwrap();
    let left = ids(&l.json());
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&gone));

    // And one forgotten through Lifeboat.
    l.run(&["forget", "files", "--keep-last", "1"]);
    assert_eq!(ids(&l.json()), l.objects());
    assert_eq!(l.objects().len(), 1);
}

#[test]
fn a_damaged_or_foreign_cache_is_ignored_and_rebuilt() {
    let l = Local::new(2);
    let want = l.json();
    let cache = l.cache_file();
    let good = fs::read(&cache).unwrap();

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("one byte flipped", flipped),
        ("cut short", good[..good.len() / 3].to_vec()),
        ("empty", Vec::new()),
        ("not age at all", b"{\"entries\": []}".to_vec()),
    ];
    for (what, bytes) in cases {
        fs::write(&cache, &bytes).unwrap();
        assert_eq!(
            l.json(),
            want,
            "cache {what}: the listing is the repository's"
        );
        assert_ne!(fs::read(&cache).unwrap(), bytes, "cache {what}: rebuilt");
    }

    // Another repository's cache (its own key, its own restore points)
    // under this repository's id is not believed.
    let other = Local::new(1);
    other.json();
    fs::copy(other.cache_file(), &cache).unwrap();
    assert_eq!(l.json(), want, "a foreign cache is ignored");

    // A cache that is a directory cannot be read or replaced: still no error.
    fs::remove_file(&cache).unwrap();
    fs::create_dir_all(cache.join("x")).unwrap();
    assert_eq!(l.json(), want, "an unusable cache path is not fatal");
}

#[test]
fn a_cache_sealed_to_the_recipient_without_the_mac_key_is_refused() {
    // Anyone can seal to the repository's public metadata recipient; the
    // cache must also carry a MAC only the metadata identity can make.
    let l = Local::new(1);
    let want = l.json();
    let cache = l.cache_file();
    let repo = l.env.repo(&l.repo, &l.env.path("admin.key"));
    let forged = repo
        .seal_meta(b"lifeboat-snapshot-cache-1\n0123456789abcdef0123456789abcdef")
        .unwrap();
    fs::write(&cache, &forged).unwrap();
    assert_eq!(l.json(), want);
    assert_ne!(fs::read(&cache).unwrap(), forged, "the forgery is replaced");
}

#[test]
fn the_console_reads_the_cache_the_cli_wrote() {
    // The console's first frame comes from `Cmd::LoadInventory`. Run with a
    // config whose `cache_dir` is not the environment's, the CLI and the
    // console must still meet in the same cache: the config's.
    let env = Env::new();
    let repo = env.path("repo");
    let key = env.init(&repo);
    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
    let cache_dir = env.path("config-cache");
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            "state_dir = {state:?}\ncache_dir = {cache_dir:?}\n\
             [repositories.r]\npath = {repo:?}\nkey_file = {key:?}\n\n\
             [services.files]\ntier = \"important\"\nrepository = \"r\"\n\
             sources = [{{ kind = \"files\", paths = [{data:?}] }}]\n",
            state = env.path("state"),
        ),
    )
    .unwrap();
    let lb = || {
        let mut c = env.lb();
        c.arg("--config").arg(&config);
        c
    };
    for i in 0..3 {
        fs::write(data.join("f"), format!("version {i}")).unwrap();
        lb().args(["backup", "files"]).assert().success();
    }
    let listed: Value =
        serde_json::from_slice(&lb().args(["--json", "snapshots"]).output().unwrap().stdout)
            .expect("JSON");
    let want = ids(&listed);
    assert_eq!(want.len(), 3);
    let repo_id = {
        let c: Value = serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
        c["id"].as_str().unwrap().to_string()
    };
    assert!(
        cache_dir.join(&repo_id).join("snapshots.cache").is_file(),
        "`snapshots` with a config writes the cache under the config's cache_dir"
    );
    assert!(
        !env.path("cache").join(&repo_id).exists(),
        "and not under LIFEBOAT_CACHE_DIR, which the config overrides"
    );

    let config = lifeboat::config::Config::load(&config).unwrap();
    let load = || {
        let before = lifeboat::repo::snapshot_cache::fetched();
        let msg = lifeboat::tui::execute(
            &config,
            &lifeboat::tui::cache::Cache::default(),
            &std::sync::atomic::AtomicU64::new(0),
            lifeboat::tui::app::Cmd::LoadInventory,
        );
        let Some(lifeboat::tui::app::Msg::Inventory(inv)) = msg else {
            panic!("not an inventory: {msg:?}")
        };
        let mut got: Vec<String> = inv.services[0]
            .restore_points
            .iter()
            .map(|p| p.id.clone())
            .collect();
        got.sort();
        (got, lifeboat::repo::snapshot_cache::fetched() - before)
    };
    let (got, fetched) = load();
    assert_eq!(got, want, "the console lists what `snapshots` listed");
    assert_eq!(fetched, 0, "every summary came from the CLI's cache");

    // A new restore point: the console reads that one, and only that one.
    fs::write(data.join("f"), "version 3").unwrap();
    lb().args(["backup", "files"]).assert().success();
    let (got, fetched) = load();
    assert_eq!(got.len(), 4);
    assert_eq!(fetched, 1, "only the new summary is read");
    let (_, fetched) = load();
    assert_eq!(
        fetched, 0,
        "and the console's own listing updated the cache"
    );
}
