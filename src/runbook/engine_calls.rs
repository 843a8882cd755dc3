//! Every restore, check, verify and drill a runbook performs goes through
//! this module: the one seam between runbooks and the engine. A single
//! path is restored by the engine's restore (staged, hash-checked, swapped
//! into place with a rollback copy); a whole service goes through the
//! source adapters (`crate::source`), which restore databases, streams and
//! images into a new copy, check it and swap it in.

use crate::config::{Config, Service, Source, SourceKind};
use crate::engine::{self, DrillOptions, DrillReport, RestoreOptions};
use crate::progress::Reporter;
use crate::repo::tree::{is_at_or_under, NodeKind};
use crate::repo::{KeySource, Repository, Snapshot};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The name runbooks use for a source's kind in `applies_to.kinds`.
pub fn kind_of(src: &Source) -> &'static str {
    src.kind.name()
}

/// Where a restore writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Over the live data: staged beside it, checked, swapped in; what it
    /// replaces is kept as a rollback copy.
    Live,
    /// A throwaway sandbox under the state directory, removed afterwards.
    Sandbox,
    /// A directory that mirrors the original paths (left for the admin).
    Dir(PathBuf),
}

impl Target {
    pub fn parse(s: &str) -> Target {
        match s {
            "live" => Target::Live,
            "sandbox" => Target::Sandbox,
            dir => Target::Dir(PathBuf::from(dir)),
        }
    }
}

/// Staging directories a job has in flight, so a cancelled job removes
/// them before it exits.
pub type Staging = Arc<Mutex<Vec<PathBuf>>>;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    pub files: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    /// Where data landed (live paths, or the directory).
    pub restored: Vec<PathBuf>,
    /// What a live restore replaced, kept until the admin deletes it.
    pub rollback: Vec<PathBuf>,
    pub detail: String,
}

/// The repositories a job may read, with the key override from the
/// command line (a path, never the key itself).
pub struct Repos<'a> {
    pub config: &'a Config,
    pub key: Option<PathBuf>,
    /// The job's staging directories in flight.
    pub staging: Staging,
}

impl Repos<'_> {
    pub fn open(&self, name: &str) -> Result<Repository> {
        let r = self
            .config
            .repositories
            .get(name)
            .ok_or_else(|| anyhow!("no repository named `{name}` in the config"))?;
        let key = match (&self.key, &r.key_file) {
            (Some(k), _) => KeySource::File(k.clone()),
            (None, Some(k)) => KeySource::File(k.clone()),
            (None, None) => KeySource::Default,
        };
        Repository::open(crate::repo::backend_for(r)?, key)
    }
}

/// `latest`, an id (or unique prefix), or `before:TIME` — the newest
/// restore point taken before TIME (RFC 3339, or `2026-11-20 14:00`).
///
/// An id chosen in one repository also finds its copy in another (copies
/// remember the id they were made from), so a point picked from the
/// on-site list restores from the off-site repository.
pub fn resolve_point(repo: &Repository, service: &str, spec: &str) -> Result<Snapshot> {
    let Some(when) = spec.strip_prefix("before:") else {
        return repo.find_snapshot(spec, Some(service)).or_else(|e| {
            let (snaps, _) = repo.list_snapshots()?;
            let copies: Vec<Snapshot> = snaps
                .into_iter()
                .filter(|s| s.service == service)
                .filter(|s| {
                    s.origin
                        .as_deref()
                        .is_some_and(|o| !spec.is_empty() && o.starts_with(spec))
                })
                .collect();
            match <[Snapshot; 1]>::try_from(copies) {
                Ok([one]) => Ok(one),
                Err(_) => Err(e),
            }
        });
    };
    let limit = humantime::parse_rfc3339_weak(when.trim())
        .with_context(|| format!("before:{when}: expected a time like 2026-11-20T14:00:00Z"))?;
    let (snaps, _) = repo.list_snapshots()?;
    snaps
        .into_iter()
        .filter(|s| s.service == service)
        .filter(|s| s.system_time().is_some_and(|t| t < limit))
        .max_by(|a, b| a.time.cmp(&b.time))
        .ok_or_else(|| anyhow!("{service} has no restore point taken before {when}"))
}

/// The snapshot paths a restore covers: one path, or every source path.
fn scope(svc: &Service, path: Option<&str>) -> Result<Vec<PathBuf>> {
    if let Some(p) = path {
        let p = PathBuf::from(p);
        if !p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
            bail!("path {}: give an absolute path without `..`", p.display());
        }
        return Ok(vec![p]);
    }
    Ok(svc
        .sources
        .iter()
        .flat_map(|s| match &s.kind {
            SourceKind::Files { paths, .. } | SourceKind::Secrets { paths } => paths.clone(),
            _ => Vec::new(),
        })
        .collect())
}

fn rel(p: &Path) -> String {
    p.to_string_lossy().trim_matches('/').to_string()
}

/// Restores a service (or one path of it) from `snap` to `target`.
pub fn restore_service(
    repos: &Repos,
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    path: Option<&str>,
    target: &Target,
    reporter: &Reporter,
) -> Result<Outcome> {
    let staging = &repos.staging;
    let started = std::time::Instant::now();
    let paths = scope(svc, path)?;
    let mut out = Outcome::default();
    match target {
        Target::Dir(dir) => {
            let mut opts = RestoreOptions::new(dir);
            opts.include = paths.iter().map(|p| rel(p)).collect();
            let r = engine::restore(repo, snap, &opts, reporter)?;
            out.files = r.files;
            out.bytes = r.bytes;
            out.restored.push(dir.clone());
        }
        Target::Sandbox => {
            let root = repos.config.state_dir.join("sandboxes").join(format!(
                "restore-{}-{:08x}",
                snap.short_id(),
                rand::random::<u32>()
            ));
            let mut opts = RestoreOptions::new(root.join("restore"));
            opts.include = paths.iter().map(|p| rel(p)).collect();
            opts.owners = false;
            opts.skip_streams = path.is_none() && !snap.sources.is_empty();
            track(staging, &root);
            let r = engine::restore(repo, snap, &opts, reporter).and_then(|r| {
                let sources = if opts.skip_streams {
                    crate::source::restore_streamed(
                        svc,
                        repo,
                        snap,
                        &crate::source::To::Sandbox(root.join("sources")),
                        reporter,
                    )?
                } else {
                    Vec::new()
                };
                Ok((r, sources))
            });
            let _ = std::fs::remove_dir_all(&root);
            untrack(staging, &root);
            let (r, sources) = r?;
            out.files = r.files;
            out.bytes = r.bytes;
            sources_detail(&mut out, &sources)?;
        }
        Target::Live if path.is_none() => {
            // A whole service: every path staged first, each database
            // restored, checked and swapped, then the paths swapped in,
            // under the job's staging lock.
            let r = crate::source::restore_live(svc, repo, snap, reporter, Some(staging))?;
            out.files = r.files;
            out.bytes = r.bytes;
            for (p, kept) in &r.paths {
                out.restored.push(p.clone());
                out.rollback.extend(kept.clone());
            }
            let differences = r.differences();
            sources_detail(&mut out, &r.sources)?;
            if !differences.is_empty() {
                bail!(
                    "restored, but the check found differences: {}",
                    differences.join("; ")
                );
            }
        }
        Target::Live => {
            for p in &paths {
                let r = restore_live(repo, snap, p, staging, reporter)?;
                out.files += r.files;
                out.bytes += r.bytes;
                out.restored.extend(r.restored);
                out.rollback.extend(r.rollback);
            }
        }
    }
    out.duration_ms = started.elapsed().as_millis() as u64;
    let files = format!(
        "restored {} files ({}) from {}; every file matched its recorded hash",
        out.files,
        crate::util::human_bytes(out.bytes),
        snap.short_id()
    );
    out.detail = if out.detail.is_empty() {
        files
    } else {
        format!("{files}; {}", out.detail)
    };
    Ok(out)
}

/// Adds what each database or stream restore did; a sandbox check that
/// found differences fails the step.
fn sources_detail(out: &mut Outcome, sources: &[crate::source::SourceOutcome]) -> Result<()> {
    let lines: Vec<String> = sources
        .iter()
        .map(|s| {
            let mut l = format!("{} {}: {}", s.kind, s.source, s.restored.detail);
            if let Some(k) = &s.restored.kept {
                l.push_str(&format!(" ({k})"));
            }
            l
        })
        .collect();
    out.detail = lines.join("; ");
    let differences: Vec<String> = sources
        .iter()
        .flat_map(|s| {
            s.restored
                .differences
                .iter()
                .map(move |d| format!("{}: {d}", s.source))
        })
        .collect();
    if !differences.is_empty() {
        bail!(
            "the restored copy differs from the backup: {}",
            differences.join("; ")
        );
    }
    Ok(())
}

fn track(staging: &Staging, p: &Path) {
    if let Ok(mut s) = staging.lock() {
        s.push(p.to_path_buf());
    }
}

fn untrack(staging: &Staging, p: &Path) {
    if let Ok(mut s) = staging.lock() {
        s.retain(|x| x != p);
    }
}

/// One live path: restore it into a staging directory beside it (same
/// filesystem, so the swap is a rename), move what is there aside as a
/// rollback copy, rename the restored copy into place.
fn restore_live(
    repo: &Repository,
    snap: &Snapshot,
    live: &Path,
    staging: &Staging,
    reporter: &Reporter,
) -> Result<Outcome> {
    let (Some(parent), Some(name)) = (live.parent(), live.file_name()) else {
        bail!(
            "cannot restore {} over live data: it has no parent directory",
            live.display()
        );
    };
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let stage = parent.join(format!(".lifeboat-restore-{:08x}", rand::random::<u32>()));
    track(staging, &stage);
    let result = (|| -> Result<Outcome> {
        let mut opts = RestoreOptions::new(stage.join("t"));
        opts.include = vec![rel(live)];
        let r = engine::restore(repo, snap, &opts, reporter)?;
        let restored = stage.join("t").join(rel(live));
        // The swap happens under the staging lock: a cancelled job removes
        // staging under the same lock, so it never removes half of a copy
        // that is being moved into place, and never swaps in a half-removed one.
        let mut guard = staging.lock().map_err(|_| anyhow!("the job is stopping"))?;
        if !guard.contains(&stage) {
            bail!("cancelled before {} was replaced", live.display());
        }
        let mut rollback = Vec::new();
        if live.symlink_metadata().is_ok() {
            let stamp = crate::repo::snapshot::now_rfc3339().replace([':', '-'], "");
            let aside = parent.join(format!(
                ".{}.lifeboat-rollback-{}",
                name.to_string_lossy(),
                stamp.get(..15).unwrap_or(&stamp)
            ));
            std::fs::rename(live, &aside).with_context(|| {
                format!("moving {} aside to {}", live.display(), aside.display())
            })?;
            rollback.push(aside);
        }
        if let Err(e) = std::fs::rename(&restored, live) {
            // Put back what was there rather than leave nothing.
            if let Some(aside) = rollback.first() {
                let _ = std::fs::rename(aside, live);
            }
            return Err(anyhow::Error::new(e)
                .context(format!("moving the restored copy into {}", live.display())));
        }
        guard.retain(|x| x != &stage);
        drop(guard);
        Ok(Outcome {
            files: r.files,
            bytes: r.bytes,
            restored: vec![live.to_path_buf()],
            rollback,
            ..Default::default()
        })
    })();
    let _ = std::fs::remove_dir_all(&stage);
    untrack(staging, &stage);
    result
}

/// The application-level check after a restore. For files: every file of
/// the restored scope, read back from `root` (`/` for live data) and
/// hashed, matches the restore point.
pub fn check_service(
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    path: Option<&str>,
    root: &Path,
) -> Result<String> {
    let scope: Vec<String> = scope(svc, path)?.iter().map(|p| rel(p)).collect();
    let (index, _) = repo.load_index()?;
    let nodes = repo.read_tree(&index, snap)?;
    let mut files = 0u64;
    let mut bad = Vec::new();
    for n in nodes
        .iter()
        .filter(|n| scope.iter().any(|s| is_at_or_under(&n.path, s)))
    {
        let p = root.join(&n.path);
        match n.kind {
            NodeKind::File => {
                files += 1;
                let ok = match (&n.hash, std::fs::File::open(&p)) {
                    (Some(want), Ok(f)) => {
                        engine::restore::hash_reader(&f).is_ok_and(|h| h == *want)
                    }
                    (None, Ok(_)) => true,
                    (_, Err(_)) => false,
                };
                if !ok {
                    bad.push(format!("/{}", n.path));
                }
            }
            NodeKind::Dir | NodeKind::Symlink => {
                if p.symlink_metadata().is_err() {
                    bad.push(format!("/{}", n.path));
                }
            }
        }
    }
    if !bad.is_empty() {
        bail!(
            "{} of {} files differ from restore point {} or are missing: {}{}",
            bad.len(),
            files,
            snap.short_id(),
            bad.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if bad.len() > 5 { ", …" } else { "" }
        );
    }
    if files == 0 && path.is_some() {
        bail!(
            "nothing of {} is in restore point {}",
            scope.join(", "),
            snap.short_id()
        );
    }
    let mut said = vec![format!(
        "{files} files of {} match restore point {}",
        svc.name,
        snap.short_id()
    )];
    if path.is_none() && root == Path::new("/") {
        // Databases and streams: what is live now, against what was recorded.
        for c in crate::source::check_live(svc, snap)? {
            if !c.differences.is_empty() {
                bail!(
                    "{} {} differs from restore point {}: {}",
                    c.kind,
                    c.source,
                    snap.short_id(),
                    c.differences.join("; ")
                );
            }
            said.push(format!("{} {}: {}", c.kind, c.source, c.detail));
        }
    }
    Ok(said.join("; "))
}

/// Reads back every byte of a restore point in a sandbox (hashes checked)
/// before anyone trusts it; nothing is recorded.
pub fn verify_point(
    repos: &Repos,
    repo: &Repository,
    snap: &Snapshot,
    reporter: &Reporter,
) -> Result<String> {
    let staging = &repos.staging;
    let root = repos
        .config
        .state_dir
        .join("sandboxes")
        .join(format!("verify-{:08x}", rand::random::<u32>()));
    track(staging, &root);
    let r = engine::drill(
        repo,
        snap,
        &DrillOptions {
            sandbox_root: root.clone(),
            rto: std::time::Duration::MAX,
            service: None,
        },
        reporter,
    );
    let _ = std::fs::remove_dir_all(&root);
    untrack(staging, &root);
    let r = r?;
    if !r.ok {
        bail!(
            "restore point {} does not restore: {}",
            snap.short_id(),
            r.detail
        );
    }
    Ok(format!(
        "restore point {} reads back whole: {} files, {}",
        snap.short_id(),
        r.files,
        crate::util::human_bytes(r.bytes)
    ))
}

/// A backup of the service into its own repository, its databases and
/// streams included: what `lifeboat backup SERVICE` does.
pub fn backup_service(repos: &Repos, svc: &Service, reporter: &Reporter) -> Result<Snapshot> {
    let repo = repos.open(&svc.repository)?;
    let cache_dir = &repos.config.cache_dir;
    let mut opts = engine::BackupOptions::for_service(svc, cache_dir);
    opts.skip_paths.push(cache_dir.clone());
    if let Some(r) = repos.config.repositories.get(&svc.repository) {
        opts.skip_paths.push(r.path.clone());
    }
    let captures = crate::source::captures(svc, cache_dir);
    engine::backup_with(&repo, &opts, captures, reporter)
}

/// A drill: sandbox restore, check, time against the RTO, recorded for
/// health. The live service is never touched.
pub fn drill_service(
    repos: &Repos,
    svc: &Service,
    repo: &Repository,
    snap: &Snapshot,
    reporter: &Reporter,
) -> Result<DrillReport> {
    let report = engine::drill(
        repo,
        snap,
        &DrillOptions {
            sandbox_root: repos.config.state_dir.join("sandboxes"),
            rto: svc.policy.rto,
            service: Some(svc.clone()),
        },
        reporter,
    )?;
    crate::records::Records::new(&repos.config.state_dir)
        .add_drill(&crate::records::DrillRecord::new(&svc.name, &report))?;
    Ok(report)
}
