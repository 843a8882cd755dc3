//! The real binary in a real terminal (tmux, 80×24): open the demo, go to
//! the inventory, find a file by a fuzzy query, see its restore points,
//! open help, survive a resize, quit — and the terminal is restored.

mod common;

use common::tmux::Tmux;
use std::process::Command;
use std::time::Duration;

#[test]
fn demo_in_a_real_terminal_80x24() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    let script = format!(
        "env TMPDIR={tmp} LIFEBOAT_KEY_DIR={tmp}/keys HOME={tmp} {bin} demo; echo LIFEBOAT-EXITED $?; sleep 600",
        tmp = tmp.path().display(),
        bin = bin.display()
    );
    let t = Tmux::start("demo", 80, 24, &script);

    let s = t.wait_for("Needs action", Duration::from_secs(120));
    assert!(
        s.contains("✓ vaultwarden") && s.contains("! paperless") && s.contains("✗ homeassistant"),
        "{s}"
    );

    t.keys(&["2"]);
    t.wait_for("hosts ▸ services", Duration::from_secs(10));
    // docker01's critical vaultwarden is listed first.
    t.keys(&["Enter"]);
    t.wait_for("vaultwarden ▸ restore points", Duration::from_secs(10));
    t.keys(&["Enter"]);
    t.wait_for("vaultwarden ▸", Duration::from_secs(10));
    t.keys(&["/"]);
    // The database, stored through SQLite's backup API under .lifeboat/.
    t.literal("sqlitedbsqlite");
    t.wait_for("/sqlitedbsqlite", Duration::from_secs(10));
    t.wait_for(".lifeboat/sqlite/db.sqlite3 ", Duration::from_secs(10));
    t.keys(&["Enter", "Enter"]);
    t.wait_for("versions of", Duration::from_secs(20));
    let s = t.wait_for(
        "marks a restore point where the content changed",
        Duration::from_secs(20),
    );
    assert!(
        s.matches('●').count() >= 7,
        "one line per restore point that holds the file:\n{s}"
    );

    t.keys(&["?"]);
    t.wait_for("Esc or ? closes this help", Duration::from_secs(10));
    t.keys(&["Escape"]);

    // Survive a resize: a wider terminal shows the Host column on Health.
    t.keys(&["1"]);
    assert!(t
        .cmd()
        .args(["resize-window", "-t", "t", "-x", "140", "-y", "40"])
        .status()
        .unwrap()
        .success());
    t.wait_for("Host", Duration::from_secs(10));

    t.keys(&["q"]);
    let s = t.wait_for("LIFEBOAT-EXITED", Duration::from_secs(20));
    assert!(s.contains("LIFEBOAT-EXITED 0"), "{s}");
    // The terminal is restored: out of the alternate screen, no UI left over.
    let alt = t
        .cmd()
        .args(["display-message", "-p", "-t", "t", "#{alternate_on}"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&alt.stdout).trim(), "0");
    assert!(!s.contains("Needs action"), "{s}");
    // And the demo cleaned up after itself.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("lifeboat-demo"))
        .collect();
    assert!(left.is_empty(), "demo left {left:?}");
}

#[test]
fn a_killed_console_still_puts_the_terminal_back() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("lifeboat");
    // A marker argument makes this process easy to find and to tell apart.
    let dir = tmp.path().join("demo-killed");
    let script = format!(
        "env LIFEBOAT_KEY_DIR={tmp}/keys HOME={tmp} {bin} demo --dir {dir}; echo LIFEBOAT-EXITED $?; sleep 600",
        tmp = tmp.path().display(),
        bin = bin.display(),
        dir = dir.display()
    );
    let t = Tmux::start("kill", 80, 24, &script);
    t.wait_for("Needs action", Duration::from_secs(120));
    // Anchored: the shell running the script has the same words in its
    // command line, and must live to print the exit status.
    let pattern = format!("^{} demo --dir {}", bin.display(), dir.display());
    assert!(
        Command::new("pkill")
            .args(["-TERM", "-f", &pattern])
            .status()
            .unwrap()
            .success(),
        "the console process was not found"
    );
    let s = t.wait_for("LIFEBOAT-EXITED", Duration::from_secs(20));
    assert!(
        s.contains("LIFEBOAT-EXITED 0"),
        "SIGTERM leaves like q does:\n{s}"
    );
    let alt = t
        .cmd()
        .args(["display-message", "-p", "-t", "t", "#{alternate_on}"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&alt.stdout).trim(),
        "0",
        "back on the normal screen"
    );
    assert!(!s.contains("Needs action"), "{s}");
}
