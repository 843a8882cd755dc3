//! Malformed input through the real binary: configs that are not UTF-8,
//! runbooks with problems reported at their own line, damaged repository
//! configs and other tools' repositories, each with a message that says
//! what is wrong and where.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// A config with one service and a repository in the test's directory.
fn config_text(env: &Env) -> String {
    format!(
        "state_dir = \"{state}\"\ncache_dir = \"{cache}\"\n[repositories.local]\npath = \"{repo}\"\nkey_file = \"{key}\"\n[services.app]\ntier = \"important\"\nsources = [{{ kind = \"files\", paths = [\"{data}\"] }}]\n",
        state = env.path("state").display(),
        cache = env.path("cache").display(),
        repo = env.path("repo").display(),
        key = env.path("admin.key").display(),
        data = env.path("data").display(),
    )
}

fn stderr_of(c: &mut assert_cmd::Command) -> String {
    let out = c.output().unwrap();
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_config_that_is_not_utf8_names_the_line_and_column_of_the_bad_byte() {
    let env = Env::new();
    let cfg = env.path("lifeboat.toml");
    // A Latin-1 "é" in a comment on line 2, after "# café " (7
    // characters, one of them two bytes of UTF-8): column 8.
    let mut bytes = config_text(&env).into_bytes();
    let mut head = b"# ok\n# caf\xc3\xa9 \xe9t\xe9\n".to_vec();
    head.append(&mut bytes);
    fs::write(&cfg, &head).unwrap();
    let want = format!("{}:2:8: byte 0xe9 is not UTF-8", cfg.display());
    let err = stderr_of(env.lb().arg("--config").arg(&cfg).arg("health"));
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("hint:"), "{err}");
    let out = env
        .lb()
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("2:8: byte 0xe9 is not UTF-8"), "{all}");

    // A byte order mark is not counted as a column.
    let mut bom = b"\xef\xbb\xbfstate_dir = \"\xff\"\n".to_vec();
    bom.extend_from_slice(config_text(&env).as_bytes());
    fs::write(&cfg, &bom).unwrap();
    let err = stderr_of(env.lb().arg("--config").arg(&cfg).arg("health"));
    assert!(
        err.contains(&format!("{}:1:14: byte 0xff", cfg.display())),
        "{err}"
    );
}

/// `runbook check` of a directory holding one runbook; its output.
fn runbook_check(env: &Env, text: &[u8]) -> (bool, String, PathBuf) {
    let cfg = env.path("lifeboat.toml");
    fs::write(&cfg, config_text(env)).unwrap();
    let dir = env.path("rb");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("r.md");
    fs::write(&file, text).unwrap();
    let out = env
        .lb()
        .arg("--config")
        .arg(&cfg)
        .args(["runbook", "check", "--runbooks"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, file)
}

const RUNBOOK: &str = "+++\nid = \"mine\"\ntitle = \"Mine\"\napplies_to = { kinds = [\"files\"] }\n[[inputs]]\nname = \"path\"\nprompt = \"Which path?\"\n+++\n\n## Restore\n\n```lifeboat\nrestore path={{input.path}}\n```\n";

#[test]
fn a_good_runbook_passes_with_or_without_a_byte_order_mark() {
    let env = Env::new();
    let (ok, out, _) = runbook_check(&env, RUNBOOK.as_bytes());
    assert!(ok, "{out}");
    let (ok, out, _) = runbook_check(&env, format!("\u{feff}{RUNBOOK}").as_bytes());
    assert!(ok, "a BOM must be accepted as configs accept it: {out}");
}

#[test]
fn a_duplicate_input_is_rejected_at_its_line() {
    let env = Env::new();
    let text = RUNBOOK.replace(
        "prompt = \"Which path?\"\n",
        "prompt = \"Which path?\"\n[[inputs]]\nname = \"path\"\nprompt = \"Again?\"\n",
    );
    let (ok, out, file) = runbook_check(&env, text.as_bytes());
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "{}:9: front matter: input `path` is already defined on line 6",
            file.display()
        )),
        "{out}"
    );
}

#[test]
fn an_unclosed_final_code_fence_is_rejected_at_its_line() {
    let env = Env::new();
    let text = format!("{RUNBOOK}\n## Clean up\n\n```sh\nrm -rf /tmp/scratch\n");
    let (ok, out, file) = runbook_check(&env, text.as_bytes());
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "{}:18: this code block is never closed",
            file.display()
        )),
        "{out}"
    );
}

#[test]
fn front_matter_problems_are_reported_at_their_own_line() {
    let env = Env::new();
    let text = RUNBOOK.replace("id = \"mine\"", "# the runbook's id\nid = \"mi ne\"").replace(
        "applies_to = { kinds = [\"files\"] }",
        "scope = \"galaxy\"\n[applies_to]\nkinds = [\"files\",\n  \"floppy\"]\nservices = [\"nope\"]",
    );
    let (ok, out, file) = runbook_check(&env, text.as_bytes());
    assert!(!ok, "{out}");
    let f = file.display();
    for want in [
        format!("{f}:3: front matter: id `mi ne`"),
        format!("{f}:5: front matter: unknown scope `galaxy`"),
        format!("{f}:8: unknown source kind `floppy`"),
        format!("{f}:9: applies to service `nope`"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
}

/// A directory laid out as restic lays out a repository (restic itself is
/// not installed on test machines): an encrypted `config` and JSON key
/// files with a `kdf`.
fn fake_restic(dir: &Path) {
    for d in ["data/00", "index", "snapshots", "locks", "keys"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::write(dir.join("config"), bytes(3, 155)).unwrap();
    fs::write(
        dir.join("keys").join("8f1c6e4cb4a38d7a6a0ef2ae84c5b3d1f2e7a9c0b4d5e6f708192a3b4c5d6e7f"),
        r#"{"created":"2024-05-01T03:00:00.000000000Z","username":"root","hostname":"nas","kdf":"scrypt","N":32768,"r":8,"p":5,"salt":"c2FsdA==","data":"ZGF0YQ=="}"#,
    )
    .unwrap();
}

#[test]
fn a_restic_repository_is_named_as_one_for_open_and_init() {
    let env = Env::new();
    let dir = env.path("restic-repo");
    fake_restic(&dir);
    let err = stderr_of(env.lb().args(["snapshots", "--repo"]).arg(&dir));
    assert!(
        err.contains("is a restic repository, not a Lifeboat one"),
        "{err}"
    );
    assert!(!err.contains("damaged"), "{err}");
    let err = stderr_of(env.lb().args(["init", "--repo"]).arg(&dir));
    assert!(
        err.contains("is a restic repository, not a Lifeboat one"),
        "{err}"
    );
    assert!(!err.contains("already holds"), "{err}");
    assert!(!env.path("keys").exists(), "init wrote a key for nothing");

    // A Lifeboat repository whose config is damaged is still called that.
    let repo = env.path("repo");
    env.init(&repo);
    fs::write(repo.join("config"), b"{\"format\": \"lifeboat-repo").unwrap();
    let err = stderr_of(env.lbk().args(["snapshots", "--repo"]).arg(&repo));
    assert!(
        err.contains("config") && err.contains("is damaged"),
        "{err}"
    );
    assert!(!err.contains("restic"), "{err}");
}

#[test]
fn a_damaged_recipient_in_the_repository_config_is_named() {
    let env = Env::new();
    let repo = env.path("repo");
    env.init(&repo);
    let text = fs::read_to_string(repo.join("config")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let r = v["meta_recipient"].as_str().unwrap();
    // One character changed: the Bech32 checksum no longer matches.
    let flipped: String = r
        .char_indices()
        .map(|(i, c)| {
            if i == 20 {
                if c == 'q' {
                    'p'
                } else {
                    'q'
                }
            } else {
                c
            }
        })
        .collect();
    fs::write(repo.join("config"), text.replace(r, &flipped)).unwrap();
    let err = stderr_of(env.lbk().args(["snapshots", "--repo"]).arg(&repo));
    assert!(
        err.contains(&format!("{}/config is damaged", repo.display()))
            && err.contains("`meta_recipient`")
            && err.contains("age1…"),
        "{err}"
    );
}
