//! A snapshot's file list: newline-delimited JSON, one [`Node`] per line in
//! depth-first order, chunked and stored in packs like file data (so it is
//! encrypted with the data key and deduplicated between snapshots).

use super::{ChunkId, Index, Snapshot};
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Relative to the restore target, `/`-separated. Lossy when the name is
    /// not UTF-8; `raw_path` then holds the exact bytes.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<String>,
    pub kind: NodeKind,
    pub mode: u32,
    /// Nanoseconds since the epoch.
    pub mtime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkId>,
    /// BLAKE3 of the whole file, checked after every restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_target: Option<String>,
    /// A secrets file (`.env`): never previewed, restored mode 0600.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// Lossless text form of an OS path: the string, plus hex bytes when the
/// string would lose information.
pub fn encode_os(s: &OsStr) -> (String, Option<String>) {
    match s.to_str() {
        Some(t) => (t.to_string(), None),
        None => (
            s.to_string_lossy().into_owned(),
            Some(hex::encode(s.as_bytes())),
        ),
    }
}

/// True when `path` is `prefix` or inside it (`/`-separated, no leading `/`).
pub fn is_at_or_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

impl Node {
    /// A node with no content and neutral metadata, to be filled in.
    pub fn new(path: impl Into<String>, kind: NodeKind) -> Node {
        Node {
            path: path.into(),
            raw_path: None,
            kind,
            mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
            mtime_ns: 0,
            uid: 0,
            gid: 0,
            size: 0,
            chunks: Vec::new(),
            hash: None,
            target: None,
            raw_target: None,
            secret: false,
        }
    }

    /// The exact path bytes.
    pub fn path_bytes(&self) -> Result<Vec<u8>> {
        match &self.raw_path {
            Some(h) => hex::decode(h).context("damaged raw_path"),
            None => Ok(self.path.as_bytes().to_vec()),
        }
    }

    pub fn target_bytes(&self) -> Result<Vec<u8>> {
        match (&self.raw_target, &self.target) {
            (Some(h), _) => hex::decode(h).context("damaged raw_target"),
            (None, Some(t)) => Ok(t.as_bytes().to_vec()),
            (None, None) => anyhow::bail!("symlink {} has no target", self.path),
        }
    }
}

pub fn encode_line(node: &Node, out: &mut Vec<u8>) -> Result<()> {
    serde_json::to_writer(&mut *out, node)?;
    out.push(b'\n');
    Ok(())
}

/// The longest path or symlink target a tree may hold: what Linux takes in
/// one call. Anything longer can only come from a damaged or forged tree,
/// and bounding it bounds the work every later check does (a path of
/// 4096 bytes has at most 2048 components).
pub const MAX_PATH_BYTES: usize = 4096;

/// Parses a tree stream as it arrives, chunk by chunk, so a damaged or
/// forged tree fails at its first bad entry instead of after the whole
/// stream has been gathered in memory.
#[derive(Default)]
pub struct Decoder {
    partial: Vec<u8>,
    nodes: Vec<Node>,
}

impl Decoder {
    pub fn feed(&mut self, mut data: &[u8]) -> Result<()> {
        while let Some(end) = data.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                self.line(&data[..end])?;
            } else {
                self.partial.extend_from_slice(&data[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line)?;
            }
            data = &data[end + 1..];
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<Node>> {
        let rest = std::mem::take(&mut self.partial);
        self.line(&rest)?;
        Ok(self.nodes)
    }

    fn line(&mut self, l: &[u8]) -> Result<()> {
        if l.is_empty() {
            return Ok(());
        }
        let entry = self.nodes.len() + 1;
        let node: Node = serde_json::from_slice(l).with_context(|| format!("entry {entry}"))?;
        check_lengths(&node).with_context(|| format!("entry {entry}"))?;
        self.nodes.push(node);
        Ok(())
    }
}

/// Paths and targets within [`MAX_PATH_BYTES`] (hex forms twice that).
fn check_lengths(n: &Node) -> Result<()> {
    let too_long = |what: &str, len: usize, max: usize| {
        anyhow::bail!("{what} is {len} bytes long, more than {max} (damaged or forged file list)")
    };
    if n.path.len() > MAX_PATH_BYTES {
        return too_long("path", n.path.len(), MAX_PATH_BYTES);
    }
    if let Some(r) = n.raw_path.as_ref().filter(|r| r.len() > 2 * MAX_PATH_BYTES) {
        return too_long("raw_path", r.len(), 2 * MAX_PATH_BYTES);
    }
    if let Some(t) = n.target.as_ref().filter(|t| t.len() > MAX_PATH_BYTES) {
        return too_long("symlink target", t.len(), MAX_PATH_BYTES);
    }
    if let Some(r) = n
        .raw_target
        .as_ref()
        .filter(|r| r.len() > 2 * MAX_PATH_BYTES)
    {
        return too_long("raw_target", r.len(), 2 * MAX_PATH_BYTES);
    }
    Ok(())
}

pub fn decode(stream: &[u8]) -> Result<Vec<Node>> {
    let mut d = Decoder::default();
    d.feed(stream)?;
    d.finish()
}

/// Checks one node on its own: a path that is not empty, not absolute, has
/// no NUL and no empty, `.` or `..` component; `path` saying what
/// `raw_path` holds (what `ls` shows is what a restore writes); a symlink
/// with a target that agrees with `raw_target` the same way.
fn check_node(snap: &Snapshot, node: &Node, bytes: &[u8]) -> Result<()> {
    let unsafe_path = |why| crate::Error::UnsafePath {
        snapshot: snap.short_id(),
        path: node.path.chars().take(200).collect(),
        why,
    };
    if bytes.is_empty() {
        return Err(unsafe_path("empty path").into());
    }
    if bytes.len() > MAX_PATH_BYTES {
        return Err(unsafe_path("longer than 4096 bytes").into());
    }
    if bytes[0] == b'/' {
        return Err(unsafe_path("absolute path").into());
    }
    if bytes.contains(&0) {
        return Err(unsafe_path("NUL byte in path").into());
    }
    for p in bytes.split(|b| *b == b'/') {
        match p {
            b"" => return Err(unsafe_path("empty path component").into()),
            b"." | b".." => return Err(unsafe_path("`.` or `..` in path").into()),
            _ => {}
        }
    }
    if node.raw_path.is_some() && String::from_utf8_lossy(bytes) != node.path {
        return Err(unsafe_path("`path` and `raw_path` name different files").into());
    }
    if node.kind == NodeKind::Symlink {
        let t = node
            .target_bytes()
            .map_err(|_| unsafe_path("symlink without a readable target"))?;
        if t.contains(&0) {
            return Err(unsafe_path("NUL byte in symlink target").into());
        }
        if node.raw_target.is_some()
            && node.target.as_deref() != Some(&*String::from_utf8_lossy(&t))
        {
            return Err(unsafe_path("`target` and `raw_target` disagree").into());
        }
    }
    Ok(())
}

/// The check every reader of an untrusted tree makes before trusting it
/// (restore, verify, ls): each node on its own, then the paths against each
/// other — none listed twice, nothing below a file or symlink (which would
/// be written through it). Returns every node's exact path bytes.
///
/// Linear in the size of the tree apart from one sort: paths are bounded
/// by [`MAX_PATH_BYTES`], and sorted with `/` lowest everything below a path
/// comes right after it, so neighbours are all that need comparing.
pub fn check_tree<N: Borrow<Node>>(snap: &Snapshot, nodes: &[N]) -> Result<Vec<Vec<u8>>> {
    let mut rels = Vec::with_capacity(nodes.len());
    for n in nodes {
        let n = n.borrow();
        let bytes = n.path_bytes().map_err(|_| crate::Error::UnsafePath {
            snapshot: snap.short_id(),
            path: n.path.chars().take(200).collect(),
            why: "`raw_path` is not hex",
        })?;
        check_node(snap, n, &bytes)?;
        rels.push(bytes);
    }
    let key = |b: &u8| if *b == b'/' { 0u8 } else { *b };
    let mut order: Vec<usize> = (0..rels.len()).collect();
    order.sort_by(|&a, &b| rels[a].iter().map(key).cmp(rels[b].iter().map(key)));
    for w in order.windows(2) {
        let (a, b) = (&rels[w[0]], &rels[w[1]]);
        let why = if a == b {
            "listed twice"
        } else if nodes[w[0]].borrow().kind != NodeKind::Dir
            && b.len() > a.len()
            && b.starts_with(a)
            && b[a.len()] == b'/'
        {
            "a parent is not a directory (symlink escape)"
        } else {
            continue;
        };
        return Err(crate::Error::UnsafePath {
            snapshot: snap.short_id(),
            path: nodes[w[1]].borrow().path.chars().take(200).collect(),
            why,
        }
        .into());
    }
    Ok(rels)
}

/// The error for a file whose chunks do not add up to its declared size.
pub fn size_mismatch(snap: &Snapshot, n: &Node, sum: u64) -> anyhow::Error {
    anyhow!(
        "restore point {}: /{}: its chunks add up to {sum} bytes but the snapshot says {} (damaged or forged restore point)",
        snap.short_id(),
        n.path.chars().take(200).collect::<String>(),
        n.size
    )
}

/// Every file's declared size against the sum of its chunks' lengths as the
/// index records them. Files with unindexed chunks are left to the caller,
/// which reports missing chunks its own way.
pub fn check_sizes(snap: &Snapshot, nodes: &[Node], index: &Index) -> Result<()> {
    'files: for n in nodes.iter().filter(|n| n.kind == NodeKind::File) {
        let mut sum = 0u64;
        for id in &n.chunks {
            match index.get(id) {
                Some(loc) => sum += loc.raw_len as u64,
                None => continue 'files,
            }
        }
        if sum != n.size {
            return Err(size_mismatch(snap, n, sum));
        }
    }
    Ok(())
}
