//! The Health screen: capacity per repository, one row per service, a
//! sparkline of the selected service's backups and the alerts. Wide
//! terminals (≥ 160 columns) get host, repository, copy lag and size
//! history columns and the alerts beside the table; narrow ones drop
//! columns before a value is cut.

use super::app::App;
use super::columns::{bars, col, cut, fit, flex, Col};
use crate::health::State;
use crate::util::human_bytes;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, LineGauge, Paragraph, Row, Sparkline, Table, TableState, Wrap,
};
use ratatui::Frame;

/// From here on the alerts go beside the table.
pub const WIDE: u16 = 160;

const COLS: &[Col] = &[
    col("", 1, 9),
    flex("Service", 8),
    col("Host", 12, 2),
    col("Repository", 12, 1),
    col("Tier", 4, 5),
    col("Backup/RPO", 10, 8),
    col("Verify", 13, 6),
    col("Drill (took/RTO)", 17, 4),
    col("Pts", 4, 3),
    col("Size", 9, 7),
    col("Copy lag", 12, 2),
    col("Size history", 14, 0),
];

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let (Some(inv), Some(report)) = (&app.inventory, &app.report) else {
        f.render_widget(Paragraph::new("loading…"), area);
        return;
    };
    let wide = area.width >= WIDE;
    let (main, side) = if wide {
        let [a, b] = Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)])
            .areas(area);
        (a, Some(b))
    } else {
        (area, None)
    };
    let repos = report.repositories.len().min(3) as u16;
    // A taller sparkline where the height allows it.
    let spark_h = if area.height >= 40 { 10 } else { 4 };
    let alerts_min = if side.is_some() { 0 } else { 3 };
    let table_h = (report.services.len() as u16 + 2)
        .min(main.height.saturating_sub(repos + spark_h + alerts_min))
        .max(3);
    let [gauges, table_area, spark_area, rest] = Layout::vertical([
        Constraint::Length(repos),
        Constraint::Length(table_h),
        Constraint::Length(spark_h),
        Constraint::Min(alerts_min),
    ])
    .areas(main);
    let alerts_area = side.unwrap_or(rest);

    for (i, r) in report.repositories.iter().take(3).enumerate() {
        let line = Rect {
            y: gauges.y + i as u16,
            height: 1,
            ..gauges
        };
        let label = cut(&format!("{} {}", r.state.symbol(), r.repository), 13);
        let label = format!("{label:<14}");
        match r.percent {
            Some(p) if line.width >= 60 => {
                let g = LineGauge::default()
                    .label(Span::styled(label, t.state(r.state)))
                    .ratio((p / 100.0).clamp(0.0, 1.0))
                    .filled_style(t.state(r.state))
                    .unfilled_style(t.dim());
                let [g_area, text_area] =
                    Layout::horizontal([Constraint::Min(20), Constraint::Length(28)]).areas(line);
                f.render_widget(g, g_area);
                f.render_widget(
                    Paragraph::new(Span::styled(
                        cut(&format!(" {}", r.text), 28),
                        t.state(r.state),
                    )),
                    text_area,
                );
            }
            _ => f.render_widget(
                Paragraph::new(Span::styled(
                    cut(&format!("{label} {}", r.text), line.width as usize),
                    t.state(r.state),
                )),
                line,
            ),
        }
    }

    let offsite = report.services.iter().any(|s| !s.offsite.is_empty());
    let cols: Vec<Col> = COLS
        .iter()
        .copied()
        .filter(|c| match c.header {
            "Copy lag" => offsite,
            "Host" | "Repository" | "Size history" => wide || c.header == "Host",
            _ => true,
        })
        .collect();
    let kept = fit(&cols, table_area.width, 1);
    let rows: Vec<Row> = report
        .services
        .iter()
        .map(|s| {
            let view = inv.services.iter().find(|v| v.name == s.service);
            let cell = |h: &str, w: usize| -> Cell {
                let (text, style) = match h {
                    "" => (s.state.symbol().to_string(), t.state(s.state)),
                    "Service" => (s.service.clone(), Default::default()),
                    "Host" => (
                        view.map(|v| v.host.clone()).unwrap_or_default(),
                        Default::default(),
                    ),
                    "Repository" => (
                        view.map(|v| v.repository.clone()).unwrap_or_default(),
                        Default::default(),
                    ),
                    "Tier" => (
                        super::columns::tier_short(s.tier).into(),
                        Default::default(),
                    ),
                    "Backup/RPO" => (s.backup.text.clone(), t.state(s.backup.state)),
                    "Verify" => (s.verify.text.clone(), t.state(s.verify.state)),
                    "Drill (took/RTO)" => (s.drill.text.clone(), t.state(s.drill.state)),
                    "Pts" => (format!("{:>3}", s.restore_points), Default::default()),
                    "Size" => (format!("{:>9}", human_bytes(s.size)), Default::default()),
                    "Copy lag" => match s.offsite.iter().max_by_key(|o| o.check.state) {
                        // The worst copy speaks for the service.
                        Some(o) => (o.check.text.clone(), t.state(o.check.state)),
                        None => (String::new(), Default::default()),
                    },
                    _ => (
                        view.map(|v| {
                            let added: Vec<u64> =
                                v.restore_points.iter().map(|p| p.added).collect();
                            bars(&added, w)
                        })
                        .unwrap_or_default(),
                        t.state(State::Ok),
                    ),
                };
                Cell::from(cut(&text, w)).style(style)
            };
            Row::new(
                kept.iter()
                    .map(|&(i, w)| cell(cols[i].header, w as usize))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let table = Table::new(rows, kept.iter().map(|&(_, w)| Constraint::Length(w)))
        .header(
            Row::new(kept.iter().map(|&(i, w)| cut(cols[i].header, w as usize))).style(t.header()),
        )
        .column_spacing(1)
        .row_highlight_style(t.selected())
        .block(
            Block::new()
                .borders(Borders::TOP)
                .title(Span::styled(" Services ", t.title())),
        );
    let mut state = TableState::default().with_selected(Some(
        app.health_sel.min(report.services.len().saturating_sub(1)),
    ));
    f.render_stateful_widget(table, table_area, &mut state);

    // Backup sizes of the selected service, oldest to newest.
    if let Some(svc) = inv.services.get(app.health_sel) {
        let data: Vec<u64> = svc.restore_points.iter().map(|p| p.added.max(1)).collect();
        let take = (spark_area.width as usize).min(data.len());
        let title = cut(
            &format!(" {}: added per backup, last {} ", svc.name, take),
            spark_area.width as usize,
        );
        let spark = Sparkline::default()
            .block(
                Block::new()
                    .borders(Borders::TOP)
                    .title(Span::styled(title, t.title())),
            )
            .data(&data[data.len() - take..])
            .style(t.state(State::Ok));
        f.render_widget(spark, spark_area);
    }
    draw_alerts(f, app, report, alerts_area, side.is_some());
}

/// Alerts, worst first. They wrap (an error can be long); as many whole
/// ones as fit are shown, and how many more there are.
fn draw_alerts(f: &mut Frame, app: &App, report: &crate::health::Report, area: Rect, side: bool) {
    let t = &app.theme;
    let room = area.height.saturating_sub(1) as usize;
    let width = area.width.saturating_sub(u16::from(side)).max(1) as usize;
    let lines_of = |text: &str| text.chars().count().div_ceil(width).max(1);
    let lines: Vec<Line> = if report.alerts.is_empty() {
        vec![Line::styled(
            "✓ every service is inside its targets",
            t.state(State::Ok),
        )]
    } else {
        let texts: Vec<String> = report
            .alerts
            .iter()
            .map(|a| format!("{} {}", a.state.symbol(), a.message))
            .collect();
        let total: usize = texts.iter().map(|x| lines_of(x)).sum();
        let budget = if total > room {
            room.saturating_sub(1)
        } else {
            room
        };
        let mut used = 0;
        let mut v = Vec::new();
        for (a, text) in report.alerts.iter().zip(&texts) {
            if used + lines_of(text) > budget {
                break;
            }
            used += lines_of(text);
            v.push(Line::styled(text.clone(), t.state(a.state)));
        }
        if v.len() < texts.len() {
            v.push(Line::styled(
                cut(
                    &format!(
                        "… and {} more (`lifeboat health` lists them all)",
                        texts.len() - v.len()
                    ),
                    width,
                ),
                t.dim(),
            ));
        }
        v
    };
    let title = format!(" Needs action ({}) ", report.alerts.len());
    f.render_widget(
        Paragraph::new(lines)
            .block(
                Block::new()
                    .borders(if side {
                        Borders::TOP | Borders::LEFT
                    } else {
                        Borders::TOP
                    })
                    .title(Span::styled(cut(&title, width), t.title())),
            )
            .wrap(Wrap { trim: false }),
        area,
    );
}
