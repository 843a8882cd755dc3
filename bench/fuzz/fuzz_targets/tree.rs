//! A tree stream and a snapshot summary as anyone with a write-only key
//! could write them: decoded and checked like restore does, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(nodes) = lifeboat::repo::tree::decode(data) {
        let snap: lifeboat::repo::Snapshot = match serde_json::from_str(
            r#"{"version":1,"time":"2026-01-01T00:00:00Z","host":"h","service":"s","paths":["/srv"],"tree":[],"stats":{"files":0,"dirs":0,"bytes":0,"files_unchanged":0,"bytes_added":0,"chunks_added":0,"duration_ms":0,"skipped":0,"unreadable":0},"program":"fuzz"}"#,
        ) {
            Ok(s) => s,
            Err(e) => panic!("the fuzz target's own snapshot does not parse: {e}"),
        };
        let _ = lifeboat::repo::tree::check_tree(&snap, &nodes);
    }
    let _ = serde_json::from_slice::<lifeboat::repo::Snapshot>(data);
});
