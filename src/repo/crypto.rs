//! All encryption is age (X25519). Nothing here invents cryptography: it
//! only chooses which age recipients an object is sealed to.

use anyhow::{anyhow, Context, Result};
use std::io::{Read, Write};

pub use age::x25519::{Identity, Recipient};

pub fn seal(recipients: &[&Recipient], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + 256 + plaintext.len() / 4096);
    seal_to(recipients, plaintext, &mut out)?;
    Ok(out)
}

/// Seals into a writer, for objects too big to hold twice in memory.
pub fn seal_to(recipients: &[&Recipient], plaintext: &[u8], out: &mut dyn Write) -> Result<()> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| *r as &dyn age::Recipient))
            .map_err(|e| anyhow!("age: {e}"))?;
    let mut w = encryptor.wrap_output(out).context("age: writing header")?;
    w.write_all(plaintext)?;
    w.finish()?;
    Ok(())
}

/// Opens a whole sealed object.
pub fn open(identities: &[&Identity], ciphertext: &[u8]) -> Result<Vec<u8>> {
    let mut r = reader(identities, ciphertext)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .context("decrypting (the object is damaged)")?;
    Ok(out)
}

/// A seekable plaintext view of a sealed object.
pub fn reader<R: Read>(identities: &[&Identity], input: R) -> Result<age::stream::StreamReader<R>> {
    // age's own message for a bad header suggests upgrading; for us it
    // means damage, so say that.
    let d = age::Decryptor::new(input).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        anyhow!("the object is damaged: its age header cannot be parsed ({first})")
    })?;
    d.decrypt(identities.iter().map(|i| *i as &dyn age::Identity))
        .map_err(|e| {
            anyhow!("cannot decrypt: {e} (the object is damaged or sealed for another key)")
        })
}

pub fn parse_identity(s: &str) -> Result<Identity> {
    s.trim()
        .parse::<Identity>()
        .map_err(|e| anyhow!("not an age identity: {e}"))
}

pub fn parse_recipient(s: &str) -> Result<Recipient> {
    s.trim()
        .parse::<Recipient>()
        .map_err(|e| anyhow!("not an age recipient (age1…): {e}"))
}

/// Keyed BLAKE3: chunk ids reveal nothing about content to whoever stores them.
pub fn chunk_id(key: &[u8; 32], data: &[u8]) -> super::ChunkId {
    super::ChunkId(*blake3::keyed_hash(key, data).as_bytes())
}

/// The plaintext size of one age STREAM segment.
const SEGMENT: u64 = 64 * 1024;

/// A sealed object's header (with the payload's 16-byte nonce) is shorter
/// than this: one recipient's stanza is a few hundred bytes.
pub(crate) const HEADER_AHEAD: u64 = 64 * 1024;

/// Where the plaintext bytes `plain` of a sealed object lie in it, for
/// fetching them ahead: a range that holds them (and the segment after,
/// which the reader may look at) whenever the header is shorter than
/// [`HEADER_AHEAD`]. Only a hint: reads outside it still work.
pub(crate) fn sealed_span(plain: &std::ops::Range<u64>) -> std::ops::Range<u64> {
    let sealed = SEGMENT + 16;
    let first = plain.start / SEGMENT;
    let last = plain.end.saturating_sub(1) / SEGMENT;
    first.saturating_mul(sealed)..HEADER_AHEAD.saturating_add((last + 2).saturating_mul(sealed))
}

/// A seekable plaintext view of a sealed object that reads every segment
/// that authenticates, even when a later one does not.
///
/// age's own reader authenticates the final segment (to learn the length)
/// whenever it seeks to a segment boundary, and is left unusable after any
/// segment fails. Here a seek to a boundary goes through the segment's
/// second byte instead, and a reader that failed is rebuilt over the same
/// fetched bytes, so one damaged segment (a pack cut short in its last
/// 64 KiB) costs only what overlaps it. Nothing is weakened: every byte
/// still comes out of a segment that authenticated under its own nonce.
pub struct SealedReader {
    identities: Vec<Identity>,
    source: std::sync::Arc<std::sync::Mutex<Source>>,
    /// None after a failure, until the next read or seek rebuilds it.
    inner: Option<age::stream::StreamReader<Shared>>,
    /// The plaintext position, kept across rebuilds.
    pos: u64,
    /// Chunk keys of earlier key generations, for packs written before a
    /// `keys rotate` (see `pack::ChunkSource`).
    older_chunk_keys: Vec<[u8; 32]>,
}

/// The fetched object and where its cursor is (to skip needless seeks).
struct Source {
    raw: Box<dyn super::backend::ReadSeek>,
    at: Option<u64>,
}

/// One age reader's handle on the shared source, with its own position.
struct Shared {
    source: std::sync::Arc<std::sync::Mutex<Source>>,
    pos: u64,
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("sealed object reader poisoned")
}

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut s = self.source.lock().map_err(|_| poisoned())?;
        if s.at != Some(self.pos) {
            s.at = None;
            s.raw.seek(std::io::SeekFrom::Start(self.pos))?;
        }
        let n = s.raw.read(buf)?;
        self.pos += n as u64;
        s.at = Some(self.pos);
        Ok(n)
    }
}

impl std::io::Seek for Shared {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => {
                let mut s = self.source.lock().map_err(|_| poisoned())?;
                s.at = None;
                let end = s.raw.seek(SeekFrom::End(0))?;
                s.at = Some(end);
                end.checked_add_signed(d)
            }
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

impl SealedReader {
    pub fn new(
        identities: &[&Identity],
        raw: Box<dyn super::backend::ReadSeek>,
    ) -> Result<SealedReader> {
        let mut r = SealedReader {
            identities: identities.iter().map(|i| (*i).clone()).collect(),
            source: std::sync::Arc::new(std::sync::Mutex::new(Source { raw, at: None })),
            inner: None,
            pos: 0,
            older_chunk_keys: Vec::new(),
        };
        r.inner = Some(r.rebuild()?);
        Ok(r)
    }

    pub fn with_older_chunk_keys(mut self, keys: Vec<[u8; 32]>) -> SealedReader {
        self.older_chunk_keys = keys;
        self
    }

    pub fn older_chunk_keys(&self) -> &[[u8; 32]] {
        &self.older_chunk_keys
    }

    /// A fresh age reader from the start of the same bytes (one header
    /// parse and key unwrap, no new fetch).
    fn rebuild(&self) -> Result<age::stream::StreamReader<Shared>> {
        let ids: Vec<&Identity> = self.identities.iter().collect();
        reader(
            &ids,
            Shared {
                source: self.source.clone(),
                pos: 0,
            },
        )
    }

    /// The age reader, rebuilt and put back at `pos` if the last one failed.
    fn ready(&mut self) -> std::io::Result<&mut age::stream::StreamReader<Shared>> {
        if self.inner.is_none() {
            self.place(self.pos)?;
        }
        self.inner.as_mut().ok_or_else(poisoned)
    }

    /// Puts the reader at plaintext position `pos`.
    fn place(&mut self, pos: u64) -> std::io::Result<u64> {
        use std::io::{Seek, SeekFrom};
        let fresh = |me: &SealedReader| {
            me.rebuild()
                .map_err(|e| std::io::Error::other(format!("{e:#}")))
        };
        let mut r = match self.inner.take() {
            Some(r) => r,
            None => fresh(self)?,
        };
        let placed = if pos > 0 && pos % SEGMENT == 0 {
            // At a segment boundary age checks the stream's length (the
            // last segment) before reading anything; one byte in decrypts
            // only the target segment, and stepping back stays inside it.
            match r
                .seek(SeekFrom::Start(pos + 1))
                .and_then(|_| r.seek(SeekFrom::Current(-1)))
            {
                Ok(p) => Ok(p),
                // Nothing to read there (the very end): only age's own
                // seek, which checks the length, can land on it.
                Err(_) => {
                    r = fresh(self)?;
                    r.seek(SeekFrom::Start(pos))
                }
            }
        } else {
            r.seek(SeekFrom::Start(pos))
        };
        let p = placed?;
        self.inner = Some(r);
        self.pos = p;
        Ok(p)
    }
}

impl Read for SealedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let res = self.ready()?.read(buf);
        match res {
            Ok(n) => {
                self.pos += n as u64;
                Ok(n)
            }
            Err(e) => {
                // age's reader is unusable after a failed segment.
                self.inner = None;
                Err(e)
            }
        }
    }
}

impl std::io::Seek for SealedReader {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        let target = match to {
            SeekFrom::Start(n) => n,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
            })?,
            SeekFrom::End(_) => {
                // Needs the length, which only the last segment proves.
                let res = self.ready()?.seek(to);
                return match res {
                    Ok(p) => {
                        self.pos = p;
                        Ok(p)
                    }
                    // Only a segment that arrived and failed is damage; a
                    // failed fetch keeps its own error (and its retry).
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        self.inner = None;
                        Err(std::io::Error::new(
                            e.kind(),
                            "its last 64 KiB segment does not authenticate: cut short or damaged at the end",
                        ))
                    }
                    Err(e) => {
                        self.inner = None;
                        Err(e)
                    }
                };
            }
        };
        self.place(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    /// Five full segments and a short last one, sealed.
    fn sealed() -> (Identity, Vec<u8>, Vec<u8>) {
        let id = Identity::generate();
        let plain: Vec<u8> = (0..5 * SEGMENT as usize + 3000)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let ct = seal(&[&id.to_public()], &plain).unwrap();
        (id, plain, ct)
    }

    fn open_reader(id: &Identity, ct: Vec<u8>) -> SealedReader {
        SealedReader::new(&[id], Box::new(std::io::Cursor::new(ct))).unwrap()
    }

    fn read_at(r: &mut SealedReader, at: u64, len: usize) -> std::io::Result<Vec<u8>> {
        r.seek(SeekFrom::Start(at))?;
        let mut b = vec![0; len];
        r.read_exact(&mut b)?;
        Ok(b)
    }

    #[test]
    fn a_cut_in_the_last_segment_loses_only_what_overlaps_it() {
        let (id, plain, mut ct) = sealed();
        ct.truncate(ct.len() - 100);
        let mut r = open_reader(&id, ct);
        assert!(
            r.seek(SeekFrom::End(-12)).is_err(),
            "the end cannot be proven"
        );
        // At a segment boundary, where age's own seek checks the length.
        let at = 2 * SEGMENT;
        assert_eq!(
            read_at(&mut r, at, 1000).unwrap(),
            plain[at as usize..][..1000]
        );
        // Reaching into the last segment fails…
        let tail = 5 * SEGMENT - 10;
        assert!(read_at(&mut r, tail, 20).is_err());
        // …and does not stop the reader: before it, everything reads,
        // including a read ending exactly where the damage starts.
        assert_eq!(
            read_at(&mut r, tail, 10).unwrap(),
            plain[tail as usize..][..10]
        );
        assert_eq!(read_at(&mut r, 5, 100).unwrap(), plain[5..105]);
        let whole = read_at(&mut r, 0, 5 * SEGMENT as usize).unwrap();
        assert_eq!(whole, plain[..5 * SEGMENT as usize]);
    }

    #[test]
    fn a_damaged_middle_segment_fails_only_reads_that_touch_it() {
        let (id, plain, mut ct) = sealed();
        // A byte inside the third segment's ciphertext.
        let n = ct.len();
        let enc = SEGMENT as usize + 16;
        let third = n - (3000 + 16) - 3 * enc + 10;
        ct[third] ^= 1;
        let mut r = open_reader(&id, ct);
        assert!(read_at(&mut r, 2 * SEGMENT + 5, 10).is_err());
        assert!(read_at(&mut r, 2 * SEGMENT - 5, 10).is_err(), "spans it");
        assert!(read_at(&mut r, 2 * SEGMENT, 1).is_err(), "at its boundary");
        for at in [0, SEGMENT, 3 * SEGMENT, 4 * SEGMENT + 7] {
            assert_eq!(
                read_at(&mut r, at, 100).unwrap(),
                plain[at as usize..][..100]
            );
        }
        // The end is intact and proves the length.
        assert_eq!(r.seek(SeekFrom::End(0)).unwrap(), plain.len() as u64);
        assert_eq!(
            read_at(&mut r, 5 * SEGMENT, 3000).unwrap(),
            plain[5 * SEGMENT as usize..]
        );
    }

    /// A sealed object of which only `allowed` can be read.
    struct Only {
        ct: std::io::Cursor<Vec<u8>>,
        allowed: Vec<std::ops::Range<u64>>,
    }

    impl Read for Only {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let at = self.ct.position();
            let Some(r) = self.allowed.iter().find(|r| r.contains(&at)) else {
                return Err(std::io::Error::other(format!(
                    "read at {at}, not fetched ahead"
                )));
            };
            let n = buf.len().min((r.end - at) as usize);
            self.ct.read(&mut buf[..n])
        }
    }

    impl Seek for Only {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.ct.seek(to)
        }
    }

    #[test]
    fn what_sealed_span_names_is_all_a_read_of_those_bytes_needs() {
        let (id, plain, ct) = sealed();
        let len = plain.len() as u64;
        for range in [
            0..10,
            5..SEGMENT,
            SEGMENT..SEGMENT + 1,
            SEGMENT - 3..3 * SEGMENT + 9,
            2 * SEGMENT..4 * SEGMENT,
            4 * SEGMENT + 100..len,
            len - 1..len,
        ] {
            let raw = Only {
                ct: std::io::Cursor::new(ct.clone()),
                allowed: vec![0..HEADER_AHEAD, sealed_span(&range)],
            };
            let mut r = SealedReader::new(&[&id], Box::new(raw)).unwrap();
            let got = read_at(&mut r, range.start, (range.end - range.start) as usize);
            assert_eq!(
                got.unwrap(),
                plain[range.start as usize..range.end as usize],
                "{range:?}"
            );
        }
    }

    #[test]
    fn an_intact_object_reads_the_same_as_age_reads_it() {
        let (id, plain, ct) = sealed();
        let mut r = open_reader(&id, ct.clone());
        assert_eq!(open(&[&id], &ct).unwrap(), plain);
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, plain);
        for at in [
            0,
            SEGMENT,
            3 * SEGMENT - 1,
            5 * SEGMENT,
            plain.len() as u64 - 1,
        ] {
            let len = (plain.len() as u64 - at).min(50) as usize;
            assert_eq!(
                read_at(&mut r, at, len).unwrap(),
                plain[at as usize..][..len]
            );
        }
        // Exactly the end: nothing to read, and no error.
        r.seek(SeekFrom::Start(plain.len() as u64)).unwrap();
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
    }
}
