//! A snapshot's file list: newline-delimited JSON, one [`Node`] per line in
//! depth-first order, chunked and stored in packs like file data (so it is
//! encrypted with the data key and deduplicated between snapshots).

use super::ChunkId;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
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

pub fn decode(stream: &[u8]) -> Result<Vec<Node>> {
    stream
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_slice(l).with_context(|| format!("entry {}", i + 1)))
        .collect()
}
