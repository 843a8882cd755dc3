//! A snapshot's file list prepared for browsing and searching, and the
//! background computations over it (fuzzy search, versions, diff). Built
//! off the render path; the views only read it.

use super::app::{Change, DiffEntry, Version};
use crate::repo::tree::{Node, NodeKind};
use fuzzy_matcher::skim::SkimMatcherV2;
use fuzzy_matcher::FuzzyMatcher;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct TreeView {
    pub snapshot: String,
    pub nodes: Vec<Node>,
    /// Children of each directory path, in name order ("" is the top).
    children: HashMap<String, Vec<u32>>,
    /// Lower-case paths, for the search prefilter.
    lower: Vec<String>,
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
        }
    }

    pub fn children_of(&self, dir: &str) -> &[u32] {
        self.children.get(dir).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// True when every character of `q` appears in `s` in order: a cheap test
/// that rejects most paths before the scorer runs.
fn subsequence(s: &str, q: &str) -> bool {
    let mut it = s.chars();
    q.chars().all(|c| it.any(|x| x == c))
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
    let n = tree.nodes.len();
    let threads = crate::engine::workers().clamp(1, 8);
    let per = n.div_ceil(threads).max(1);
    let parts: Vec<Option<Vec<(i64, u32)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let q = &q;
                s.spawn(move || {
                    let matcher = SkimMatcherV2::default().ignore_case();
                    // A min-heap of the best `limit` (score, -index) so far.
                    let mut heap: BinaryHeap<std::cmp::Reverse<(i64, std::cmp::Reverse<u32>)>> =
                        BinaryHeap::new();
                    let end = ((t + 1) * per).min(n);
                    for i in (t * per).min(n)..end {
                        if i % 8192 == 0 && latest.load(Ordering::Relaxed) != generation {
                            return None;
                        }
                        let path = &tree.lower[i];
                        if !subsequence(path, q) {
                            continue;
                        }
                        let Some(score) = matcher.fuzzy_match(path, q) else {
                            continue;
                        };
                        // Shorter paths win ties: /srv/a.txt before /srv/x/y/a.txt.
                        let score = score * 1000 - path.len().min(999) as i64;
                        let item = std::cmp::Reverse((score, std::cmp::Reverse(i as u32)));
                        if heap.len() < limit {
                            heap.push(item);
                        } else if heap.peek().is_some_and(|w| item < *w) {
                            heap.pop();
                            heap.push(item);
                        }
                    }
                    Some(
                        heap.into_iter()
                            .map(|std::cmp::Reverse((s, std::cmp::Reverse(i)))| (s, i))
                            .collect(),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(None))
            .collect()
    });
    let mut all = Vec::new();
    for p in parts {
        all.extend(p?);
    }
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    all.truncate(limit);
    Some(all.into_iter().map(|(_, i)| i).collect())
}

/// Every restore point's copy of `path`, newest first, marking where the
/// content changed from the previous one.
pub fn versions(path: &str, trees: &[(String, String, Vec<Node>)]) -> Vec<Version> {
    let mut out: Vec<Version> = Vec::new();
    let mut prev: Option<Option<String>> = None;
    for (snapshot, time, nodes) in trees {
        let Some(n) = nodes.iter().find(|n| n.path == path) else {
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
