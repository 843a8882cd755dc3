//! The start of a restore from object storage: opening the repository and
//! reading its index and the restore point's file list, in as few round
//! trips as possible (each one is a link's latency), with the index files
//! read side by side and damage still named. Counted from the storage
//! request log (`LIFEBOAT_LOG=lifeboat::repo::s3=debug`) against s3s-fs.

mod common;

use common::*;
use std::fs;

const PREFIX: &str = "start/repo";

struct Bucket {
    server: S3Server,
    env: Env,
}

impl Bucket {
    fn lb(&self) -> assert_cmd::Command {
        let mut c = self.env.lb();
        c.env("AWS_ENDPOINT_URL", self.server.endpoint())
            .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("LIFEBOAT_KEY", self.env.path("k.key"))
            .args(["--repo", &format!("s3://{S3_BUCKET}/{PREFIX}")]);
        c
    }

    /// Restores `query` into `target` with the request log on; returns
    /// whether it succeeded, stderr, and the requests (what each did).
    fn restore(&self, query: &str, target: &str) -> (bool, String, Vec<String>) {
        let out = self
            .lb()
            .env("LIFEBOAT_LOG", "lifeboat::repo::s3=debug")
            .args(["restore", query, "--target"])
            .arg(self.env.path(target))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let requests = err
            .lines()
            .filter(|l| l.contains("storage request"))
            .filter_map(|l| l.split('"').nth(1).map(str::to_string))
            .collect();
        (out.status.success(), err, requests)
    }
}

fn count(requests: &[String], what: &str) -> usize {
    requests.iter().filter(|r| r.starts_with(what)).count()
}

#[test]
fn a_restore_opens_and_reads_its_metadata_in_few_requests_and_names_a_damaged_index_file() {
    let b = Bucket {
        server: S3Server::start(),
        env: Env::new(),
    };
    let data = b.env.path("data");
    fs::create_dir_all(data.join("d")).unwrap();
    b.lb()
        .args(["init", "--key-file"])
        .arg(b.env.path("k.key"))
        .assert()
        .success();
    // Three backups: three index files, the last restore point's data
    // spread over all of them.
    for i in 0..3u64 {
        fs::write(data.join(format!("d/f{i}")), bytes(i + 1, 600_000)).unwrap();
        fs::write(data.join(format!("small{i}")), bytes(i + 10, 3_000)).unwrap();
        b.lb()
            .args(["backup", "--name", "svc"])
            .arg(&data)
            .assert()
            .success();
    }
    let index_dir = b.server.objects(&format!("{PREFIX}/index"));
    let mut index_files: Vec<String> = fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    index_files.sort();
    assert_eq!(index_files.len(), 3, "{index_files:?}");

    let (ok, err, requests) = b.restore("svc:latest", "t1");
    assert!(ok, "{err}");
    assert_same_tree(&data, &restored(&b.env.path("t1"), &data));
    let at = |verb: &str, dir: &str| format!("{verb} {PREFIX}/{dir}");
    // The config in one GET, the key object by its name beside it: no
    // HEAD of the config, no listing of keys/.
    assert_eq!(
        count(&requests, &format!("reading {PREFIX}/config")),
        1,
        "{requests:#?}"
    );
    assert_eq!(count(&requests, &format!("looking for {PREFIX}/config")), 0);
    assert_eq!(count(&requests, &at("listing", "keys")), 0, "{requests:#?}");
    assert_eq!(count(&requests, &at("reading", "keys")), 1);
    // Every index file read once.
    assert_eq!(count(&requests, &at("listing", "index")), 1);
    assert_eq!(count(&requests, &at("reading", "index")), 3);
    // The file list: its pack read ahead in one request, not opened (a
    // HEAD) and read range by range.
    assert_eq!(count(&requests, &at("opening", "data")), 0, "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&at("reading", "data")) && r.ends_with(" ahead")),
        "{requests:#?}"
    );

    // One index file damaged (same length, other bytes): the restore names
    // it, whatever else it can or cannot do without the chunks it lists.
    let victim = &index_files[1];
    let path = index_dir.join(victim);
    let len = fs::metadata(&path).unwrap().len() as usize;
    fs::write(&path, bytes(99, len)).unwrap();
    let (_, err, requests) = b.restore("svc:latest", "t2");
    assert!(
        err.contains(&format!("index file {victim} is damaged")),
        "{err}"
    );
    for other in index_files.iter().filter(|n| *n != victim) {
        assert!(!err.contains(&format!("index file {other}")), "{err}");
    }
    assert_eq!(count(&requests, &at("listing", "index")), 1);
}
