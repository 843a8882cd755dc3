//! The inventory's details pane: the selected item's metadata, and how
//! it fits its pane (scrolled when it has the focus, never cut silently).

use super::app::{App, Level};
use super::tree::Change;
use crate::health::short_duration;
use crate::repo::tree::NodeKind;
use crate::util::human_bytes;
use ratatui::text::{Line, Span};

/// The lines that fit in `height` rows of `width` columns from `scroll`
/// on; when some do not, the last row says how many more and how to see
/// them.
pub fn fit(
    lines: Vec<Line<'static>>,
    scroll: usize,
    width: usize,
    height: usize,
    app: &App,
) -> Vec<Line<'static>> {
    let rows = |l: &Line| l.width().div_ceil(width.max(1)).max(1);
    let total: usize = lines.iter().map(rows).sum();
    if total <= height {
        return lines;
    }
    let scroll = scroll.min(lines.len().saturating_sub(1));
    let mut out = Vec::new();
    let mut used = 0;
    let budget = height.saturating_sub(1);
    let mut shown = 0;
    for l in lines.iter().skip(scroll) {
        if used + rows(l) > budget {
            break;
        }
        used += rows(l);
        shown += 1;
        out.push(l.clone());
    }
    let below = lines.len() - scroll - shown;
    let hint = if app.inv.focus_details {
        "↑↓ scroll"
    } else {
        "Tab, then ↑↓"
    };
    let text = match (scroll, below) {
        (0, n) => format!("… {n} more ({hint})"),
        (a, 0) => format!("… {a} above ({hint})"),
        (a, n) => format!("… {a} above, {n} more ({hint})"),
    };
    out.push(Line::styled(text, app.theme.dim()));
    out
}

/// The selected item's metadata. Never file contents: a secret is never
/// previewed because nothing is.
pub fn details(app: &App, rows: &[usize]) -> Vec<Line<'static>> {
    let services = app.services();
    let sel = rows.get(app.inv.sel).copied();
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k}: "), app.theme.dim()),
            Span::raw(v),
        ])
    };
    match (&app.inv.level, sel) {
        (Level::Services, Some(i)) => {
            let Some(s) = services.get(i) else {
                return vec![];
            };
            let mut v = vec![
                kv(
                    "service",
                    format!("{} ({}) on {}", s.name, s.tier.name(), s.host),
                ),
                kv(
                    "targets",
                    format!(
                        "RPO {} · RTO {}",
                        short_duration(s.policy().rpo),
                        short_duration(s.policy().rto)
                    ),
                ),
            ];
            if !s.description.is_empty() {
                v.push(kv("about", s.description.clone()));
            }
            v.extend(s.sources.iter().map(|src| kv("source", src.clone())));
            v.push(kv("repository", s.repository.clone()));
            v
        }
        (Level::Points { service }, Some(i)) => {
            let Some(p) = services.get(*service).and_then(|s| s.restore_points.get(i)) else {
                return vec![];
            };
            let verified = match services[*service].last_verify.as_ref() {
                None => "never".to_string(),
                Some(v) if v.time < p.time => {
                    format!("not yet (the last verify, {}, came before it)", v.time_text)
                }
                Some(v) if v.ok => format!("yes, at {}", v.time_text),
                Some(v) => format!("FAILED at {}", v.time_text),
            };
            vec![
                kv(
                    "restore point",
                    format!("{} at {} UTC from {}", p.short_id(), p.time_text, p.host),
                ),
                kv(
                    "size",
                    format!(
                        "{} in {} files; {} added",
                        human_bytes(p.bytes),
                        p.files,
                        human_bytes(p.added)
                    ),
                ),
                kv("took", format!("{:.1} s", p.duration_ms as f64 / 1000.0)),
                kv("verified", verified),
                Line::styled(
                    "Space marks it; d diffs against the marked one",
                    app.theme.dim(),
                ),
            ]
        }
        (Level::Files { .. }, Some(i)) => {
            let Some(n) = app.inv.tree.as_ref().and_then(|t| t.nodes.get(i)) else {
                return vec![];
            };
            let mut v = vec![
                kv("path", format!("/{}", n.path)),
                kv("mode", format!("{:o}  owner {}:{}", n.mode, n.uid, n.gid)),
            ];
            if n.secret {
                v.push(kv("secret", "never previewed; restored mode 0600".into()));
            }
            if n.kind == NodeKind::File {
                v.push(kv("size", human_bytes(n.size)));
                v.push(Line::styled(
                    "Enter lists this file's restore points",
                    app.theme.dim(),
                ));
            }
            if let Some(target) = &n.target {
                v.push(kv("link to", target.clone()));
            }
            v
        }
        (Level::Versions { .. }, Some(i)) => app
            .inv
            .versions
            .as_ref()
            .and_then(|v| v.get(i))
            .map(|v| {
                vec![
                    kv(
                        "restore point",
                        format!(
                            "{} at {}",
                            v.snapshot.chars().take(8).collect::<String>(),
                            v.time
                        ),
                    ),
                    kv("size", human_bytes(v.size)),
                    Line::styled(
                        "● marks a restore point where the content changed",
                        app.theme.dim(),
                    ),
                ]
            })
            .unwrap_or_default(),
        (Level::Diff { .. }, _) => {
            let d = app.inv.diff.as_deref().unwrap_or_default();
            let n = |c: Change| d.iter().filter(|e| e.change == c).count();
            vec![
                kv("added", n(Change::Added).to_string()),
                kv("removed", n(Change::Removed).to_string()),
                kv("changed", n(Change::Changed).to_string()),
            ]
        }
        _ => vec![Line::styled("nothing here yet", app.theme.dim())],
    }
}
