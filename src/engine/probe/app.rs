//! The application a drill starts on its sandbox (`sandbox_start`), on a
//! free port, so `http` and `tcp` probes can ask it; stopped (and its
//! process group killed) whatever happens.

use super::Target;
use crate::model::SandboxApp;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct Running {
    child: Child,
    stop: Option<String>,
    target: Target,
}

/// A port nothing listens on now.
pub fn free_port() -> Option<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

/// Starts `app` and waits until `127.0.0.1:{{sandbox.port}}` accepts a
/// connection; its output goes to `log`.
pub fn start(app: &SandboxApp, target: &Target, log: &std::path::Path) -> Result<Running, String> {
    let port = target
        .port
        .ok_or("no free port for the sandbox application")?;
    let text = target.substitute(&app.start, true)?;
    let out =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = crate::source::process::shell(&text);
    cmd.envs(target.environment())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("sandbox_start cannot start: {e}"))?;
    let mut running = Running {
        child,
        stop: app.stop.clone(),
        target: target.clone(),
    };
    let deadline = Instant::now() + app.timeout;
    let tail = || {
        let t = std::fs::read_to_string(log).unwrap_or_default();
        t.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", crate::util::printable(l)))
            .unwrap_or_default()
    };
    loop {
        if std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            return Ok(running);
        }
        // A start command may detach (exit 0) and leave the app running.
        if let Ok(Some(st)) = running.child.try_wait() {
            if !st.success() {
                return Err(format!("sandbox_start exited with {st}{}", tail()));
            }
        }
        if Instant::now() >= deadline {
            running.stop();
            return Err(format!(
                "nothing listened on port {port} within sandbox_timeout {}{}",
                humantime::format_duration(app.timeout),
                tail()
            ));
        }
        // Nothing to wait on but the port itself.
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Running {
    /// Runs `sandbox_stop`, then kills what is left of the start command's
    /// process group.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            if let Ok(text) = self.target.substitute(&stop, true) {
                let _ = super::command::run_shell(&text, Duration::from_secs(60), &self.target);
            }
        }
        let pid = self.child.id() as i32;
        // SAFETY: plain signals to the process group this drill made.
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() || self.stop.is_some() {
            self.stop();
        }
    }
}
