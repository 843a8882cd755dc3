//! A pack's trailer and an index file as they may arrive damaged or
//! forged: an error, bounded memory, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cursor = std::io::Cursor::new(data);
    if let Ok(entries) = lifeboat::repo::pack::read_trailer(&mut cursor) {
        let key = [7u8; 32];
        let mut scratch = Vec::new();
        for e in entries.iter().take(16) {
            let loc = e.location(0);
            let _ = lifeboat::repo::pack::read_chunk(&mut cursor, &key, &e.id, &loc, &mut scratch);
        }
    }
    let _ = lifeboat::repo::index::decode_index_file(data);
});
