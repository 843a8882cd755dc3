//! Where repository objects live. Objects are immutable and every write is
//! atomic, so a crash at any instant leaves either the whole object or none.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The kinds of object in a repository; each is a top-level folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Config,
    Keys,
    Data,
    Index,
    Snapshots,
    Locks,
    /// Chunk copies `verify --read-data` found damaged.
    Damage,
}

impl Kind {
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Keys => "keys",
            Kind::Data => "data",
            Kind::Index => "index",
            Kind::Snapshots => "snapshots",
            Kind::Locks => "locks",
            Kind::Damage => "damage",
        }
    }
}

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    /// What changes whenever the object is written again under its name
    /// (`update_snapshot` does): a local file's inode and times, an S3
    /// ETag. `None` where the store gives nothing reliable; then nothing
    /// read earlier may stand in for the object.
    pub version: Option<String>,
}

impl Listed {
    pub fn new(name: &str, size: u64, version: Option<String>) -> Listed {
        Listed {
            name: name.to_string(),
            size,
            version,
        }
    }

    /// An object store's version of an object: its ETag and modification
    /// time (microseconds since the epoch). A store that lists no ETag
    /// (s3s-fs) is trusted on the time alone only when it is finer than a
    /// second: two rewrites a round trip apart cannot share it.
    pub fn store_version(etag: Option<&str>, micros: i64) -> Option<String> {
        match etag {
            Some(e) => Some(format!("{e}@{micros}")),
            None if micros % 1_000_000 != 0 => Some(format!("@{micros}")),
            None => None,
        }
    }
}

pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// A repository's storage. Implementations must make `put` atomic and must
/// never expose a partially written object to `list`, `get` or `open`.
pub trait Backend: Send + Sync {
    /// Human-readable location for messages.
    fn location(&self) -> String;
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()>;
    /// Stores what `write` produces, atomically. Backends that can stream
    /// (a local file) avoid holding the whole object in memory.
    fn put_with(
        &self,
        kind: Kind,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        write(&mut buf)?;
        self.put(kind, name, &buf)
    }
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;
    /// `get`, or None when there is no such object: one request on a
    /// network store where `exists` and `get` would be two round trips.
    fn get_if_exists(&self, kind: Kind, name: &str) -> Result<Option<Vec<u8>>> {
        if !self.exists(kind, name)? {
            return Ok(None);
        }
        self.get(kind, name).map(Some)
    }
    /// Random access to an object (packs are read chunk by chunk).
    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ReadSeek>>;
    /// Like `open`, for a reader that will go through most of the object
    /// (restore, copy, read-data checks): a network store fetches it in one
    /// request rather than range by range.
    fn open_whole(&self, kind: Kind, name: &str) -> Result<Box<dyn ReadSeek>> {
        self.open(kind, name)
    }
    /// Like `open`, for a reader that will read the byte ranges `ahead`
    /// first (a tree's chunks, with the header before them): a network
    /// store fetches them at once, in parallel, instead of one round trip
    /// after another. Reads elsewhere work as with `open`.
    fn open_ahead(
        &self,
        kind: Kind,
        name: &str,
        ahead: &[std::ops::Range<u64>],
    ) -> Result<Box<dyn ReadSeek>> {
        let _ = ahead;
        self.open(kind, name)
    }
    /// Names and sizes of every object of a kind.
    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>>;
    /// The names alone (a disk need not look at each object for them).
    fn list_names(&self, kind: Kind) -> Result<Vec<String>> {
        Ok(self.list(kind)?.into_iter().map(|(name, _)| name).collect())
    }
    /// The same listing with each object's version, sorted by name, for
    /// caches of what objects hold. A store that cannot tell versions
    /// apart says `None` for each, and caches are then bypassed.
    fn list_versions(&self, kind: Kind) -> Result<Vec<Listed>> {
        Ok(self
            .list(kind)?
            .into_iter()
            .map(|(name, size)| Listed {
                name,
                size,
                version: None,
            })
            .collect())
    }
    fn remove(&self, kind: Kind, name: &str) -> Result<()>;
    fn exists(&self, kind: Kind, name: &str) -> Result<bool>;
    /// Prepares an empty location for a new repository.
    fn create(&self) -> Result<()>;
    /// Removes what interrupted writes left behind; only safe under the
    /// exclusive lock. Returns how many were removed.
    fn remove_leftovers(&self) -> Result<usize> {
        Ok(0)
    }
    /// How many packs a job should move at once: a disk wants two writers
    /// (one seals while the other syncs), a network store hides its latency
    /// behind more uploads and downloads in flight.
    fn transfers(&self) -> usize {
        2
    }
    /// Object Lock, on a store that has it and a repository that asks for
    /// it (`object_lock` in its config section).
    fn object_lock(&self) -> Option<&dyn super::object_lock::ObjectLocks> {
        None
    }
}

/// A repository in a local directory (a disk, a NAS mount, a USB drive).
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores an object only if none of that name exists; false if one
    /// does. A hard link, unlike a rename, fails instead of replacing, so
    /// an append-only server cannot be raced into overwriting.
    pub fn put_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<bool> {
        valid_name(name)?;
        let dest = self.path(kind, name);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".tmp-{}-{}", name, rand::random::<u64>()));
        let result = (|| -> Result<bool> {
            let mut f =
                File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            f.write_all(data)
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", tmp.display()))?;
            match fs::hard_link(&tmp, &dest) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => {
                    return Err(e).with_context(|| format!("linking into {}", dest.display()))
                }
            }
            fsync_dir(&dir)?;
            Ok(true)
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Calls `f` with every object of a kind (name and directory entry),
    /// in directory order. Only the directory is read: an entry's
    /// metadata is fetched when `f` asks for it.
    fn walk(
        &self,
        kind: Kind,
        mut f: impl FnMut(String, &fs::DirEntry) -> std::io::Result<()>,
    ) -> Result<()> {
        let dir = self.root.join(kind.dir());
        let mut visit = |d: &Path| -> Result<()> {
            let rd = match fs::read_dir(d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("listing {}", d.display())),
            };
            for entry in rd {
                let entry = entry.with_context(|| format!("listing {}", d.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let ft = entry.file_type()?;
                if ft.is_file() && !name.starts_with('.') {
                    f(name, &entry).with_context(|| format!("listing {}", d.display()))?;
                }
            }
            Ok(())
        };
        if kind == Kind::Data {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
            };
            for sub in rd {
                let sub = sub?;
                if sub.file_type()?.is_dir() {
                    visit(&sub.path())?;
                }
            }
        } else {
            visit(&dir)?;
        }
        Ok(())
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        match kind {
            Kind::Config => self.root.join("config"),
            // Two-character fan-out keeps directories small on big repositories.
            Kind::Data => self
                .root
                .join("data")
                .join(&name[..2.min(name.len())])
                .join(name),
            _ => self.root.join(kind.dir()).join(name),
        }
    }
}

pub(crate) fn valid_name(name: &str) -> Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "invalid object name {name:?}"
    );
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.put_with(kind, name, &mut |w| Ok(w.write_all(data)?))
    }

    fn put_with(
        &self,
        kind: Kind,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        valid_name(name)?;
        let dest = self.path(kind, name);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Temp file in the same directory so the rename is atomic; the
        // leading dot keeps it out of listings if we crash before renaming.
        let tmp = dir.join(format!(".tmp-{}-{}", name, rand::random::<u64>()));
        let result = (|| -> Result<()> {
            let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            write(&mut w).with_context(|| format!("writing {}", tmp.display()))?;
            let f = w
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", tmp.display()))?;
            f.sync_all()
                .with_context(|| format!("writing {}", tmp.display()))?;
            fs::rename(&tmp, &dest).with_context(|| format!("renaming into {}", dest.display()))?;
            fsync_dir(&dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        valid_name(name)?;
        let p = self.path(kind, name);
        fs::read(&p).with_context(|| format!("reading {}", p.display()))
    }

    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ReadSeek>> {
        valid_name(name)?;
        let p = self.path(kind, name);
        let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        Ok(Box::new(std::io::BufReader::with_capacity(256 * 1024, f)))
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        self.walk(kind, |name, entry| {
            out.push((name, entry.metadata()?.len()));
            Ok(())
        })?;
        out.sort();
        Ok(out)
    }

    fn list_names(&self, kind: Kind) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.walk(kind, |name, _| {
            out.push(name);
            Ok(())
        })?;
        out.sort();
        Ok(out)
    }

    fn list_versions(&self, kind: Kind) -> Result<Vec<Listed>> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        self.walk(kind, |name, entry| {
            let m = entry.metadata()?;
            // Every write is a new file renamed into place: a new inode
            // and a new change time, whatever the size.
            let version = format!(
                "{}.{}.{}.{}",
                m.ino(),
                m.ctime(),
                m.ctime_nsec(),
                m.mtime_nsec()
            );
            out.push(Listed {
                name,
                size: m.len(),
                version: Some(version),
            });
            Ok(())
        })?;
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.size.cmp(&b.size)));
        Ok(out)
    }

    fn remove(&self, kind: Kind, name: &str) -> Result<()> {
        valid_name(name)?;
        let p = self.path(kind, name);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        valid_name(name)?;
        Ok(self.path(kind, name).exists())
    }

    fn remove_leftovers(&self) -> Result<usize> {
        let mut removed = 0;
        let mut dirs = vec![self.root.clone()];
        for k in [
            Kind::Keys,
            Kind::Index,
            Kind::Snapshots,
            Kind::Locks,
            Kind::Data,
            Kind::Damage,
        ] {
            dirs.push(self.root.join(k.dir()));
        }
        if let Ok(rd) = fs::read_dir(self.root.join("data")) {
            dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        for d in dirs {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    fs::remove_file(e.path())
                        .with_context(|| format!("removing {}", e.path().display()))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn create(&self) -> Result<()> {
        if self.root.join("config").exists() {
            anyhow::bail!(
                "{} already holds a Lifeboat repository",
                self.root.display()
            );
        }
        if let Ok(mut rd) = fs::read_dir(&self.root) {
            if rd.next().is_some() {
                anyhow::bail!(
                    "{} is not empty; a new repository needs an empty or new directory",
                    self.root.display()
                );
            }
        }
        for k in [
            Kind::Keys,
            Kind::Data,
            Kind::Index,
            Kind::Snapshots,
            Kind::Locks,
        ] {
            let d = self.root.join(k.dir());
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(())
    }
}

/// Did this error come from the store failing (refusing, unreachable,
/// timing out after its retries) rather than from what it holds? A
/// failing store says nothing about the data, so it is never damage.
pub fn is_store_failure(err: &anyhow::Error) -> bool {
    fn storage(e: &(dyn std::error::Error + 'static)) -> bool {
        matches!(
            e.downcast_ref::<crate::Error>(),
            Some(crate::Error::Storage { .. })
        )
    }
    err.chain().any(|e| {
        storage(e)
            || e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| storage(inner))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_local_listings_name_the_same_objects() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.create().unwrap();
        let packs = ["ff".repeat(32), "00".repeat(32), "ab".repeat(32)];
        for (k, name) in packs.iter().enumerate() {
            b.put(Kind::Data, name, &vec![7; k + 1]).unwrap();
        }
        // Interrupted writes and what is not a file are not objects.
        let sub = dir.path().join("data").join("ab");
        fs::write(sub.join(".tmp-x-1"), b"partial").unwrap();
        fs::create_dir(sub.join("not-a-pack")).unwrap();

        let mut want = packs.to_vec();
        want.sort();
        assert_eq!(b.list_names(Kind::Data).unwrap(), want);
        let listed = b.list(Kind::Data).unwrap();
        assert_eq!(
            listed.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            want.iter().collect::<Vec<_>>()
        );
        assert_eq!(listed[0], ("00".repeat(32), 2));
        let versions = b.list_versions(Kind::Data).unwrap();
        assert_eq!(
            versions.iter().map(|l| &l.name).collect::<Vec<_>>(),
            want.iter().collect::<Vec<_>>()
        );
        assert!(versions.iter().all(|l| l.version.is_some()));
        assert!(b.list_names(Kind::Index).unwrap().is_empty());
    }
}
