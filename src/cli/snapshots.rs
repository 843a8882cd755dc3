//! `lifeboat snapshots` and `lifeboat ls`: what the repository holds.

use super::output::{self, human_bytes};
use super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use lifeboat::repo::snapshot::{validate_tag, Filter};
use lifeboat::repo::tree::is_at_or_under;
use lifeboat::repo::{Repository, Snapshot};
use std::process::ExitCode;

/// Which restore points a command looks at; flattened into every command
/// that lists or searches them.
#[derive(Args, Default)]
pub struct FilterArgs {
    /// Only this service's restore points
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Only restore points made on this host
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only restore points with this tag; `--tag a,b` needs both, a repeated --tag accepts either
    #[arg(long, value_name = "TAG[,TAG]")]
    pub tag: Vec<String>,
    /// Only the newest N restore points of each service
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub latest: Option<usize>,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("N must be at least 1 (the newest N restore points of each service)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

impl FilterArgs {
    pub fn filter(&self) -> Result<Filter> {
        let mut tags = Vec::new();
        for group in &self.tag {
            let group: Vec<String> = group.split(',').map(str::to_string).collect();
            for t in &group {
                validate_tag(t)?;
            }
            tags.push(group);
        }
        Ok(Filter {
            service: self.service.clone(),
            host: self.host.clone(),
            tags,
            latest: self.latest,
        })
    }

    /// The repositories to look in: the service's, or every one.
    pub fn repositories(&self, ctx: &Ctx) -> Vec<Option<String>> {
        match super::service_repo(ctx, self.service.as_deref()) {
            Some(r) if ctx.cli_repo.is_none() => vec![Some(r.to_string())],
            _ => ctx.every_repository(),
        }
    }
}

/// One repository looked in: its name in the config (none for `--repo`),
/// and the restore points chosen there.
pub type Selected = (Option<String>, Repository, Vec<Snapshot>);

/// The restore points `filter` selects in every repository it looks in
/// (see [`FilterArgs::repositories`]), oldest first. An unknown
/// `--service` is an error, judged against all of them; unreadable
/// summaries are warned about.
pub fn selected(ctx: &Ctx, args: &FilterArgs, filter: &Filter) -> Result<Vec<Selected>> {
    let mut out = Vec::new();
    for name in args.repositories(ctx) {
        let repo = ctx.open(name.as_deref())?;
        let (snaps, damaged) = repo.list_snapshots_cached()?;
        warn_damaged(&damaged);
        out.push((name, repo, snaps));
    }
    if let Some(svc) = &filter.service {
        let recorded: Vec<&str> = out
            .iter()
            .flat_map(|(_, _, snaps)| snaps.iter().map(|s| s.service.as_str()))
            .collect();
        ctx.known_service(svc, &recorded)?;
    }
    Ok(out
        .into_iter()
        .map(|(name, repo, snaps)| (name, repo, filter.apply(snaps)))
        .collect())
}

pub fn warn_damaged(damaged: &lifeboat::repo::Damaged) {
    for (name, why) in damaged {
        eprintln!(
            "warning: restore point {} is unreadable: {} (run `lifeboat verify`)",
            output::clean(name),
            output::clean(why)
        );
    }
}

/// A restore point named as `ls` and `restore` take it: an id or unique
/// prefix, `latest`, `SERVICE:latest`, or a configured service's name.
pub fn resolve(ctx: &Ctx, query: &str) -> Result<(Repository, Snapshot)> {
    let query = expand(ctx, query);
    let repo = ctx.open(super::snapshot_repo(ctx, &query))?;
    let snap = find_in(ctx, &repo, &query)?;
    Ok((repo, snap))
}

/// A configured service's name stands for its newest restore point.
fn expand(ctx: &Ctx, query: &str) -> String {
    match &ctx.config {
        Some(c) if c.services.iter().any(|s| s.name == query) => format!("{query}:latest"),
        _ => query.to_string(),
    }
}

/// `find_snapshot` in `repo`, taking the same names as [`resolve`]; a
/// query naming an unknown service says so.
pub fn find_in(ctx: &Ctx, repo: &Repository, query: &str) -> Result<Snapshot> {
    let query = expand(ctx, query);
    let query = query.as_str();
    repo.find_snapshot(query, None).or_else(|e| {
        let (snaps, _) = repo.list_snapshots_cached()?;
        let recorded: Vec<&str> = snaps.iter().map(|s| s.service.as_str()).collect();
        if let Some((svc, _)) = query.split_once(':') {
            ctx.known_service(svc, &recorded)?;
        }
        match e.downcast_ref::<lifeboat::Error>() {
            // `vaultwardn` is a mistyped service, not an id prefix.
            Some(lifeboat::Error::NoSnapshot { .. }) if looks_like_name(query) => {
                let known = ctx
                    .config
                    .iter()
                    .flat_map(|c| c.services.iter().map(|s| s.name.as_str()))
                    .chain(recorded.iter().copied());
                Err(lifeboat::Error::NoSnapshot {
                    query: query.to_string(),
                    suggest: lifeboat::util::suggestion(query, known),
                }
                .into())
            }
            _ => Err(e),
        }
    })
}

/// Ids are hex: a query with any other letter is a name.
fn looks_like_name(query: &str) -> bool {
    !query.contains(':') && !query.chars().all(|c| c.is_ascii_hexdigit())
}

#[derive(Args)]
pub struct SnapshotsArgs {
    /// Only this service's restore points (the same as --service)
    #[arg(value_name = "SERVICE", conflicts_with = "service")]
    only: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn snapshots(ctx: &Ctx, mut a: SnapshotsArgs) -> Result<ExitCode> {
    if a.only.is_some() {
        a.filter.service = a.only.take();
    }
    let filter = a.filter.filter()?;
    let repo = ctx.open(super::service_repo(ctx, filter.service.as_deref()))?;
    let (snaps, damaged) = repo.list_snapshots_cached()?;
    warn_damaged(&damaged);
    if let Some(svc) = &filter.service {
        let recorded: Vec<&str> = snaps.iter().map(|s| s.service.as_str()).collect();
        ctx.known_service(svc, &recorded)?;
    }
    let snaps = filter.apply(snaps);
    if ctx.json {
        output::json(&snaps.iter().map(output::snapshot_json).collect::<Vec<_>>())?;
    } else {
        print_table(&snaps);
        if snaps.is_empty() {
            println!(
                "{}",
                if filter == Filter::default() {
                    "(no restore points yet)"
                } else {
                    "(no restore points match)"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The restore points as a table that fits the terminal (see `width`).
fn print_table(snaps: &[Snapshot]) {
    use super::width::{self, Column, Cut};
    let cols = [
        Column::new("ID"),
        Column::new("TIME").cut(Cut::Clip, 16),
        Column::new("SERVICE").cut(Cut::End, 12),
        Column::new("HOST").cut(Cut::End, 8).optional(),
        Column::new("FILES").right(),
        Column::new("SIZE").right(),
        Column::new("ADDED").right(),
        Column::new("TAGS").cut(Cut::End, 4),
    ];
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|s| {
            vec![
                s.short_id(),
                s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
                output::clean(&s.service).into_owned(),
                output::clean(&s.host).into_owned(),
                s.stats.files.to_string(),
                human_bytes(s.stats.bytes),
                human_bytes(s.stats.bytes_added),
                output::clean(&s.tags.join(",")).into_owned(),
            ]
        })
        .collect();
    for line in width::table(&cols, &rows, width::terminal_columns()) {
        println!("{line}");
    }
}

#[derive(Args)]
pub struct LsArgs {
    /// Snapshot id (or unique prefix), `latest`, or `SERVICE:latest`
    snapshot: String,
    /// Only entries at or below this path
    path: Option<String>,
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<ExitCode> {
    let repo = ctx.open(super::snapshot_repo(ctx, &a.snapshot))?;
    let snap = find_in(ctx, &repo, &a.snapshot)?;
    let (index, damaged) = repo.load_index()?;
    for (name, why) in &damaged {
        eprintln!(
            "warning: index file {} is damaged ({}); the chunks it lists count as missing: run `lifeboat verify`",
            output::clean(name),
            output::clean(why)
        );
    }
    let nodes = repo.read_tree(&index, &snap)?;
    // What `ls` shows must be what a restore would write: the same check.
    lifeboat::repo::tree::check_tree(&snap, &nodes)?;
    let prefix = a
        .path
        .as_deref()
        .map(|p| p.trim_matches('/').to_string())
        .unwrap_or_default();
    let mut shown = 0;
    for n in nodes.iter().filter(|n| is_at_or_under(&n.path, &prefix)) {
        shown += 1;
        if ctx.json {
            output::json(&serde_json::json!({
                "path": format!("/{}", n.path), "kind": n.kind, "mode": format!("{:o}", n.mode),
                "size": n.size, "mtime_ns": n.mtime_ns, "uid": n.uid, "gid": n.gid, "target": n.target,
            }))?;
        } else {
            println!("{}", output::ls_line(n));
        }
    }
    if shown == 0 && !prefix.is_empty() {
        bail!("/{prefix} is not in restore point {}", snap.short_id());
    }
    Ok(ExitCode::SUCCESS)
}
