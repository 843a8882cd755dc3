//! The local spool `wal-push` writes into: each segment copied, fsynced
//! and renamed into `segments/` before PostgreSQL hears "archived", so a
//! push is fast and a crash at any instant leaves either the whole
//! segment or nothing. `pushed` remembers (name, hash) of what was packed
//! into the repository, so a repeated push is recognised after the spool
//! was emptied.

use super::check_wal_name;
use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The largest WAL segment PostgreSQL can be built with (1 GiB): a file
/// bigger than this is not a segment and is never read whole.
pub const MAX_SEGMENT: u64 = 1 << 30;

pub struct Spool {
    dir: PathBuf,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    New,
    /// The same bytes were already spooled or packed: PostgreSQL retried.
    AlreadyHad,
}

/// One spooled segment.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub name: String,
    pub path: PathBuf,
    pub pushed: SystemTime,
}

impl Spool {
    pub fn new(dir: &Path) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
        }
    }

    fn segments(&self) -> PathBuf {
        self.dir.join("segments")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn ledger(&self) -> PathBuf {
        self.dir.join("pushed")
    }

    /// Copies the file PostgreSQL names (`%p`) into the spool. Identical
    /// bytes under a name already there are a success; different bytes
    /// are an error, and nothing is overwritten.
    pub fn push(&self, from: &Path) -> Result<Pushed> {
        let name = from
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no file name", from.display()))?
            .to_string();
        check_wal_name(&name)?;
        let data = read_bounded(from)?;
        let hash = blake3::hash(&data).to_hex().to_string();
        let seg = self.segments().join(&name);
        if seg.exists() {
            return same(&name, &hash, &blake3::hash(&read_bounded(&seg)?).to_hex());
        }
        if let Some(had) = self.packed_hash(&name)? {
            return same(&name, &hash, &had);
        }
        for d in [self.segments(), self.tmp()] {
            fs::create_dir_all(&d)
                .with_context(|| format!("creating the WAL spool {}", d.display()))?;
        }
        // An earlier attempt killed mid-write left its part here; the
        // archiver pushes one file at a time, so it is nobody's now.
        let part = self.tmp().join(&name);
        let _ = fs::remove_file(&part);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)
            .with_context(|| format!("creating {}", part.display()))?;
        let half = data.len() / 2;
        f.write_all(&data[..half])
            .with_context(|| format!("writing {}", part.display()))?;
        crash_hook();
        f.write_all(&data[half..])
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", part.display()))?;
        drop(f);
        fs::rename(&part, &seg).with_context(|| format!("moving {} into the spool", name))?;
        sync_dir(&self.segments())?;
        Ok(Pushed::New)
    }

    /// Spooled segments, oldest name first.
    pub fn list(&self) -> Result<Vec<Spooled>> {
        let mut out = Vec::new();
        let dir = self.segments();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for e in entries {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if check_wal_name(&name).is_err() {
                continue;
            }
            let pushed = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| SystemTime::now());
            out.push(Spooled {
                path: e.path(),
                name,
                pushed,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The spooled copy of `name`, if any.
    pub fn find(&self, name: &str) -> Result<Option<PathBuf>> {
        check_wal_name(name)?;
        let p = self.segments().join(name);
        Ok(p.is_file().then_some(p))
    }

    /// Notes that `done` are in the repository (fsynced), then removes
    /// them from the spool.
    pub fn packed(&self, done: &[Spooled]) -> Result<()> {
        let mut lines = String::new();
        for s in done {
            let hash = blake3::hash(&read_bounded(&s.path)?).to_hex().to_string();
            lines.push_str(&format!("{} {hash}\n", s.name));
        }
        let path = self.ledger();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.write_all(lines.as_bytes())
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        for s in done {
            fs::remove_file(&s.path)
                .with_context(|| format!("removing {} from the spool", s.path.display()))?;
        }
        sync_dir(&self.segments())
    }

    fn packed_hash(&self, name: &str) -> Result<Option<String>> {
        let path = self.ledger();
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut found = None;
        for line in std::io::BufReader::new(f).lines() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if let Some((n, h)) = line.split_once(' ') {
                if n == name {
                    found = Some(h.to_string());
                }
            }
        }
        Ok(found)
    }

    /// Takes the spool's flush lock without waiting: None when another
    /// flush holds it (that one packs what is here).
    pub fn try_flush_lock(&self) -> Result<Option<File>> {
        self.lock(libc::LOCK_EX | libc::LOCK_NB)
    }

    /// Takes the spool's flush lock, waiting for a flush under way (an
    /// explicit `wal-flush` must find the spool empty when it returns).
    pub fn flush_lock(&self) -> Result<File> {
        self.lock(libc::LOCK_EX)?.with_context(|| {
            format!(
                "locking {}: the lock was refused",
                self.dir.join("flush.lock").display()
            )
        })
    }

    fn lock(&self, how: libc::c_int) -> Result<Option<File>> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the WAL spool {}", self.dir.display()))?;
        let path = self.dir.join("flush.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor we own; released when it closes.
        loop {
            if unsafe { libc::flock(f.as_raw_fd(), how) } == 0 {
                return Ok(Some(f));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(None),
                _ => return Err(e).with_context(|| format!("locking {}", path.display())),
            }
        }
    }
}

fn same(name: &str, new: &str, had: &str) -> Result<Pushed> {
    if new == had {
        Ok(Pushed::AlreadyHad)
    } else {
        bail!(
            "{name} was already archived with different content; refusing to overwrite it. Two clusters may be archiving into the same spool and service: give each its own service"
        )
    }
}

fn read_bounded(p: &Path) -> Result<Vec<u8>> {
    let f = File::open(p).with_context(|| format!("reading {}", p.display()))?;
    let mut data = Vec::new();
    f.take(MAX_SEGMENT + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {}", p.display()))?;
    if data.len() as u64 > MAX_SEGMENT {
        bail!(
            "{} is larger than a WAL segment can be (1 GiB)",
            p.display()
        );
    }
    Ok(data)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// For the crash test: `LIFEBOAT_TEST_WAL_PUSH_CRASH=1` kills the process
/// with SIGKILL after half the segment is written, as a power cut or an
/// OOM kill would.
fn crash_hook() {
    if std::env::var_os("LIFEBOAT_TEST_WAL_PUSH_CRASH").is_some_and(|v| v == "1") {
        // SAFETY: sending a signal to ourselves.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_push_is_fine_and_a_different_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(&d.path().join("spool"));
        let seg = d.path().join("000000010000000000000001");
        fs::write(&seg, b"one").unwrap();
        assert_eq!(spool.push(&seg).unwrap(), Pushed::New);
        assert_eq!(spool.push(&seg).unwrap(), Pushed::AlreadyHad);
        let listed = spool.list().unwrap();
        spool.packed(&listed).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert_eq!(spool.push(&seg).unwrap(), Pushed::AlreadyHad);
        fs::write(&seg, b"two").unwrap();
        let e = spool.push(&seg).unwrap_err().to_string();
        assert!(e.contains("different content"), "{e}");
    }
}
