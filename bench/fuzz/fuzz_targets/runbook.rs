//! Any text as a runbook: problems with their lines, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let path = std::path::Path::new("/fuzz/runbook.md");
        let (runbook, _problems) = lifeboat::runbook::parse::parse(path, text);
        if let Some(rb) = runbook {
            let _ = (rb.needs_point(), rb.needs_stop(), rb.writes_live(), rb.job_kind());
        }
    }
});
