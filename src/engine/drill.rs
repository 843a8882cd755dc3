//! Restore drills: restore a restore point into a throwaway sandbox through
//! the real restore path (which checks every file's hash), measure how long
//! it took, and tear the sandbox down. The live service is never touched.

use super::restore::{restore, RestoreOptions};
use crate::progress::Reporter;
use crate::repo::{Repository, Snapshot};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Where sandboxes are made (a directory with room for the restore).
    pub sandbox_root: PathBuf,
    /// The service's recovery time objective, to compare against.
    pub rto: Duration,
    /// The service as configured: its databases and streams are restored
    /// into sandboxes of their own and checked. Without it only files are.
    pub service: Option<crate::config::Service>,
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

pub fn drill(
    repo: &Repository,
    snap: &Snapshot,
    opts: &DrillOptions,
    reporter: &Reporter,
) -> Result<DrillReport> {
    std::fs::create_dir_all(&opts.sandbox_root)
        .with_context(|| format!("creating {}", opts.sandbox_root.display()))?;
    let sandbox = opts.sandbox_root.join(format!(
        "lifeboat-drill-{}-{:08x}",
        snap.short_id(),
        rand::random::<u32>()
    ));
    let started = Instant::now();
    let mut ropts = RestoreOptions::new(sandbox.join("restore"));
    // A sandbox belongs to whoever runs the drill; ownership is checked
    // by the live restore, not here.
    ropts.owners = false;
    let streamed = opts.service.as_ref().filter(|_| !snap.sources.is_empty());
    ropts.skip_streams = streamed.is_some();
    let result = restore(repo, snap, &ropts, reporter).and_then(|r| {
        let sources = match streamed {
            Some(svc) => crate::source::restore_streamed(
                svc,
                repo,
                snap,
                &crate::source::To::Sandbox(sandbox.join("sources")),
                reporter,
            )?,
            None => Vec::new(),
        };
        Ok((r, sources))
    });
    let took = started.elapsed();
    let cleanup = std::fs::remove_dir_all(&sandbox);
    let rto_ms = opts.rto.as_millis() as u64;
    let duration_ms = took.as_millis() as u64;
    let report = match result {
        Ok((r, sources)) => {
            let differences: Vec<String> = sources
                .iter()
                .flat_map(|s| {
                    s.restored
                        .differences
                        .iter()
                        .map(move |d| format!("{}: {d}", s.source))
                })
                .collect();
            let mut detail = vec![format!(
                "restored {} files into a sandbox; every file matched its recorded hash",
                r.files
            )];
            detail.extend(
                sources
                    .iter()
                    .map(|s| format!("{} {}: {}", s.kind, s.source, s.restored.detail)),
            );
            if !differences.is_empty() {
                detail.insert(0, format!("check failed: {}", differences.join("; ")));
            }
            DrillReport {
                snapshot: snap.id.clone(),
                ok: differences.is_empty(),
                duration_ms,
                rto_ms,
                within_rto: differences.is_empty() && took <= opts.rto,
                files: r.files,
                bytes: r.bytes,
                detail: detail.join("; "),
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
    };
    if let Err(e) = cleanup {
        if e.kind() != std::io::ErrorKind::NotFound {
            reporter.warn(format!(
                "could not remove the drill sandbox {}: {e}",
                sandbox.display()
            ));
        }
    }
    Ok(report)
}
