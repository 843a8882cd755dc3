//! Looking into restore points without restoring them: finding a file
//! across all of them, comparing two, and streaming one file out.

use crate::progress::Reporter;
use crate::repo::reader::FileReader;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::{ChunkId, Index, Repository, Snapshot};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A `find` pattern. Globs (`*`, `?`, `[…]`, `**`) where `*` stays within
/// one path component: without a `/` it matches the name anywhere; with a
/// leading `/` the whole path from the root; otherwise the path's end at any
/// depth, so `*/config.yml` and `data/*.sqlite3` find what people mean.
pub struct Pattern {
    matcher: globset::GlobMatcher,
    basename: bool,
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Pattern> {
        let trimmed = pattern.trim_end_matches('/');
        if trimmed.is_empty() || trimmed == "/" {
            bail!("empty pattern {pattern:?}: give a file name or a glob such as '*.sqlite3'");
        }
        let (glob, basename) = if let Some(anchored) = trimmed.strip_prefix('/') {
            (anchored.to_string(), false)
        } else if trimmed.contains('/') {
            (format!("**/{trimmed}"), false)
        } else {
            (trimmed.to_string(), true)
        };
        let matcher = globset::GlobBuilder::new(&glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .with_context(|| format!("bad pattern {pattern:?}"))?
            .compile_matcher();
        Ok(Pattern { matcher, basename })
    }

    /// `path` as stored in a tree: relative, `/`-separated.
    pub fn matches(&self, path: &str) -> bool {
        if self.basename {
            self.matcher
                .is_match(path.rsplit('/').next().unwrap_or(path))
        } else {
            self.matcher.is_match(path)
        }
    }
}

/// One node that matched, in one restore point.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub snapshot: String,
    pub time: String,
    pub service: String,
    pub host: String,
    /// With a leading `/`, as `ls` shows it.
    pub path: String,
    pub kind: NodeKind,
    pub size: u64,
    pub mtime_ns: i64,
}

/// What a search found, and the restore points it could not look into.
#[derive(Debug, Default)]
pub struct FindReport {
    pub found: Vec<Found>,
    /// (short id, why) of each restore point whose file list cannot be
    /// read: the search goes on without it.
    pub unreadable: Vec<(String, String)>,
}

/// Every node matching `pattern` in `snaps` (the restore points a filter
/// chose, oldest first), in that order. One unreadable file list does not
/// hide the matches in every other restore point.
pub fn find(repo: &Repository, snaps: &[Snapshot], pattern: &Pattern) -> Result<FindReport> {
    // A key that cannot read is an error, not every restore point skipped.
    repo.data_identity()?;
    let (index, _) = repo.load_index()?;
    let mut report = FindReport::default();
    // Restore points of an unchanged service share their tree: read it once.
    let mut seen: HashMap<&[ChunkId], Vec<Node>> = HashMap::new();
    for snap in snaps {
        if !seen.contains_key(snap.tree.as_slice()) {
            let mut hits = match repo.read_tree(&index, snap) {
                Ok(nodes) => nodes,
                Err(e) => {
                    report.unreadable.push((snap.short_id(), format!("{e:#}")));
                    continue;
                }
            };
            hits.retain(|n| pattern.matches(&n.path));
            seen.insert(snap.tree.as_slice(), hits);
        }
        for n in seen.get(snap.tree.as_slice()).into_iter().flatten() {
            report.found.push(Found {
                snapshot: snap.id.clone(),
                time: snap.time.clone(),
                service: snap.service.clone(),
                host: snap.host.clone(),
                path: format!("/{}", n.path),
                kind: n.kind,
                size: n.size,
                mtime_ns: n.mtime_ns,
            });
        }
    }
    Ok(report)
}

/// How one path differs between two restore points.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Changed {
    pub path: String,
    /// Which of "kind", "size", "mode", "mtime", "content" differ.
    pub what: Vec<&'static str>,
    /// What it is in the newer restore point.
    pub kind: NodeKind,
}

impl Changed {
    /// A directory whose only change is its mtime: it changes whenever an
    /// entry in it does, so it says nothing the entries do not.
    pub fn only_dir_mtime(&self) -> bool {
        self.kind == NodeKind::Dir && self.what == ["mtime"]
    }
}

#[derive(Debug, Default, Serialize)]
pub struct DiffReport {
    pub from: String,
    pub to: String,
    /// Paths (with a leading `/`) only in `to`.
    pub added: Vec<String>,
    /// Paths only in `from`.
    pub removed: Vec<String>,
    pub changed: Vec<Changed>,
}

/// What changed from restore point `a` to restore point `b`.
pub fn diff(repo: &Repository, a: &Snapshot, b: &Snapshot) -> Result<DiffReport> {
    let (index, _) = repo.load_index()?;
    let old = repo.read_tree(&index, a)?;
    let new = repo.read_tree(&index, b)?;
    Ok(diff_trees(&a.id, &b.id, &old, &new))
}

pub fn diff_trees(from: &str, to: &str, old: &[Node], new: &[Node]) -> DiffReport {
    let old: BTreeMap<&str, &Node> = old.iter().map(|n| (n.path.as_str(), n)).collect();
    let new: BTreeMap<&str, &Node> = new.iter().map(|n| (n.path.as_str(), n)).collect();
    let mut report = DiffReport {
        from: from.to_string(),
        to: to.to_string(),
        ..Default::default()
    };
    for (path, n) in &new {
        match old.get(path) {
            None => report.added.push(format!("/{path}")),
            Some(o) => {
                let what = differences(o, n);
                if !what.is_empty() {
                    report.changed.push(Changed {
                        path: format!("/{path}"),
                        what,
                        kind: n.kind,
                    });
                }
            }
        }
    }
    report.removed = old
        .keys()
        .filter(|p| !new.contains_key(*p))
        .map(|p| format!("/{p}"))
        .collect();
    report
}

fn differences(a: &Node, b: &Node) -> Vec<&'static str> {
    let mut what = Vec::new();
    if a.kind != b.kind {
        what.push("kind");
    }
    if a.size != b.size {
        what.push("size");
    }
    if a.mode != b.mode {
        what.push("mode");
    }
    if a.mtime_ns != b.mtime_ns {
        what.push("mtime");
    }
    // Chunk ids are keyed per repository, so equal lists mean equal bytes.
    if a.chunks != b.chunks || a.target_bytes().ok() != b.target_bytes().ok() {
        what.push("content");
    }
    what
}

/// The file at `path` in `snap`, for [`dump`]: an error for a directory (with
/// the command that does restore one) or a path that is not there.
pub fn locate(repo: &Repository, index: &Index, snap: &Snapshot, path: &str) -> Result<Node> {
    let wanted = path.trim_matches('/');
    let node = repo
        .read_tree(index, snap)?
        .into_iter()
        .find(|n| n.path == wanted)
        .ok_or_else(|| {
            anyhow!(
                "/{wanted} is not in restore point {} (look with `lifeboat ls {} /` or `lifeboat find NAME`)",
                snap.short_id(),
                snap.short_id()
            )
        })?;
    match node.kind {
        NodeKind::File => Ok(node),
        NodeKind::Dir => bail!(
            "/{wanted} is a directory; dump writes one file (restore a directory with `lifeboat restore {} /{wanted} --target DIR`)",
            snap.short_id()
        ),
        NodeKind::Symlink => bail!(
            "/{wanted} is a symlink to {}; dump the file it points to instead",
            node.target.as_deref().unwrap_or("?")
        ),
    }
}

/// A file whose content should never land on a screen: flagged as secret
/// by a `secrets` source, or a dotenv file.
pub fn is_secret(node: &Node) -> bool {
    let name = node.path.rsplit('/').next().unwrap_or(&node.path);
    node.secret || name == ".env" || name.starts_with(".env.")
}

/// Streams the file's content into `out`, one chunk in memory at a time;
/// every chunk and the whole file are checked against their hashes, so a
/// damaged repository ends in an error, never in silently wrong output.
pub fn dump(
    repo: &Repository,
    index: &Index,
    node: &Node,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    repo.data_identity()?;
    let reporter = Reporter::silent();
    let mut reader = FileReader::new(repo, index, node, &reporter);
    let n = std::io::copy(&mut reader, out).with_context(|| format!("/{}", node.path))?;
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        Pattern::new(p).unwrap().matches(path)
    }

    #[test]
    fn patterns_match_as_documented() {
        assert!(m("config.yml", "srv/app/config.yml"));
        assert!(m("*.sqlite3", "srv/app/data/db.sqlite3"));
        assert!(!m("*.sqlite3", "srv/app/data/db.sqlite3-wal"));
        assert!(m("*/config.yml", "srv/app/config.yml"));
        assert!(m("app/config.yml", "srv/app/config.yml"));
        assert!(!m("app/config.yml", "srv/myapp/config.yml"));
        assert!(m("data/*.sqlite3", "srv/app/data/db.sqlite3"));
        assert!(!m("data/*.sqlite3", "srv/app/data/old/db.sqlite3"));
        assert!(m("data/**/*.sqlite3", "srv/app/data/old/db.sqlite3"));
        assert!(m("/srv/**/db.sqlite3", "srv/app/data/db.sqlite3"));
        assert!(!m("/app/**", "srv/app/data/db.sqlite3"));
        assert!(m("srv", "srv"));
        assert!(Pattern::new("/").is_err());
        assert!(Pattern::new("[").is_err());
    }

    #[test]
    fn diff_names_what_changed() {
        let mut a = Node::new("x/f", NodeKind::File);
        a.size = 3;
        let mut b = a.clone();
        b.mode = 0o600;
        b.mtime_ns = 5;
        let gone = Node::new("x/old", NodeKind::File);
        let new = Node::new("x/new", NodeKind::File);
        let r = diff_trees("a", "b", &[a, gone], &[b, new]);
        assert_eq!(r.added, vec!["/x/new"]);
        assert_eq!(r.removed, vec!["/x/old"]);
        assert_eq!(r.changed.len(), 1);
        assert_eq!(r.changed[0].what, vec!["mode", "mtime"]);
        assert!(!r.changed[0].only_dir_mtime());
        let mut d = Node::new("x", NodeKind::Dir);
        let mut d2 = d.clone();
        d2.mtime_ns = 9;
        let r = diff_trees("a", "b", &[d.clone()], &[d2.clone()]);
        assert!(r.changed[0].only_dir_mtime(), "{:?}", r.changed);
        d.mode = 0o700;
        let r = diff_trees("a", "b", &[d], &[d2]);
        assert!(!r.changed[0].only_dir_mtime(), "a mode change shows");
    }
}
