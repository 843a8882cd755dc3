//! Which keys to show: the `?` overlay (the keys of the screen and wizard
//! step in front of the admin first, then the keys that work everywhere;
//! docs/tui.md lists the same) and the inventory's footer hints.

use super::app::{App, Level, Screen};
use super::recover::Stage;
use crate::repo::tree::NodeKind;
use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

type Keys = &'static [(&'static str, &'static str)];

/// Keys that work wherever no text field has the keys.
pub const GLOBAL: Keys = &[
    ("1 2 3  F1-F3", "Health, Inventory, Recover"),
    ("?", "this help"),
    ("R", "read the configuration and runbooks again"),
    ("q", "back out; quit from the top"),
    ("Ctrl-C", "quit"),
];

/// In any text field (search, wizard values, the confirm name).
pub const TEXT: Keys = &[
    ("Ctrl-U  Ctrl-W", "clear the field, delete a word"),
    (
        "Home End ← →",
        "move in the field; a paste is text, never Enter",
    ),
];

pub const HEALTH: Keys = &[
    ("↑ ↓  j k  g G", "select a service"),
    ("Enter → l", "its restore points"),
];

pub const INVENTORY: Keys = &[
    ("↑ ↓  j k", "move"),
    ("PgUp PgDn  g G", "page, first, last"),
    ("Enter → l", "open"),
    ("Esc ← h ⌫", "back out (clears a filter first)"),
    ("/", "fuzzy search: services, restore points, files"),
    ("r", "restore this: point, file, directory, version"),
    (
        "Tab Shift-Tab",
        "list ↔ details (↑↓ then scroll the details)",
    ),
    ("Space", "mark a restore point"),
    ("d", "diff the marked restore point with this one"),
];

/// The Recover screen's keys at each step of the wizard.
pub fn recover(stage: Stage) -> Keys {
    match stage {
        Stage::Pick => &[
            ("/", "search the scenarios"),
            ("↑ ↓  j k", "move"),
            ("Tab Shift-Tab", "list ↔ preview (↑↓ then scroll it)"),
            ("Enter", "start this scenario, or open this job"),
            ("Esc", "clear the filter; back to Health"),
        ],
        Stage::Services => &[
            ("↑ ↓  j k", "move"),
            ("Space", "choose a service (a host, for host runbooks)"),
            ("Enter", "next"),
            ("Esc", "back"),
        ],
        Stage::Point => &[
            ("↑ ↓  j k", "move"),
            ("Enter", "use this restore point"),
            ("Esc", "back"),
        ],
        Stage::Inputs => &[
            ("type", "the value (a path is checked in the restore point)"),
            ("Tab Shift-Tab", "between the fields and the file picker"),
            ("↓", "from the path field into the picker"),
            ("→ ← Space", "picker: open, close a directory"),
            ("Enter", "next; in the picker, choose that path"),
            ("Esc", "back (from the picker, to the field)"),
        ],
        Stage::Preflight => &[
            ("Enter", "review and confirm (when all is clear)"),
            ("r", "check again after a failure (re-reads the config)"),
            ("Esc", "back"),
        ],
        Stage::Confirm => &[
            ("type", "the service's name"),
            ("Enter", "start the job"),
            ("Esc", "back"),
        ],
        Stage::Run => &[
            ("Enter", "answer the job: run the step, or done"),
            ("C", "cancel the job (asks y/N)"),
            ("r", "retry the failed step"),
            ("s", "skip the step (when it can be skipped)"),
            ("a", "abort the job"),
            ("u", "undo: roll back what it replaced (asks y/N)"),
            ("D", "discard the copy kept for rollback (asks y/N)"),
            ("↑ ↓", "scroll the report"),
            ("Esc", "detach: the job keeps running"),
        ],
    }
}

/// The current screen's name and keys.
pub fn current(app: &App) -> (&'static str, Keys) {
    match app.screen {
        Screen::Health => ("Health", HEALTH),
        Screen::Inventory => ("Inventory", INVENTORY),
        Screen::Recover => (
            match app.recover.stage() {
                Stage::Pick => "Recover",
                Stage::Run => "Recover: job",
                _ => "Recover: wizard",
            },
            recover(app.recover.stage()),
        ),
    }
}

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let (name, keys) = current(app);
    let mut lines: Vec<Line> = Vec::new();
    let width = 66.min(area.width);
    let key_w = 15.min(width.saturating_sub(20) as usize);
    let section = |title: &str, keys: Keys, lines: &mut Vec<Line>| {
        lines.push(Line::styled(title.to_string(), t.title()));
        for (k, what) in keys {
            lines.push(Line::from(vec![
                Span::styled(format!("{k:>key_w$}  "), t.key()),
                Span::raw(*what),
            ]));
        }
    };
    section(&format!("{name}:"), keys, &mut lines);
    let text_fields = match app.screen {
        Screen::Inventory => true,
        Screen::Recover => matches!(
            app.recover.stage(),
            Stage::Pick | Stage::Inputs | Stage::Confirm
        ),
        Screen::Health => false,
    };
    if text_fields {
        section("In a text field:", TEXT, &mut lines);
    }
    section("Everywhere (but in a text field):", GLOBAL, &mut lines);
    lines.push(Line::styled("Esc or ? closes this help", t.dim()).alignment(Alignment::Center));
    let h = (lines.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - h) / 2,
        width,
        height: h,
    };
    // Too short a terminal keeps the screen's own keys, which come first.
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(Span::styled(" Keys ", t.title()))),
        popup,
    );
}

/// Only keys that do something on this level, for the row under the
/// cursor.
pub fn inventory_hints(app: &App) -> Vec<(&'static str, &'static str)> {
    let row = app
        .visible_rows()
        .get(app.inv.sel)
        .copied()
        .and_then(|i| app.inv.tree.as_ref()?.nodes.get(i).map(|n| n.kind));
    if app.inv.focus_details {
        return vec![
            ("↑↓", "scroll the details"),
            ("Tab", "list"),
            ("Esc", "list"),
            ("?", "help"),
        ];
    }
    let mut v = vec![("↑↓", "move")];
    match &app.inv.level {
        Level::Services => v.extend([("Enter", "open"), ("/", "search")]),
        Level::Points { .. } => v.extend([
            ("Enter", "files"),
            ("r", "restore"),
            ("Space", "mark"),
            ("d", "diff"),
            ("/", "search"),
        ]),
        Level::Files { .. } => {
            match row {
                Some(NodeKind::Dir) if app.inv.file_hits.is_none() => v.push(("Enter", "open")),
                Some(NodeKind::File) => v.push(("Enter", "versions")),
                _ => {}
            }
            if row.is_some() {
                v.push(("r", "restore"));
            }
            v.push(("/", "search"));
        }
        Level::Versions { .. } => v.push(("r", "restore this version")),
        Level::Diff { .. } => {}
    }
    let top = app.inv.level == Level::Services && app.inv.query.is_empty();
    v.push(("Esc", if top { "health" } else { "back" }));
    v.push(("?", "help"));
    if top {
        v.push(("q", "quit"));
    }
    v
}
