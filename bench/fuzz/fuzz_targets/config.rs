//! Any bytes as a config file: an error with a location, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("/fuzz/lifeboat.toml");
    if let Ok((config, _problems)) = lifeboat::config::Config::parse_all_bytes(path, data) {
        // What parsed must also survive being judged by health's rules.
        let _ = config.select_services::<&str>(&[], true, "fuzz");
    }
});
