//! Tab and Shift-Tab move the keys between the panes of a screen, and the
//! pane with the focus is marked so that it reads without colour
//! (NO_COLOR at 80×24): inventory list ↔ details, the scenario list ↔ its
//! preview, the wizard's fields ↔ the path picker.

mod tui_fixture;

use lifeboat::tui::app::Msg;
use ratatui::crossterm::event::KeyCode;
use tui_fixture::*;

#[test]
fn tab_moves_between_the_inventory_list_and_its_details() {
    let mut app = app();
    key(&mut app, KeyCode::Char('2'));
    let s = draw(&app);
    assert!(s.contains("▶ 1 ") && !s.contains("▶ Details"), "{s}");
    key(&mut app, KeyCode::Tab);
    assert!(app.inv.focus_details);
    let s = draw(&app);
    assert!(s.contains("▶ Details") && !s.contains("▶ 1 "), "{s}");
    insta::assert_snapshot!("inventory_details_focus_80x24", s);
    insta::assert_snapshot!("inventory_details_focus_200x50", draw_at(&app, 200, 50));
    // ↑↓ now scroll the details, not the list.
    key(&mut app, KeyCode::Down);
    assert_eq!((app.inv.sel, app.inv.detail_scroll), (0, 1));
    // Shift-Tab goes back; ↓ moves the list again.
    key(&mut app, KeyCode::BackTab);
    assert!(!app.inv.focus_details);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.inv.sel, 1);
}

#[test]
fn the_details_pane_says_what_does_not_fit_at_80x24() {
    let mut app = app();
    let mut inv = inventory();
    inv.services[0].sources = (0..6)
        .map(|i| format!("files: /srv/paperless/part{i}"))
        .collect();
    app.on_msg(Msg::Inventory(std::sync::Arc::new(inv)));
    key(&mut app, KeyCode::Char('2'));
    let s = draw(&app);
    assert!(s.contains("more (Tab, then ↑↓)"), "{s}");
    assert!(
        !s.contains("repository: local"),
        "the last line is below:\n{s}"
    );
    key(&mut app, KeyCode::Tab);
    for _ in 0..20 {
        key(&mut app, KeyCode::Down);
    }
    let s = draw(&app);
    assert!(
        s.contains("repository: local") && s.contains("above"),
        "{s}"
    );
}

#[test]
fn tab_moves_between_the_scenario_list_and_its_preview() {
    let mut app = app();
    key(&mut app, KeyCode::Char('3'));
    app.on_msg(Msg::Runbooks(Ok(runbooks())));
    let s = draw(&app);
    assert!(
        s.contains("  Preview (Tab: preview)") && !s.contains("▶ Preview"),
        "{s}"
    );
    key(&mut app, KeyCode::Tab);
    let s = draw(&app);
    assert!(s.contains("▶ Preview") && s.contains("3. Check it"), "{s}");
    insta::assert_snapshot!("recover_preview_focus_80x24", s);
    insta::assert_snapshot!("recover_preview_focus_200x50", draw_at(&app, 200, 50));
    // ↓ scrolls the preview; the list keeps its cursor.
    key(&mut app, KeyCode::Down);
    assert_eq!((app.recover.sel, app.recover.preview_scroll), (0, 1));
    key(&mut app, KeyCode::BackTab);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.recover.sel, 1);
}
