//! Find it, restore it, in a real terminal: the demo's console in tmux,
//! with no colour. A file is deleted from the demo's live directory; it is
//! found in the inventory by a fuzzy search, `r` opens the Recover wizard
//! with everything filled in, the name is pasted (its newline must not
//! submit), and the job puts the file back — checked by its hash. No path
//! is typed anywhere.

mod common;

use common::tmux::Tmux;
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn start(tmp: &Path, cols: u16, rows: u16, name: &str) -> Tmux {
    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    let home = tmp.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Run from a directory of its own, outside the source tree.
    let script = format!(
        "cd {tmp} && env NO_COLOR=1 TMPDIR={tmp} LIFEBOAT_KEY_DIR={tmp}/keys HOME={home} {bin} demo --dir {tmp}/demo; echo LIFEBOAT-EXITED $?; sleep 600",
        tmp = tmp.display(),
        home = home.display(),
        bin = bin.display()
    );
    Tmux::start(name, cols, rows, &script)
}

fn restore_a_deleted_file_found_in_the_inventory(cols: u16, rows: u16) {
    let tmp = tempfile::tempdir().unwrap();
    let t = start(tmp.path(), cols, rows, &format!("restore-{cols}x{rows}"));
    t.wait_for("Needs action", Duration::from_secs(180));

    let file = tmp
        .path()
        .join("demo/srv/paperless/media/documents/archive/index.txt");
    let before = blake3::hash(&std::fs::read(&file).unwrap());
    std::fs::remove_file(&file).unwrap();

    // Inventory → paperless (by a filter) → its newest restore point.
    t.keys(&["2"]);
    t.wait_for("hosts ▸ services", LONG);
    t.keys(&["/"]);
    t.literal("paperless");
    t.keys(&["Enter", "Enter"]);
    t.wait_for("paperless ▸ restore points", LONG);
    t.keys(&["Enter"]);
    t.wait_for(" ▸ /", LONG);
    // A fuzzy query, not the path.
    t.keys(&["/"]);
    t.literal("archindex");
    t.wait_for("archive/index.txt", LONG);
    t.keys(&["Enter"]);
    let s = t.wait_for("r restore", LONG);
    assert!(
        !s.contains("/archindex▏"),
        "the search line is closed:\n{s}"
    );

    // r: the wizard with runbook, service, point and path filled in goes
    // through the path check and preflight on its own.
    t.keys(&["r"]);
    let s = t.wait_for("All clear. Enter to review and start.", LONG);
    assert!(s.contains("files-deleted"), "{s}");
    assert!(s.contains("Enter continue"), "{s}");
    t.keys(&["Enter"]);
    let s = t.wait_for("Type paperless:", LONG);
    assert!(
        s.contains("archive/index.txt"),
        "the plan names the file:\n{s}"
    );

    // A pasted name with its newline fills the field and does not start
    // the job; Enter does.
    t.paste("paperless\n");
    let s = t.wait_for("> paperless", LONG);
    assert!(s.contains("Type paperless:"), "still confirming:\n{s}");
    std::thread::sleep(Duration::from_millis(300));
    let s = t.screen();
    assert!(
        s.contains("Type paperless:") && !s.contains("Recover ▸ job"),
        "the paste's newline submitted the confirmation:\n{s}"
    );
    t.keys(&["Enter"]);
    t.wait_for("Recover ▸ job", LONG);

    // The runbook's confirmations: what is missing, then the check.
    t.wait_for("Enter when done", LONG);
    t.keys(&["Enter"]);
    t.wait_for("✓ 2. Restore the path", LONG);
    t.wait_for("Enter when done", LONG);
    t.keys(&["Enter"]);
    let s = t.wait_for("Recovered in", LONG);
    assert!(!s.contains("FAILED"), "{s}");
    // The report is rendered: its step table as columns, not pipes.
    t.wait_for("─ report", LONG);
    let s = t.wait_for("step", LONG);
    assert!(!s.contains("|---") && !s.contains("| step"), "{s}");

    let after = blake3::hash(&std::fs::read(&file).expect("the file is back"));
    assert_eq!(before, after, "the restored file has its old content");

    // q detaches from the finished job, q again quits.
    t.keys(&["q"]);
    t.wait_for("what happened?", LONG);
    t.keys(&["q"]);
    let s = t.wait_for("LIFEBOAT-EXITED", LONG);
    assert!(s.contains("LIFEBOAT-EXITED 0"), "{s}");
}

#[test]
fn restore_a_deleted_file_from_the_inventory_80x24() {
    restore_a_deleted_file_found_in_the_inventory(80, 24);
}

#[test]
fn restore_a_deleted_file_from_the_inventory_200x50() {
    restore_a_deleted_file_found_in_the_inventory(200, 50);
}
