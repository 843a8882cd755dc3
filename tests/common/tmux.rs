//! The real binary in a real terminal: a private tmux server, keys sent,
//! the screen read back.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

pub fn require_tmux() {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tmux is needed for this test: run scripts/test-deps.sh (or apt-get install tmux)"
    );
}

impl Tmux {
    /// A session `t` of `cols`×`rows` running `script` under `sh -c`.
    pub fn start(name: &str, cols: u16, rows: u16, script: &str) -> Tmux {
        require_tmux();
        let t = Tmux {
            socket: format!("lifeboat-{name}-{}", std::process::id()),
        };
        let ok = t
            .cmd()
            .args(["new-session", "-d", "-s", "t", "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string())
            .arg(script)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "tmux new-session failed");
        t
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    pub fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = self
                .cmd()
                .args(["send-keys", "-t", "t", k])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "tmux send-keys {k}");
        }
    }

    pub fn literal(&self, text: &str) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", "t", "-l", text])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "tmux send-keys -l");
    }

    /// Pastes `text` as a terminal paste: bracketed when the application
    /// asked for bracketed paste, as a real terminal does.
    pub fn paste(&self, text: &str) {
        let ok = self
            .cmd()
            .args(["set-buffer", "-b", "lifeboat-paste", "--", text])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "tmux set-buffer");
        let ok = self
            .cmd()
            .args([
                "paste-buffer",
                "-p",
                "-d",
                "-b",
                "lifeboat-paste",
                "-t",
                "t",
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "tmux paste-buffer");
    }

    /// Waits for the screen to show `what` (the app redraws asynchronously).
    pub fn wait_for(&self, what: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for {what:?}; the screen shows:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}
