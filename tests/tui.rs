//! The console as a user meets it: snapshot-tested screens on ratatui's
//! TestBackend (80×24 and 160×48, colour and NO_COLOR), and the real app
//! driven headless through the real loader against a real demo repository.

use lifeboat::config::Tier;
use lifeboat::inventory::{
    Capacity, Inventory, LastVerify, OffsiteCopy, RepositoryView, RestorePoint, ServiceView,
};
use lifeboat::records::DrillRecord;
use lifeboat::tui::app::{App, Cmd, Level, Msg, Screen};
use lifeboat::tui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use ratatui::Terminal;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const H: u64 = 3600;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000)
}

fn rfc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn points(n: usize, newest_age: u64) -> Vec<RestorePoint> {
    (0..n)
        .map(|i| {
            let t = now() - Duration::from_secs(newest_age + (n - 1 - i) as u64 * 24 * H);
            RestorePoint {
                id: format!(
                    "{:08x}{}",
                    0x1000_0000u32 + i as u32 * 0x0101_0101,
                    "0".repeat(56)
                ),
                time: t,
                time_text: rfc(t)[..19].replace('T', " "),
                host: "docker01".into(),
                files: 100 + i as u64,
                bytes: 50_000_000 + i as u64 * 1_000_000,
                added: 1_000_000 + (i as u64 % 3) * 700_000,
                duration_ms: 1200,
                unreadable: 0,
            }
        })
        .collect()
}

fn service(
    name: &str,
    tier: Tier,
    host: &str,
    (rpo, rto): (u64, u64),
    pts: Vec<RestorePoint>,
    verify: Option<(u64, bool)>,
    drill: Option<(u64, u64, bool)>,
) -> ServiceView {
    ServiceView {
        name: name.into(),
        tier,
        host: host.into(),
        description: format!("{name} data"),
        repository: "nas".into(),
        rpo_secs: rpo,
        rto_secs: rto,
        sources: vec![format!("files: /srv/{name}")],
        restore_points: pts,
        last_verify: verify.map(|(ago, ok)| LastVerify {
            time: now() - Duration::from_secs(ago),
            time_text: "2026-09-21 10:00:00".into(),
            ok,
        }),
        last_drill: drill.map(|(ago, took_ms, ok)| DrillRecord {
            time: rfc(now() - Duration::from_secs(ago)),
            service: name.into(),
            snapshot: "x".into(),
            ok,
            duration_ms: took_ms,
            rto_ms: rto * 1000,
            detail: "test".into(),
            kind: "drill".into(),
            waited_ms: 0,
            evidence: Default::default(),
        }),
        offsite: Vec::new(),
        pitr: None,
    }
}

/// A homelab with one of everything: green, warnings and breaches.
fn inventory() -> Inventory {
    Inventory {
        repositories: vec![RepositoryView {
            name: "nas".into(),
            location: "/mnt/nas".into(),
            capacity: Some(Capacity {
                total: 4_000_000_000_000,
                used: 3_400_000_000_000,
            }),
            size: Some(2_000_000_000_000),
            error: None,
            object_storage: false,
            copy_of: None,
        }],
        services: vec![
            service(
                "vaultwarden",
                Tier::Critical,
                "docker01",
                (24 * H, H),
                points(14, 3 * H),
                Some((2 * H, true)),
                Some((5 * 86400, 95_000, true)),
            ),
            service(
                "immich-db",
                Tier::Critical,
                "docker01",
                (24 * H, 2 * H),
                points(14, 5 * H),
                Some((2 * H, true)),
                Some((3 * 86400, 9_000_000, false)),
            ),
            service(
                "paperless",
                Tier::Important,
                "docker02",
                (24 * H, 8 * H),
                points(10, 6 * H),
                Some((9 * 86400, true)),
                None,
            ),
            service(
                "nextcloud",
                Tier::Important,
                "docker02",
                (24 * H, 8 * H),
                points(9, 4 * H),
                Some((H, false)),
                Some((H, 30_000_000, true)),
            ),
            service(
                "homeassistant",
                Tier::Supporting,
                "pve-ha",
                (48 * H, 24 * H),
                points(5, 75 * H),
                Some((2 * H, true)),
                Some((2 * 86400, 60_000, true)),
            ),
            service(
                "grafana",
                Tier::Supporting,
                "pve-ha",
                (48 * H, 24 * H),
                vec![],
                None,
                None,
            ),
        ],
        kept: Default::default(),
        notices: Default::default(),
    }
}

fn app(color: bool) -> App {
    let mut app = App::new(Theme { color }, now());
    assert!(app.on_msg(Msg::Inventory(Arc::new(inventory()))).is_empty());
    app
}

#[test]
fn off_site_lag_is_a_column_on_wide_screens_and_an_alert_everywhere() {
    let mut inv = inventory();
    let newest = inv.services[0].latest().unwrap().time;
    inv.services[0].offsite = vec![OffsiteCopy {
        repository: "b2".into(),
        latest: Some(newest - Duration::from_secs(3 * 24 * H)),
        unreadable: false,
    }];
    let name = inv.services[0].name.clone();
    let mut app = App::new(Theme { color: false }, now());
    assert!(app.on_msg(Msg::Inventory(Arc::new(inv))).is_empty());
    let (wide, _) = render(&app, 160, 48);
    assert!(wide.contains("Copy lag"), "{wide}");
    assert!(wide.contains("3d behind"), "{wide}");
    let (small, _) = render(&app, 80, 24);
    assert!(!small.contains("Copy lag"), "{small}");
    let (big, _) = render(&app, 200, 50);
    assert!(
        big.contains(&format!("{name}: the copy in b2")),
        "the alert, beside the table:\n{big}"
    );
}

#[test]
fn the_last_audit_and_an_unprotected_repository_are_alerts_on_the_health_screen() {
    let mut inv = inventory();
    let before = lifeboat::health::evaluate(&inv, now(), &Default::default())
        .alerts
        .len();
    let name = inv.services[0].name.clone();
    let report: lifeboat::engine::audit::AuditReport = serde_json::from_value(serde_json::json!({
        "findings": [{
            "kind": "unprotected-database",
            "what": "postgres 127.0.0.1:5432/shop",
            "message": "postgres 127.0.0.1:5432/shop: no service backs up this database"
        }],
        "notes": []
    }))
    .unwrap();
    inv.notices.audit = Some(lifeboat::records::AuditRecord {
        time: "2026-12-01T03:00:00Z".into(),
        report,
    });
    inv.notices.unprotected = vec![(name.clone(), "nas".into())];
    let mut app = App::new(Theme { color: false }, now());
    assert!(app.on_msg(Msg::Inventory(Arc::new(inv))).is_empty());
    // At 80x24 they are counted among the alerts below the fold...
    let (small, _) = render(&app, 80, 24);
    let title = format!("Needs action ({})", before + 2);
    assert!(small.contains(&title), "{small}");
    // ...and with room, shown.
    let (text, _) = render(&app, 200, 50);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("audit (2026-12-01T03:00): postgres 127.0.0.1:5432/shop"),
        "{text}"
    );
    assert!(
        flat.contains("repository nas has neither Object Lock nor append-only"),
        "{text}"
    );
}

fn key(app: &mut App, code: KeyCode) -> Vec<Cmd> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn render(app: &App, w: u16, h: u16) -> (String, Terminal<TestBackend>) {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| lifeboat::tui::views::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    (out, t)
}

fn colours(t: &Terminal<TestBackend>) -> usize {
    t.backend()
        .buffer()
        .content()
        .iter()
        .filter(|c| c.fg != Color::Reset || c.bg != Color::Reset)
        .count()
}

#[test]
fn health_screen_80x24_and_160x48() {
    let app = app(true);
    let (small, t) = render(&app, 80, 24);
    insta::assert_snapshot!("health_80x24", small);
    assert!(
        colours(&t) > 0,
        "states are coloured when colour is allowed"
    );
    // Everything essential at 80 columns: every service, its state symbol and the alerts.
    for s in [
        "vaultwarden",
        "immich-db",
        "paperless",
        "nextcloud",
        "homeassistant",
        "grafana",
        "✗",
        "!",
        "✓",
        "85%",
    ] {
        assert!(small.contains(s), "{s} missing at 80x24:\n{small}");
    }
    let (wide, _) = render(&app, 160, 48);
    insta::assert_snapshot!("health_160x48", wide);
    assert!(
        wide.contains("Host") && wide.contains("docker02"),
        "wide terminals show more columns"
    );
}

#[test]
fn no_color_draws_without_colour_but_keeps_the_symbols() {
    let app = app(false);
    for (w, h) in [(80, 24), (160, 48)] {
        let (text, t) = render(&app, w, h);
        assert_eq!(colours(&t), 0, "NO_COLOR at {w}x{h}");
        assert!(
            text.contains("✗ BREACH") && text.contains("! paperless"),
            "{text}"
        );
    }
    let (text, _) = render(&app, 80, 24);
    insta::assert_snapshot!("health_80x24_no_color", text);
}

#[test]
fn health_evaluation_names_each_problem_worst_first() {
    let app = app(true);
    let r = app.report.as_ref().unwrap();
    let state = |n: &str| r.services.iter().find(|s| s.service == n).unwrap().state;
    use lifeboat::health::State::*;
    assert_eq!(state("vaultwarden"), Ok);
    assert_eq!(state("immich-db"), Breach, "failed drill");
    assert_eq!(
        state("paperless"),
        Warning,
        "stale verify and never drilled"
    );
    assert_eq!(
        state("nextcloud"),
        Breach,
        "drill over RTO and failed verify"
    );
    assert_eq!(state("homeassistant"), Breach, "75h old with a 48h RPO");
    assert_eq!(state("grafana"), Breach, "never backed up");
    assert_eq!(r.alerts[0].state, Breach);
    assert_eq!(r.alerts.last().unwrap().state, Warning);
    assert!(r
        .alerts
        .iter()
        .any(|a| a.message == "paperless: restore never drilled (run `lifeboat drill paperless`)"));
    assert!(
        r.alerts
            .iter()
            .any(|a| a.message == "nextcloud: the last drill took 8h20m, over its RTO of 8h"),
        "{:?}",
        r.alerts
    );
    assert!(
        r.repositories[0].state == Warning,
        "85% used is over the 80% warning"
    );
}

#[test]
fn inventory_help_and_navigation_screens() {
    let mut app = app(true);
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(app.screen, Screen::Inventory);
    let (text, _) = render(&app, 80, 24);
    insta::assert_snapshot!("inventory_services_80x24", text);
    // Hosts group the services.
    let docker02 = text.find("docker02").unwrap();
    assert!(text.find("docker01").unwrap() < docker02 && docker02 < text.find("pve-ha").unwrap());

    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.inv.level, Level::Points { .. }));
    let (text, _) = render(&app, 80, 24);
    insta::assert_snapshot!("inventory_points_80x24", text);
    let (wide, _) = render(&app, 160, 48);
    insta::assert_snapshot!("inventory_points_160x48", wide);

    // Fuzzy filter over restore points.
    key(&mut app, KeyCode::Char('/'));
    for c in "1a0a0a0a".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.visible_rows().len(), 1, "one restore point id matches");
    key(&mut app, KeyCode::Esc);
    assert!(app.visible_rows().len() > 1, "Esc clears the filter");

    key(&mut app, KeyCode::Char('?'));
    let (text, _) = render(&app, 80, 24);
    insta::assert_snapshot!("help_80x24", text);
    assert!(text.contains("Keys") && text.contains("fuzzy search"));
    key(&mut app, KeyCode::Esc);
    assert!(!app.help);
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit, "q from the top quits");
}

/// The real app on a real repository: build the demo, then drive keys and
/// run each command the app asks for through the real loader, in order.
#[test]
fn headless_demo_find_a_file_see_its_restore_points_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("LIFEBOAT_KEY_DIR", dir.path().join("keys"));
    let root = dir.path().join("demo");
    let config = lifeboat::demo::build(&root, &lifeboat::progress::Reporter::silent()).unwrap();
    let cache = lifeboat::tui::cache::Cache::default();
    let latest = std::sync::atomic::AtomicU64::new(0);
    let run = |app: &mut App, cmds: Vec<Cmd>| {
        for c in cmds {
            if let Cmd::SearchFiles { generation, .. } = &c {
                latest.store(*generation, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(m) = lifeboat::tui::execute(&config, &cache, &latest, c) {
                let more = app.on_msg(m);
                assert!(more.is_empty(), "no follow-up work expected here: {more:?}");
            }
        }
    };
    let mut app = App::new(Theme { color: false }, SystemTime::now());
    run(&mut app, vec![Cmd::LoadInventory]);
    let r = app.report.clone().unwrap();
    let state = |n: &str| r.services.iter().find(|s| s.service == n).unwrap().state;
    use lifeboat::health::State::*;
    assert_eq!(
        (
            state("vaultwarden"),
            state("immich"),
            state("paperless"),
            state("homeassistant")
        ),
        (Ok, Ok, Warning, Breach)
    );

    // Inventory → vaultwarden → newest restore point → search a file.
    key(&mut app, KeyCode::Char('2'));
    let row = app
        .visible_rows()
        .iter()
        .position(|&i| app.services()[i].name == "vaultwarden")
        .unwrap();
    for _ in 0..row {
        key(&mut app, KeyCode::Down);
    }
    let c = key(&mut app, KeyCode::Enter);
    run(&mut app, c);
    let c = key(&mut app, KeyCode::Enter);
    run(&mut app, c);
    assert!(app.inv.tree.is_some(), "{:?}", app.status);
    key(&mut app, KeyCode::Char('/'));
    // The database is stored through SQLite's backup API, under .lifeboat/.
    for ch in "sqlitedbsqlite".chars() {
        let c = key(&mut app, KeyCode::Char(ch));
        run(&mut app, c);
    }
    key(&mut app, KeyCode::Enter);
    let (text, _) = render(&app, 80, 24);
    assert!(text.contains(".lifeboat/sqlite/db.sqlite3"), "{text}");
    let c = key(&mut app, KeyCode::Enter);
    run(&mut app, c);
    let versions = app.inv.versions.clone().expect("versions loaded");
    assert_eq!(
        versions.len(),
        7,
        "a week of restore points hold the database"
    );
    assert!(versions.iter().all(|v| v.changed), "it changed every night");
    let (text, _) = render(&app, 80, 24);
    assert!(
        text.contains("versions of /") && text.contains("●"),
        "{text}"
    );

    // Back to the restore points; diff the oldest against the newest.
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Esc);
    assert!(
        matches!(app.inv.level, Level::Points { .. }),
        "{:?}",
        app.inv.level
    );
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::End);
    let c = key(&mut app, KeyCode::Char('d'));
    run(&mut app, c);
    let diff = app.inv.diff.clone().expect("diff loaded");
    assert!(
        diff.iter()
            .any(|d| d.path.ends_with("attachments/att-06.bin")
                && d.change == lifeboat::tui::tree::Change::Added),
        "{diff:?}"
    );
    assert!(diff.iter().any(
        |d| d.path.ends_with("db.sqlite3") && d.change == lifeboat::tui::tree::Change::Changed
    ));
    // Secrets are never previewed: no screen shows file contents.
    let (text, _) = render(&app, 160, 48);
    assert!(!text.contains("ADMIN_TOKEN"), "{text}");
}

#[test]
fn a_search_typed_while_the_file_list_loads_runs_when_it_arrives() {
    use lifeboat::repo::tree::{Node, NodeKind};
    let mut app = app(false);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Enter);
    let cmds = key(&mut app, KeyCode::Enter);
    let [Cmd::LoadTree { req, .. }] = cmds.as_slice() else {
        panic!("expected a file list load, got {cmds:?}")
    };
    let req = *req;
    key(&mut app, KeyCode::Char('/'));
    for c in "inv".chars() {
        assert!(
            key(&mut app, KeyCode::Char(c)).is_empty(),
            "nothing to search yet"
        );
    }
    let node = |p: &str, kind| Node {
        size: 1,
        ..Node::new(p, kind)
    };
    let tree = lifeboat::tui::tree::TreeView::new(
        "x".into(),
        vec![
            node("srv", NodeKind::Dir),
            node("srv/invoice.pdf", NodeKind::File),
            node("srv/other", NodeKind::File),
        ],
    );
    let cmds = app.on_msg(Msg::Tree(req, Ok(Arc::new(tree))));
    let [Cmd::SearchFiles {
        generation,
        query,
        tree,
    }] = cmds.as_slice()
    else {
        panic!("expected a search, got {cmds:?}")
    };
    assert_eq!(query, "inv");
    let latest = std::sync::atomic::AtomicU64::new(*generation);
    let hits = lifeboat::tui::tree::search(tree, query, 10, *generation, &latest).unwrap();
    assert_eq!(hits, vec![1]);
    // A superseded search gives up instead of finishing.
    latest.store(generation + 1, std::sync::atomic::Ordering::Relaxed);
    assert!(lifeboat::tui::tree::search(tree, query, 10, *generation, &latest).is_none());
}

#[test]
fn a_long_alert_wraps_instead_of_being_cut_at_80_columns() {
    let mut inv = inventory();
    inv.repositories[0].error = Some("no key in /etc/lifeboat/keys/admin.key opens the repository at /mnt/nas/lifeboat (the mount may be missing)".into());
    let mut app = App::new(Theme { color: false }, now());
    assert!(app.on_msg(Msg::Inventory(Arc::new(inv))).is_empty());
    let (text, _) = render(&app, 80, 24);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("(the mount may be missing)"),
        "the end of the error is on screen:\n{text}"
    );
    // One alert names every service it cannot judge, over three lines.
    assert!(
        flat.contains("cannot judge vaultwarden,") && flat.contains("homeassistant, grafana"),
        "{text}"
    );
}

#[test]
fn answers_to_older_requests_are_dropped() {
    use lifeboat::repo::tree::{Node, NodeKind};
    let mut app = app(false);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Enter);
    let old = key(&mut app, KeyCode::Enter);
    let [Cmd::LoadTree { req: old, .. }] = old.as_slice() else {
        panic!("{old:?}")
    };
    let old = *old;
    // Back out before it answers, and open the next restore point.
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Down);
    let new = key(&mut app, KeyCode::Enter);
    let [Cmd::LoadTree {
        req: new, snapshot, ..
    }] = new.as_slice()
    else {
        panic!("{new:?}")
    };
    let tree = |id: &str| {
        Arc::new(lifeboat::tui::tree::TreeView::new(
            id.into(),
            vec![Node {
                size: 1,
                ..Node::new("srv/a.txt", NodeKind::File)
            }],
        ))
    };
    app.on_msg(Msg::Tree(old, Ok(tree("old"))));
    assert!(app.inv.tree.is_none(), "the older file list is dropped");
    app.on_msg(Msg::Tree(*new, Ok(tree(snapshot))));
    assert_eq!(&app.inv.tree.as_ref().unwrap().snapshot, snapshot);
    // Versions: an answer for the file left behind is dropped too.
    let v = key(&mut app, KeyCode::Enter);
    let [Cmd::Versions { req: vreq, .. }] = v.as_slice() else {
        panic!("{v:?}")
    };
    let version = lifeboat::tui::tree::Version {
        snapshot: "new".into(),
        time: "2026-09-21 10:00:00".into(),
        size: 1,
        changed: true,
    };
    app.on_msg(Msg::Versions(vreq - 1, Ok(vec![version.clone()])));
    assert!(app.inv.versions.is_none());
    app.on_msg(Msg::Diff(vreq - 1, Err("late".into())));
    assert!(app.status.as_deref() != Some("error: late"));
    app.on_msg(Msg::Versions(*vreq, Ok(vec![version])));
    assert_eq!(app.inv.versions.as_ref().map(Vec::len), Some(1));
    // Esc from the versions goes back to the file list, filter kept.
    key(&mut app, KeyCode::Esc);
    assert!(matches!(app.inv.level, Level::Files { .. }));
}
