//! `lifeboat locks status|extend|recover`: S3 Object Lock on a repository.

use super::output::{self, human_bytes, Progress};
use super::Ctx;
use anyhow::Result;
use clap::Subcommand;
use lifeboat::engine::{self, locks};
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::SystemTime;

#[derive(Subcommand)]
pub enum LocksCommand {
    /// How much is locked, until when, and what carries no lock
    Status,
    /// Keep what kept restore points need locked for the lock time from now (run it after backups)
    Extend,
    /// After an attack: make the locked originals of deleted or replaced objects current again, then rebuild the index
    Recover,
}

fn date(t: Option<SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn locks(ctx: &Ctx, c: LocksCommand) -> Result<ExitCode> {
    match c {
        LocksCommand::Status => {
            let (backend, _) = ctx.location(None)?;
            let Some(st) = locks::status(backend.as_ref())? else {
                anyhow::bail!(
                    "{} has no Object Lock: set object_lock = {{ mode = \"governance\", days = 30 }} in its config section (S3 repositories on a bucket with Object Lock)",
                    backend.location()
                );
            };
            if ctx.json {
                output::json(&st)?;
            } else {
                println!(
                    "{} {} of {} objects locked ({} of {}, {} mode, {} days per lock)",
                    backend.location(),
                    st.locked_objects,
                    st.objects,
                    human_bytes(st.locked_bytes),
                    human_bytes(st.bytes),
                    st.mode,
                    st.retain_days
                );
                println!(
                    "  locked bytes free up from {} (all by {})",
                    date(st.first_frees),
                    date(st.all_free)
                );
                for o in &st.never_locked {
                    println!("  no lock: {o}");
                }
                for o in &st.expired {
                    println!("  lock ran out: {o} (run `lifeboat locks extend`)");
                }
            }
            Ok(if st.never_locked.is_empty() && st.expired.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        LocksCommand::Extend => {
            for name in ctx.every_repository() {
                extend_one(ctx, name.as_deref())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        LocksCommand::Recover => {
            let (backend, _) = ctx.location(None)?;
            let r = locks::recover(backend.as_ref())?;
            let repaired = if r.undeleted.is_empty() && r.unreplaced.is_empty() {
                None
            } else {
                // Index files come back with the packs they name, or are
                // gone: rebuilding from the packs makes them agree.
                let repo = ctx.open(None)?;
                let progress = Progress::start(ctx.quiet || ctx.json, "repair index");
                let rep =
                    engine::repair::repair_index(&repo, &Default::default(), &progress.reporter());
                progress.finish();
                Some(rep?)
            };
            if ctx.json {
                output::json(&serde_json::json!({"recovered": r, "repair_index": repaired}))?;
            } else {
                ctx.say(format!(
                    "recovered {} deleted and {} replaced objects from their locked versions",
                    r.undeleted.len(),
                    r.unreplaced.len()
                ));
                if let Some(rep) = &repaired {
                    ctx.say(format!(
                        "index rebuilt from {} packs ({} chunks); run `lifeboat verify` next",
                        rep.packs, rep.chunks
                    ));
                }
                for o in &r.unprotected {
                    ctx.say(format!(
                        "not recovered (its original is no longer locked): {o}"
                    ));
                }
            }
            Ok(if r.unprotected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Extends one repository's locks, leaving to run out the restore points
/// the configured retention policies let go.
pub fn extend_one(ctx: &Ctx, repo_name: Option<&str>) -> Result<()> {
    let repo = ctx.open(repo_name)?;
    if repo.backend().object_lock().is_none() {
        if repo_name.is_some() {
            return Ok(()); // `--all` style: only the locked ones
        }
        anyhow::bail!(
            "{} has no Object Lock (object_lock in its config section)",
            repo.backend().location()
        );
    }
    let mut going: HashSet<String> = HashSet::new();
    if let Some(config) = &ctx.config {
        for svc in &config.services {
            if repo_name.is_some_and(|n| n != svc.repository) {
                continue;
            }
            for (s, d) in engine::plan_forget(&repo, &svc.name, &svc.retention)? {
                if !d.keep {
                    going.insert(s.id);
                }
            }
        }
    }
    let progress = Progress::start(ctx.quiet || ctx.json, "locks extend");
    let r = locks::extend(&repo, &going, &progress.reporter());
    progress.finish();
    let r = r?;
    if ctx.json {
        output::json(&r)?;
    } else {
        ctx.say(format!(
            "{}: {} objects of {} restore points locked until {}; {} restore points the retention policy lets go left to run out",
            repo.backend().location(),
            r.objects,
            r.restore_points,
            date(r.until),
            r.left_to_expire
        ));
    }
    Ok(())
}
