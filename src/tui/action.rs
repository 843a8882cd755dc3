//! What the console's screens ask the event loop to do ([`Cmd`]), what
//! comes back ([`Msg`]), and the data those carry. Screens return commands
//! and never do I/O themselves.

use super::tree::{DiffEntry, TreeView, Version};
use crate::inventory::Inventory;
use crate::runbook::{Input, Scope};
use std::path::PathBuf;
use std::sync::Arc;

/// Work for the event loop (background tasks).
#[derive(Debug, Clone)]
pub enum Cmd {
    LoadInventory,
    LoadTree {
        /// Answers carry it back; only the latest request's answer counts.
        req: u64,
        service: String,
        repository: String,
        snapshot: String,
    },
    SearchFiles {
        generation: u64,
        query: String,
        tree: Arc<TreeView>,
    },
    Versions {
        req: u64,
        service: String,
        repository: String,
        path: String,
        snapshots: Vec<String>,
    },
    Diff {
        req: u64,
        repository: String,
        older: String,
        newer: String,
    },
    /// Re-reads the configuration file (then runbooks and inventory).
    Reload,
    /// Drops what the background reads keep (a job changed the
    /// repository).
    Forget,
    /// The wizard's path picker: the chosen restore point's file list.
    PickerTree {
        req: u64,
        repository: String,
        snapshot: String,
    },
    /// The picker's fuzzy filter (latest wins, as [`Cmd::SearchFiles`]).
    SearchPaths {
        generation: u64,
        query: String,
        tree: Arc<TreeView>,
    },
    LoadRunbooks,
    LoadJobs,
    /// Is `path` in restore point `snapshot`? (The wizard asks before
    /// preflight, so a mistyped path never gets as far as a job.)
    CheckPath {
        req: u64,
        repository: String,
        snapshot: String,
        path: String,
    },
    Preflight {
        runbook: std::path::PathBuf,
        services: Vec<String>,
        point: String,
        inputs: std::collections::BTreeMap<String, String>,
    },
    StartJob(Box<crate::jobs::JobSpec>),
    TailJob(Box<crate::jobs::JobView>),
    AnswerJob {
        id: String,
        /// The question answered (see `jobs::answer`).
        ask: u64,
        answer: String,
    },
    CancelJob {
        id: String,
    },
    /// Discards what the job's restores kept for rollback (asked y/N).
    DiscardKept {
        job: String,
    },
    ReadReport(std::path::PathBuf),
}

/// Results of that work.
#[derive(Debug, Clone)]
pub enum Msg {
    Inventory(Arc<Inventory>),
    Tree(u64, Result<Arc<TreeView>, String>),
    FileHits {
        generation: u64,
        hits: Vec<u32>,
    },
    Versions(u64, Result<Vec<Version>, String>),
    Diff(u64, Result<Vec<DiffEntry>, String>),
    PickerTree(u64, Result<Arc<TreeView>, String>),
    PathHits {
        generation: u64,
        hits: Vec<u32>,
    },
    /// The answer to [`Cmd::CheckPath`]: Err says what is wrong.
    PathChecked(u64, Result<(), String>),
    /// The configuration was read again (Err: why it could not be).
    Reloaded(Result<crate::health::Thresholds, String>),
    Runbooks(Result<Vec<RunbookInfo>, String>),
    Jobs(Vec<crate::jobs::JobView>),
    /// The preflight's checks, and per service what the run will change.
    Preflight(
        Vec<(String, crate::runbook::preflight::Check)>,
        Vec<(String, Vec<String>)>,
    ),
    JobTail(Box<crate::jobs::JobView>),
    Report(Vec<String>),
    /// A job could not be started, answered or cancelled.
    JobError(String),
    /// What discarding the kept copies did, or why it could not.
    Discarded(Result<Vec<String>, String>),
}

/// What the wizard needs of a runbook (the loader reads the files).
#[derive(Debug, Clone)]
pub struct RunbookInfo {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub file: PathBuf,
    pub scope: Scope,
    pub inputs: Vec<Input>,
    pub steps: Vec<String>,
    /// Services of the config it applies to, most critical first.
    pub applies: Vec<String>,
}
