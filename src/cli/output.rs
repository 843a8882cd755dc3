//! Human and JSON output, and the progress bar that turns engine events
//! into something a person can watch (only on a terminal).

use super::width::cut_end;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat::engine::VerifyReport;
use lifeboat::progress::{Event, Reporter};
use lifeboat::repo::tree::{Node, NodeKind};
use lifeboat::repo::Snapshot;
use std::io::{IsTerminal, Write};

pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Outside text, with terminal escapes shown rather than sent.
pub fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    lifeboat::util::printable(s)
}

pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(e) = &written {
        super::pipe::stop_if_closed(e);
    }
    Ok(written?)
}

/// An error for people (`error: …` and a hint line) or, under `--json`,
/// one JSON object `{"error": …, "hint": …}` — both on stderr.
pub fn error_in(err: &anyhow::Error, json: bool) {
    error_about(None, err, json)
}

/// [`error_in`] for one part of a job that goes on ("backup of photos").
pub fn error_about(what: Option<&str>, err: &anyhow::Error, json: bool) {
    let hint = lifeboat::error::hint_for(err);
    let message = match what {
        Some(w) => format!("{w}: {err:#}"),
        None => format!("{err:#}"),
    };
    if json {
        let v = serde_json::json!({ "error": message, "hint": hint });
        eprintln!("{v}");
    } else {
        // A tool's own multi-line message stays lines; anything else that
        // is a control character is shown, not sent.
        let lines: Vec<_> = message.lines().map(clean).collect();
        eprintln!("error: {}", lines.join("\n  "));
        if let Some(h) = hint {
            eprintln!("  hint: {}", clean(&h));
        }
    }
}

pub fn snapshot_json(s: &Snapshot) -> serde_json::Value {
    serde_json::json!({
        "id": s.id, "short_id": s.short_id(), "time": s.time, "host": s.host,
        "service": s.service, "paths": s.paths, "stats": s.stats, "sources": s.sources,
        "tags": s.tags, "repaired": s.repaired,
    })
}

pub fn ls_line(n: &Node) -> String {
    let kind = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::File => '-',
        NodeKind::Symlink => 'l',
    };
    let secs = n.mtime_ns.div_euclid(1_000_000_000);
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let when = humantime::format_rfc3339_seconds(when).to_string();
    let mut line = format!(
        "{kind}{:04o} {:>5}:{:<5} {:>10}  {}  /{}",
        n.mode,
        n.uid,
        n.gid,
        n.size,
        &when[..19.min(when.len())].replace('T', " "),
        clean(&n.path)
    );
    if let Some(t) = &n.target {
        line.push_str(&format!(" -> {}", clean(t)));
    }
    if n.secret {
        line.push_str("  (secret: restored mode 0600)");
    }
    line
}

pub fn print_verify(r: &VerifyReport, percent: f64) {
    use lifeboat::util::plural;
    let width = super::width::line_width();
    let mut parts = vec![format!(
        "{}, {}, {} checked",
        plural(r.snapshots as u64, "restore point"),
        plural(r.packs as u64, "pack"),
        plural(r.chunks as u64, "chunk")
    )];
    if percent > 0.0 {
        parts.push(format!(
            "read {} ({}) from {}",
            plural(r.chunks_read, "chunk"),
            human_bytes(r.bytes_read),
            plural(r.packs_read as u64, "pack")
        ));
    }
    for line in super::width::clauses(&parts, "; ", width) {
        println!("{line}");
    }
    if r.files_hashed > 0 {
        let parts = [
            format!(
                "{} of the newest restore points",
                plural(r.files_hashed, "file")
            ),
            "read whole and checked against their hashes".to_string(),
        ];
        for line in super::width::clauses(&parts, " ", width) {
            println!("{line}");
        }
    }
    if r.unreferenced_packs > 0 {
        // With an index file unreadable, a pack no index lists may be
        // exactly the one it listed: live data, not an interrupted backup.
        let parts = if r.damaged_index_files > 0 {
            vec![
                format!(
                    "{} that no readable index lists:",
                    plural(r.unreferenced_packs as u64, "pack")
                ),
                "an index file is damaged,".to_string(),
                format!(
                    "so {} may hold data restore points need;",
                    if r.unreferenced_packs == 1 {
                        "it"
                    } else {
                        "they"
                    }
                ),
                "`lifeboat repair index` rebuilds the index from the packs".to_string(),
                "(do not prune before)".to_string(),
            ]
        } else {
            vec![
                format!(
                    "{}, left by interrupted backups:",
                    plural(r.unreferenced_packs as u64, "unreferenced pack")
                ),
                format!(
                    "harmless, prune removes {}",
                    if r.unreferenced_packs == 1 {
                        "it"
                    } else {
                        "them"
                    }
                ),
            ]
        };
        for line in super::width::clauses(&parts, " ", width) {
            println!("{line}");
        }
    }
    if r.problems.is_empty() {
        println!("no problems found");
        return;
    }
    for p in &r.problems {
        // The object (a 64-digit pack name) on its own line, the problem
        // wrapped under it, each affected entry on a line of its own.
        let head = format!("PROBLEM {}: {}", clean(&p.object), clean(&p.problem));
        if head.chars().count() <= width {
            println!("{head}");
        } else {
            println!("PROBLEM {}:", clean(&p.object));
            // Broken between clauses only, so a phrase stays greppable.
            let problem = clean(&p.problem);
            let parts: Vec<String> = problem
                .split_inclusive(": ")
                .flat_map(|c| c.split_inclusive("; "))
                .map(|c| c.trim_end().to_string())
                .collect();
            for line in super::width::clauses(&parts, " ", width.saturating_sub(4)) {
                println!("    {}", line.trim_start());
            }
        }
        for a in p.affects.iter().take(20) {
            let line = format!("  affects {}", clean(a));
            match line.split_once(": /") {
                // A long path goes on a line of its own, whole.
                Some((what, path)) if line.chars().count() > width => {
                    println!("{what}:");
                    println!("    /{path}");
                }
                _ => println!("{line}"),
            }
        }
        if p.affects.len() > 20 {
            println!("  … and {} more", p.affects.len() - 20);
        }
    }
    let good = if r.good_snapshots.is_empty() {
        "none".to_string()
    } else {
        clean(&r.good_snapshots.join(", ")).into_owned()
    };
    // The ids stay on one line, for the script that reads it.
    let parts = [
        plural(r.problems.len() as u64, "problem"),
        format!("restore points unaffected: {good}"),
    ];
    for line in super::width::clauses(&parts, "; ", width) {
        println!("{line}");
    }
    if r.damaged_index_files > 0 {
        println!("  hint: `lifeboat repair index` rebuilds the index from the packs");
    }
}

/// A progress bar on stderr fed by engine events. Off the terminal it only
/// prints warnings. The line fits 80 columns: what it is doing, a bar,
/// bytes, rate and time left.
pub struct Progress {
    tx: Option<lifeboat::progress::Sender>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(quiet: bool, label: &str) -> Progress {
        let (tx, rx) = lifeboat::progress::channel();
        let show = !quiet && std::io::stderr().is_terminal();
        let label = label.to_string();
        let thread = std::thread::spawn(move || {
            let bar = if show {
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8))
            } else {
                ProgressBar::hidden()
            };
            // Until the total is known there is no bar to draw: say what
            // is happening, and that it is alive. 78 columns at most.
            let starting = ProgressStyle::with_template("{spinner} {msg:40!} {bytes:>9}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let running = ProgressStyle::with_template(
                "{spinner} {msg:22!} [{bar:12}] {bytes:>9}/{total_bytes:<9} {binary_bytes_per_sec:>10} {eta:>4}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(starting);
            bar.set_message(format!("starting {label}"));
            bar.enable_steady_tick(std::time::Duration::from_millis(250));
            let mut sized = false;
            while let Some(ev) = rx.recv() {
                match ev {
                    Event::Progress { counters, .. } => {
                        if counters.bytes_total > 0 {
                            if !sized {
                                bar.set_style(running.clone());
                                sized = true;
                            }
                            bar.set_length(counters.bytes_total);
                        }
                        bar.set_position(counters.bytes_done);
                        // "backup photos" while backing up reads "backing up photos".
                        let what = label.split_once(' ').map_or(label.as_str(), |(_, w)| w);
                        bar.set_message(format!("{} {what}", counters.phase.doing()));
                    }
                    Event::Warning { message } => {
                        let message = clean(&message).into_owned();
                        tracing::warn!(job = %label, "{message}");
                        bar.suspend(|| eprintln!("warning: {message}"))
                    }
                }
            }
            bar.finish_and_clear();
        });
        Progress {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn reporter(&self) -> Reporter {
        match &self.tx {
            Some(tx) => tx.reporter(),
            None => Reporter::silent(),
        }
    }

    pub fn finish(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The health table fits 80 columns: an SSH session at 3 a.m.
pub fn print_health(r: &lifeboat::health::Report) {
    let row = |sym: &str, c: [&str; 7]| {
        println!(
            "{:<2}{:<13} {:<10} {:<10} {:<11} {:<15} {:>3} {:>9}",
            sym,
            cut_end(&clean(c[0]), 13),
            cut_end(c[1], 10),
            cut_end(c[2], 10),
            cut_end(c[3], 11),
            cut_end(c[4], 15),
            cut_end(c[5], 3),
            cut_end(c[6], 9),
        )
    };
    row(
        "",
        [
            "SERVICE",
            "TIER",
            "BACKUP/RPO",
            "VERIFY",
            "DRILL/RTO",
            "PTS",
            "SIZE",
        ],
    );
    for s in &r.services {
        row(
            s.state.symbol(),
            [
                &s.service,
                s.tier.name(),
                &s.backup.text,
                &s.verify.text,
                &s.drill.text,
                &s.restore_points.to_string(),
                &lifeboat::util::human_bytes(s.size),
            ],
        );
    }
    for s in &r.services {
        for o in &s.offsite {
            println!(
                "{} {} off-site in {}: {}",
                o.check.state.symbol(),
                s.service,
                o.repository,
                o.check.text
            );
        }
    }
    for c in &r.repositories {
        println!(
            "{} repository {}: {}",
            c.state.symbol(),
            c.repository,
            clean(&c.text)
        );
    }
    for l in &r.locks {
        println!(
            "{} repository {}: {}",
            l.state.symbol(),
            clean(&l.repository),
            clean(&l.text)
        );
    }
    if r.alerts.is_empty() {
        println!("every service is inside its targets");
    } else {
        println!();
        for a in &r.alerts {
            println!("{} {}", a.state.symbol(), clean(&a.message));
        }
    }
    println!("overall: {}", r.state.word());
}

/// A source as output names it: `files`, or `postgres app-db` — a source
/// without a name of its own is named after its kind, said once.
pub fn source_label(kind: &str, name: &str) -> String {
    if name.is_empty() || name == kind {
        kind.to_string()
    } else {
        format!("{kind} {}", clean(name))
    }
}

/// What was recorded about a streamed source, in one line.
pub fn facts_line(f: &lifeboat::repo::snapshot::Facts) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &f.server {
        parts.push(s.clone());
    }
    if !f.counts.is_empty() {
        let total: u64 = f.counts.values().sum();
        let redis = f.server.as_deref().is_some_and(|s| s.starts_with("Redis"));
        parts.push(format!(
            "{} with {} recorded{}",
            lifeboat::util::plural(
                f.counts.len() as u64,
                if redis { "database" } else { "table" }
            ),
            lifeboat::util::plural(total, if redis { "key" } else { "row" }),
            if f.approximate {
                " (approximate: it was being written)"
            } else {
                ""
            }
        ));
    }
    for (k, v) in &f.notes {
        parts.push(format!("{k} {v}"));
    }
    if parts.is_empty() {
        "stored".into()
    } else {
        // Facts are what a database server said: outside text.
        clean(&parts.join(", ")).into_owned()
    }
}
