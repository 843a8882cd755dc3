//! The console's keys and the restore-from-where-you-found-it flow,
//! headless: global keys, `/` to search, per-screen help, footers that
//! only offer what applies, pastes that never submit, a path checked
//! against the restore point before preflight, and `r` in the inventory.

mod tui_fixture;

use lifeboat::jobs::{Line, Record};
use lifeboat::runbook::preflight::Check;
use lifeboat::tui::app::{Cmd, Msg, Screen};
use lifeboat::tui::recover::Stage;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_fixture::*;

#[test]
fn global_keys_work_on_the_scenario_list_and_search_starts_on_slash() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    key(&mut app, KeyCode::Char('1'));
    assert_eq!(app.screen, Screen::Health, "1 switches to Health");
    key(&mut app, KeyCode::Char('3'));
    assert_eq!(app.screen, Screen::Recover);
    // j/k move; they are not typed into a search.
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(app.recover.sel, 1);
    assert!(app.recover.query.is_empty());
    key(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    let s = draw(&app);
    let own = s.find("search the scenarios").expect(&s);
    assert!(
        own < s.find("Everywhere").unwrap(),
        "the screen's keys first:\n{s}"
    );
    key(&mut app, KeyCode::Esc);
    // `/` opens the search; now digits and q are text.
    key(&mut app, KeyCode::Char('/'));
    assert!(app.recover.wants_text());
    typed(&mut app, "q1");
    assert_eq!(app.screen, Screen::Recover);
    assert!(!app.quit);
    assert_eq!(app.recover.query.text(), "q1");
    // Ctrl-U clears the field.
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert!(app.recover.query.is_empty());
    typed(&mut app, "drill");
    key(&mut app, KeyCode::Enter);
    assert!(!app.recover.searching);
    assert!(draw(&app).contains("monthly-drill"), "{}", draw(&app));
    key(&mut app, KeyCode::Esc);
    assert!(app.recover.query.is_empty(), "Esc clears the filter first");
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit, "q quits from the top of Recover");
}

#[test]
fn help_on_the_progress_pane_lists_c_r_s_a() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.recover.job = Some(journal("20260919-files-deleted-0003"));
    app.recover.stage = Some(Stage::Run);
    key(&mut app, KeyCode::Char('?'));
    for (w, h) in [(80, 24), (200, 50)] {
        let s = draw_at(&app, w, h);
        let everywhere = s.find("Everywhere").expect(&s);
        for k in [
            "C  cancel the job",
            "r  retry the failed step",
            "s  skip the step",
            "a  abort the job",
        ] {
            let at = s.find(k).unwrap_or_else(|| panic!("{k} missing:\n{s}"));
            assert!(at < everywhere, "{k} comes first:\n{s}");
        }
        insta::assert_snapshot!(format!("recover_run_help_{w}x{h}"), s);
    }
}

#[test]
fn footers_offer_only_what_applies() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Preflight);
    app.on_msg(Msg::Preflight(
        vec![(
            "paperless".into(),
            Check {
                name: "stop".into(),
                ok: false,
                detail: "no stop command".into(),
            },
        )],
        vec![],
    ));
    let s = draw(&app);
    assert!(!s.contains("Enter continue"), "{s}");
    assert!(s.contains("r check again"), "{s}");
    // r reads the configuration again, then preflight runs again.
    assert!(matches!(
        key(&mut app, KeyCode::Char('r')).as_slice(),
        [Cmd::Reload]
    ));
    let cmds = app.on_msg(Msg::Reloaded(Err("broken.toml:3:1: bad key".into())));
    assert!(
        matches!(cmds.last(), Some(Cmd::Preflight { .. })),
        "{cmds:?}"
    );
    assert!(draw(&app).contains("still using the old one"));

    // A failed step that cannot be skipped offers no s.
    let mut job = journal("20260919-files-deleted-0004");
    job.apply(&Line {
        t: 1_790_000_006_000,
        rec: Record::Wait {
            ask: 1,
            index: 1,
            kind: "failed".into(),
            prompt: "Restore the path: disk full".into(),
            skippable: false,
        },
    });
    app.recover.job = Some(job);
    app.recover.stage = Some(Stage::Run);
    let footer = draw(&app).lines().last().unwrap().to_string();
    assert!(
        footer.contains("r retry") && !footer.contains("s skip"),
        "{footer}"
    );
}

#[test]
fn a_pasted_newline_never_submits() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Inputs);
    assert!(paste(&mut app, "/srv/paperless/media/0042.pdf\n").is_empty());
    assert_eq!(app.recover.stage(), Stage::Inputs, "still on the field");
    assert_eq!(
        app.recover.inputs[0].text(),
        "/srv/paperless/media/0042.pdf"
    );
    // A paste over several lines stays on one row of the screen.
    paste(&mut app, &"/very/long/path".repeat(20));
    let s = draw(&app);
    assert!(s.contains("> …"), "the field scrolls to the cursor:\n{s}");
    assert!(s.contains("Enter next"), "the footer is still there:\n{s}");

    // In the inventory's search line too.
    let mut app = self::app();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('/'));
    assert!(paste(&mut app, "paper\n").is_empty());
    assert!(app.inv.typing.is_some(), "the search line is still open");
    assert_eq!(app.inv.query, "paper");
}

#[test]
fn a_mistyped_path_is_refused_before_preflight() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Inputs);
    typed(&mut app, "/srv/paperless/media/0024.pdf");
    let cmds = key(&mut app, KeyCode::Enter);
    let [Cmd::CheckPath {
        req,
        snapshot,
        path,
        ..
    }] = cmds.as_slice()
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(snapshot, &newest());
    // The loader's answer, from the restore point's tree.
    let answer = lifeboat::tui::tree::check_path(&tree(snapshot).nodes, path, snapshot);
    let err = answer.clone().unwrap_err();
    assert!(
        err.contains("did you mean /srv/paperless/media/0042.pdf"),
        "{err}"
    );
    // A late answer to an older check changes nothing.
    assert!(app.on_msg(Msg::PathChecked(req - 1, Ok(()))).is_empty());
    assert!(app.on_msg(Msg::PathChecked(*req, answer)).is_empty());
    assert_eq!(app.recover.stage(), Stage::Inputs, "no preflight");
    let s = draw(&app);
    assert!(s.contains("is not in restore point"), "{s}");
    insta::assert_snapshot!("recover_path_refused_80x24", s);
    // The field keeps the keys: the admin fixes the text in place.
    for _ in 0..8 {
        key(&mut app, KeyCode::Backspace);
    }
    typed(&mut app, "0042.pdf");
    assert_eq!(
        app.recover.inputs[0].text(),
        "/srv/paperless/media/0042.pdf"
    );
    // A relative path is refused with what to type instead.
    let rel = lifeboat::tui::tree::check_path(&tree("x").nodes, "srv/paperless", "x");
    assert!(rel.unwrap_err().contains("not an absolute path"));
}

#[test]
fn r_in_the_inventory_opens_the_wizard_filled_in() {
    let mut app = app();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Enter);
    let cmds = key(&mut app, KeyCode::Enter);
    let [Cmd::LoadTree { req, snapshot, .. }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(snapshot, &newest());
    app.on_msg(Msg::Tree(*req, Ok(tree(snapshot))));
    key(&mut app, KeyCode::Char('/'));
    let mut hits = vec![];
    for c in "0042".chars() {
        for cmd in key(&mut app, KeyCode::Char(c)) {
            if let Cmd::SearchFiles {
                generation,
                query,
                tree,
            } = cmd
            {
                let latest = std::sync::atomic::AtomicU64::new(generation);
                let h = lifeboat::tui::tree::search(&tree, &query, 10, generation, &latest);
                hits.push(Msg::FileHits {
                    generation,
                    hits: h.unwrap(),
                });
            }
        }
    }
    for m in hits {
        app.on_msg(m);
    }
    key(&mut app, KeyCode::Enter);
    assert!(draw(&app).contains("r restore"), "{}", draw(&app));
    // The runbooks are not loaded yet: the wizard waits for them.
    let cmds = key(&mut app, KeyCode::Char('r'));
    assert_eq!(app.screen, Screen::Recover);
    assert!(matches!(
        cmds.as_slice(),
        [Cmd::LoadRunbooks, Cmd::LoadJobs]
    ));
    let cmds = app.on_msg(Msg::Runbooks(Ok(runbooks())));
    // The picker's file list is asked for too (Esc from preflight shows it).
    let [Cmd::PickerTree { .. }, Cmd::CheckPath { req, path, .. }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(path, "/srv/paperless/media/0042.pdf");
    let cmds = app.on_msg(Msg::PathChecked(*req, Ok(())));
    let [Cmd::Preflight {
        runbook,
        services,
        point,
        inputs,
    }] = cmds.as_slice()
    else {
        panic!("{cmds:?}")
    };
    assert!(runbook.ends_with("files-deleted.md"));
    assert_eq!(services, &["paperless"]);
    assert_eq!(point, &newest());
    assert_eq!(inputs["path"], "/srv/paperless/media/0042.pdf");
    app.on_msg(Msg::Preflight(
        vec![(
            "paperless".into(),
            Check {
                name: "credentials".into(),
                ok: true,
                detail: "repository local opens with its key".into(),
            },
        )],
        vec![],
    ));
    for (w, h) in [(80, 24), (200, 50)] {
        insta::assert_snapshot!(
            format!("recover_prefilled_preflight_{w}x{h}"),
            draw_at(&app, w, h)
        );
    }
    // Esc walks back through the same steps as a typed recovery.
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.recover.stage(), Stage::Inputs);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.recover.stage(), Stage::Point);
    assert_eq!(app.recover.sel, 0, "on the point it came with");

    // r on a restore point: the point is filled in, the path is asked.
    let mut app = self::app();
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    let cmds = key(&mut app, KeyCode::Char('r'));
    assert!(
        matches!(cmds.as_slice(), [Cmd::LoadJobs, Cmd::PickerTree { snapshot, .. }] if snapshot == &inventory().services[0].restore_points[3].id),
        "{cmds:?}"
    );
    assert_eq!(app.recover.stage(), Stage::Inputs);
    assert!(app.recover.inputs[0].is_empty());
    assert_eq!(
        app.recover.point.as_deref(),
        Some(inventory().services[0].restore_points[3].id.as_str())
    );
}

#[test]
fn running_jobs_first_then_scenarios_then_recent_jobs() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    let finished = |id: &str, outcome| {
        let mut j = journal(id);
        j.apply(&Line {
            t: 1_790_000_009_000,
            rec: Record::Finished {
                outcome,
                duration_ms: 9000,
                report: None,
            },
        });
        j
    };
    use lifeboat::jobs::Outcome;
    // Newest first, as `jobs::list` gives them.
    app.on_msg(Msg::Jobs(vec![
        finished("20260921101500-files-deleted-0003", Outcome::Success),
        finished("20260920101500-files-deleted-0002", Outcome::Failed),
    ]));
    // No job runs: the cursor is on the first scenario, as before any job.
    assert_eq!(app.recover.sel, 0);
    let s = draw(&app);
    let first_runbook = s.find("db-corruption").expect(&s);
    let done = s.find("✓ job succeeded").expect(&s);
    let failed = s.find("✗ job failed").expect(&s);
    assert!(first_runbook < done && done < failed, "{s}");
    assert!(s.contains("09-21 10:15"), "when it started:\n{s}");
    assert!(!s.contains('▶'), "▶ marks only running jobs:\n{s}");
    // Both finished jobs are reachable, and Enter opens one.
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Run);
    assert_eq!(
        app.recover.job.as_ref().map(|j| j.id.as_str()),
        Some("20260920101500-files-deleted-0002")
    );
    insta::assert_snapshot!("recover_jobs_80x24", {
        let mut a = self::app();
        key(&mut a, KeyCode::Char('3'));
        a.on_msg(Msg::Runbooks(Ok(runbooks())));
        a.on_msg(Msg::Jobs(vec![
            journal("20260921120000-files-deleted-0004"),
            finished("20260921101500-files-deleted-0003", Outcome::Success),
        ]));
        draw(&a)
    });
}

#[test]
fn the_title_bar_ends_in_an_ellipsis_when_it_does_not_fit() {
    let mut app = app();
    app.banner = Some("DEMO: simulated history".into());
    let s = draw(&app);
    let top = s.lines().next().unwrap();
    assert!(top.ends_with('…'), "{top}");
    let wide = draw_at(&app, 200, 50);
    assert!(wide
        .lines()
        .next()
        .unwrap()
        .ends_with("DEMO: simulated history"));
}
