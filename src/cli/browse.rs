//! `lifeboat find`, `diff` and `dump`: looking into restore points.

use super::output::{self, human_bytes};
use super::snapshots::{self, FilterArgs};
use super::Ctx;
use anyhow::{bail, Result};
use clap::Args;
use lifeboat::engine::browse::{self, Pattern};
use lifeboat::repo::tree::NodeKind;
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Args)]
pub struct FindArgs {
    /// A name or glob: `app.db`, `*.sqlite3`, `data/*.db` (at any depth), `/srv/**/x` (from the root)
    pattern: String,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Exit code of a search that could not look into every restore point.
const EXIT_INCOMPLETE: u8 = 3;

pub fn find(ctx: &Ctx, a: FindArgs) -> Result<ExitCode> {
    let pattern = Pattern::new(&a.pattern)?;
    let filter = a.filter.filter()?;
    let mut found = Vec::new();
    let mut searched = 0;
    let mut unreadable = Vec::new();
    for (_, repo, snaps) in snapshots::selected(ctx, &a.filter, &filter)? {
        searched += snaps.len();
        let report = browse::find(&repo, &snaps, &pattern)?;
        found.extend(report.found);
        unreadable.extend(report.unreadable);
    }
    for (_, why) in &unreadable {
        // `why` names the restore point (the error's own context).
        eprintln!("warning: not searched: {}", output::clean(why));
    }
    let code = if unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "  hint: `lifeboat verify` says what is damaged; `lifeboat repair index` rebuilds a damaged index"
        );
        ExitCode::from(EXIT_INCOMPLETE)
    };
    if ctx.json {
        let rows: Vec<_> = found
            .iter()
            .map(|f| {
                serde_json::json!({
                    "snapshot": f.snapshot, "short_id": short(&f.snapshot), "time": f.time,
                    "service": f.service, "host": f.host, "path": f.path, "kind": f.kind,
                    "size": f.size, "mtime_ns": f.mtime_ns, "mtime": mtime(f.mtime_ns),
                })
            })
            .collect();
        output::json(&rows)?;
        return Ok(code);
    }
    if !found.is_empty() && !ctx.quiet {
        print_found(&found);
    }
    let points = {
        let mut ids: Vec<&str> = found.iter().map(|f| f.snapshot.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let mut summary = format!(
        "{} in {} of {} searched",
        lifeboat::util::plural(found.len() as u64, "matching entry"),
        lifeboat::util::plural(points as u64, "restore point"),
        searched
    );
    if !unreadable.is_empty() {
        summary.push_str(&format!("; {} could not be read", unreadable.len()));
    }
    ctx.say(summary);
    Ok(code)
}

/// The matches as a table that fits the terminal (see `width`): the path
/// keeps its file name when cut.
fn print_found(found: &[browse::Found]) {
    use super::width::{self, Column, Cut};
    let cols = [
        Column::new("ID"),
        Column::new("TIME").cut(Cut::Clip, 16).optional(),
        Column::new("SERVICE").cut(Cut::End, 10),
        Column::new("SIZE").right(),
        Column::new("MODIFIED").cut(Cut::Clip, 16).optional(),
        Column::new("PATH").cut(Cut::Start, 24),
    ];
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|f| {
            // Directories and symlinks have no size of their own to show.
            let (size, mark) = match f.kind {
                NodeKind::File => (human_bytes(f.size), ""),
                NodeKind::Dir => ("-".to_string(), "/"),
                NodeKind::Symlink => ("-".to_string(), " (symlink)"),
            };
            vec![
                short(&f.snapshot).to_string(),
                f.time.get(..19).unwrap_or(&f.time).replace('T', " "),
                output::clean(&f.service).into_owned(),
                size,
                mtime(f.mtime_ns)
                    .get(..19)
                    .unwrap_or_default()
                    .replace('T', " "),
                format!("{}{mark}", output::clean(&f.path)),
            ]
        })
        .collect();
    for line in width::table(&cols, &rows, width::terminal_columns()) {
        println!("{line}");
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn mtime(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000).max(0) as u64;
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

#[derive(Args)]
pub struct DiffArgs {
    /// The older restore point: an id (or unique prefix), `latest` or `SERVICE:latest`
    from: String,
    /// The newer restore point
    to: String,
    /// Also list directories whose only change is their modification time
    #[arg(long)]
    metadata: bool,
}

pub fn diff(ctx: &Ctx, a: DiffArgs) -> Result<ExitCode> {
    let (repo, from) = snapshots::resolve(ctx, &a.from)?;
    let to = snapshots::find_in(ctx, &repo, &a.to)?;
    let mut report = browse::diff(&repo, &from, &to)?;
    if !a.metadata {
        report.changed.retain(|c| !c.only_dir_mtime());
    }
    if ctx.json {
        output::json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines: Vec<(&str, String)> = Vec::new();
    lines.extend(
        report
            .added
            .iter()
            .map(|p| (p.as_str(), format!("+ {}", output::clean(p)))),
    );
    lines.extend(
        report
            .removed
            .iter()
            .map(|p| (p.as_str(), format!("- {}", output::clean(p)))),
    );
    lines.extend(report.changed.iter().map(|c| {
        (
            c.path.as_str(),
            format!("M {} ({})", output::clean(&c.path), c.what.join(", ")),
        )
    }));
    lines.sort();
    if !ctx.quiet {
        for (_, line) in &lines {
            println!("{line}");
        }
    }
    ctx.say(format!(
        "{} added, {} removed, {} changed from {} ({}) to {} ({})",
        report.added.len(),
        report.removed.len(),
        report.changed.len(),
        from.short_id(),
        from.service,
        to.short_id(),
        to.service
    ));
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct DumpArgs {
    /// Restore point: an id (or unique prefix), `latest`, `SERVICE:latest`, or a service name
    snapshot: String,
    /// The file, as `lifeboat ls` shows it
    path: String,
    /// Write a secret (a `secrets` source's file, a `.env`) to the terminal anyway
    #[arg(long)]
    force: bool,
}

pub fn dump(ctx: &Ctx, a: DumpArgs) -> Result<ExitCode> {
    let (repo, snap) = snapshots::resolve(ctx, &a.snapshot)?;
    let (index, _) = repo.load_index()?;
    let node = browse::locate(&repo, &index, &snap, &a.path)?;
    let stdout = std::io::stdout();
    if browse::is_secret(&node) && stdout.is_terminal() && !a.force {
        bail!(
            "/{} is a secret; not writing it to the terminal (pipe it: `lifeboat dump {} {} > FILE`, or pass --force)",
            node.path,
            snap.short_id(),
            a.path
        );
    }
    // `dump … | head -c 10` closes the pipe early: a normal end (see `pipe`).
    let mut out = std::io::BufWriter::with_capacity(1 << 20, super::pipe::Stdout(stdout.lock()));
    browse::dump(&repo, &index, &node, &mut out)?;
    Ok(ExitCode::SUCCESS)
}
