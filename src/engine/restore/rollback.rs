//! Rollback: everything a restore replaced goes back, the last swap first.
//! What the rollback takes out again is itself kept and written down, so a
//! rollback that was the mistake can be rolled back too.

use crate::source::ledger::{self, Ledger, Replaced};
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub id: String,
    /// The restore it undid.
    pub undoes: String,
    /// What went back, for people.
    pub done: Vec<String>,
    /// Where the restored data it took out is kept.
    pub kept: Vec<String>,
    /// What cannot be taken back (a stream piped into its command).
    pub skipped: Vec<String>,
}

/// Puts back what restore `of` replaced. `ledger` is the rollback's own
/// record. A failure stops at that item: what was already put back is
/// said, and running the rollback again goes on from there.
pub fn rollback(state_dir: &Path, of: &str, ledger: &Ledger) -> Result<RollbackReport> {
    let mut rec = ledger::load(state_dir, of)?;
    if let Some(by) = &rec.undone_by {
        bail!("restore {of} was already rolled back by {by}");
    }
    if !rec.holder.is_gone() && !rec.finished {
        bail!(
            "restore {of} is still running (pid {} on {})",
            rec.holder.pid,
            rec.holder.host
        );
    }
    if rec.replaced.is_empty() {
        bail!("restore {of} replaced nothing, so there is nothing to roll back");
    }
    ledger.set_undoes(of)?;
    let mut report = RollbackReport {
        id: ledger.id(),
        undoes: of.to_string(),
        done: Vec::new(),
        kept: Vec::new(),
        skipped: Vec::new(),
    };
    while let Some(last) = rec.replaced.last().cloned() {
        if let Replaced::Command { source, command } = &last {
            report.skipped.push(format!(
                "source `{source}`: the stream piped into `{command}` cannot be taken back out; restore an older point of it if needed"
            ));
            rec.replaced.pop();
            ledger::save(state_dir, &rec)?;
            continue;
        }
        let undone = crate::source::undo(&last, &ledger.id()).map_err(|e| {
            let so_far = if report.done.is_empty() {
                "nothing was put back yet".to_string()
            } else {
                format!("already put back: {}", report.done.join(", "))
            };
            e.context(format!("rolling back {}; {so_far}", last.what()))
        })?;
        rec.replaced.pop();
        ledger::save(state_dir, &rec)?;
        report.done.push(last.what());
        if let Some(k) = undone.kept_text() {
            report.kept.push(k);
        }
        ledger.replaced(undone)?;
    }
    rec.undone_by = Some(ledger.id());
    ledger::save(state_dir, &rec)?;
    Ok(report)
}

/// The restores `id` names that can be rolled back: the restore with that
/// id, or every restore of the job with that id; newest first.
pub fn targets(state_dir: &Path, id: &str) -> Vec<ledger::Record> {
    let (mut records, _) = ledger::list(state_dir);
    records.retain(|r| {
        (r.id == id || r.job.as_deref() == Some(id))
            && r.undone_by.is_none()
            && !r.replaced.is_empty()
    });
    records.reverse();
    records
}
