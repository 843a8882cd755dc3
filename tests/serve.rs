//! `lifeboat serve --append-only`: a host that backs up through it cannot
//! delete or overwrite what is there — not through Lifeboat, not with
//! raw HTTP — while the admin box restores and prunes through a full
//! server or on the disk.

mod common;

use common::*;
use predicates::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// A running `lifeboat serve`, stopped when dropped.
struct Served {
    child: Child,
    url: String,
    /// Kept open: the server may say more.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Served {
    fn start(env: &Env, dir: &Path, append_only: bool) -> Served {
        let mut cmd = env.lb_process();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if append_only {
            cmd.arg("--append-only");
        }
        let mut child = cmd
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lifeboat serve");
        // The first line names the address; reading it waits for the bind.
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("`lifeboat serve` did not say where it listens: {line:?}"))
            .to_string();
        Served {
            child,
            url: format!("http://{addr}/"),
            _stdout: stdout,
        }
    }

    fn repo(&self) -> String {
        format!("rest:{}", self.url)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file of a repository and its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn names(repo: &Path, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = files(&repo.join(kind))
        .into_keys()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn write_only_key(env: &Env, repo: &str, out: &Path) {
    env.lbk()
        .args([
            "keys",
            "write-only",
            "--label",
            "web1",
            "--repo",
            repo,
            "--out",
        ])
        .arg(out)
        .assert()
        .success();
}

#[test]
fn a_write_only_host_behind_an_append_only_server_cannot_delete_or_overwrite() {
    let env = Env::new();
    let dir = env.path("nas");
    fs::create_dir_all(&dir).unwrap();
    let served = Served::start(&env, &dir, true);
    let rest = served.repo();

    // The repository is made through the append-only server: creating
    // destroys nothing.
    env.lb()
        .args(["init", "--repo", &rest, "--key-file"])
        .arg(env.path("admin.key"))
        .assert()
        .success();
    let wo = env.path("web1.key");
    write_only_key(&env, &rest, &wo);

    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"first").unwrap();
    fs::write(src.join("big"), bytes(3, 3 << 20)).unwrap();
    let backup = |key: &Path| {
        env.lb()
            .args(["backup", "--repo", &rest, "--key"])
            .arg(key)
            .arg(&src)
            .assert()
            .success();
    };
    backup(&wo);
    fs::write(src.join("a.txt"), b"second").unwrap();
    backup(&wo);
    assert_eq!(names(&dir, "snapshots").len(), 2);
    assert!(
        names(&dir, "locks").is_empty(),
        "the backups' locks were removed"
    );

    let before = files(&dir);
    // Through Lifeboat, even with the admin key: forget, prune and key
    // changes are refused with the server's reason.
    for args in [
        vec!["forget", "adhoc", "--keep-last", "1", "--prune"],
        vec!["keys", "rotate"],
    ] {
        env.lbk()
            .args(&args)
            .args(["--repo", &rest])
            .assert()
            .failure()
            .stderr(
                predicate::str::contains("403 Forbidden")
                    .or(predicate::str::contains("refused"))
                    .and(predicate::str::contains("append-only"))
                    .and(predicate::str::contains("hint:")),
            );
    }
    let list = env
        .lbk()
        .args(["keys", "list", "--json", "--repo", &rest])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    let wo_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "write-only")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.lbk()
        .args(["keys", "revoke", &wo_id, "--repo", &rest])
        .assert()
        .failure()
        .stderr(predicate::str::contains("append-only"));

    // With raw HTTP, as ransomware on the host would try.
    let http = reqwest::blocking::Client::new();
    let mut tried = 0;
    for (rel, bytes) in &before {
        let path = rel.to_str().unwrap();
        // The server's URL for an object: `data/<xx>/<id>` is `data/<id>`.
        let url_path = match path.split('/').collect::<Vec<_>>().as_slice() {
            ["data", _, name] => format!("data/{name}"),
            _ => path.to_string(),
        };
        let url = format!("{}{url_path}", served.url);
        let del = http.delete(&url).send().unwrap();
        assert_eq!(del.status(), 403, "DELETE {url_path}");
        assert!(
            del.text().unwrap().contains("append-only"),
            "DELETE {url_path}"
        );
        let mut other = bytes.clone();
        other.extend_from_slice(b"ransom");
        let put = http.post(&url).body(other).send().unwrap();
        assert_eq!(put.status(), 403, "POST {url_path}");
        assert!(put.text().unwrap().contains("is not overwritten"));
        // A retried upload of the very same bytes changes nothing: fine.
        let same = http.post(&url).body(bytes.clone()).send().unwrap();
        assert_eq!(same.status(), 200, "re-POST {url_path}");
        let got = http.get(&url).send().unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(&got.bytes().unwrap()[..], &bytes[..], "GET {url_path}");
        tried += 1;
    }
    assert!(tried > 8, "every kind of object was attacked ({tried})");
    for bad in ["../config", "data/..%2F..%2Fetc", "nothing/x", "keys/a.b"] {
        let r = http.delete(format!("{}{bad}", served.url)).send().unwrap();
        assert!(
            r.status() == 403 || r.status() == 404,
            "{bad}: {}",
            r.status()
        );
    }
    assert_eq!(files(&dir), before, "nothing in the repository changed");
    // New objects are accepted, and locks (which guard no data) come and go.
    let r = http
        .post(format!("{}locks/feedbeef", served.url))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .delete(format!("{}locks/feedbeef", served.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(files(&dir), before);
    drop(served);

    // The admin box: a full server restores and prunes.
    let full = Served::start(&env, &dir, false);
    let target = env.path("out");
    env.lbk()
        .args(["restore", "latest", "--repo", &full.repo(), "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_same_tree(&src, &restored(&target, &src));
    env.lbk()
        .args([
            "forget",
            "adhoc",
            "--keep-last",
            "1",
            "--prune",
            "--repo",
            &full.repo(),
        ])
        .assert()
        .success();
    assert_eq!(names(&dir, "snapshots").len(), 1);
    // And the disk itself is the same repository.
    env.lbk()
        .args(["verify", "--read-data", "--repo"])
        .arg(&dir)
        .assert()
        .success();
}

#[test]
fn a_revoked_write_only_key_cannot_back_up_through_the_server() {
    let env = Env::new();
    let dir = env.path("nas");
    let admin = env.init(&dir);
    let served = Served::start(&env, &dir, true);
    let wo = env.path("web1.key");
    write_only_key(&env, dir.to_str().unwrap(), &wo);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    env.lb()
        .args(["backup", "--repo", &served.repo(), "--key"])
        .arg(&wo)
        .arg(&src)
        .assert()
        .success();
    // Revoked on the disk, by the admin box.
    let id = names(&dir, "keys")
        .into_iter()
        .find(|n| {
            fs::read_to_string(dir.join("keys").join(n))
                .unwrap()
                .contains("web1")
        })
        .unwrap();
    env.lb()
        .args(["keys", "revoke", &id[..10], "--repo"])
        .arg(&dir)
        .arg("--key")
        .arg(&admin)
        .assert()
        .success()
        .stdout(predicate::str::contains("can no longer back up"));
    env.lb()
        .args(["backup", "--repo", &served.repo(), "--key"])
        .arg(&wo)
        .arg(&src)
        .assert()
        .failure()
        .stderr(predicate::str::contains("was revoked"));
}

#[test]
fn serve_listens_on_loopback_only_unless_told_and_checks_its_directory() {
    let env = Env::new();
    let dir = env.path("nas");
    fs::create_dir_all(&dir).unwrap();
    env.lb()
        .args(["serve", "--append-only", "--listen", "0.0.0.0:0"])
        .arg(&dir)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("refusing to listen on 0.0.0.0:0")
                .and(predicate::str::contains("ssh -L"))
                .and(predicate::str::contains("--allow-remote")),
        );
    env.lb()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg(env.path("missing"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("is not a directory"));
    // A client with no server says where it looked and what to start.
    let port = free_port();
    env.lb()
        .args([
            "snapshots",
            "--repo",
            &format!("rest:http://127.0.0.1:{port}/"),
        ])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains(format!("127.0.0.1:{port}"))
                .and(predicate::str::contains("lifeboat serve")),
        );
}

#[test]
fn a_configured_rest_repository_is_used_like_any_other() {
    let env = Env::new();
    let dir = env.path("nas");
    env.init(&dir);
    let served = Served::start(&env, &dir, true);
    let config = env.path("lifeboat.toml");
    fs::write(
        &config,
        format!(
            "[repositories.nas]\nurl = \"{}\"\nkey_file = \"{}\"\n",
            served.repo(),
            env.path("admin.key").display()
        ),
    )
    .unwrap();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"configured").unwrap();
    env.lb()
        .arg("--config")
        .arg(&config)
        .arg("backup")
        .arg(&src)
        .assert()
        .success();
    env.lb()
        .arg("--config")
        .arg(&config)
        .arg("snapshots")
        .assert()
        .success()
        .stdout(predicate::str::contains("adhoc"));
    // S3 settings on a REST repository are a mistake, named where it is.
    fs::write(
        &config,
        format!(
            "[repositories.nas]\nurl = \"{}\"\nendpoint = \"http://x\"\n",
            served.repo()
        ),
    )
    .unwrap();
    env.lb()
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("lifeboat.toml:3"));
}
