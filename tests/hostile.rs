//! A hostile or tampered snapshot cannot make restore write outside its
//! target: `..`, absolute paths and writes through symlinks are refused
//! before anything is written.

mod common;

use common::*;
use lifeboat::engine::{restore, RestoreOptions};
use lifeboat::progress::Reporter;
use lifeboat::repo::index::PackEntry;
use lifeboat::repo::pack::PackBuilder;
use lifeboat::repo::snapshot::Stats;
use lifeboat::repo::tree::{encode_line, Node, NodeKind};
use lifeboat::repo::{crypto, Kind, PackId, Repository, Snapshot};
use std::fs;
use std::io::Read;

fn node(path: &str, kind: NodeKind) -> Node {
    Node {
        mode: 0o644,
        ..Node::new(path, kind)
    }
}

/// Stores a hand-made tree and snapshot the way a malicious writer could.
fn craft(repo: &Repository, nodes: &[Node], file_data: &[u8]) -> Snapshot {
    craft_as(repo, nodes, file_data, "evil")
}

/// The same, for service and host `name`; the tree is cut into chunks of
/// at most 4 MiB and compressed, as a real one is, so only the tree itself
/// can be what is wrong with it.
fn craft_as(repo: &Repository, nodes: &[Node], file_data: &[u8], name: &str) -> Snapshot {
    let key = *repo.chunk_key();
    let data_id = crypto::chunk_id(&key, file_data);
    let mut nodes = nodes.to_vec();
    // Files given without chunks get `file_data`; others are taken as given.
    for n in nodes
        .iter_mut()
        .filter(|n| n.kind == NodeKind::File && n.chunks.is_empty())
    {
        n.chunks = vec![data_id];
        n.size = file_data.len() as u64;
        n.hash = Some(blake3::hash(file_data).to_hex().to_string());
    }
    let mut stream = Vec::new();
    for n in &nodes {
        encode_line(n, &mut stream).unwrap();
    }
    let mut pack = PackBuilder::new(1 << 20);
    pack.add(data_id, file_data, file_data.len() as u32, false);
    let mut tree = Vec::new();
    for piece in stream.chunks(4 << 20) {
        let id = crypto::chunk_id(&key, piece);
        if !tree.contains(&id) {
            let small = zstd::bulk::compress(piece, 1).unwrap();
            pack.add(id, &small, piece.len() as u32, true);
        }
        tree.push(id);
    }
    let (plain, entries): (Vec<u8>, Vec<PackEntry>) = pack.finish();
    let id = PackId::random();
    repo.backend()
        .put(Kind::Data, &id.hex(), &repo.seal_data(&plain).unwrap())
        .unwrap();
    repo.write_index(&[(id, entries)]).unwrap();
    let mut snap = Snapshot {
        id: String::new(),
        version: 1,
        time: lifeboat::repo::snapshot::now_rfc3339(),
        host: name.into(),
        service: name.into(),
        paths: vec![],
        tree,
        stats: Stats::default(),
        program: "test".into(),
        sources: vec![],
        origin: None,
        tags: vec![],
        repaired: vec![],
    };
    repo.save_snapshot(&mut snap).unwrap();
    snap
}

#[test]
fn hostile_paths_are_refused_and_nothing_escapes() {
    let env = Env::new();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let repo = env.repo(&repo_dir, &key);
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();

    let mut link = node("box/link", NodeKind::Symlink);
    link.target = Some(outside.display().to_string());
    let cases: Vec<(Vec<Node>, &str)> = vec![
        (
            vec![
                node("box", NodeKind::Dir),
                node("box/../../escaped", NodeKind::File),
            ],
            "`.` or `..`",
        ),
        (
            vec![node("/tmp/absolute-escape", NodeKind::File)],
            "absolute path",
        ),
        (
            vec![
                node("box", NodeKind::Dir),
                link.clone(),
                node("box/link/through-link", NodeKind::File),
            ],
            "symlink escape",
        ),
        (vec![node("a//b", NodeKind::File)], "empty path component"),
        (
            vec![node("dup", NodeKind::File), node("dup", NodeKind::File)],
            "listed twice",
        ),
    ];
    for (nodes, why) in cases {
        let snap = craft(&repo, &nodes, b"pwned");
        let target = env.path("target");
        let err = restore(
            &repo,
            &snap,
            &RestoreOptions::new(&target),
            &Reporter::silent(),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            matches!(
                err.downcast_ref::<lifeboat::Error>(),
                Some(lifeboat::Error::UnsafePath { .. })
            ),
            "{msg}"
        );
        assert!(msg.contains(why), "{why}: {msg}");
        assert!(!target.exists(), "nothing written for {why}");
        assert!(
            fs::read_dir(&outside).unwrap().next().is_none(),
            "nothing escaped for {why}"
        );
        assert!(
            !env.path("escaped").exists() && !std::path::Path::new("/tmp/absolute-escape").exists()
        );
    }

    // A symlink pointing outside is itself fine: it is restored as a link,
    // never followed.
    let snap = craft(
        &repo,
        &[
            node("box", NodeKind::Dir),
            link,
            node("box/file", NodeKind::File),
        ],
        b"ok",
    );
    let target = env.path("target");
    restore(
        &repo,
        &snap,
        &RestoreOptions::new(&target),
        &Reporter::silent(),
    )
    .unwrap();
    assert_eq!(fs::read_link(target.join("box/link")).unwrap(), outside);
    assert_eq!(fs::read(target.join("box/file")).unwrap(), b"ok");
    assert!(fs::read_dir(&outside).unwrap().next().is_none());
}

#[test]
fn a_file_whose_content_does_not_match_its_hash_is_not_restored() {
    let env = Env::new();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let repo = env.repo(&repo_dir, &key);
    let mut snap_nodes = vec![node("f", NodeKind::File)];
    let snap = craft(&repo, &snap_nodes, b"content");
    // Re-craft with a lying hash.
    let (index, _) = repo.load_index().unwrap();
    snap_nodes = repo.read_tree(&index, &snap).unwrap();
    snap_nodes[0].hash = Some(blake3::hash(b"something else").to_hex().to_string());
    let key = *repo.chunk_key();
    let mut stream = Vec::new();
    encode_line(&snap_nodes[0], &mut stream).unwrap();
    let tree_id = crypto::chunk_id(&key, &stream);
    let mut pack = PackBuilder::new(1 << 20);
    pack.add(tree_id, &stream, stream.len() as u32, false);
    let (plain, entries) = pack.finish();
    let id = PackId::random();
    repo.backend()
        .put(Kind::Data, &id.hex(), &repo.seal_data(&plain).unwrap())
        .unwrap();
    repo.write_index(&[(id, entries)]).unwrap();
    let mut lying = snap.clone();
    lying.tree = vec![tree_id];
    repo.save_snapshot(&mut lying).unwrap();
    let target = env.path("target");
    let err = restore(
        &repo,
        &lying,
        &RestoreOptions::new(&target),
        &Reporter::silent(),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("do not match their recorded hash: f"),
        "{err:#}"
    );
    assert!(!target.exists());
}

/// The repository as a backed-up host holds it: public recipients and the
/// chunk-id key, nothing that reads. That is all a forger needs.
fn write_only(env: &Env, repo_dir: &std::path::Path, admin: &Repository) -> Repository {
    let k = env.path("write-only.key");
    fs::write(&k, admin.write_only_key().unwrap()).unwrap();
    env.repo(repo_dir, &k)
}

struct Run {
    code: Option<i32>,
    out: String,
    took: std::time::Duration,
}

/// The built binary with the admin key on `repo_dir`, optionally under a
/// virtual-memory limit (KiB), timed.
fn run(env: &Env, repo_dir: &std::path::Path, args: &[&str], mem_kib: Option<u64>) -> Run {
    let bin = env!("CARGO_BIN_EXE_lifeboat");
    let mut c = match mem_kib {
        Some(k) => {
            let mut c = std::process::Command::new("bash");
            c.arg("-c")
                .arg(format!("ulimit -v {k}; exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => std::process::Command::new(bin),
    };
    c.current_dir(env.path(""))
        .env("LIFEBOAT_KEY_DIR", env.path("keys"))
        .env("LIFEBOAT_CACHE_DIR", env.path("cache"))
        .env("HOME", env.path("home"))
        .env("LIFEBOAT_KEY", env.path("admin.key"))
        .env_remove("LIFEBOAT_REPO")
        .env_remove("LIFEBOAT_CONFIG")
        .arg("--repo")
        .arg(repo_dir)
        .args(args);
    let start = std::time::Instant::now();
    let o = c.output().unwrap();
    Run {
        code: o.status.code(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        took: start.elapsed(),
    }
}

#[test]
fn verify_finds_every_restore_point_restore_would_refuse() {
    let env = Env::new();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let admin = env.repo(&repo_dir, &key);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), bytes(1, 300_000)).unwrap();
    let honest = lifeboat::engine::backup(
        &admin,
        &env.backup_opts("honest", &[&src]),
        &Reporter::silent(),
    )
    .unwrap();
    let forger = write_only(&env, &repo_dir, &admin);

    let escape = craft_as(
        &forger,
        &[
            node("box", NodeKind::Dir),
            node("box/../../escaped", NodeKind::File),
        ],
        b"pwned",
        "escape",
    );
    let data_id = crypto::chunk_id(forger.chunk_key(), b"pwned");
    let mut oversized = node("big", NodeKind::File);
    oversized.chunks = vec![data_id];
    oversized.size = 5_000_000;
    oversized.hash = Some(blake3::hash(b"pwned").to_hex().to_string());
    let sizes = craft_as(&forger, &[oversized], b"pwned", "sizes");
    let mut two_names = node("harmless", NodeKind::File);
    two_names.raw_path = Some(hex::encode("elsewhere"));
    let names = craft_as(&forger, &[two_names], b"pwned", "names");
    let mut liar = node("lie", NodeKind::File);
    liar.chunks = vec![data_id];
    liar.size = 5;
    liar.hash = Some(blake3::hash(b"other").to_hex().to_string());
    let lying = craft_as(&forger, &[liar], b"pwned", "liar");

    let r = run(&env, &repo_dir, &["verify"], None);
    assert_eq!(r.code, Some(1), "{}", r.out);
    for (snap, why) in [
        (&escape, "box/../../escaped"),
        (&escape, "`.` or `..`"),
        (&sizes, "add up to 5 bytes but the snapshot says 5000000"),
        (&names, "`path` and `raw_path` name different files"),
    ] {
        assert!(
            r.out.contains(&snap.short_id()),
            "{}: {}",
            snap.short_id(),
            r.out
        );
        assert!(r.out.contains(why), "{why}: {}", r.out);
    }
    let unaffected = r.out.lines().find(|l| l.contains("unaffected")).unwrap();
    assert!(unaffected.contains(&honest.short_id()), "{}", r.out);
    // A whole-file hash is only known by reading: structurally it is fine.
    assert!(unaffected.contains(&lying.short_id()), "{}", r.out);

    let r = run(&env, &repo_dir, &["verify", "--read-data"], None);
    assert_eq!(r.code, Some(1), "{}", r.out);
    assert!(
        r.out
            .contains("1 file(s) do not match their recorded size and hash"),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains(&format!("{} (liar): /lie", lying.short_id())),
        "{}",
        r.out
    );
    let unaffected = r.out.lines().find(|l| l.contains("unaffected")).unwrap();
    assert!(unaffected.contains(&honest.short_id()), "{}", r.out);
    assert!(!unaffected.contains(&lying.short_id()), "{}", r.out);
    assert!(r.out.contains("read whole and checked"), "{}", r.out);
}

#[test]
fn a_ten_thousand_level_tree_fails_at_once_everywhere() {
    let env = Env::new();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let admin = env.repo(&repo_dir, &key);
    let forger = write_only(&env, &repo_dir, &admin);
    let mut nodes = Vec::with_capacity(10_000);
    let mut path = String::from("d");
    for _ in 0..10_000 {
        nodes.push(node(&path, NodeKind::Dir));
        path.push_str("/d");
    }
    let snap = craft(&forger, &nodes, b"");
    drop(nodes);
    let id = snap.short_id();
    let target = env.path("target");
    let target_s = target.display().to_string();
    let limit = std::time::Duration::from_secs(10);
    for args in [
        vec!["restore", &id, "--target", &target_s],
        vec!["ls", &id],
        vec!["verify"],
    ] {
        let r = run(&env, &repo_dir, &args, None);
        eprintln!("{}: {:?}", args[0], r.took);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.out);
        assert!(
            r.out
                .contains("more than 4096 (damaged or forged file list)"),
            "{args:?}: {}",
            r.out
        );
        assert!(r.took < limit, "{args:?} took {:?}", r.took);
    }
    assert!(!target.exists());
    let start = std::time::Instant::now();
    let report = lifeboat::engine::drill(
        &admin,
        &snap,
        &lifeboat::engine::DrillOptions {
            sandbox_root: env.path("sandboxes"),
            rto: std::time::Duration::from_secs(3600),
            service: None,
            state_dir: None,
        },
        &Reporter::silent(),
    )
    .unwrap();
    eprintln!("drill: {:?}", start.elapsed());
    assert!(!report.ok, "{report:?}");
    assert!(
        report
            .detail
            .contains("more than 4096 (damaged or forged file list)"),
        "{report:?}"
    );
    assert!(start.elapsed() < limit);
}

#[test]
fn a_chunk_declaring_a_gibibyte_is_damage_not_an_allocation() {
    let env = Env::new();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let admin = env.repo(&repo_dir, &key);
    let forger = write_only(&env, &repo_dir, &admin);
    // A zstd bomb: 1 GiB of zeros in a few tens of KiB, declared as a
    // file list of that size.
    let mut bomb = Vec::new();
    zstd::stream::copy_encode(std::io::repeat(0).take(1 << 30), &mut bomb, 3).unwrap();
    let tree_id = lifeboat::repo::ChunkId(rand_bytes());
    let mut pack = PackBuilder::new(1 << 20);
    pack.add(tree_id, &bomb, 1 << 30, true);
    let (plain, entries) = pack.finish();
    let pack_id = PackId::random();
    forger
        .backend()
        .put(
            Kind::Data,
            &pack_id.hex(),
            &forger.seal_data(&plain).unwrap(),
        )
        .unwrap();
    forger.write_index(&[(pack_id, entries)]).unwrap();
    // An honest restore point beside it, to show the limit lets the
    // commands work at all.
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"fine").unwrap();
    let honest = lifeboat::engine::backup(
        &admin,
        &env.backup_opts("honest", &[&src]),
        &Reporter::silent(),
    )
    .unwrap();
    let mut snap = honest.clone();
    snap.service = "bomb".into();
    snap.tree = vec![tree_id];
    forger.save_snapshot(&mut snap).unwrap();
    let id = snap.short_id();
    let target = env.path("target");
    let target_s = target.display().to_string();
    let mem = Some(512 * 1024);
    let ok = run(&env, &repo_dir, &["ls", &honest.short_id()], mem);
    assert_eq!(ok.code, Some(0), "{}", ok.out);
    for args in [
        vec!["ls", &id],
        vec!["restore", &id, "--target", &target_s],
        vec!["verify"],
    ] {
        let r = run(&env, &repo_dir, &args, mem);
        // An exit code, not a signal: the process was not killed.
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.out);
        assert!(r.out.contains("damaged"), "{args:?}: {}", r.out);
        assert!(!r.out.contains("memory allocation"), "{args:?}: {}", r.out);
    }
    let r = run(&env, &repo_dir, &["verify"], mem);
    assert!(
        r.out
            .contains("declares 1073741824 bytes, more than a chunk can be"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains(&pack_id.short()) || r.out.contains("index/"),
        "{}",
        r.out
    );
}

fn rand_bytes() -> [u8; 32] {
    *blake3::hash(format!("{:?}", std::time::SystemTime::now()).as_bytes()).as_bytes()
}

#[test]
fn names_from_a_repository_reach_the_terminal_escaped() {
    let env = Env::new();
    let repo_dir = env.path("repo");
    let key = env.init(&repo_dir);
    let admin = env.repo(&repo_dir, &key);
    let forger = write_only(&env, &repo_dir, &admin);
    let mut link = node("link", NodeKind::Symlink);
    link.target = Some("\u{1b}]0;owned\u{7}".into());
    let snap = craft_as(
        &forger,
        &[node("\u{1b}[2Jclear", NodeKind::File), link],
        b"x",
        "ev\u{1b}[31mil",
    );
    for args in [vec!["ls", &snap.short_id()], vec!["snapshots"]] {
        let r = run(&env, &repo_dir, &args, None);
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.out);
        assert!(
            !r.out.contains('\u{1b}') && !r.out.contains('\u{7}'),
            "{args:?}: {:?}",
            r.out
        );
        assert!(r.out.contains("\\u{1b}"), "{args:?}: {}", r.out);
    }
    // JSON stays exact: the names round-trip.
    let r = run(&env, &repo_dir, &["ls", &snap.short_id(), "--json"], None);
    assert!(!r.out.contains('\u{1b}'), "{:?}", r.out);
    let names: Vec<serde_json::Value> = r
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        names.iter().any(|v| v["path"] == "/\u{1b}[2Jclear"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|v| v["target"] == "\u{1b}]0;owned\u{7}"),
        "{names:?}"
    );
}
