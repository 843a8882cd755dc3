//! `lifeboat copy`: restore points to another repository, sending only missing data.

use super::output::{self, human_bytes, Progress};
use super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use lifeboat::engine;
use lifeboat::repo::{self, Repository};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CopyArgs {
    /// Only these services' restore points [default: all]
    services: Vec<String>,
    /// Source repository: a name from the config, a directory or s3://bucket/prefix [default: the destination's copy_of]
    #[arg(long, value_name = "REPO")]
    from: Option<String>,
    /// Destination repository [default: every repository with copy_of in the config]
    #[arg(long, value_name = "REPO")]
    to: Option<String>,
    /// Key for the source when it is not in the config [default: --key]
    #[arg(long, value_name = "FILE")]
    from_key: Option<PathBuf>,
    /// Key for the destination when it is not in the config [default: --key]
    #[arg(long, value_name = "FILE")]
    to_key: Option<PathBuf>,
    /// Do not read back what was sent (presence, size and index are still checked)
    #[arg(long)]
    no_read_back: bool,
}

impl Ctx {
    /// A repository named in the config, or at a directory or URL; its key
    /// `explicit` (--from-key/--to-key), else --key, else configured, else
    /// the default.
    fn open_named(&self, name: &str, explicit: Option<&PathBuf>) -> Result<Repository> {
        let key = explicit.or(self.cli_key.as_ref()).map(PathBuf::as_path);
        let repo = match &self.config {
            Some(c) => c.open_repository(name, key),
            None => repo::open_at(name, key),
        }?;
        Ok(repo.with_lock_options(self.locks))
    }
}

pub fn copy(ctx: &Ctx, a: CopyArgs) -> Result<ExitCode> {
    let copy_of = |to: &str| {
        ctx.config
            .as_ref()
            .and_then(|c| c.repositories.get(to))
            .and_then(|r| r.copy_of.clone())
    };
    let pairs: Vec<(String, String)> = match (&a.from, &a.to) {
        (Some(f), Some(t)) => vec![(f.clone(), t.clone())],
        (None, Some(t)) => match copy_of(t) {
            Some(f) => vec![(f, t.clone())],
            None => bail!(
                "repository `{t}` has no copy_of in the config: say where to copy from with --from"
            ),
        },
        (Some(_), None) => bail!("say where to copy to with --to"),
        (None, None) => {
            let v: Vec<_> = ctx
                .config
                .iter()
                .flat_map(|c| c.repositories.values())
                .filter_map(|r| r.copy_of.clone().map(|f| (f, r.name.clone())))
                .collect();
            if v.is_empty() {
                bail!("nothing to copy: give --from and --to, or mark an off-site repository with copy_of = \"NAME\" in the config");
            }
            v
        }
    };
    let mut failed = 0;
    for (from, to) in pairs {
        let result = (|| -> Result<engine::CopyReport> {
            let src = ctx.open_named(&from, a.from_key.as_ref())?;
            let dst = ctx.open_named(&to, a.to_key.as_ref())?;
            let progress = Progress::start(ctx.quiet || ctx.json, &format!("copy {from} → {to}"));
            let r = engine::copy(
                &src,
                &dst,
                &engine::CopyOptions {
                    services: a.services.clone(),
                    no_read_back: a.no_read_back,
                    cache_dir: Some(ctx.cache_dir()),
                },
                &progress.reporter(),
            );
            progress.finish();
            r
        })();
        match result {
            Ok(r) => {
                tracing::info!(job = "copy", from = %from, to = %to, copied = r.copied.len(), chunks_sent = r.chunks_sent, bytes_sent = r.bytes_sent, packs_read_back = r.packs_read_back, "copy finished");
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
                if ctx.json {
                    output::json(&serde_json::json!({"from": from, "to": to, "report": r}))?;
                } else {
                    for c in &r.copied {
                        ctx.say(format!(
                            "copied {} of {} ({}) → {}",
                            &c.source[..8.min(c.source.len())],
                            c.service,
                            c.time.get(..19).unwrap_or(&c.time).replace('T', " "),
                            &c.destination[..8.min(c.destination.len())]
                        ));
                    }
                    if r.copied.is_empty() {
                        ctx.say(format!(
                            "{from} → {to}: nothing to copy ({} restore points already there)",
                            r.already_there
                        ));
                    } else {
                        ctx.say(format!(
                            "{from} → {to}: {} restore points copied ({} already there); sent {} chunks ({}) in {} packs, {} chunks were already there; {} packs read back and checked",
                            r.copied.len(),
                            r.already_there,
                            r.chunks_sent,
                            human_bytes(r.bytes_sent),
                            r.packs_sent,
                            r.chunks_present,
                            r.packs_read_back
                        ));
                    }
                }
            }
            Err(e) => {
                failed += 1;
                tracing::error!(job = "copy", from = %from, to = %to, error = %format!("{e:#}"), "copy failed");
                ctx.error_line(&e, &format!("copy {from} → {to} failed"));
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
