//! Drawing the Recover screen from [`Wizard`] state: one stage at a time,
//! planned for 80×24, states as symbols so it reads without colour.

use super::app::App;
use super::recover::{PickRow, Stage, Wizard};
use crate::health::short_duration;
use crate::jobs::{JobView, Outcome};
use crate::util::human_bytes;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;
use std::time::Duration;

/// The footer: only keys that do something now.
pub fn hints(w: &Wizard) -> Vec<(&'static str, &'static str)> {
    match w.stage() {
        Stage::Pick if w.searching => vec![
            ("type", "search"),
            ("↑↓", "move"),
            ("Enter", "done"),
            ("Esc", "clear"),
        ],
        Stage::Pick if w.preview_focus => vec![
            ("↑↓", "scroll the preview"),
            ("Tab", "list"),
            ("Enter", "choose"),
            ("Esc", "list"),
        ],
        Stage::Pick => {
            let mut v = vec![
                ("/", "search"),
                ("↑↓", "move"),
                ("Tab", "preview"),
                ("Enter", "choose"),
            ];
            v.push((
                "Esc",
                if w.query.is_empty() {
                    "health"
                } else {
                    "clear"
                },
            ));
            v.extend([("?", "help"), ("q", "quit")]);
            v
        }
        Stage::Services => vec![
            ("↑↓", "move"),
            ("Space", "toggle"),
            ("Enter", "next"),
            ("Esc", "back"),
        ],
        Stage::Inputs if w.checking.is_some() => vec![("Esc", "stop waiting")],
        Stage::Inputs if w.shown_picker().is_some_and(|p| p.focused) => {
            let mut v = vec![("↑↓", "move")];
            if w.shown_picker().is_some_and(|p| p.hits.is_none()) {
                v.push(("→←", "open/close"));
            }
            v.extend([
                ("type", "filter"),
                ("Enter", "choose"),
                ("Tab", "field"),
                ("Esc", "field"),
            ]);
            v
        }
        Stage::Inputs => {
            let mut v = vec![("type", "value"), ("Enter", "next")];
            if w.shown_picker().is_some_and(|p| p.tree.is_some()) {
                v.push(("↓ Tab", "pick from the list"));
            } else if w.inputs.len() > 1 {
                v.push(("↑↓", "field"));
            }
            v.extend([("^U", "clear"), ("Esc", "back")]);
            v
        }
        Stage::Point if w.moment.is_some() => {
            vec![("type", "a moment"), ("Enter", "check it"), ("Esc", "back")]
        }
        Stage::Point => vec![("↑↓", "move"), ("Enter", "use this point"), ("Esc", "back")],
        Stage::Preflight => match w.preflight_ok() {
            Some(true) => vec![("Enter", "continue"), ("Esc", "back")],
            Some(false) => vec![("r", "check again"), ("Esc", "back")],
            None => vec![("Esc", "back")],
        },
        Stage::Confirm => vec![("type", "the name"), ("Enter", "start"), ("Esc", "back")],
        Stage::Run => match &w.job {
            _ if w.asking == Some('C') => vec![("y", "yes, cancel the job"), ("any key", "no")],
            _ if w.asking == Some('u') => vec![("y", "yes, roll it back"), ("any key", "no")],
            _ if w.asking == Some('D') => {
                vec![("y", "yes, discard the kept copy"), ("any key", "no")]
            }
            Some(j) if j.waiting.as_ref().is_some_and(|w| w.kind == "failed") => {
                let mut v = vec![("r", "retry")];
                if j.waiting.as_ref().is_some_and(|w| w.skippable) {
                    v.push(("s", "skip"));
                }
                v.extend([("a", "abort"), ("Esc", "detach")]);
                v
            }
            Some(j) if j.waiting.as_ref().is_some_and(|w| w.kind == "confirm") => vec![
                ("Enter", "run it"),
                ("s", "skip"),
                ("a", "abort"),
                ("Esc", "detach"),
            ],
            Some(j) if j.waiting.is_some() => {
                vec![("Enter", "done"), ("a", "abort"), ("Esc", "detach")]
            }
            Some(j) if j.running() => {
                vec![("C", "cancel job"), ("Esc", "detach: it keeps running")]
            }
            Some(j) if !j.replaced.is_empty() => {
                vec![
                    ("↑↓", "scroll"),
                    ("u", "undo: roll back"),
                    ("D", "discard kept copy"),
                    ("Esc", "back"),
                ]
            }
            _ => vec![("↑↓", "scroll the report"), ("Esc", "back")],
        },
    }
}

/// A list window that keeps the selection visible.
fn window(len: usize, sel: usize, height: usize) -> std::ops::Range<usize> {
    let start = if sel >= height { sel + 1 - height } else { 0 };
    start..len.min(start + height)
}

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let w = &app.recover;
    let t = &app.theme;
    // A long message (a path that is not there, with a suggestion) gets
    // two lines rather than losing its end.
    let msg_h = match w.error.as_ref().or(w.notice.as_ref()) {
        Some(e) if e.chars().count() + 2 > area.width as usize => 2,
        _ => 1,
    };
    let [head, body, msg] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(msg_h),
    ])
    .areas(area);
    let rb = w.current();
    let title = match w.stage() {
        Stage::Pick => "Recover ▸ what happened? (/ searches)".to_string(),
        Stage::Run => "Recover ▸ job".to_string(),
        s => format!(
            "Recover ▸ {} ▸ {}",
            rb.map(|r| r.id.as_str()).unwrap_or(""),
            match s {
                Stage::Services => "which services?",
                Stage::Inputs => "details",
                Stage::Point if w.moment.is_some() => "a moment in time",
                Stage::Point => "restore point",
                Stage::Preflight => "preflight",
                _ => "confirm",
            }
        ),
    };
    f.render_widget(
        Paragraph::new(Line::from(Span::styled(format!(" {title} "), t.header()))),
        head,
    );
    let h = body.height as usize;
    let width = body.width as usize;
    let mut lines: Vec<Line> = Vec::new();
    match w.stage() {
        Stage::Pick => {
            if w.searching || !w.query.is_empty() {
                lines.push(w.query.line("/", width, w.searching, t));
            }
            if let Some(e) = &w.load_error {
                lines.push(Line::raw(format!("✗ {e}")));
            }
            let rows = w.pick_rows();
            // The preview takes half the pane while it has the focus.
            let preview_h = if w.preview_focus { h / 2 } else { 4 };
            let list_h = h.saturating_sub(preview_h + 1).max(3);
            for i in window(rows.len(), w.sel, list_h) {
                let text = match rows[i] {
                    PickRow::Job(j) => {
                        let j = &w.jobs[j];
                        // ▶ only for what still runs; a finished job shows
                        // how it ended and when it started (its id).
                        let mark = match &j.finished {
                            None if j.running() => "▶",
                            Some((Outcome::Success, ..)) => "✓",
                            _ => "✗",
                        };
                        let when = if j.running() {
                            String::new()
                        } else {
                            format!(" · {}", started(&j.id))
                        };
                        format!(
                            "{mark} job {:<9} {} · {}{when}",
                            j.state_text(),
                            j.runbook,
                            j.services.join(", ")
                        )
                    }
                    PickRow::Runbook(r) => {
                        let r = &w.runbooks[r];
                        format!("  {:<15} {}", r.id, r.title)
                    }
                };
                lines.push(selectable(text, i == w.sel, app));
            }
            if let Some(PickRow::Runbook(r)) = rows.get(w.sel) {
                let r = &w.runbooks[*r];
                let (mark, style) = if w.preview_focus {
                    ("▶", t.title())
                } else {
                    (" ", t.dim())
                };
                lines.push(Line::styled(
                    format!(
                        "{mark} Preview (Tab: {})",
                        if w.preview_focus { "list" } else { "preview" }
                    ),
                    style,
                ));
                let mut body = vec![
                    r.summary.clone(),
                    format!("applies to: {}", r.applies.join(", ")),
                ];
                body.push(format!("{} steps:", r.steps.len()));
                body.extend(
                    r.steps
                        .iter()
                        .enumerate()
                        .map(|(i, s)| format!("  {}. {s}", i + 1)),
                );
                body.push(format!("file: {}", r.file.display()));
                let room = preview_h.saturating_sub(1).max(1);
                let start = w.preview_scroll.min(body.len().saturating_sub(1));
                let more = body.len().saturating_sub(start + room);
                let take = if more > 0 {
                    room.saturating_sub(1)
                } else {
                    room
                };
                for l in body.iter().skip(start).take(take) {
                    lines.push(Line::styled(l.clone(), t.dim()));
                }
                if body.len() > start + take {
                    lines.push(Line::styled(
                        format!("… {} more (Tab, then ↑↓)", body.len() - start - take),
                        t.dim(),
                    ));
                }
            }
        }
        Stage::Services => {
            for (i, (name, on)) in w.services.iter().enumerate() {
                let svc = app.services().iter().find(|s| &s.name == name);
                let text = format!(
                    "[{}] {:<18} {:<10} {:<10} {}",
                    if *on { "x" } else { " " },
                    name,
                    svc.map(|s| s.tier.name()).unwrap_or(""),
                    svc.map(|s| s.host.as_str()).unwrap_or(""),
                    svc.map(|s| s.description.as_str()).unwrap_or("")
                );
                lines.push(selectable(text, i == w.sel, app));
            }
            if let Some(r) = rb {
                lines.push(Line::raw(""));
                lines.push(Line::styled(
                    format!("{} steps: {}", r.steps.len(), r.steps.join(" · ")),
                    t.dim(),
                ));
            }
        }
        Stage::Inputs => {
            if let Some(r) = rb {
                if let Some(p) = w.point_text() {
                    lines.push(Line::styled(format!("from {p}"), t.dim()));
                }
                let in_picker = w.shown_picker().is_some_and(|p| p.focused);
                for (i, (inp, val)) in r.inputs.iter().zip(&w.inputs).enumerate() {
                    let focused = i == w.input_at && w.checking.is_none() && !in_picker;
                    // ▶ marks the focus without colour.
                    let mark = if focused { "▶ " } else { "  " };
                    lines.push(Line::styled(format!("{mark}{}", inp.prompt), t.title()));
                    lines.push(val.line("  > ", width, focused, t));
                }
                if w.checking.is_some() {
                    lines.push(Line::styled(
                        "looking for the path in the restore point…",
                        t.dim(),
                    ));
                } else if let Some(p) = w.shown_picker() {
                    let room = h.saturating_sub(lines.len() + 1);
                    picker_lines(p, room, width, app, &mut lines);
                }
            }
        }
        Stage::Point if w.moment.is_some() => moment_lines(w, width, app, &mut lines),
        Stage::Point => {
            lines.push(Line::styled(
                format!(
                    "{:<10} {:<19} {:>6} {:>10}  {}",
                    "POINT", "TIME", "AGE", "SIZE", "STATE"
                ),
                t.header(),
            ));
            if let (Some(s), Some(p)) = (
                w.services.iter().find(|s| s.1),
                w.points.get(w.sel).filter(|p| p.over_rpo),
            ) {
                lines.push(Line::raw(format!(
                    "! {} is older than {}'s RPO: newer data will be lost",
                    &p.id[..8.min(p.id.len())],
                    s.0
                )));
            }
            for i in window(w.points.len(), w.sel, h.saturating_sub(3)) {
                let p = &w.points[i];
                let text = format!(
                    "{:<10} {:<19} {:>6} {:>10}  {}{}",
                    &p.id[..8.min(p.id.len())],
                    p.time_text,
                    short_duration(Duration::from_secs(p.age_secs)),
                    human_bytes(p.bytes),
                    if p.verified {
                        "✓ verified"
                    } else {
                        "· unverified"
                    },
                    if p.over_rpo { "  ! > RPO" } else { "" }
                );
                lines.push(selectable(text, i == w.sel, app));
            }
        }
        Stage::Preflight => {
            // What is being checked: what the earlier steps chose.
            let mut what = w.chosen().join(", ");
            if let Some(p) = w.point_text() {
                what.push_str(&format!(" · {p}"));
            }
            if let Some(r) = rb {
                for (i, v) in r.inputs.iter().zip(&w.inputs) {
                    what.push_str(&format!(" · {}: {}", i.name, v.text()));
                }
            }
            lines.push(Line::styled(what, t.dim()));
            preflight_lines(w, &mut lines);
        }
        Stage::Confirm => {
            if let Some(r) = rb {
                lines.push(Line::raw(format!("Runbook: {}", r.title)));
                if let Some(p) = w.point_text().filter(|_| w.moment.is_some()) {
                    lines.push(Line::raw(format!("Back to {p}")));
                }
                let steps: Vec<&str> = r.steps.iter().map(String::as_str).collect();
                lines.push(Line::styled(
                    format!("Steps: {}", steps.join(" · ")),
                    t.dim(),
                ));
                for (name, val) in r.inputs.iter().zip(&w.inputs) {
                    lines.push(Line::raw(format!("{}: {}", name.name, val.text())));
                }
                for (svc, plan) in &w.plans {
                    lines.push(Line::styled(format!("{svc}:"), t.title()));
                    for l in plan {
                        let style = if l.starts_with("warning") {
                            t.state(crate::health::State::Warning)
                        } else {
                            ratatui::style::Style::default()
                        };
                        lines.push(Line::styled(format!("  {l}"), style));
                    }
                }
                // The prompt stays on screen however long the plan is.
                let room = h.saturating_sub(3);
                if lines.len() > room {
                    lines.truncate(room.saturating_sub(1));
                    lines.push(Line::styled(
                        "  … (a larger terminal shows all of the plan)",
                        t.dim(),
                    ));
                }
                lines.push(Line::raw(format!(
                    "Nothing is replaced until it is restored and checked. Type {}:",
                    w.confirm_word()
                )));
                lines.push(w.typed.line("> ", width, true, t));
            }
        }
        Stage::Run => {
            if let Some(j) = &w.job {
                lines = job_lines(j, h, app);
                // Finished: the report replaces the log (↑↓ scroll it).
                if let Some(r) = w.report.as_ref().filter(|r| !r.is_empty()) {
                    let room = h.saturating_sub(lines.len() + 1);
                    lines.push(Line::styled("─ report ", t.dim()));
                    for l in r.iter().skip(w.sel).take(room) {
                        lines.push(Line::raw(l.clone()));
                    }
                }
            }
        }
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), body);
    if let Some(e) = &w.error {
        f.render_widget(
            Paragraph::new(Line::raw(format!("✗ {e}"))).wrap(Wrap { trim: false }),
            msg,
        );
    } else if let Some(n) = &w.notice {
        f.render_widget(
            Paragraph::new(Line::raw(format!("✓ {n}"))).wrap(Wrap { trim: false }),
            msg,
        );
    }
}

/// The moment step: the window, the field, and under it why the typed
/// moment is refused.
fn moment_lines(w: &Wizard, width: usize, app: &App, lines: &mut Vec<Line<'static>>) {
    use super::recover::moment::show;
    let t = &app.theme;
    let Some(m) = &w.moment else {
        return;
    };
    let service = w.chosen().first().cloned().unwrap_or_default();
    lines.push(Line::styled(
        format!("{service} archives its WAL: it can go back to any moment in"),
        t.title(),
    ));
    let win = &m.window;
    match (win.oldest, win.newest) {
        (Some(o), Some(n)) => {
            lines.push(Line::raw(format!(
                "  from   {}  (oldest base backup's end)",
                show(o)
            )));
            lines.push(Line::raw(format!(
                "  to     {}  (newest archived WAL)",
                show(n)
            )));
        }
        _ => lines.push(Line::raw(
            "  (nothing yet: no base backup in the repository)",
        )),
    }
    lines.push(Line::styled(
        format!(
            "  {} · {}",
            crate::util::plural(win.base_backups as u64, "base backup"),
            crate::util::plural(win.wal_groups as u64, "WAL group")
        ),
        t.dim(),
    ));
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "▶ The moment (UTC): latest, 2026-12-01 14:03:00, or before:TIME",
        t.title(),
    ));
    lines.push(m.field.line("  > ", width, true, t));
    if let Some(e) = &m.error {
        lines.push(Line::raw(format!("  ✗ {e}")));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        if m.into_dir {
            "The restore writes a new data directory (asked next) that replays the WAL up to the moment; the live cluster is not touched."
        } else {
            "The restore writes a new data directory beside the live one, recovers and checks it on a private server, then swaps it in; the old one is kept for rollback."
        },
        t.dim(),
    ));
}

fn preflight_lines(w: &Wizard, lines: &mut Vec<Line<'static>>) {
    match &w.preflight {
        Some(p) if !p.is_empty() => {
            for (svc, c) in p {
                lines.push(Line::raw(format!(
                    "{} {svc}: {}: {}",
                    if c.ok { "✓" } else { "✗" },
                    c.name,
                    c.detail
                )));
            }
            lines.push(Line::raw(""));
            if p.iter().all(|(_, c)| c.ok) {
                lines.push(Line::raw("All clear. Enter to review and start."));
            } else {
                lines.push(Line::raw(
                    "✗ Fix these first; nothing has been changed. r checks again.",
                ));
            }
        }
        _ => lines.push(Line::raw("checking…")),
    }
}

/// The path picker under the path field: a title saying what it is and
/// whether it has the focus, then the rows that fit around the cursor.
fn picker_lines(
    p: &super::recover::picker::PathPicker,
    room: usize,
    width: usize,
    app: &App,
    lines: &mut Vec<Line<'static>>,
) {
    use crate::repo::tree::NodeKind;
    let t = &app.theme;
    let mark = if p.focused { "▶" } else { " " };
    let Some(tree) = &p.tree else {
        let what = match &p.error {
            Some(e) => format!("  ✗ cannot list the restore point: {e} (type the path)"),
            None => "  reading the restore point's file list…".into(),
        };
        lines.push(Line::styled(what, t.dim()));
        return;
    };
    let rows = p.rows();
    let how = match (&p.hits, p.searching) {
        (_, true) => "filtering…".to_string(),
        (Some(h), _) => format!("{} matching", h.len()),
        (None, _) => "→ opens, ← closes".to_string(),
    };
    lines.push(Line::styled(
        format!(
            "{mark} Files in {} · {how}",
            &p.snapshot[..8.min(p.snapshot.len())]
        ),
        t.title(),
    ));
    let list_h = room.saturating_sub(1).max(1);
    let shown = window(rows.len(), p.sel, list_h);
    let (first, last) = (shown.start, shown.end);
    for i in shown {
        let r = rows[i];
        let Some(n) = tree.nodes.get(r.node as usize) else {
            continue;
        };
        let icon = match n.kind {
            NodeKind::Dir if p.hits.is_none() && p.expanded.contains(&n.path) => "▾",
            NodeKind::Dir => "▸",
            NodeKind::Symlink => "@",
            NodeKind::File => " ",
        };
        let size = if n.kind == NodeKind::File {
            human_bytes(n.size)
        } else {
            String::new()
        };
        let name = if p.hits.is_some() {
            format!("/{}", n.path)
        } else {
            n.path.rsplit('/').next().unwrap_or(&n.path).to_string()
        };
        let indent = "  ".repeat(r.depth.min(12));
        let room = width.saturating_sub(indent.len() + 4 + 10);
        let name = super::columns::ellipsize_left(&name, room);
        let text = format!("  {indent}{icon} {name:<room$} {size:>9}");
        lines.push(if i == p.sel && p.focused {
            Line::styled(text, t.selected())
        } else {
            Line::raw(text)
        });
    }
    if rows.is_empty() {
        lines.push(Line::styled(
            "  nothing matches: Enter checks the typed path",
            t.dim(),
        ));
    } else if first > 0 || last < rows.len() {
        lines.push(Line::styled(
            format!("  {}–{} of {}", first + 1, last, rows.len()),
            t.dim(),
        ));
    }
}

/// When a job started, from its id (`20261202064112-…`, UTC).
fn started(id: &str) -> String {
    let d: Vec<char> = id.chars().take_while(char::is_ascii_digit).collect();
    if d.len() < 12 {
        return id.to_string();
    }
    let s = |a: usize, b: usize| d[a..b].iter().collect::<String>();
    format!("{}-{} {}:{}", s(4, 6), s(6, 8), s(8, 10), s(10, 12))
}

fn selectable(text: String, on: bool, app: &App) -> Line<'static> {
    if on {
        Line::styled(text, app.theme.selected())
    } else {
        Line::raw(text)
    }
}

/// The progress pane: steps with their state, the current step's bytes,
/// rate and ETA, the question the job waits on, then the log's tail.
pub fn job_lines(j: &JobView, height: usize, app: &App) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut lines = Vec::new();
    lines.push(Line::styled(
        format!(
            "{} · {} · {}",
            if j.title.is_empty() { &j.id } else { &j.title },
            if j.service.is_empty() {
                j.services.join(", ")
            } else {
                j.service.clone()
            },
            j.state_text()
        ),
        t.title(),
    ));
    for (i, (title, state)) in j.steps.iter().enumerate() {
        let mut text = format!("{} {}. {title}", state.symbol(), i + 1);
        if j.current == Some(i) && j.finished.is_none() {
            if let Some(c) = j.counters {
                text.push_str(&format!("  {}", progress(j, c)));
            }
        }
        lines.push(Line::raw(text));
    }
    // Checks as they come; at the end they go under the outcome.
    if j.finished.is_none() {
        for (svc, ok, d) in &j.checks {
            lines.push(Line::raw(format!(
                "{} check {svc}: {d}",
                if *ok { "✓" } else { "✗" }
            )));
        }
    }
    if let Some(wt) = &j.waiting {
        lines.push(Line::raw(""));
        let keys = match wt.kind.as_str() {
            "failed" if wt.skippable => "r retry · s skip · a abort",
            "failed" => "r retry · a abort",
            "confirm" => "Enter run it · s skip · a abort",
            _ => "Enter when done · a abort",
        };
        lines.push(Line::styled(format!("? {}", wt.prompt), t.title()));
        lines.push(Line::styled(format!("  {keys}"), t.key()));
    }
    if let Some((outcome, ms, report)) = &j.finished {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!(
                "{} {} in {}",
                if *outcome == Outcome::Success {
                    "✓"
                } else {
                    "✗"
                },
                match outcome {
                    Outcome::Success => "Recovered",
                    Outcome::Failed => "FAILED",
                    Outcome::Cancelled => "Cancelled",
                    Outcome::Aborted => "Stopped by you",
                },
                crate::runbook::report::secs(*ms)
            ),
            t.title(),
        ));
        for (svc, ok, d) in &j.checks {
            lines.push(Line::raw(format!(
                "{} check {svc}: {d}",
                if *ok { "✓" } else { "✗" }
            )));
        }
        if let Some(r) = report {
            lines.push(Line::raw(format!("report: {}", r.display())));
        }
    }
    if j.lost {
        lines.push(Line::raw("✗ the job's process is gone without finishing"));
    }
    // The log's tail fills what is left. Once a report is there it takes
    // the room, but a run that did not succeed keeps its last lines: they
    // say why.
    let mut room = height.saturating_sub(lines.len() + 1);
    if let Some((outcome, _, Some(_))) = &j.finished {
        room = if *outcome == Outcome::Success {
            0
        } else {
            room.min(5)
        };
    }
    if room > 1 && !j.log.is_empty() {
        lines.push(Line::styled("─ log ", t.dim()));
        let start = j.log.len().saturating_sub(room - 1);
        for l in &j.log[start..] {
            lines.push(Line::styled(l.clone(), t.dim()));
        }
    }
    lines
}

fn progress(j: &JobView, c: crate::progress::Counters) -> String {
    let mut s = match c.percent() {
        Some(p) => format!(
            "{p:.0}% {}/{}",
            human_bytes(c.bytes_done),
            human_bytes(c.bytes_total)
        ),
        None => human_bytes(c.bytes_done),
    };
    if let Some(r) = j.rate() {
        s.push_str(&format!(" {}/s", human_bytes(r as u64)));
    }
    if let Some(e) = j.eta() {
        s.push_str(&format!(" ETA {}", short_duration(e)));
    }
    s
}
