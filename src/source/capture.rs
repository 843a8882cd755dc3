//! What a streamed source hands the backup engine: one or more artifacts
//! (a dump, a disk image, a command's output), read in order and stored as
//! files under `.lifeboat/SOURCE/` in the snapshot, and afterwards the
//! facts a later check compares a restore against.

use crate::repo::snapshot::Facts;
use anyhow::Result;
use std::io::Read;

/// The folder in every snapshot tree that holds streamed sources.
pub const DIR: &str = ".lifeboat";

pub struct Artifact {
    /// File name under `.lifeboat/SOURCE/`.
    pub file: String,
    pub reader: Box<dyn Read + Send>,
    /// Called once the reader is exhausted: waits for whatever produced the
    /// data and fails unless it finished cleanly, so a dump that died
    /// halfway never becomes a restore point.
    pub done: Box<dyn FnOnce() -> Result<()> + Send>,
}

pub trait Capture: Send {
    /// The source's name within its service.
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    /// Connects, takes a consistent view and starts producing data.
    fn start(&mut self) -> Result<Vec<Artifact>>;
    /// A fixed chunk size for an artifact that changes in place page by
    /// page (a SQLite database), where pages make better chunks than
    /// content-defined cuts. None: content-defined.
    fn chunk_size(&self, _file: &str) -> Option<u32> {
        None
    }
    /// After every artifact is stored: what was recorded for checks.
    fn facts(self: Box<Self>) -> Result<Facts>;
}

/// The tree path of a source's artifact.
pub fn artifact_path(source: &str, file: &str) -> String {
    format!("{DIR}/{source}/{file}")
}
