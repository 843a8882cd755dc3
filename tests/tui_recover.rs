//! The Recover screen, headless: keys in, commands out, screens drawn at
//! 80×24 from state (insta snapshots, shown in docs/tui.md).

mod tui_fixture;

use lifeboat::jobs::{Line, Record, StepState};
use lifeboat::runbook::preflight::Check;
use lifeboat::runbook::Scope;
use lifeboat::tui::app::{App, Cmd, Msg, Screen};
use lifeboat::tui::recover::{RunbookInfo, Stage};
use lifeboat::tui::theme::Theme;
use ratatui::crossterm::event::KeyCode;
use tui_fixture::*;

#[test]
fn the_wizard_goes_from_scenario_to_a_started_job() {
    let mut app = app();
    let cmds = key(&mut app, KeyCode::Char('3'));
    assert_eq!(app.screen, Screen::Recover);
    assert!(matches!(
        cmds.as_slice(),
        [Cmd::LoadRunbooks, Cmd::LoadJobs]
    ));
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    // The list searches on `/`; before that, letters are keys.
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "deleted");
    insta::assert_snapshot!("recover_pick_80x24", draw(&app));
    key(&mut app, KeyCode::Enter);
    assert!(
        !app.recover.searching,
        "Enter ends the search, keeps the filter"
    );
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Services);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Point);
    // The cursor starts on the newest point; the admin moves to an older,
    // verified one.
    assert_eq!(app.recover.sel, 0);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    insta::assert_snapshot!("recover_point_80x24", draw(&app));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Inputs);
    // Digits are text here, not screen switches.
    typed(&mut app, "/srv/paperless/media/0042.pdf");
    assert_eq!(app.screen, Screen::Recover);
    // The path is looked up in the chosen restore point before preflight.
    let cmds = key(&mut app, KeyCode::Enter);
    let [Cmd::CheckPath {
        req,
        repository,
        snapshot,
        path,
    }] = cmds.as_slice()
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        (repository.as_str(), path.as_str()),
        ("local", "/srv/paperless/media/0042.pdf")
    );
    assert!(snapshot.starts_with("a2222222"), "{snapshot}");
    let cmds = app.on_msg(Msg::PathChecked(*req, Ok(())));
    let Some(Cmd::Preflight {
        services, point, ..
    }) = cmds.first()
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(services, &["paperless"]);
    assert!(point.starts_with("a2222222"), "{point}");
    // Enter does nothing until preflight has answered, and all is clear.
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Preflight);
    let check = |name: &str, ok: bool, d: &str| {
        (
            "paperless".to_string(),
            Check {
                name: name.into(),
                ok,
                detail: d.into(),
            },
        )
    };
    app.on_msg(Msg::Preflight(
        vec![
            check("credentials", true, "repository local opens with its key"),
            check("free space", true, "812 GiB free at /srv/paperless"),
        ],
        vec![(
            "paperless".into(),
            vec![
                "restore point a2222222 from 2026-09-19 10:13 UTC, 2d2h ago; verified 09-20 03:00"
                    .into(),
                "warning: 2 newer restore points exist: anything written after this one is lost"
                    .into(),
                "files: /srv/paperless/media/0042.pdf".into(),
                "  writes 1 file, 2.1 MiB; replaces 1 file, 2.0 MiB".into(),
                "  what is there is kept as /srv/paperless/media/.0042.pdf.lifeboat-kept-…".into(),
            ],
        )],
    ));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Confirm);
    typed(&mut app, "paperles");
    insta::assert_snapshot!("recover_confirm_80x24", draw(&app));
    assert!(
        key(&mut app, KeyCode::Enter).is_empty(),
        "a wrong name starts nothing"
    );
    typed(&mut app, "s");
    let cmds = key(&mut app, KeyCode::Enter);
    let Some(Cmd::StartJob(spec)) = cmds.first() else {
        panic!("{cmds:?}")
    };
    assert_eq!(spec.services, ["paperless"]);
    assert_eq!(spec.inputs["path"], "/srv/paperless/media/0042.pdf");
    assert!(spec.interactive);
    assert_eq!(app.recover.stage(), Stage::Run);
}

#[test]
fn the_progress_pane_shows_steps_rate_eta_and_waits_for_keys() {
    let mut app = app();
    let job = journal("20260919-files-deleted-0001");
    // Reopening with a job running re-attaches to it at once.
    let mut fresh = App::new(Theme { color: false }, now());
    let mut running = job.clone();
    running.lost = false;
    fresh.on_msg(Msg::Jobs(vec![running]));
    assert_eq!(fresh.screen, Screen::Recover);
    assert_eq!(fresh.recover.stage(), Stage::Run);

    key(&mut app, KeyCode::Char('3'));
    app.recover.job = Some(job.clone());
    app.recover.stage = Some(Stage::Run);
    let s = draw(&app);
    assert!(
        s.contains("▶ 2. Restore the path  40% 20 MiB/50 MiB 5.0 MiB/s ETA 6s"),
        "{s}"
    );
    insta::assert_snapshot!("recover_run_80x24", s);
    // A job asks: the pane shows the question and its keys.
    let mut waiting = job.clone();
    waiting.apply(&Line {
        t: 1_790_000_006_000,
        rec: Record::Step {
            index: 1,
            state: StepState::Failed,
            detail: "Restore the path: disk full".into(),
        },
    });
    waiting.apply(&Line {
        t: 1_790_000_006_000,
        rec: Record::Wait {
            ask: 1,
            index: 1,
            kind: "failed".into(),
            prompt: "Restore the path: disk full".into(),
            skippable: false,
        },
    });
    app.on_msg(Msg::JobTail(Box::new(waiting)));
    let s = draw(&app);
    assert!(
        s.contains("✗ 2. Restore the path") && s.contains("r retry · a abort"),
        "{s}"
    );
    assert!(
        key(&mut app, KeyCode::Char('s')).is_empty(),
        "not skippable"
    );
    let cmds = key(&mut app, KeyCode::Char('r'));
    assert!(
        matches!(cmds.as_slice(), [Cmd::AnswerJob { answer, .. }] if answer == "retry"),
        "{cmds:?}"
    );
    // Finished: the report is read and shown in the pane.
    let mut done = job.clone();
    done.apply(&Line {
        t: 1_790_000_009_000,
        rec: Record::Finished {
            outcome: lifeboat::jobs::Outcome::Success,
            duration_ms: 9000,
            report: Some("/state/reports/x.md".into()),
        },
    });
    let cmds = app.on_msg(Msg::JobTail(Box::new(done)));
    assert!(
        // What the console kept of the repository is forgotten: the job
        // may have written to it.
        matches!(cmds.as_slice(), [Cmd::Forget, Cmd::ReadReport(p)] if p.ends_with("x.md")),
        "{cmds:?}"
    );
    app.on_msg(Msg::Report(vec![
        "# Files deleted".into(),
        "Took 9.0 s".into(),
    ]));
    let s = draw(&app);
    assert!(
        s.contains("✓ Recovered in 9.0 s") && s.contains("─ report") && s.contains("Took 9.0 s"),
        "{s}"
    );
    // Esc detaches; the job goes on and is listed first.
    let cmds = key(&mut app, KeyCode::Esc);
    assert!(matches!(cmds.as_slice(), [Cmd::LoadJobs]));
    assert_eq!(app.recover.stage(), Stage::Pick);
}

#[test]
fn cancel_and_roll_back_ask_first() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    let mut rbs = runbooks();
    rbs.push(RunbookInfo {
        id: "rollback".into(),
        title: "Undo a restore".into(),
        summary: "Put back what a restore replaced.".into(),
        file: "/rb/rollback.md".into(),
        scope: Scope::Service,
        inputs: vec![],
        steps: vec!["Stop".into(), "Put back".into(), "Start".into()],
        applies: vec!["paperless".into()],
    });
    app.on_msg(Msg::Runbooks(Ok(rbs)));
    let job = journal("20260919-files-deleted-0002");
    app.recover.job = Some(job.clone());
    app.recover.stage = Some(Stage::Run);
    // C alone cancels nothing; the pane asks, and only y goes ahead.
    assert!(key(&mut app, KeyCode::Char('C')).is_empty());
    assert!(
        draw(&app).contains("y yes, cancel the job"),
        "{}",
        draw(&app)
    );
    assert!(
        key(&mut app, KeyCode::Char('n')).is_empty(),
        "any other key says no"
    );
    assert!(key(&mut app, KeyCode::Char('C')).is_empty());
    let cmds = key(&mut app, KeyCode::Char('y'));
    assert!(
        matches!(cmds.as_slice(), [Cmd::CancelJob { id }] if id == &job.id),
        "{cmds:?}"
    );
    // A finished job that replaced data offers u, which rolls it back
    // through the rollback runbook after a y.
    let mut done = job.clone();
    done.apply(&Line {
        t: 1_790_000_008_000,
        rec: Record::Replaced {
            service: "paperless".into(),
            what: "/srv/paperless/media".into(),
            kept: Some("/srv/paperless/.media.lifeboat-kept-x".into()),
        },
    });
    done.apply(&Line {
        t: 1_790_000_009_000,
        rec: Record::Finished {
            outcome: lifeboat::jobs::Outcome::Success,
            duration_ms: 9000,
            report: None,
        },
    });
    app.on_msg(Msg::JobTail(Box::new(done.clone())));
    assert!(draw(&app).contains("u undo: roll back"), "{}", draw(&app));
    assert!(key(&mut app, KeyCode::Char('u')).is_empty());
    let cmds = key(&mut app, KeyCode::Char('y'));
    let [Cmd::StartJob(spec)] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert!(spec.runbook.ends_with("rollback.md"));
    assert_eq!(spec.inputs["restore"], done.id);
    assert_eq!(spec.services, ["paperless"]);
}
