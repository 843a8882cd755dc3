//! Destructive keys ask y/N first: `C` cancels a running job, `u` rolls
//! back what a finished one replaced, `D` discards the copy it kept for
//! that rollback. Any key but `y` leaves everything as it was.

mod tui_fixture;

use lifeboat::jobs::{Line, Outcome, Record};
use lifeboat::tui::app::{Cmd, Msg};
use lifeboat::tui::recover::Stage;
use ratatui::crossterm::event::KeyCode;
use tui_fixture::*;

fn finished_with_a_kept_copy() -> lifeboat::jobs::JobView {
    let mut j = journal("20260921101500-files-deleted-0003");
    for (t, rec) in [
        (
            1_790_000_008_000,
            Record::Replaced {
                service: "paperless".into(),
                what: "/srv/paperless/media".into(),
                kept: Some("/srv/paperless/media.lifeboat-old".into()),
            },
        ),
        (
            1_790_000_009_000,
            Record::Finished {
                outcome: Outcome::Success,
                duration_ms: 9000,
                report: None,
            },
        ),
    ] {
        j.apply(&Line { t, rec });
    }
    j
}

#[test]
fn cancel_and_discard_ask_first() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.recover.job = Some(journal("20260921120000-files-deleted-0004"));
    app.recover.stage = Some(Stage::Run);
    assert!(key(&mut app, KeyCode::Char('C')).is_empty(), "C only asks");
    let s = draw(&app);
    assert!(s.contains("y yes, cancel the job"), "{s}");
    assert!(key(&mut app, KeyCode::Char('n')).is_empty());
    assert!(app.recover.asking.is_none(), "n: nothing happens");
    key(&mut app, KeyCode::Char('C'));
    let cmds = key(&mut app, KeyCode::Char('y'));
    assert!(
        matches!(cmds.as_slice(), [Cmd::CancelJob { .. }]),
        "{cmds:?}"
    );

    // A finished job that replaced something: D discards its kept copy.
    app.recover.job = Some(finished_with_a_kept_copy());
    let footer = draw(&app).lines().last().unwrap().to_string();
    assert!(footer.contains("D discard kept copy"), "{footer}");
    assert!(key(&mut app, KeyCode::Char('D')).is_empty(), "D only asks");
    let s = draw(&app);
    assert!(s.contains("y yes, discard the kept copy"), "{s}");
    insta::assert_snapshot!("recover_discard_ask_80x24", s);
    insta::assert_snapshot!("recover_discard_ask_200x50", draw_at(&app, 200, 50));
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(
        app.recover.stage(),
        Stage::Run,
        "Esc answers no, it does not leave"
    );
    key(&mut app, KeyCode::Char('D'));
    let cmds = key(&mut app, KeyCode::Char('y'));
    let [Cmd::DiscardKept { job }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(job, "20260921101500-files-deleted-0003");
    app.on_msg(Msg::Discarded(Ok(vec![
        "removed /srv/paperless/media.lifeboat-old (kept by restore r1)".into(),
    ])));
    let s = draw(&app);
    assert!(
        s.contains("✓ removed /srv/paperless/media.lifeboat-old"),
        "{s}"
    );
    assert!(
        !s.contains("u undo"),
        "nothing is left to roll back to:\n{s}"
    );
}

#[test]
fn discarding_for_a_job_that_kept_nothing_says_so() {
    // The loader's own code, on a state directory with no kept copies.
    let dir = tempfile::tempdir().unwrap();
    let config = lifeboat::config::Config::parse(
        &dir.path().join("lifeboat.toml"),
        &format!("state_dir = {:?}\n", dir.path().join("state")),
    );
    let Ok(config) = config else {
        panic!("{config:?}")
    };
    let msg = lifeboat::tui::execute(
        &config,
        &Default::default(),
        &Default::default(),
        Cmd::DiscardKept {
            job: "20260921-nothing".into(),
        },
    );
    let Some(Msg::Discarded(Err(e))) = msg else {
        panic!("{msg:?}")
    };
    assert!(e.contains("keeps nothing to discard"), "{e}");
}
