//! A snapshot's file list prepared for browsing and searching, and the
//! background computations over it (fuzzy search, versions, diff). Built
//! off the render path; the views only read it.

use crate::repo::tree::{Node, NodeKind};
use fuzzy_matcher::skim::SkimMatcherV2;
use fuzzy_matcher::FuzzyMatcher;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub snapshot: String,
    pub time: String,
    pub size: u64,
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiffEntry {
    pub change: Change,
    pub path: String,
    pub old_size: u64,
    pub new_size: u64,
}

#[derive(Debug)]
pub struct TreeView {
    pub snapshot: String,
    pub nodes: Vec<Node>,
    /// Children of each directory path, in name order ("" is the top).
    children: HashMap<String, Vec<u32>>,
    /// Lower-case paths, for matching.
    lower: Vec<String>,
    /// The last finished search: its query and every path it matched.
    /// Typing extends a query, and a longer query matches a subset, so the
    /// next keystroke only looks at these.
    last: Mutex<Option<(String, Arc<Vec<u32>>)>>,
}

impl TreeView {
    pub fn new(snapshot: String, nodes: Vec<Node>) -> TreeView {
        let mut children: HashMap<String, Vec<u32>> = HashMap::new();
        let known: std::collections::HashSet<&str> =
            nodes.iter().map(|n| n.path.as_str()).collect();
        for (i, n) in nodes.iter().enumerate() {
            let parent = match n.path.rsplit_once('/') {
                Some((p, _)) if known.contains(p) => p.to_string(),
                _ => String::new(),
            };
            children.entry(parent).or_default().push(i as u32);
        }
        let lower = nodes.iter().map(|n| n.path.to_lowercase()).collect();
        TreeView {
            snapshot,
            nodes,
            children,
            lower,
            last: Mutex::new(None),
        }
    }

    pub fn children_of(&self, dir: &str) -> &[u32] {
        self.children.get(dir).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// True when every byte of `q` appears in `s` in order: a cheap test that
/// rejects most paths before anything scores them.
fn subsequence(s: &[u8], q: &[u8]) -> bool {
    let mut rest = s;
    for &c in q {
        match rest.iter().position(|&b| b == c) {
            Some(i) => rest = &rest[i + 1..],
            None => return false,
        }
    }
    true
}

/// A quick rank for huge match sets: the query as one piece in the file
/// name beats it anywhere in the path, which beats scattered letters;
/// shorter paths first.
fn quick_score(path: &str, q: &str) -> i64 {
    let name = path.rsplit('/').next().unwrap_or(path);
    let tier = if name.contains(q) {
        3
    } else if path.contains(q) {
        2
    } else {
        1
    };
    tier * 10_000 - path.len().min(9_999) as i64
}

/// Above this many matches only a shortlist gets the full fuzzy score.
const SCORE_ALL: usize = 20_000;

/// Runs `f` over `items` split across the cores; None if any part gave up.
fn parallel<T: Send>(items: &[u32], f: impl Fn(&[u32]) -> Option<Vec<T>> + Sync) -> Option<Vec<T>> {
    let threads = crate::engine::workers().clamp(1, 8);
    let per = items.len().div_ceil(threads).max(1);
    let parts: Vec<Option<Vec<T>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(per).map(|c| s.spawn(|| f(c))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(None))
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for p in parts {
        out.extend(p?);
    }
    Some(out)
}

/// The best `limit` matches for `query`, best first, or None when a newer
/// search (a higher `generation` in `latest`) made this one pointless.
pub fn search(
    tree: &TreeView,
    query: &str,
    limit: usize,
    generation: u64,
    latest: &AtomicU64,
) -> Option<Vec<u32>> {
    let q = query.to_lowercase();
    let stale = || latest.load(Ordering::Relaxed) != generation;
    let previous = tree
        .last
        .lock()
        .ok()
        .and_then(|l| l.clone())
        .filter(|(pq, _)| q.starts_with(pq.as_str()));
    let all: Vec<u32>;
    let candidates: &[u32] = match &previous {
        Some((_, m)) => m,
        None => {
            all = (0..tree.nodes.len() as u32).collect();
            &all
        }
    };
    let matched = parallel(candidates, |part| {
        let mut out = Vec::new();
        for (k, &i) in part.iter().enumerate() {
            if k % 16_384 == 0 && stale() {
                return None;
            }
            if subsequence(tree.lower[i as usize].as_bytes(), q.as_bytes()) {
                out.push(i);
            }
        }
        Some(out)
    })?;
    let matched = Arc::new(matched);
    if let Ok(mut l) = tree.last.lock() {
        *l = Some((q.clone(), Arc::clone(&matched)));
    }
    let shortlist: Vec<u32> = if matched.len() <= SCORE_ALL {
        matched.to_vec()
    } else {
        let mut scored = parallel(&matched, |part| {
            if stale() {
                return None;
            }
            Some(
                part.iter()
                    .map(|&i| (quick_score(&tree.lower[i as usize], &q), i))
                    .collect(),
            )
        })?;
        let keep = (limit * 4).min(scored.len());
        scored.select_nth_unstable_by(keep.saturating_sub(1), |a, b| {
            b.0.cmp(&a.0).then(a.1.cmp(&b.1))
        });
        scored.truncate(keep);
        scored.into_iter().map(|(_, i)| i).collect()
    };
    let mut scored = parallel(&shortlist, |part| {
        if stale() {
            return None;
        }
        let matcher = SkimMatcherV2::default().ignore_case();
        Some(
            part.iter()
                .filter_map(|&i| {
                    let path = &tree.lower[i as usize];
                    // Shorter paths win ties: /srv/a.txt before /srv/x/y/a.txt.
                    matcher
                        .fuzzy_match(path, &q)
                        .map(|s| (s * 1000 - path.len().min(999) as i64, i))
                })
                .collect(),
        )
    })?;
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(limit);
    Some(scored.into_iter().map(|(_, i)| i).collect())
}

/// Every restore point's copy of `path`, newest first, marking where the
/// content changed from the previous one.
pub fn versions(path: &str, trees: &[(String, String, Arc<TreeView>)]) -> Vec<Version> {
    let mut out: Vec<Version> = Vec::new();
    let mut prev: Option<Option<String>> = None;
    for (snapshot, time, tree) in trees {
        let Some(n) = tree.nodes.iter().find(|n| n.path == path) else {
            prev = None;
            continue;
        };
        let changed = prev.as_ref().is_none_or(|p| *p != n.hash);
        prev = Some(n.hash.clone());
        out.push(Version {
            snapshot: snapshot.clone(),
            time: time.clone(),
            size: n.size,
            changed,
        });
    }
    out.reverse();
    out
}

/// What changed between two restore points, by path.
pub fn diff(older: &[Node], newer: &[Node]) -> Vec<DiffEntry> {
    let old: HashMap<&str, &Node> = older.iter().map(|n| (n.path.as_str(), n)).collect();
    let new: HashMap<&str, &Node> = newer.iter().map(|n| (n.path.as_str(), n)).collect();
    let mut out = Vec::new();
    for n in newer {
        match old.get(n.path.as_str()) {
            None => out.push(DiffEntry {
                change: Change::Added,
                path: n.path.clone(),
                old_size: 0,
                new_size: n.size,
            }),
            Some(o) => {
                let differs = o.kind != n.kind
                    || (n.kind == NodeKind::File && (o.hash != n.hash))
                    || o.target != n.target
                    || o.mode != n.mode;
                if differs {
                    out.push(DiffEntry {
                        change: Change::Changed,
                        path: n.path.clone(),
                        old_size: o.size,
                        new_size: n.size,
                    });
                }
            }
        }
    }
    for o in older {
        if !new.contains_key(o.path.as_str()) {
            out.push(DiffEntry {
                change: Change::Removed,
                path: o.path.clone(),
                old_size: o.size,
                new_size: 0,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether `path` (absolute, as `lifeboat ls` shows it) is in the restore
/// point whose nodes these are. The error names the deepest part of the
/// path that is there and the nearest name in it, so a typo is plain.
pub fn check_path(nodes: &[Node], path: &str, snapshot: &str) -> Result<(), String> {
    let short = snapshot.get(..8).unwrap_or(snapshot);
    let Some(rel) = path.trim().strip_prefix('/') else {
        return Err(format!(
            "{path:?} is not an absolute path: give it from the root, as `lifeboat ls` shows it (/srv/…)"
        ));
    };
    let rel = rel.trim_end_matches('/');
    if rel.is_empty() || nodes.iter().any(|n| n.path == rel) {
        return Ok(());
    }
    let mut parent = rel;
    let found = loop {
        match parent.rsplit_once('/') {
            Some((p, _)) => {
                parent = p;
                if nodes.iter().any(|n| n.path == parent) {
                    break Some(parent);
                }
            }
            None => break None,
        }
    };
    let prefix = found.map(|p| format!("{p}/")).unwrap_or_default();
    let wanted = rel[prefix.len()..].split('/').next().unwrap_or("");
    let siblings = nodes.iter().filter_map(|n| {
        let name = n.path.strip_prefix(prefix.as_str())?;
        (!name.contains('/')).then_some(name)
    });
    let nearest = nearest(siblings, wanted)
        .map(|name| format!("; did you mean /{prefix}{name}?"))
        .unwrap_or_default();
    Err(match found {
        Some(p) => format!("{path} is not in restore point {short} (/{p} is){nearest}"),
        None => format!("{path} is not in restore point {short}{nearest}"),
    })
}

/// The name most like `wanted`: the fewest single-character edits (a
/// swapped pair of digits is two), if few enough to be a typo.
fn nearest<'a>(names: impl Iterator<Item = &'a str>, wanted: &str) -> Option<&'a str> {
    // Names longer than this are not typos worth scoring.
    const MAX: usize = 256;
    let w: Vec<char> = wanted.chars().take(MAX).collect();
    let limit = (w.len() / 3).max(2);
    names
        .take(100_000)
        .filter_map(|name| {
            let n: Vec<char> = name.chars().take(MAX).collect();
            let d = edit_distance(&w, &n);
            (d <= limit).then_some((d, name))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(paths: &[String]) -> TreeView {
        let nodes = paths
            .iter()
            .map(|p| Node {
                size: 1,
                ..Node::new(p.clone(), NodeKind::File)
            })
            .collect();
        TreeView::new("t".into(), nodes)
    }

    #[test]
    fn narrowing_from_the_last_keystroke_equals_a_fresh_search() {
        let paths: Vec<String> = (0..30_000)
            .map(|i| {
                format!(
                    "srv/{}/doc_{i}.pdf",
                    ["immich", "paperless", "config"][i % 3]
                )
            })
            .collect();
        let latest = AtomicU64::new(1);
        let typed = tree(&paths);
        let mut last = vec![];
        for q in ["p", "pa", "pap", "pape", "paper/doc_12"] {
            last = search(&typed, q, 50, 1, &latest).unwrap();
        }
        let fresh = search(&tree(&paths), "paper/doc_12", 50, 1, &latest).unwrap();
        assert_eq!(last, fresh);
        assert!(!fresh.is_empty());
    }

    #[test]
    fn huge_match_sets_still_rank_the_obvious_file_first() {
        // Every path matches "img" as scattered letters; one has it as a name.
        let mut paths: Vec<String> = (0..50_000)
            .map(|i| format!("srv/immich/library/g/file_{i}"))
            .collect();
        paths.push("srv/photos/img_0042.jpg".into());
        let t = tree(&paths);
        let hits = search(&t, "img_0042", 10, 1, &AtomicU64::new(1)).unwrap();
        assert_eq!(t.nodes[hits[0] as usize].path, "srv/photos/img_0042.jpg");
        let hits = search(&t, "img", 10, 1, &AtomicU64::new(1)).unwrap();
        assert_eq!(
            t.nodes[hits[0] as usize].path, "srv/photos/img_0042.jpg",
            "a name match beats scattered letters"
        );
    }
}
