//! Drawing. Every function here reads the [`App`] and draws; none changes
//! state or does I/O. Layouts are planned for 80×24 first; wider terminals
//! get more columns.

use super::app::{App, Level, Screen};
pub use super::columns::{ellipsize_left, tier_short};
use super::tree::Change;
use crate::health::State;
use crate::repo::tree::NodeKind;
use crate::util::human_bytes;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, app: &App) {
    let [title, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_title(f, app, title);
    match app.screen {
        Screen::Health => super::health_view::draw(f, app, body),
        Screen::Inventory => draw_inventory(f, app, body),
        Screen::Recover => super::recover_view::draw(f, app, body),
    }
    draw_footer(f, app, footer);
    if app.help {
        super::help::draw(f, app, f.area());
    }
}

fn draw_title(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let tab = |n: &str, name: &str, on: bool| {
        let style = if on { t.selected() } else { Style::new() };
        Span::styled(format!(" {n} {name} "), style)
    };
    // Narrow: the other screens keep only their digit.
    let narrow = area.width < 64;
    let tab = |n: &str, name: &str, on: bool| {
        if narrow && !on {
            tab(n, "", false)
        } else {
            tab(n, name, on)
        }
    };
    let mut spans = vec![
        Span::styled(if narrow { " " } else { " Lifeboat " }, t.title()),
        tab("1", "Health", app.screen == Screen::Health),
        tab("2", "Inventory", app.screen == Screen::Inventory),
        tab("3", "Recover", app.screen == Screen::Recover),
        Span::raw(if narrow { " ? " } else { " ? Help " }),
    ];
    if let Some(r) = &app.report {
        spans.push(Span::styled(
            format!(" {} {} ", r.state.symbol(), r.state.word().to_uppercase()),
            t.state(r.state),
        ));
    }
    if let Some(b) = &app.banner {
        // The banner gives way to the tabs and the state; what does not
        // fit ends in an ellipsis rather than mid-word.
        let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
        let room = (area.width as usize).saturating_sub(used + 1);
        let text = if b.chars().count() <= room {
            b.clone()
        } else if room >= 5 {
            let mut cut: String = b.chars().take(room - 1).collect();
            cut.truncate(cut.trim_end().len());
            format!("{cut}…")
        } else {
            String::new()
        };
        if !text.is_empty() {
            spans.push(Span::styled(format!(" {text}"), t.dim()));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    if let Some(q) = &app.inv.typing {
        if app.screen == Screen::Inventory {
            let busy = if app.inv.searching {
                "  searching…"
            } else {
                ""
            };
            let width = (area.width as usize).saturating_sub(busy.chars().count());
            let mut line = q.line("/", width, true, t);
            line.spans.push(Span::styled(busy, t.dim()));
            f.render_widget(Paragraph::new(line), area);
            return;
        }
    }
    if let Some(s) = &app.status {
        f.render_widget(Paragraph::new(Span::styled(s.clone(), t.dim())), area);
        return;
    }
    let hints: Vec<(&str, &str)> = match app.screen {
        Screen::Health => vec![
            ("↑↓", "select"),
            ("Enter", "restore points"),
            ("2", "inventory"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Screen::Inventory => super::help::inventory_hints(app),
        Screen::Recover => super::recover_view::hints(&app.recover),
    };
    // Whole hints only; what does not fit is marked, not cut.
    let mut spans = Vec::new();
    let mut used = 0;
    let room = area.width as usize;
    for (i, (k, what)) in hints.iter().enumerate() {
        let n = k.chars().count() + what.chars().count() + 3;
        let last = i + 1 == hints.len();
        if used + n + if last { 0 } else { 2 } > room {
            spans.push(Span::styled(" …", t.dim()));
            break;
        }
        used += n;
        spans.push(Span::styled(format!(" {k}"), t.key()));
        spans.push(Span::raw(format!(" {what} ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Where the inventory is, shortened to `max` columns by cutting the
/// middle of the path, never the words around it.
fn breadcrumb(app: &App, max: usize) -> String {
    let svc = |i: usize| {
        app.services()
            .get(i)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    };
    let point = |s: usize, p: usize| {
        app.services()
            .get(s)
            .and_then(|s| s.restore_points.get(p))
            .map(|p| p.short_id().to_string())
            .unwrap_or_default()
    };
    let (head, path) = match &app.inv.level {
        Level::Services => ("hosts ▸ services".to_string(), String::new()),
        Level::Points { service } => (format!("{} ▸ restore points", svc(*service)), String::new()),
        Level::Files { service, point: p } => (
            format!("{} ▸ {} ▸ ", svc(*service), point(*service, *p)),
            format!("/{}", app.inv.dir),
        ),
        Level::Versions { service, path } => (
            format!("{} ▸ versions of ", svc(*service)),
            format!("/{path}"),
        ),
        Level::Diff {
            service,
            older,
            newer,
        } => (
            format!(
                "{} ▸ diff {} → {}",
                svc(*service),
                point(*service, *older),
                point(*service, *newer)
            ),
            String::new(),
        ),
    };
    let room = max.saturating_sub(head.chars().count());
    format!("{head}{}", ellipsize_left(&path, room))
}

fn draw_inventory(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(inv) = &app.inventory else {
        f.render_widget(Paragraph::new("loading…"), area);
        return;
    };
    let side = area.width >= 110;
    let [crumb, main] = Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(area);
    let filtering = matches!(
        app.inv.level,
        Level::Services | Level::Points { .. } | Level::Files { .. }
    ) && !app.inv.query.is_empty();
    let room = area.width as usize
        - if filtering {
            app.inv.query.chars().count() + 11
        } else {
            0
        };
    let mut crumb_spans = vec![Span::styled(breadcrumb(app, room), t.title())];
    if filtering {
        crumb_spans.push(Span::styled(
            format!("   filter: {}", app.inv.query),
            t.key(),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(crumb_spans)), crumb);
    let (list_area, detail_area) = if side {
        let [a, b] = Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
            .areas(main);
        (a, b)
    } else {
        let [a, b] = Layout::vertical([Constraint::Min(3), Constraint::Length(6)]).areas(main);
        (a, b)
    };

    let rows = app.visible_rows();
    let services = &inv.services;
    let (header, widths, body): (Vec<&str>, Vec<Constraint>, Vec<Row>) = match &app.inv.level {
        Level::Services => {
            use super::columns::{bars, col, cut, fit, flex};
            let wide = area.width >= super::health_view::WIDE;
            let mut cols = vec![
                col("Host", 10, 3),
                flex("Service", 10),
                col("Tier", 4, 4),
                col("Pts", 4, 2),
                col("Latest", 16, 6),
            ];
            if wide {
                cols.extend([
                    col("Repository", 12, 1),
                    col("Size", 9, 5),
                    col("Size history", 14, 0),
                ]);
            }
            let kept = fit(&cols, list_area.width, 1);
            (
                kept.iter().map(|&(i, _)| cols[i].header).collect(),
                kept.iter().map(|&(_, w)| Constraint::Length(w)).collect(),
                rows.iter()
                    .filter_map(|&i| services.get(i))
                    .map(|s| {
                        let latest = s
                            .latest()
                            .map(|p| p.time_text.get(..16).unwrap_or(&p.time_text).to_string())
                            .unwrap_or_else(|| "never".into());
                        Row::new(kept.iter().map(|&(i, w)| {
                            let w = w as usize;
                            cut(
                                &match cols[i].header {
                                    "Host" => s.host.clone(),
                                    "Service" => s.name.clone(),
                                    "Tier" => tier_short(s.tier).into(),
                                    "Pts" => format!("{:>3}", s.restore_points.len()),
                                    "Latest" => latest.clone(),
                                    "Repository" => s.repository.clone(),
                                    "Size" => format!(
                                        "{:>9}",
                                        s.latest()
                                            .map(|p| human_bytes(p.bytes))
                                            .unwrap_or_default()
                                    ),
                                    _ => bars(
                                        &s.restore_points
                                            .iter()
                                            .map(|p| p.added)
                                            .collect::<Vec<_>>(),
                                        w,
                                    ),
                                },
                                w,
                            )
                        }))
                    })
                    .collect(),
            )
        }
        Level::Points { service } => {
            let s = &services[*service];
            (
                vec!["", "Id", "Time (UTC)", "Size", "Added"],
                vec![
                    Constraint::Length(1),
                    Constraint::Length(8),
                    Constraint::Length(19),
                    Constraint::Length(9),
                    Constraint::Length(9),
                ],
                rows.iter()
                    .filter_map(|&i| s.restore_points.get(i).map(|p| (i, p)))
                    .map(|(i, p)| {
                        let mark = if app.inv.marked == Some(i) { "*" } else { " " };
                        Row::new(vec![
                            mark.into(),
                            p.short_id().to_string(),
                            p.time_text.clone(),
                            format!("{:>9}", human_bytes(p.bytes)),
                            format!("{:>9}", human_bytes(p.added)),
                        ])
                    })
                    .collect(),
            )
        }
        Level::Files { .. } => match &app.inv.tree {
            None => (
                vec!["Name"],
                vec![Constraint::Min(10)],
                vec![Row::new(vec!["loading…"])],
            ),
            Some(tree) => (
                vec!["", "Name", "Size"],
                vec![
                    Constraint::Length(1),
                    Constraint::Min(10),
                    Constraint::Length(9),
                ],
                rows.iter()
                    .filter_map(|&i| tree.nodes.get(i))
                    .map(|n| {
                        let kind = match n.kind {
                            NodeKind::Dir => "▸",
                            NodeKind::Symlink => "@",
                            NodeKind::File => " ",
                        };
                        let name = if app.inv.file_hits.is_some() {
                            // The end of a path says most: cut from the left.
                            ellipsize_left(
                                &format!("/{}", n.path),
                                list_area.width.saturating_sub(13) as usize,
                            )
                        } else {
                            n.path.rsplit('/').next().unwrap_or(&n.path).to_string()
                        };
                        let size = if n.kind == NodeKind::File {
                            human_bytes(n.size)
                        } else {
                            String::new()
                        };
                        Row::new(vec![kind.to_string(), name, format!("{size:>9}")])
                    })
                    .collect(),
            ),
        },
        Level::Versions { .. } => (
            vec!["", "Id", "Time (UTC)", "Size"],
            vec![
                Constraint::Length(1),
                Constraint::Length(8),
                Constraint::Length(19),
                Constraint::Length(9),
            ],
            app.inv
                .versions
                .iter()
                .flatten()
                .map(|v| {
                    Row::new(vec![
                        if v.changed { "●" } else { " " }.to_string(),
                        v.snapshot.chars().take(8).collect(),
                        v.time.clone(),
                        format!("{:>9}", human_bytes(v.size)),
                    ])
                })
                .collect(),
        ),
        Level::Diff { .. } => (
            vec!["", "Path", "Before", "After"],
            vec![
                Constraint::Length(1),
                Constraint::Min(10),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
            app.inv
                .diff
                .iter()
                .flatten()
                .map(|d| {
                    let (sym, style) = match d.change {
                        Change::Added => ("+", t.state(State::Ok)),
                        Change::Removed => ("-", t.state(State::Breach)),
                        Change::Changed => ("~", t.state(State::Warning)),
                    };
                    Row::new(vec![
                        Cell::from(sym).style(style),
                        Cell::from(ellipsize_left(
                            &format!("/{}", d.path),
                            list_area.width.saturating_sub(23) as usize,
                        )),
                        Cell::from(format!(
                            "{:>9}",
                            if d.change == Change::Added {
                                String::new()
                            } else {
                                human_bytes(d.old_size)
                            }
                        )),
                        Cell::from(format!(
                            "{:>9}",
                            if d.change == Change::Removed {
                                String::new()
                            } else {
                                human_bytes(d.new_size)
                            }
                        )),
                    ])
                })
                .collect(),
        ),
    };
    let count = body.len();
    let table = Table::new(body, widths)
        .header(Row::new(header).style(t.header()))
        .column_spacing(1)
        .row_highlight_style(t.selected())
        .block(
            Block::new()
                .borders(Borders::TOP)
                .title(if app.inv.focus_details {
                    Span::styled(format!(" {count} "), t.dim())
                } else {
                    Span::styled(format!(" ▶ {count} "), t.title())
                }),
        );
    let mut state = TableState::default().with_selected(if count > 0 {
        Some(app.inv.sel.min(count - 1))
    } else {
        None
    });
    f.render_stateful_widget(table, list_area, &mut state);

    let inner_w = detail_area.width.saturating_sub(u16::from(side)) as usize;
    let inner_h = detail_area.height.saturating_sub(1) as usize;
    let detail = super::details::fit(
        super::details::details(app, &rows),
        app.inv.detail_scroll,
        inner_w,
        inner_h,
        app,
    );
    // ▶ and a bold title mark the pane with the focus, colour or not.
    let pane = |name: String, on: bool| {
        if on {
            Span::styled(format!(" ▶ {name} "), t.title())
        } else {
            Span::styled(format!(" {name} "), t.dim())
        }
    };
    f.render_widget(
        Paragraph::new(detail).wrap(Wrap { trim: true }).block(
            Block::new()
                .borders(if side {
                    Borders::LEFT | Borders::TOP
                } else {
                    Borders::TOP
                })
                .title(pane("Details".into(), app.inv.focus_details)),
        ),
        detail_area,
    );
}
