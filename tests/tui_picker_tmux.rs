//! The path picker in a real terminal (tmux, NO_COLOR): `r` on one of the
//! demo's restore points opens the wizard at the path step, the picker
//! lists the point's files, a fuzzy filter typed into the field narrows
//! it, Tab and Shift-Tab move the focus (marked with ▶, no colour needed),
//! and Enter on a row checks that path and goes on to preflight.

mod common;

use common::tmux::Tmux;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn pick_a_path_with_the_picker(cols: u16, rows: u16) {
    let tmp = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Run from a directory of its own, outside the source tree.
    let script = format!(
        "cd {tmp} && env NO_COLOR=1 TMPDIR={tmp} LIFEBOAT_KEY_DIR={tmp}/keys HOME={home} {bin} demo --dir {tmp}/demo; echo LIFEBOAT-EXITED $?; sleep 600",
        tmp = tmp.path().display(),
        home = home.display(),
        bin = bin.display()
    );
    let t = Tmux::start(&format!("picker-{cols}x{rows}"), cols, rows, &script);
    t.wait_for("Needs action", Duration::from_secs(180));

    t.keys(&["2"]);
    t.wait_for("hosts ▸ services", LONG);
    t.keys(&["/"]);
    t.literal("paperless");
    t.keys(&["Enter", "Enter"]);
    t.wait_for("paperless ▸ restore points", LONG);
    // r on the newest restore point: files-deleted, the path asked for.
    t.keys(&["r"]);
    let s = t.wait_for("→ opens, ← closes", LONG);
    assert!(s.contains("Recover ▸ files-deleted ▸ details"), "{s}");
    assert!(
        s.contains("▶ The deleted file"),
        "the field has the focus:\n{s}"
    );

    // A fuzzy filter, typed into the field.
    t.literal("archindex");
    let s = t.wait_for("matching", LONG);
    assert!(s.contains("archive/index.txt"), "{s}");
    // Tab: the focus moves to the picker; Shift-Tab brings it back.
    t.keys(&["Tab"]);
    let s = t.wait_for("▶ Files in", LONG);
    assert!(
        !s.contains("▶ The deleted file"),
        "one focus at a time:\n{s}"
    );
    t.keys(&["BTab"]);
    t.wait_for("▶ The deleted file", LONG);
    t.keys(&["Tab"]);
    t.wait_for("▶ Files in", LONG);
    // Enter takes the row: its path is checked, then preflight runs.
    t.keys(&["Enter"]);
    let s = t.wait_for("All clear. Enter to review and start.", LONG);
    assert!(s.contains("index.txt"), "the picked path:\n{s}");

    // Back to the path step: the picker is still there, the path kept.
    t.keys(&["Escape"]);
    let s = t.wait_for("Files in", LONG);
    assert!(s.contains("archive/index.txt"), "{s}");
    t.keys(&["Escape", "Escape", "Escape", "q"]);
    let s = t.wait_for("LIFEBOAT-EXITED", LONG);
    assert!(s.contains("LIFEBOAT-EXITED 0"), "{s}");
}

#[test]
fn pick_a_path_with_the_picker_80x24() {
    pick_a_path_with_the_picker(80, 24);
}

#[test]
fn pick_a_path_with_the_picker_200x50() {
    pick_a_path_with_the_picker(200, 50);
}
