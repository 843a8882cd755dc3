//! A closed stdout is a normal end (`lifeboat snapshots | head`): the
//! program stops quietly with status 141, as a shell expects of a reader
//! that went away, and unwinds so locks are released on the way out.
//!
//! SIGPIPE itself stays ignored (Rust's default): with it at its default
//! action, a write to a connection the object store cut would kill the
//! process mid-upload instead of becoming an error the retry layer handles.

use std::any::Any;

/// What unwinds out of a write to a closed stdout.
pub struct StdoutClosed;

/// The exit status of a program stopped by a closed pipe (128 + SIGPIPE).
pub const CLOSED_STATUS: u8 = 141;

/// Keeps `println!`'s panic on a failed stdout from printing a panic
/// message (main reports it as an error, or stops quietly for a closed
/// pipe); every other panic is reported as before.
pub fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_stdout_message(payload_text(info.payload())) {
            previous(info);
        }
    }));
}

fn is_stdout_message(msg: Option<&str>) -> bool {
    msg.is_some_and(|m| m.starts_with("failed printing to stdout"))
}

/// `println!`'s panic on a stdout that is not closed but failed (a full
/// disk, `> /dev/full`): its message, for an error line.
pub fn stdout_failure(payload: &(dyn Any + Send)) -> Option<&str> {
    payload_text(payload).filter(|m| is_stdout_message(Some(m)))
}

fn is_closed_stdout_message(msg: Option<&str>) -> bool {
    msg.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("Broken pipe"))
}

/// A panic's message, when it is text (`PanicHookInfo::payload_as_str`
/// is newer than this crate's minimum Rust).
fn payload_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Did this panic come from writing to a closed stdout?
pub fn is_closed_stdout(payload: &(dyn Any + Send)) -> bool {
    payload.is::<StdoutClosed>() || is_closed_stdout_message(payload_text(payload))
}

/// For code that writes to stdout itself: a broken pipe ends the program
/// quietly (see the module docs) instead of becoming an error message.
pub fn stop_if_closed(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::panic::resume_unwind(Box::new(StdoutClosed));
    }
}

/// Writes `bytes` to stdout; a reader that went away ends the program
/// quietly (see the module docs), any other failure is an error.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out.write_all(bytes).and_then(|()| out.flush());
    if let Err(e) = &written {
        stop_if_closed(e);
    }
    written
}

/// A writer onto stdout for output streamed in pieces (`dump`), with the
/// same quiet end on a closed pipe.
pub struct Stdout<W>(pub W);

impl<W: std::io::Write> std::io::Write for Stdout<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let r = self.0.write(b);
        if let Err(e) = &r {
            stop_if_closed(e);
        }
        r
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.0.flush();
        if let Err(e) = &r {
            stop_if_closed(e);
        }
        r
    }
}
