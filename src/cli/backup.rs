//! `lifeboat backup`: services from the config, or paths.

use super::output::{self, human_bytes, Progress};
use super::Ctx;
use anyhow::{bail, Context, Result};
use clap::Args;
use lifeboat::engine::{self, BackupOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct BackupArgs {
    /// Services from the config, or paths (anything containing `/`) for an ad-hoc backup
    #[arg(value_name = "SERVICE|PATH")]
    targets: Vec<String>,
    /// Back up every service in the config, most critical first
    #[arg(long, conflicts_with = "targets")]
    all: bool,
    /// Name recorded for an ad-hoc backup of paths
    #[arg(long, default_value = "adhoc", value_name = "NAME")]
    name: String,
    /// Exclude pattern for an ad-hoc backup (repeatable)
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Read every file even when unchanged since the last backup
    #[arg(long)]
    no_cache: bool,
    /// Tag the new restore points (repeatable); see `lifeboat tag`
    #[arg(long, value_name = "TAG", value_parser = super::tag::parse_tag)]
    tag: Vec<String>,
}

pub fn backup(ctx: &Ctx, a: BackupArgs) -> Result<ExitCode> {
    let cache_dir = ctx.cache_dir();
    let mut jobs: Vec<(
        Option<String>,
        BackupOptions,
        Option<&lifeboat::config::Service>,
    )> = Vec::new();
    let (paths, services): (Vec<&String>, Vec<&String>) =
        a.targets.iter().partition(|t| t.contains('/'));
    if a.all || !services.is_empty() {
        let config = ctx.config.as_ref().context("backing up services needs a config (pass --config FILE), or give paths for an ad-hoc backup")?;
        if !paths.is_empty() {
            bail!("give either services or paths, not both");
        }
        let chosen = config.select_services(&services, a.all, "back up")?;
        for svc in chosen {
            jobs.push((
                Some(svc.repository.clone()),
                BackupOptions::for_service(svc, &cache_dir),
                Some(svc),
            ));
        }
    } else if !paths.is_empty() {
        let mut opts = BackupOptions::new(&a.name, paths.iter().map(PathBuf::from).collect());
        opts.excludes = a.exclude.clone();
        jobs.push((None, opts, None));
    } else {
        bail!("nothing to back up: name services, --all, or paths");
    }
    let mut failed = 0;
    let mut incomplete = 0;
    for (repo_name, mut opts, svc) in jobs {
        opts.use_files_cache = !a.no_cache;
        opts.tags = a.tag.clone();
        opts.cache_dir = cache_dir.clone();
        let result = (|| -> Result<lifeboat::repo::Snapshot> {
            let repo = ctx.open(repo_name.as_deref())?;
            // Never back up the repository itself when it sits inside a source.
            opts.skip_paths
                .extend([PathBuf::from(repo.location()), cache_dir.clone()]);
            let progress =
                Progress::start(ctx.quiet || ctx.json, &format!("backup {}", opts.service));
            let captures = svc
                .map(|s| lifeboat::source::captures(s, &cache_dir))
                .unwrap_or_default();
            let r = engine::backup_with(&repo, &opts, captures, &progress.reporter());
            progress.finish();
            r
        })();
        match result {
            Ok(snap) => {
                let st = &snap.stats;
                tracing::info!(job = "backup", service = %snap.service, snapshot = %snap.id, files = st.files, bytes = st.bytes, added = st.bytes_added, unchanged_files = st.files_unchanged, skipped = st.skipped, unreadable = st.unreadable, duration_ms = st.duration_ms, "backup finished");
                if st.incomplete() {
                    incomplete += 1;
                }
                if ctx.json {
                    output::json(&output::snapshot_json(&snap))?;
                } else {
                    let secs = st.duration_ms as f64 / 1000.0;
                    // One line under 80 columns for a usual service name.
                    ctx.say(format!(
                        "{} {}: {} ({}), {} new in {:.1} s{}",
                        output::clean(&snap.service),
                        snap.short_id(),
                        lifeboat::util::plural(st.files, "file"),
                        human_bytes(st.bytes),
                        human_bytes(st.bytes_added),
                        secs,
                        if st.skipped > 0 {
                            format!("; {} skipped: see the warnings", st.skipped)
                        } else {
                            String::new()
                        },
                    ));
                    if st.incomplete() {
                        eprintln!(
                            "warning: restore point {} of {} is incomplete: {} could not be read{}",
                            snap.short_id(),
                            output::clean(&snap.service),
                            lifeboat::util::plural(st.unreadable, "entry"),
                            st.unreadable_paths
                                .first()
                                .map(|p| format!(" (first: {})", output::clean(p)))
                                .unwrap_or_default()
                        );
                    }
                    for r in &snap.sources {
                        ctx.say(format!(
                            "  {}: {}",
                            output::source_label(&r.kind, &r.name),
                            output::facts_line(&r.facts)
                        ));
                    }
                }
            }
            Err(e) => {
                failed += 1;
                tracing::error!(job = "backup", service = %opts.service, error = %format!("{e:#}"), "backup failed");
                ctx.error_line(&e, &format!("backup of {} failed", opts.service));
            }
        }
    }
    // 3: every restore point was made, but some lack what could not be read.
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else if incomplete > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
