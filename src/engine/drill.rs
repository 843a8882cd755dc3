//! Restore drills: restore a restore point into a throwaway sandbox through
//! the real restore path (which checks every file's hash, and restores
//! every database into a database of its own and checks it), measure how
//! long it took, and tear the sandbox down. The live service is never
//! touched.

use super::restore::tree::{restore_tree, Selection, TreeReport};
use crate::progress::Reporter;
use crate::repo::{Repository, Snapshot};
use crate::source::ledger::{Ledger, Made};
use crate::source::{Streams, To};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Where sandboxes are made (a directory with room for the restore).
    pub sandbox_root: PathBuf,
    /// The service's recovery time objective, to compare against.
    pub rto: Duration,
    /// The service as configured: its databases and streams are restored
    /// into sandboxes of their own and checked. Without it only files are.
    pub service: Option<crate::model::Service>,
    /// Where the drill's record of what it made goes, so a killed drill's
    /// sandboxes are cleaned up later; None keeps it in memory.
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub snapshot: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub rto_ms: u64,
    pub within_rto: bool,
    pub files: u64,
    pub bytes: u64,
    /// What went wrong, or what was checked.
    pub detail: String,
}

/// What restoring a point into a sandbox found.
pub struct SandboxReport {
    pub tree: TreeReport,
    /// (source, kind, detail, differences) per database or stream.
    pub sources: Vec<(String, String, String, Vec<String>)>,
}

impl SandboxReport {
    pub fn differences(&self) -> Vec<String> {
        self.sources
            .iter()
            .flat_map(|(s, _, _, d)| d.iter().map(move |x| format!("{s}: {x}")))
            .collect()
    }

    pub fn detail(&self) -> String {
        let mut detail = vec![format!(
            "restored {} into a sandbox; every file matched its recorded hash",
            crate::util::plural(self.tree.files, "file")
        )];
        detail.extend(
            self.sources
                .iter()
                .map(|(s, k, d, _)| format!("{k} {s}: {d}")),
        );
        let differences = self.differences();
        if !differences.is_empty() {
            detail.insert(0, format!("check failed: {}", differences.join("; ")));
        }
        detail.join("; ")
    }
}

/// Restores `snap` into `dir` (which must not exist; removed afterwards
/// whatever happens): the files, and with `svc` every database and stream
/// into a sandbox of its own, each checked.
pub fn sandbox(
    repo: &Repository,
    snap: &Snapshot,
    svc: Option<&crate::model::Service>,
    include: &[String],
    dir: &Path,
    ledger: &Ledger,
    reporter: &Reporter,
) -> Result<SandboxReport> {
    let made = Made::Path {
        path: dir.to_path_buf(),
    };
    ledger.made(made.clone())?;
    let result = (|| -> Result<SandboxReport> {
        let _lock = repo.lock(crate::repo::lock::Mode::Read, "drill", &|w| {
            reporter.warn(w)
        })?;
        let (index, _) = repo.load_index()?;
        let nodes = repo.read_tree(&index, snap)?;
        let streamed = svc.filter(|_| !snap.sources.is_empty() && include.is_empty());
        let sel = Selection {
            include: include.to_vec(),
            skip: Vec::new(),
            // A sandbox belongs to whoever runs the drill; ownership is
            // checked by the live restore, not here.
            owners: false,
            skip_streams: streamed.is_some(),
        };
        let tree = restore_tree(
            repo,
            &index,
            &nodes,
            snap,
            &sel,
            &dir.join("restore"),
            reporter,
        )?;
        let mut sources = Vec::new();
        if let Some(svc) = streamed {
            let streams = Streams::new(repo, &index, &nodes, reporter);
            let to = To::Sandbox(dir.join("sources"));
            for record in &snap.sources {
                reporter.check_cancelled()?;
                let src = svc.sources.iter().find(|s| s.name == record.name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "restore point {} has a {} source `{}` that service `{}` no longer configures; restore its files with `lifeboat restore {} .lifeboat/{} --target DIR`",
                        snap.short_id(), record.kind, record.name, svc.name, snap.short_id(), record.name
                    )
                })?;
                let s = crate::source::stage(src, record, &streams, &to, ledger).with_context(
                    || {
                        format!(
                            "service `{}`, source `{}` ({})",
                            svc.name, record.name, record.kind
                        )
                    },
                )?;
                sources.push((s.source, s.kind, s.detail, s.differences));
            }
        }
        Ok(SandboxReport { tree, sources })
    })();
    match crate::source::cleanup::remove(&made) {
        Ok(()) => ledger.unmade(&made),
        Err(e) => reporter.warn(format!(
            "could not remove the sandbox {}: {e:#}",
            dir.display()
        )),
    }
    result
}

pub fn drill(
    repo: &Repository,
    snap: &Snapshot,
    opts: &DrillOptions,
    reporter: &Reporter,
) -> Result<DrillReport> {
    std::fs::create_dir_all(&opts.sandbox_root)
        .with_context(|| format!("creating {}", opts.sandbox_root.display()))?;
    let id = crate::source::ledger::new_id("drill");
    let dir = opts.sandbox_root.join(format!("lifeboat-drill-{id}"));
    let ledger = Ledger::new(
        opts.state_dir.as_deref(),
        &id,
        &snap.service,
        (&snap.id, &snap.time),
    )?;
    let started = Instant::now();
    let result = sandbox(
        repo,
        snap,
        opts.service.as_ref(),
        &[],
        &dir,
        &ledger,
        reporter,
    );
    let took = started.elapsed();
    for p in crate::source::cleanup::finish(&ledger) {
        reporter.warn(p);
    }
    if let Err(e) = &result {
        if crate::error::is_cancelled(e) {
            return Err(result
                .err()
                .unwrap_or_else(|| crate::Error::Cancelled.into()));
        }
    }
    let rto_ms = opts.rto.as_millis() as u64;
    let duration_ms = took.as_millis() as u64;
    Ok(match result {
        Ok(r) => {
            let ok = r.differences().is_empty();
            DrillReport {
                snapshot: snap.id.clone(),
                ok,
                duration_ms,
                rto_ms,
                within_rto: ok && took <= opts.rto,
                files: r.tree.files,
                bytes: r.tree.bytes,
                detail: r.detail(),
            }
        }
        Err(e) => DrillReport {
            snapshot: snap.id.clone(),
            ok: false,
            duration_ms,
            rto_ms,
            within_rto: false,
            files: 0,
            bytes: 0,
            detail: format!("{e:#}"),
        },
    })
}
