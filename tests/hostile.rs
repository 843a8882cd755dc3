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

fn node(path: &str, kind: NodeKind) -> Node {
    Node {
        mode: 0o644,
        ..Node::new(path, kind)
    }
}

/// Stores a hand-made tree and snapshot the way a malicious writer could.
fn craft(repo: &Repository, nodes: &[Node], file_data: &[u8]) -> Snapshot {
    let key = *repo.chunk_key();
    let data_id = crypto::chunk_id(&key, file_data);
    let mut nodes = nodes.to_vec();
    for n in nodes.iter_mut().filter(|n| n.kind == NodeKind::File) {
        n.chunks = vec![data_id];
        n.size = file_data.len() as u64;
        n.hash = Some(blake3::hash(file_data).to_hex().to_string());
    }
    let mut stream = Vec::new();
    for n in &nodes {
        encode_line(n, &mut stream).unwrap();
    }
    let tree_id = crypto::chunk_id(&key, &stream);
    let mut pack = PackBuilder::new(1 << 20);
    pack.add(data_id, file_data, file_data.len() as u32, false);
    pack.add(tree_id, &stream, stream.len() as u32, false);
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
        host: "evil".into(),
        service: "evil".into(),
        paths: vec![],
        tree: vec![tree_id],
        stats: Stats::default(),
        program: "test".into(),
        sources: vec![],
        origin: None,
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
