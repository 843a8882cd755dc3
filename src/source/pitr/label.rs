//! The `backup_label` of a base backup, read as its tar streams past:
//! the server sends it as the first member of the base tar, and its
//! `START WAL LOCATION` names the segment the backup's WAL starts in,
//! which WAL retention and gap detection need. Nothing is buffered
//! beyond the label, and a stream that does not start with one is passed
//! through untouched (the note is then simply not recorded).

use std::io::Read;
use std::sync::{Arc, Mutex};

/// A tar header block.
const BLOCK: usize = 512;
/// A label is a few hundred bytes; anything claiming more is not one.
const MAX_LABEL: usize = 64 << 10;

/// What the tap found: the label's text, once read.
pub type Found = Arc<Mutex<Option<String>>>;

pub struct Tap<R> {
    inner: R,
    head: Vec<u8>,
    /// How many bytes of the stream the label ends at, once the header
    /// said so.
    want: Option<usize>,
    done: bool,
    found: Found,
}

impl<R: Read> Tap<R> {
    pub fn new(inner: R, found: Found) -> Tap<R> {
        Tap {
            inner,
            head: Vec::new(),
            want: None,
            done: false,
            found,
        }
    }

    fn observe(&mut self, bytes: &[u8]) {
        let need = self.want.unwrap_or(BLOCK);
        let take = bytes.len().min(need.saturating_sub(self.head.len()));
        self.head.extend_from_slice(&bytes[..take]);
        if self.head.len() < need {
            return;
        }
        match self.want {
            None => match label_size(&self.head) {
                Some(n) => {
                    self.want = Some(BLOCK + n);
                    // The rest of this read may hold the label already.
                    self.observe(&bytes[take..]);
                }
                None => self.finish(),
            },
            Some(_) => {
                if let Ok(text) = std::str::from_utf8(&self.head[BLOCK..]) {
                    if let Ok(mut f) = self.found.lock() {
                        *f = Some(text.to_string());
                    }
                }
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.head = Vec::new();
    }
}

/// The size of the member `header` describes when it is `backup_label`.
fn label_size(header: &[u8]) -> Option<usize> {
    let name = header.get(..100)?;
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    if &name[..end] != b"backup_label" {
        return None;
    }
    let size = std::str::from_utf8(header.get(124..136)?).ok()?;
    let n = usize::from_str_radix(size.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok()?;
    (n > 0 && n <= MAX_LABEL).then_some(n)
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.done {
            if n == 0 {
                self.finish();
            } else {
                self.observe(&buf[..n]);
            }
        }
        Ok(n)
    }
}

/// The segment named in a label's `START WAL LOCATION: 0/2000028 (file
/// 000000010000000000000002)` line.
pub fn start_segment(label: &str) -> Option<String> {
    let line = label
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION:"))?;
    let file = line.split("(file ").nth(1)?.trim_end().strip_suffix(')')?;
    super::check_wal_name(file).ok()?;
    (file.len() == 24).then(|| file.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with_label(label: &str) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..12].copy_from_slice(b"backup_label");
        let size = format!("{:011o}\0", label.len());
        h[124..136].copy_from_slice(size.as_bytes());
        let mut out = h;
        out.extend_from_slice(label.as_bytes());
        out.resize(out.len().div_ceil(BLOCK) * BLOCK + 4 * BLOCK, 0);
        out
    }

    #[test]
    fn the_label_is_read_in_passing_in_any_read_sizes() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n";
        let tar = tar_with_label(label);
        for step in [1, 7, 512, 100_000] {
            let found: Found = Default::default();
            let mut tap = Tap::new(std::io::Cursor::new(tar.clone()), found.clone());
            let mut out = Vec::new();
            let mut buf = vec![0u8; step];
            loop {
                let n = tap.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, tar, "passed through unchanged");
            let text = found.lock().unwrap().clone().unwrap();
            assert_eq!(
                start_segment(&text).as_deref(),
                Some("000000010000000000000002"),
                "step {step}"
            );
        }
    }

    #[test]
    fn another_first_member_records_nothing() {
        let mut tar = tar_with_label("x");
        tar[..12].copy_from_slice(b"PG_VERSION\0\0");
        let found: Found = Default::default();
        let mut tap = Tap::new(std::io::Cursor::new(tar), found.clone());
        std::io::copy(&mut tap, &mut std::io::sink()).unwrap();
        assert!(found.lock().unwrap().is_none());
        assert_eq!(start_segment("START WAL LOCATION: 0/1 (file ../x)"), None);
    }
}
