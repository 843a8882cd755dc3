//! Source adapters: how each kind of thing is backed up, restored (to its
//! live place or into a sandbox) and checked. Trees (files, secrets) are
//! walked by the backup engine; everything else is a [`Capture`] that
//! streams artifacts into the snapshot under `.lifeboat/SOURCE/`, with
//! facts recorded for the check after a restore.

pub mod capture;
pub mod command;
pub mod files;
pub mod files_cache;
pub mod mysql;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod sqlite;
pub mod vm_image;

use crate::config::{Service, SourceKind};
use crate::engine::restore::FileReader;
use crate::progress::Reporter;
use crate::repo::snapshot::SourceRecord;
use crate::repo::tree::Node;
use crate::repo::{Index, Repository, Snapshot};
use anyhow::{anyhow, Context, Result};
use capture::Capture;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The streamed sources of a service, ready for [`crate::engine::backup_with`].
pub fn captures(svc: &Service, cache_dir: &Path) -> Vec<Box<dyn Capture>> {
    svc.sources
        .iter()
        .filter_map(|s| -> Option<Box<dyn Capture>> {
            let n = s.name.as_str();
            Some(match &s.kind {
                SourceKind::Files { .. } | SourceKind::Secrets { .. } => return None,
                SourceKind::Postgres(db) => Box::new(postgres::PgCapture::new(n, db)),
                SourceKind::Mysql(db) => Box::new(mysql::MysqlCapture::new(n, db)),
                SourceKind::Sqlite { path } => {
                    Box::new(sqlite::SqliteCapture::new(n, path, cache_dir))
                }
                SourceKind::Redis(r) => Box::new(redis::RedisCapture::new(n, r)),
                SourceKind::Command(c) => Box::new(command::CommandCapture::new(n, c)),
                SourceKind::VmImage { path } => {
                    Box::new(vm_image::ImageCapture::new(n, path, cache_dir))
                }
            })
        })
        .collect()
}

/// Where a restore goes.
#[derive(Debug, Clone)]
pub enum To {
    /// Where the source lives: the configured database, file or command.
    Live,
    /// A throwaway place (a temporary database, a private server, files in
    /// this directory), torn down afterwards. Drills use this.
    Sandbox(PathBuf),
}

/// What restoring one source did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub detail: String,
    /// How the restored copy differs from what the backup recorded; empty
    /// when the check passed.
    pub differences: Vec<String>,
    /// What was kept of the replaced live data, and how to discard it.
    pub kept: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceOutcome {
    pub source: String,
    pub kind: String,
    #[serde(flatten)]
    pub restored: Restored,
}

/// The streamed files of one restore point, read straight from the repository.
pub struct Streams<'a> {
    repo: &'a Repository,
    index: &'a Index,
    nodes: HashMap<String, Node>,
    reporter: &'a Reporter,
}

impl<'a> Streams<'a> {
    pub fn new(
        repo: &'a Repository,
        index: &'a Index,
        tree: Vec<Node>,
        reporter: &'a Reporter,
    ) -> Self {
        Streams {
            repo,
            index,
            nodes: tree
                .into_iter()
                .filter(|n| n.path.starts_with(capture::DIR))
                .map(|n| (n.path.clone(), n))
                .collect(),
            reporter,
        }
    }

    pub fn open(&self, path: &str) -> Result<FileReader<'_>> {
        let node = self
            .nodes
            .get(path)
            .ok_or_else(|| anyhow!("{path} is missing from the restore point's file list"))?;
        Ok(FileReader::new(self.repo, self.index, node, self.reporter))
    }

    pub fn size(&self, path: &str) -> u64 {
        self.nodes.get(path).map(|n| n.size).unwrap_or(0)
    }
}

/// Restores every streamed source recorded in `snap` that `svc` still
/// configures, in the order they were backed up.
pub fn restore_streamed(
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    to: &To,
    reporter: &Reporter,
) -> Result<Vec<SourceOutcome>> {
    if snap.sources.is_empty() {
        return Ok(Vec::new());
    }
    let (index, _) = repo.load_index()?;
    let tree = repo.read_tree(&index, snap)?;
    let streams = Streams::new(repo, &index, tree, reporter);
    let mut out = Vec::new();
    for record in &snap.sources {
        let src = svc.sources.iter().find(|s| s.name == record.name).ok_or_else(|| {
            anyhow!(
                "restore point {} has a {} source `{}` that service `{}` no longer configures; restore its files with `lifeboat restore {} .lifeboat/{} --target DIR`",
                snap.short_id(), record.kind, record.name, svc.name, snap.short_id(), record.name
            )
        })?;
        if src.kind.name() != record.kind {
            anyhow::bail!(
                "source `{}` of `{}` was backed up as {} but is now configured as {}; restore its files with --target instead",
                record.name, svc.name, record.kind, src.kind.name()
            );
        }
        let what = || {
            format!(
                "service `{}`, source `{}` ({})",
                svc.name, record.name, record.kind
            )
        };
        let restored = restore_one(&src.kind, record, &streams, to).with_context(what)?;
        out.push(SourceOutcome {
            source: record.name.clone(),
            kind: record.kind.clone(),
            restored,
        });
    }
    Ok(out)
}

fn restore_one(
    kind: &SourceKind,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
) -> Result<Restored> {
    match kind {
        SourceKind::Postgres(db) => postgres::restore(db, record, streams, to),
        SourceKind::Mysql(db) => mysql::restore(db, record, streams, to),
        SourceKind::Sqlite { path } => sqlite::restore(path, record, streams, to),
        SourceKind::Redis(r) => redis::restore(r, record, streams, to),
        SourceKind::Command(c) => command::restore(c, record, streams, to),
        SourceKind::VmImage { path } => vm_image::restore(path, record, streams, to),
        SourceKind::Files { .. } | SourceKind::Secrets { .. } => {
            Err(anyhow!("internal: a tree source has no stream"))
        }
    }
}

/// A UTC timestamp for names of kept and throwaway copies.
pub fn stamp() -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    t.chars().filter(|c| c.is_ascii_digit()).take(14).collect()
}

/// `path` with `.lifeboat-SUFFIX` appended to its file name.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".lifeboat-{suffix}"));
    path.with_file_name(name)
}

/// What a live restore of a whole service did.
#[derive(Debug, Clone, Serialize)]
pub struct LiveRestore {
    /// Each configured path put back, and where its previous content went.
    pub paths: Vec<(PathBuf, Option<PathBuf>)>,
    pub files: u64,
    pub bytes: u64,
    pub sources: Vec<SourceOutcome>,
}

/// Puts a restore point back where the service lives: each configured
/// path is restored beside itself, then swapped in (the old content kept
/// as `PATH.lifeboat-old-TIME`), and every database or stream is restored
/// through its adapter (new copy, check, swap).
pub fn restore_live(
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    reporter: &Reporter,
) -> Result<LiveRestore> {
    use crate::engine::restore::{restore, RestoreOptions};
    let stamp = stamp();
    let mut out = LiveRestore {
        paths: Vec::new(),
        files: 0,
        bytes: 0,
        sources: Vec::new(),
    };
    let tree_paths = svc.sources.iter().flat_map(|s| match &s.kind {
        SourceKind::Files { paths, .. } | SourceKind::Secrets { paths } => paths.clone(),
        _ => Vec::new(),
    });
    for path in tree_paths {
        let rel = path.to_string_lossy().trim_matches('/').to_string();
        let parent = path
            .parent()
            .ok_or_else(|| anyhow!("cannot restore {} in place", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let staging = parent.join(format!(".{name}.lifeboat-restore-{stamp}"));
        let mut opts = RestoreOptions::new(&staging);
        opts.include = vec![rel.clone()];
        opts.skip_streams = true;
        let r = restore(repo, snap, &opts, reporter)
            .with_context(|| format!("restoring {}; it was not touched", path.display()))?;
        let restored = staging.join(&rel);
        let kept = if std::fs::symlink_metadata(&path).is_ok() {
            let old = beside(&path, &format!("old-{stamp}"));
            std::fs::rename(&path, &old)
                .with_context(|| format!("moving {} aside", path.display()))?;
            Some(old)
        } else {
            None
        };
        std::fs::rename(&restored, &path)
            .with_context(|| format!("moving the restored {} into place", path.display()))?;
        let _ = std::fs::remove_dir_all(&staging);
        out.files += r.files;
        out.bytes += r.bytes;
        out.paths.push((path, kept));
    }
    out.sources = restore_streamed(svc, repo, snap, &To::Live, reporter)?;
    Ok(out)
}
