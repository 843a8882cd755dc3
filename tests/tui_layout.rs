//! The console at 40×12, 80×24 and 200×50: wide terminals get more
//! columns and the alerts beside the table, narrow ones drop columns
//! before a value is cut, sizes keep their units, and nothing is cut
//! without an ellipsis.

mod tui_fixture;

use ratatui::crossterm::event::KeyCode;
use tui_fixture::*;

#[test]
fn health_and_inventory_fit_the_terminal() {
    for (w, h) in [(40, 12), (80, 24), (200, 50)] {
        let mut app = app();
        let s = draw_at(&app, w, h);
        insta::assert_snapshot!(format!("health_{w}x{h}"), s);
        // A size is shown with its unit, whole.
        assert!(s.contains("MiB"), "{w}x{h}:\n{s}");
        if w >= 160 {
            for col in ["Host", "Repository", "Size history"] {
                assert!(s.contains(col), "{col} at {w}x{h}:\n{s}");
            }
            let table_row = s.lines().position(|l| l.contains("Services")).unwrap();
            assert!(
                s.lines().nth(table_row).unwrap().contains("Needs action"),
                "the alerts are beside the table:\n{s}"
            );
        }
        if w == 40 {
            assert!(!s.contains("Drill"), "a column is dropped, not cut:\n{s}");
            assert!(s.contains("Health"), "{s}");
            let top = s.lines().next().unwrap();
            assert!(top.chars().count() <= 40, "{top}");
        }
        key(&mut app, KeyCode::Char('2'));
        let s = draw_at(&app, w, h);
        insta::assert_snapshot!(format!("inventory_{w}x{h}"), s);
        assert!(s.contains("paperless"), "{s}");
        if w >= 160 {
            assert!(
                s.contains("Repository") && s.contains("Size history"),
                "{s}"
            );
        }
        if w == 40 {
            let footer = s.lines().last().unwrap();
            assert!(
                footer.ends_with('…'),
                "hints that do not fit are marked: {footer}"
            );
        }
    }
}
