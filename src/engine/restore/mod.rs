//! Restores. Every one goes the same way: plan what will be written and
//! what it replaces, restore into staging beside the target, check every
//! file against its hash (and every database against what the backup
//! recorded), then swap the checked copies in with one rename each, keeping
//! what they replace. A [`Ledger`] writes down what was made and replaced
//! as it happens, so a failure or a cancel cleans up after itself and
//! `lifeboat rollback ID` can put everything back.
//!
//! - [`restore`]: part of a snapshot into a directory (`restore --target`).
//! - [`plan::plan_service`] and [`live::execute`]: a service back where it
//!   lives, sources owning what they restore.

pub mod at;
pub mod check;
mod finish;
pub mod live;
pub mod plan;
pub mod rollback;
pub mod tree;

pub use crate::repo::reader::FileReader;
pub use tree::{hash_reader, Selection, TreeReport};

use crate::progress::{Counters, Phase, Reporter};
use crate::repo::{Repository, Snapshot};
use crate::source::ledger::{Ledger, Made};
use crate::source::swap;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tree::TargetState;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Paths inside the snapshot to restore (with everything below them);
    /// empty restores everything.
    pub include: Vec<String>,
    /// Restore into a non-empty target: the entries the restore writes
    /// replace what is there, which is kept aside; nothing else is touched.
    pub force: bool,
    /// Restore file ownership (on by default when running as root).
    pub owners: bool,
    /// Leave out streamed sources (`.lifeboat/`): they are restored into
    /// their databases, not as files.
    pub skip_streams: bool,
    /// Where the restore's record goes (for `rollback` and `leftovers`);
    /// None keeps it in memory.
    pub state_dir: Option<PathBuf>,
    /// The restore's id; a new one when None.
    pub id: Option<String>,
    /// A rescue: restore every file whose data is intact, leave out (and
    /// name in the report) those whose data is lost or damaged.
    pub skip_damaged: bool,
}

impl RestoreOptions {
    pub fn new(target: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            target: target.into(),
            include: Vec::new(),
            force: false,
            owners: unsafe { libc::geteuid() } == 0,
            skip_streams: false,
            state_dir: None,
            id: None,
            skip_damaged: false,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The restore's id (`lifeboat rollback ID`).
    pub id: String,
    pub snapshot: String,
    pub target: PathBuf,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Where what the restore replaced was kept (with --force).
    pub rollback: Option<PathBuf>,
    /// The entries of the target it replaced.
    pub replaced: Vec<PathBuf>,
    pub duration_ms: u64,
    /// With `skip_damaged`: the files that could not be restored, and why.
    /// None of them was written into the target.
    pub damaged: Vec<tree::DamagedFile>,
}

/// Restores part of `snap` into the directory `opts.target`. Into a
/// missing or empty target the checked copy is renamed into place; into a
/// non-empty one (`force`) only the entries the restore writes are
/// replaced, each kept under `.TARGET.lifeboat-kept-ID/`.
pub fn restore(
    repo: &Repository,
    snap: &Snapshot,
    opts: &RestoreOptions,
    reporter: &Reporter,
) -> Result<RestoreReport> {
    let started = Instant::now();
    repo.data_identity()?;
    let target = std::path::absolute(&opts.target)
        .with_context(|| format!("target {}", opts.target.display()))?;
    // Refuse before doing any work.
    let state = tree::target_state(&target)?;
    if state == TargetState::NonEmpty && !opts.force {
        return Err(crate::Error::TargetNotEmpty { target }.into());
    }
    let _lock = repo.lock(crate::repo::lock::Mode::Read, "restore", &|w| {
        reporter.warn(w)
    })?;
    reporter.progress(
        Counters {
            phase: Phase::Restore,
            ..Default::default()
        },
        None,
        true,
    );
    let (index, damaged) = repo.load_index()?;
    for (name, why) in &damaged {
        reporter.warn(format!(
            "index file {name} is damaged ({why}); the chunks it lists count as missing: run `lifeboat verify`"
        ));
    }
    let nodes = repo.read_tree(&index, snap)?;
    let id = opts
        .id
        .clone()
        .unwrap_or_else(|| crate::source::ledger::new_id("restore"));
    let ledger = Ledger::new(
        opts.state_dir.as_deref(),
        &id,
        &snap.service,
        (&snap.id, &snap.time),
    )?;
    let staging = swap::staging_path(&target, &id);
    let made = Made::Path {
        path: staging.clone(),
    };
    ledger.made(made.clone())?;
    let sel = Selection {
        include: opts.include.clone(),
        skip: Vec::new(),
        skip_streams: opts.skip_streams,
        owners: opts.owners,
    };
    let result = tree::restore_tree_with(
        repo,
        &index,
        &nodes,
        snap,
        &sel,
        &staging,
        reporter,
        opts.skip_damaged,
    )
    .and_then(|r| {
        images_in_recorded_format(&staging, snap, reporter)?;
        Ok((r, place(&staging, &target, state, opts, &ledger)?))
    });
    let already = ledger.record().replaced.len();
    let problems = crate::source::cleanup::finish(&ledger);
    let (written, (rollback, replaced)) = result.map_err(|e| {
        let changed = if already == 0 {
            format!("{} was not changed", target.display())
        } else {
            format!(
                "{already} entries of {} were already replaced; `lifeboat rollback {id}` puts them back",
                target.display()
            )
        };
        e.context(format!(
            "restore of restore point {} failed; {changed}{}",
            snap.short_id(),
            problems
                .iter()
                .map(|p| format!("; {p}"))
                .collect::<String>()
        ))
    })?;
    for p in problems {
        reporter.warn(p);
    }
    let report = RestoreReport {
        id,
        snapshot: snap.id.clone(),
        target,
        files: written.files,
        dirs: written.dirs,
        symlinks: written.symlinks,
        bytes: written.bytes,
        rollback,
        replaced,
        duration_ms: started.elapsed().as_millis() as u64,
        damaged: written.damaged,
    };
    reporter.progress(
        Counters {
            phase: Phase::Done,
            files_done: report.files,
            files_total: report.files,
            bytes_done: report.bytes,
            bytes_total: report.bytes,
            bytes_stored: 0,
        },
        None,
        true,
    );
    Ok(report)
}

/// Disk images are stored raw: the checked copies go back into the format
/// each was backed up from (a qcow2 as a qcow2).
fn images_in_recorded_format(staging: &Path, snap: &Snapshot, reporter: &Reporter) -> Result<()> {
    for record in snap.sources.iter().filter(|r| r.kind == "vm-image") {
        let kept = crate::source::vm_image::convert_restored(staging, &snap.short_id(), record)
            .with_context(|| format!("vm-image `{}`", record.name))?;
        if let Some(w) = kept {
            reporter.warn(format!("vm-image `{}`: {w}", record.name));
        }
    }
    Ok(())
}

/// Moves the checked staging copy into the target; returns where replaced
/// entries were kept and which they were.
fn place(
    staging: &Path,
    target: &Path,
    state: TargetState,
    opts: &RestoreOptions,
    ledger: &Ledger,
) -> Result<(Option<PathBuf>, Vec<PathBuf>)> {
    // Looked at again now: the target may have appeared meanwhile.
    let now = tree::target_state(target)?;
    if now == TargetState::NonEmpty && state != TargetState::NonEmpty && !opts.force {
        return Err(crate::Error::TargetNotEmpty {
            target: target.to_path_buf(),
        }
        .into());
    }
    if now == TargetState::Missing {
        // A new directory appears whole.
        swap::swap_in(staging, target, &swap::kept_path(target, &ledger.id()), &[])?;
        ledger.unmade(&Made::Path {
            path: staging.to_path_buf(),
        });
        return Ok((None, Vec::new()));
    }
    // An existing directory (empty, or a mount point) is never replaced:
    // the entries the restore writes move into it one by one.
    let keep = swap::kept_path(target, &ledger.id());
    let mut replaced = Vec::new();
    for unit in units(staging, target, &opts.include)? {
        let live = target.join(&unit);
        let kept = keep.join(&unit);
        if let Some(parent) = kept.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let had = crate::source::cleanup::swap_in_recorded(
            ledger,
            "",
            &staging.join(&unit),
            &live,
            &kept,
            &[],
            false,
        )?;
        if had {
            replaced.push(live);
        }
    }
    let _ = std::fs::remove_dir_all(staging);
    ledger.unmade(&Made::Path {
        path: staging.to_path_buf(),
    });
    let rollback = if replaced.is_empty() {
        let _ = std::fs::remove_dir_all(&keep);
        None
    } else {
        Some(keep)
    };
    Ok((rollback, replaced))
}

/// The entries a restore into a non-empty target writes: for each
/// included path, its highest ancestor the target lacks (created whole),
/// else the path itself (replaced). Without includes, the top-level
/// entries of the restored copy.
fn units(staging: &Path, target: &Path, include: &[String]) -> Result<Vec<PathBuf>> {
    let roots: Vec<PathBuf> = if include.is_empty() {
        std::fs::read_dir(staging)
            .with_context(|| format!("reading {}", staging.display()))?
            .map(|e| e.map(|e| PathBuf::from(e.file_name())))
            .collect::<std::io::Result<_>>()?
    } else {
        include
            .iter()
            .map(|i| PathBuf::from(i.trim_matches('/')))
            .collect()
    };
    let mut units: Vec<PathBuf> = Vec::new();
    for root in roots {
        let mut unit = PathBuf::new();
        for c in root.components() {
            unit.push(c);
            if std::fs::symlink_metadata(target.join(&unit)).is_err() {
                break;
            }
        }
        units.push(unit);
    }
    units.sort();
    units.dedup();
    // A unit inside another moves with it.
    let all = units.clone();
    units.retain(|u| !all.iter().any(|o| o != u && u.starts_with(o)));
    Ok(units)
}
