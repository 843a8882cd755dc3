//! Carrying out a [`RestorePlan`] where the service lives. Two phases:
//!
//! 1. **Stage**: every path is restored into staging beside itself (every
//!    file's hash checked), every database into a new database, every
//!    image and SQLite file into a new file, each checked against what the
//!    backup recorded. A cancel or a failure here removes all of it; nothing
//!    live was touched.
//! 2. **Swap**: one rename per path and per database, the replaced data
//!    kept and written down in the ledger as it happens. Once the first
//!    swap is done the restore finishes the rest rather than leave half a
//!    service swapped; a failure says what was replaced and how to roll
//!    it back.

use super::plan::{RestorePlan, Work};
use super::tree::{self, Selection};
use crate::progress::Reporter;
use crate::repo::{Repository, Snapshot};
use crate::source::ledger::{Ledger, Made, Replaced};
use crate::source::{self, swap, Commit, Staged, Streams, To};
use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What one item of the plan did.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub source: String,
    pub kind: String,
    pub detail: String,
    /// Checks that failed once the data was live.
    pub differences: Vec<String>,
    /// Where what it replaced is kept.
    pub kept: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveReport {
    pub id: String,
    pub files: u64,
    pub bytes: u64,
    pub done: Vec<Done>,
    #[serde(skip)]
    pub replaced: Vec<Replaced>,
    /// Staging that could not be removed.
    pub problems: Vec<String>,
}

impl LiveReport {
    /// Every check that failed after data was put back.
    pub fn differences(&self) -> Vec<String> {
        self.done
            .iter()
            .flat_map(|d| {
                d.differences
                    .iter()
                    .map(move |x| format!("{}: {x}", d.source))
            })
            .collect()
    }
}

struct StagedTree {
    item: usize,
    staging: PathBuf,
    /// The restored copy of the live path, inside `staging`.
    root: PathBuf,
    report: tree::TreeReport,
}

/// Stages and swaps in everything `plan` lists. `ledger` is the restore's
/// record (its id must be the plan's).
pub fn execute(
    repo: &Repository,
    snap: &Snapshot,
    plan: &RestorePlan,
    ledger: &Ledger,
    reporter: &Reporter,
) -> Result<LiveReport> {
    let _lock = repo.lock(crate::repo::lock::Mode::Read, "restore", &|w| {
        reporter.warn(w)
    })?;
    let (index, _) = repo.load_index()?;
    let streams = Streams::new(repo, &index, &plan.tree, reporter);
    let mut trees: Vec<StagedTree> = Vec::new();
    let mut staged: Vec<Staged> = Vec::new();
    let result = stage_all(
        repo,
        &index,
        snap,
        plan,
        &streams,
        ledger,
        reporter,
        &mut trees,
        &mut staged,
    );
    if let Err(e) = result {
        for s in &staged {
            source::discard(s, ledger);
        }
        let problems = source::cleanup::clean_up(ledger);
        let e = if crate::error::is_cancelled(&e) {
            e.context(format!(
                "the restore of {} was cancelled before anything live was replaced; what it had made was removed",
                plan.service
            ))
        } else {
            e.context(format!(
                "the restore of {} failed; nothing live was changed",
                plan.service
            ))
        };
        return Err(with_problems(e, &problems));
    }
    // From here on the restore finishes what it starts: a cancel now would
    // leave half a service swapped.
    let mut report = LiveReport {
        id: plan.id.clone(),
        files: trees.iter().map(|t| t.report.files).sum(),
        bytes: trees.iter().map(|t| t.report.bytes).sum(),
        done: Vec::new(),
        replaced: Vec::new(),
        problems: Vec::new(),
    };
    let swapped = swap_all(plan, trees, staged, &streams, ledger, &mut report);
    report.problems = source::cleanup::clean_up(ledger);
    report.replaced = ledger.record().replaced;
    match swapped {
        Ok(()) => Ok(report),
        Err(e) => {
            let already: Vec<String> = report
                .replaced
                .iter()
                .map(|r| match r.kept_text() {
                    Some(k) => format!("{} (the previous one kept as {k})", r.what()),
                    None => r.what(),
                })
                .collect();
            let e = if already.is_empty() {
                e.context(format!(
                    "the restore of {} failed; nothing live was changed",
                    plan.service
                ))
            } else {
                e.context(format!(
                    "the restore of {} failed halfway; already replaced: {}; `lifeboat rollback {}` puts them back",
                    plan.service,
                    already.join(", "),
                    plan.id
                ))
            };
            Err(with_problems(e, &report.problems))
        }
    }
}

fn with_problems(e: anyhow::Error, problems: &[String]) -> anyhow::Error {
    if problems.is_empty() {
        e
    } else {
        e.context(problems.join("; "))
    }
}

#[allow(clippy::too_many_arguments)]
fn stage_all(
    repo: &Repository,
    index: &crate::repo::Index,
    snap: &Snapshot,
    plan: &RestorePlan,
    streams: &Streams,
    ledger: &Ledger,
    reporter: &Reporter,
    trees: &mut Vec<StagedTree>,
    staged: &mut Vec<Staged>,
) -> Result<()> {
    for (i, item) in plan.items.iter().enumerate() {
        reporter.check_cancelled()?;
        match &item.work {
            Work::Tree {
                live, rel, skip, ..
            } => {
                let staging = swap::staging_path(live, &plan.id);
                ledger.made(Made::Path {
                    path: staging.clone(),
                })?;
                let sel = Selection {
                    include: vec![rel.clone()],
                    skip: skip.clone(),
                    skip_streams: true,
                    owners: Selection::all().owners,
                };
                let r = tree::restore_tree(repo, index, &plan.tree, snap, &sel, &staging, reporter)
                    .with_context(|| format!("restoring {}", live.display()))?;
                trees.push(StagedTree {
                    item: i,
                    root: staging.join(rel),
                    staging,
                    report: r,
                });
            }
            Work::Stream {
                source: src,
                record,
                inside,
            } => {
                let file = match inside {
                    Some((t, below)) => Some(
                        trees
                            .iter()
                            .find(|s| s.item == *t)
                            .ok_or_else(|| anyhow!("internal: tree {t} not staged"))?
                            .root
                            .join(below),
                    ),
                    None => None,
                };
                let s = source::stage(src, record, streams, &To::Live { file }, ledger)
                    .with_context(|| format!("{} `{}`", item.kind, item.source))?;
                staged.push(s);
            }
        }
    }
    reporter.check_cancelled()
}

fn swap_all(
    plan: &RestorePlan,
    trees: Vec<StagedTree>,
    staged: Vec<Staged>,
    streams: &Streams,
    ledger: &Ledger,
    report: &mut LiveReport,
) -> Result<()> {
    // Before the first swap: an entry kept in place must not collide with
    // one the restore wrote.
    for t in &trees {
        if let Work::Tree { live, carry, .. } = &plan.items[t.item].work {
            if let Some(both) = carry
                .iter()
                .find(|c| std::fs::symlink_metadata(t.root.join(c)).is_ok())
            {
                anyhow::bail!(
                    "{} is both in the restored copy and kept in place from the live one",
                    live.join(both).display()
                );
            }
        }
    }
    for t in trees {
        let item = &plan.items[t.item];
        let Work::Tree { live, carry, .. } = &item.work else {
            continue;
        };
        // Secrets just as they were are left alone: swapping them would only
        // leave a copy of every secret beside them for nothing.
        if item.kind == "secrets" && carry.is_empty() && same_as_live(&t.root, live) {
            // Forgotten only once gone: a copy of secrets that stays must
            // stay findable by `leftovers`.
            if std::fs::remove_dir_all(&t.staging).is_ok() {
                ledger.unmade(&Made::Path { path: t.staging });
            }
            report.done.push(Done {
                source: item.source.clone(),
                kind: item.kind.clone(),
                detail: format!(
                    "{} unchanged: {} as recorded, left in place",
                    live.display(),
                    crate::util::plural(t.report.files, "file"),
                ),
                differences: Vec::new(),
                kept: None,
            });
            continue;
        }
        let kept = swap::kept_path(live, &plan.id);
        // Old secrets waiting for a rollback are nobody else's business.
        let had = source::cleanup::swap_in_recorded(
            ledger,
            &item.source,
            &t.root,
            live,
            &kept,
            carry,
            item.kind == "secrets",
        )
        .with_context(|| format!("{} `{}`", item.kind, item.source))?;
        let _ = std::fs::remove_dir_all(&t.staging);
        ledger.unmade(&Made::Path { path: t.staging });
        report.done.push(Done {
            source: item.source.clone(),
            kind: item.kind.clone(),
            detail: format!(
                "{} restored: {} ({}), every file matched its recorded hash",
                live.display(),
                crate::util::plural(t.report.files, "file"),
                crate::util::human_bytes(t.report.bytes)
            ),
            differences: Vec::new(),
            kept: had.then(|| kept.display().to_string()),
        });
    }
    // Streams piped into a command go last: they cannot be taken back.
    let (commands, others): (Vec<Staged>, Vec<Staged>) = staged
        .into_iter()
        .partition(|s| matches!(s.commit, Commit::Command { .. }));
    for s in others.into_iter().chain(commands) {
        let what = format!("{} `{}`", s.kind, s.source);
        let c = source::commit(s, streams, ledger).with_context(|| what.clone())?;
        report.done.push(Done {
            kept: c.replaced.as_ref().and_then(|r| r.kept_text()),
            source: c.source,
            kind: c.kind,
            detail: c.detail,
            differences: c.differences,
        });
    }
    Ok(())
}

/// Is the live entry at `live` what the checked copy at `staged` is:
/// the same kinds, content, modes, owners, and files' times? Anything
/// unreadable counts as different. Meant for secrets: small files, read
/// whole.
fn same_as_live(staged: &Path, live: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    const MAX_COMPARED: u64 = 16 << 20;
    let (Ok(a), Ok(b)) = (
        std::fs::symlink_metadata(staged),
        std::fs::symlink_metadata(live),
    ) else {
        return false;
    };
    if a.file_type() != b.file_type()
        || a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
    {
        return false;
    }
    if a.is_file() {
        return a.len() == b.len()
            && a.len() <= MAX_COMPARED
            && (a.mtime(), a.mtime_nsec()) == (b.mtime(), b.mtime_nsec())
            && matches!(
                (std::fs::read(staged), std::fs::read(live)),
                (Ok(x), Ok(y)) if x == y
            );
    }
    if a.file_type().is_symlink() {
        return matches!(
            (std::fs::read_link(staged), std::fs::read_link(live)),
            (Ok(x), Ok(y)) if x == y
        );
    }
    if !a.is_dir() {
        return false;
    }
    let names = |p: &Path| -> Option<Vec<std::ffi::OsString>> {
        let mut v = std::fs::read_dir(p)
            .ok()?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<Vec<_>>>()
            .ok()?;
        v.sort();
        Some(v)
    };
    match (names(staged), names(live)) {
        (Some(x), Some(y)) if x == y => x
            .iter()
            .all(|n| same_as_live(&staged.join(n), &live.join(n))),
        _ => false,
    }
}
