//! Fixtures shared by the console's headless tests: a small inventory,
//! the runbooks the wizard sees, a job's journal, and key and draw helpers.
#![allow(dead_code)]

use lifeboat::config::Tier;
use lifeboat::inventory::{Inventory, LastVerify, RestorePoint, ServiceView};
use lifeboat::jobs::{JobView, Line, Record, StepState};
use lifeboat::progress::{Counters, Phase};
use lifeboat::runbook::{Input, Scope};
use lifeboat::tui::app::{App, Cmd, Msg};
use lifeboat::tui::recover::RunbookInfo;
use lifeboat::tui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
pub const H: u64 = 3600;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000)
}

pub fn inventory() -> Inventory {
    let points = (0..5u64)
        .map(|i| {
            let t = now() - Duration::from_secs((4 - i) * 24 * H + 2 * H);
            RestorePoint {
                id: format!(
                    "{:08x}{}",
                    0xa000_0000u32 + i as u32 * 0x0111_1111,
                    "0".repeat(56)
                ),
                time: t,
                time_text: humantime::format_rfc3339_seconds(t).to_string()[..19].replace('T', " "),
                host: "docker01".into(),
                files: 100,
                bytes: 50_000_000 + i * 1_000_000,
                added: 1_000_000,
                duration_ms: 1000,
                unreadable: 0,
            }
        })
        .collect();
    Inventory {
        repositories: vec![],
        services: vec![ServiceView {
            name: "paperless".into(),
            tier: Tier::Critical,
            host: "docker01".into(),
            description: "Paperless-NGX documents".into(),
            repository: "local".into(),
            rpo_secs: 24 * H,
            rto_secs: H,
            sources: vec!["files: /srv/paperless".into()],
            restore_points: points,
            // Verified a day and a half ago: the two newest are not.
            last_verify: Some(LastVerify {
                time: now() - Duration::from_secs(36 * H),
                time_text: String::new(),
                ok: true,
            }),
            last_drill: None,
            offsite: vec![],
            pitr: None,
        }],
        kept: Default::default(),
        notices: Default::default(),
    }
}

pub fn runbooks() -> Vec<RunbookInfo> {
    let rb = |id: &str, title: &str, inputs: Vec<Input>| RunbookInfo {
        id: id.into(),
        title: title.into(),
        summary: format!("{title}, step by step."),
        file: format!("/rb/{id}.md").into(),
        scope: Scope::Service,
        inputs,
        steps: vec![
            "Confirm what is missing".into(),
            "Restore the path".into(),
            "Check it".into(),
        ],
        applies: vec!["paperless".into()],
    };
    vec![
        rb("db-corruption", "A database is corrupted", vec![]),
        rb(
            "files-deleted",
            "Files deleted or overwritten by accident",
            vec![Input {
                name: "path".into(),
                prompt: "The deleted file or directory".into(),
                default: None,
            }],
        ),
        rb("monthly-drill", "The monthly restore drill", vec![]),
    ]
}

pub fn key(app: &mut App, code: KeyCode) -> Vec<Cmd> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

pub fn draw(app: &App) -> String {
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| lifeboat::tui::views::draw(f, app)).unwrap();
    let buf = term.backend().buffer();
    (0..24)
        .map(|y| {
            (0..80)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn app() -> App {
    let mut app = App::new(Theme { color: false }, now());
    app.on_msg(Msg::Inventory(Arc::new(inventory())));
    app.on_msg(Msg::Jobs(vec![]));
    app
}

pub fn journal(id: &str) -> JobView {
    let mut v = JobView {
        id: id.into(),
        ..Default::default()
    };
    let t0 = 1_790_000_000_000u64;
    let recs = vec![
        (
            0,
            Record::Started {
                job: id.into(),
                pid: 1,
                runbook: "files-deleted".into(),
                title: "Files deleted or overwritten by accident".into(),
                services: vec!["paperless".into()],
                point: "a2222222".into(),
                steps: vec![
                    "Confirm what is missing".into(),
                    "Restore the path".into(),
                    "Check it".into(),
                ],
            },
        ),
        (
            10,
            Record::Service {
                service: "paperless".into(),
                point: "a2222222".into(),
                point_time: "2026-09-19 10:13:20".into(),
            },
        ),
        (
            20,
            Record::Step {
                index: 0,
                state: StepState::Running,
                detail: String::new(),
            },
        ),
        (
            900,
            Record::Log {
                line: "confirmed: /srv/paperless/media is missing".into(),
            },
        ),
        (
            1000,
            Record::Step {
                index: 0,
                state: StepState::Done,
                detail: "Confirm what is missing (1.0 s)".into(),
            },
        ),
        (
            1000,
            Record::Step {
                index: 1,
                state: StepState::Running,
                detail: String::new(),
            },
        ),
        (
            1010,
            Record::Log {
                line: "lifeboat: restore /srv/paperless/media".into(),
            },
        ),
        (
            5000,
            Record::Progress {
                counters: Counters {
                    phase: Phase::Restore,
                    files_done: 40,
                    files_total: 100,
                    bytes_done: 20 << 20,
                    bytes_total: 50 << 20,
                    bytes_stored: 0,
                },
            },
        ),
    ];
    for (dt, rec) in recs {
        v.apply(&Line { t: t0 + dt, rec });
    }
    v
}

pub fn draw_at(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| lifeboat::tui::views::draw(f, app)).unwrap();
    let buf = term.backend().buffer();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn paste(app: &mut App, text: &str) -> Vec<Cmd> {
    app.on_paste(text)
}

/// The newest restore point of the fixture's paperless.
pub fn newest() -> String {
    inventory().services[0]
        .restore_points
        .last()
        .unwrap()
        .id
        .clone()
}

pub fn tree(snapshot: &str) -> Arc<lifeboat::tui::tree::TreeView> {
    use lifeboat::repo::tree::{Node, NodeKind};
    let nodes = vec![
        Node::new("srv", NodeKind::Dir),
        Node::new("srv/paperless", NodeKind::Dir),
        Node::new("srv/paperless/media", NodeKind::Dir),
        Node {
            size: 2_100_000,
            ..Node::new("srv/paperless/media/0042.pdf", NodeKind::File)
        },
    ];
    Arc::new(lifeboat::tui::tree::TreeView::new(snapshot.into(), nodes))
}
