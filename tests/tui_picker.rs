//! The wizard's path step as a picker over the restore point's file list:
//! asked for in the background with a request id, a tree whose directories
//! open and close, a fuzzy filter from the field, Enter to choose — and a
//! chosen or typed path is still checked before preflight.

mod tui_fixture;

use lifeboat::tui::app::{Cmd, Msg};
use lifeboat::tui::recover::Stage;
use ratatui::crossterm::event::KeyCode;
use std::sync::atomic::AtomicU64;
use tui_fixture::*;

/// Recover → files-deleted → paperless → newest point: the path step.
fn at_the_path_step() -> (lifeboat::tui::app::App, Vec<Cmd>) {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    let cmds = key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Inputs);
    (app, cmds)
}

fn run_search(app: &mut lifeboat::tui::app::App, cmds: Vec<Cmd>) {
    for c in cmds {
        if let Cmd::SearchPaths {
            generation,
            query,
            tree,
        } = c
        {
            let latest = AtomicU64::new(generation);
            let hits = lifeboat::tui::tree::search(&tree, &query, 50, generation, &latest).unwrap();
            app.on_msg(Msg::PathHits { generation, hits });
        }
    }
}

#[test]
fn pick_a_file_from_the_tree_and_it_is_checked_before_preflight() {
    let (mut app, cmds) = at_the_path_step();
    let [Cmd::PickerTree {
        req,
        repository,
        snapshot,
    }] = cmds.as_slice()
    else {
        panic!("the file list is asked for in the background: {cmds:?}")
    };
    assert_eq!(
        (repository.as_str(), snapshot.as_str()),
        ("local", newest().as_str())
    );
    let s = draw(&app);
    assert!(s.contains("reading the restore point's file list"), "{s}");
    // An answer to an older request is dropped.
    app.on_msg(Msg::PickerTree(req - 1, Ok(tree("old"))));
    assert!(app.recover.picker.as_ref().unwrap().tree.is_none());
    app.on_msg(Msg::PickerTree(*req, Ok(tree(snapshot))));

    // ↓ into the picker; → opens directories, ← closes them.
    key(&mut app, KeyCode::Down);
    assert!(draw(&app).contains("▶ Files in a4444444"), "{}", draw(&app));
    key(&mut app, KeyCode::Right);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Right);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Right);
    let s = draw(&app);
    assert!(s.contains("▾ media") && s.contains("0042.pdf"), "{s}");
    key(&mut app, KeyCode::Left);
    assert!(!draw(&app).contains("0042.pdf"), "← closes media");
    key(&mut app, KeyCode::Right);
    key(&mut app, KeyCode::Down);
    for (w, h) in [(80, 24), (200, 50)] {
        insta::assert_snapshot!(format!("recover_picker_tree_{w}x{h}"), draw_at(&app, w, h));
    }
    // Enter chooses: the path goes into the field and is checked.
    let cmds = key(&mut app, KeyCode::Enter);
    let [Cmd::CheckPath { req, path, .. }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(path, "/srv/paperless/media/0042.pdf");
    assert_eq!(app.recover.inputs[0].text(), path);
    let cmds = app.on_msg(Msg::PathChecked(*req, Ok(())));
    assert!(
        matches!(cmds.as_slice(), [Cmd::Preflight { .. }]),
        "{cmds:?}"
    );

    // Back to the details: the file list is not asked for again.
    let cmds = key(&mut app, KeyCode::Esc);
    assert_eq!(app.recover.stage(), Stage::Inputs);
    assert!(cmds.is_empty(), "{cmds:?}");
}

#[test]
fn the_field_filters_the_picker_and_a_typed_path_is_still_checked() {
    let (mut app, cmds) = at_the_path_step();
    let Some(Cmd::PickerTree { req, snapshot, .. }) = cmds.first() else {
        panic!("{cmds:?}")
    };
    app.on_msg(Msg::PickerTree(*req, Ok(tree(snapshot))));
    // A fuzzy query typed into the field filters the list.
    let mut cmds = vec![];
    for c in "0042".chars() {
        cmds.extend(key(&mut app, KeyCode::Char(c)));
    }
    assert!(!cmds.is_empty(), "each keystroke filters in the background");
    run_search(&mut app, cmds);
    let s = draw(&app);
    assert!(
        s.contains("1 matching") && s.contains("/srv/paperless/media/0042.pdf"),
        "{s}"
    );
    insta::assert_snapshot!("recover_picker_filter_80x24", s);
    insta::assert_snapshot!("recover_picker_filter_200x50", draw_at(&app, 200, 50));
    // Tab moves the focus to the picker; Enter takes the match.
    key(&mut app, KeyCode::Tab);
    assert!(app.recover.picker.as_ref().unwrap().focused);
    let cmds = key(&mut app, KeyCode::Enter);
    assert!(
        matches!(cmds.as_slice(), [Cmd::CheckPath { path, .. }] if path == "/srv/paperless/media/0042.pdf"),
        "{cmds:?}"
    );

    // A mistyped path, typed in full, is refused before preflight.
    let (mut app, cmds) = at_the_path_step();
    let Some(Cmd::PickerTree { req, snapshot, .. }) = cmds.first() else {
        panic!("{cmds:?}")
    };
    app.on_msg(Msg::PickerTree(*req, Ok(tree(snapshot))));
    typed(&mut app, "/srv/paperless/media/0024.pdf");
    let cmds = key(&mut app, KeyCode::Enter);
    let [Cmd::CheckPath {
        req,
        path,
        snapshot,
        ..
    }] = cmds.as_slice()
    else {
        panic!("{cmds:?}")
    };
    let answer = lifeboat::tui::tree::check_path(&tree(snapshot).nodes, path, snapshot);
    assert!(app.on_msg(Msg::PathChecked(*req, answer)).is_empty());
    assert_eq!(app.recover.stage(), Stage::Inputs, "no preflight");
    assert!(draw(&app).contains("did you mean"), "{}", draw(&app));
}
