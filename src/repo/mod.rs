//! The repository: a deduplicating, compressed, age-encrypted store of
//! snapshots on a [`Backend`]. docs/format.md describes every byte.

pub mod backend;
pub mod chunker;
pub mod crypto;
pub mod damage;
pub mod index;
pub mod keys;
pub mod lock;
pub mod object_lock;
pub mod pack;
pub mod reader;
pub mod rest;
pub mod s3;
pub mod snapshot;
pub mod snapshot_cache;
pub mod tree;

mod ahead;

pub use backend::{Backend, Kind, LocalBackend};
pub use index::{Index, Location};
pub use keys::Access;
pub use snapshot::Snapshot;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

macro_rules! id32 {
    ($name:ident) => {
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn hex(&self) -> String {
                hex::encode(self.0)
            }
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            pub fn parse(s: &str) -> Result<Self> {
                let v = hex::decode(s).map_err(|_| anyhow!("{s:?} is not a hex id"))?;
                Ok($name(
                    v.try_into()
                        .map_err(|_| anyhow!("{s:?} is not a 32-byte id"))?,
                ))
            }
            pub fn random() -> Self {
                $name(rand::random())
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.short())
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.hex())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
id32!(ChunkId);
id32!(PackId);

/// The plaintext `config` object: everything needed to write, nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub created: String,
    /// Packs are sealed to this age recipient.
    pub data_recipient: String,
    /// Indexes and snapshot summaries are sealed to this one.
    pub meta_recipient: String,
    pub chunker: chunker::Params,
    pub pack_size: u32,
    pub compression_level: i32,
}

/// Objects that could not be read: (object name, why).
pub type Damaged = Vec<(String, String)>;

/// One index file as stored: its name and, per pack, the pack's entries.
pub type IndexFile = (String, Vec<(PackId, Vec<index::PackEntry>)>);

pub const FORMAT: &str = "lifeboat-repository";
pub const VERSION: u32 = 1;

/// Where the key for opening a repository comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    File(PathBuf),
    /// Look in the default key directory for `<repository id>.key`.
    Default,
}

impl KeySource {
    /// The one order every front end uses: the key given for this command
    /// (`--key`), else the repository's configured `key_file`, else
    /// `<key dir>/<repository id>.key`.
    pub fn choose(
        given: Option<&std::path::Path>,
        configured: Option<&crate::util::SecretRef>,
    ) -> Result<KeySource> {
        Ok(match (given, configured) {
            (Some(k), _) => KeySource::File(k.to_path_buf()),
            (None, Some(c)) => KeySource::File(c.path()?),
            (None, None) => KeySource::Default,
        })
    }
}

/// Opens the repository at a location given on the command line (a
/// directory or `s3://bucket/prefix`), with `key` or the default key.
pub fn open_at(location: &str, key: Option<&std::path::Path>) -> Result<Repository> {
    Repository::open(backend_at(location)?, KeySource::choose(key, None)?)
}

pub struct Repository {
    /// Shared with the refresher thread of a held lock.
    backend: std::sync::Arc<dyn Backend>,
    locks: lock::LockOptions,
    config: RepoConfig,
    access: Access,
    key_label: String,
    data_recipient: crypto::Recipient,
    meta_recipient: crypto::Recipient,
    /// Where [`Repository::list_snapshots_cached`] keeps its cache.
    cache_dir: PathBuf,
}

pub struct Created {
    pub repo_id: String,
    pub recipient: String,
    pub key_file: PathBuf,
    pub key_file_created: bool,
}

impl Repository {
    /// Creates a repository. The admin identity is read from `key_file` if it
    /// exists (one key may serve several repositories) or generated there.
    pub fn init(backend: Box<dyn Backend>, key_file: Option<PathBuf>) -> Result<Created> {
        // A repository that asks for Object Lock on a bucket without it.
        if let Some(locks) = backend.object_lock() {
            locks.check()?;
        }
        let repo_id = hex::encode(rand::random::<[u8; 8]>());
        let key_file =
            key_file.unwrap_or_else(|| crate::paths::key_dir().join(format!("{repo_id}.key")));
        let (identity, created) = if key_file.exists() {
            match keys::KeyFile::load(&key_file)? {
                keys::KeyFile::Identity(mut ids) => (ids.remove(0), false),
                keys::KeyFile::WriteOnly { .. } | keys::KeyFile::LegacyWriteOnly { .. } => bail!(
                    "{} is a write-only key; init needs an age identity",
                    key_file.display()
                ),
            }
        } else {
            (crypto::Identity::generate(), true)
        };
        if let Some(tool) = keys::foreign_tool(backend.as_ref()) {
            return Err(crate::Error::ForeignRepository {
                path: backend.location(),
                tool,
            }
            .into());
        }
        backend.create()?;
        let master = keys::MasterKey::generate();
        let config = RepoConfig {
            format: FORMAT.into(),
            version: VERSION,
            id: repo_id.clone(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            data_recipient: master.data.to_public().to_string(),
            meta_recipient: master.meta.to_public().to_string(),
            chunker: chunker::Params::default(),
            pack_size: 16 * 1024 * 1024,
            compression_level: 3,
        };
        let recipient = identity.to_public();
        let obj = keys::seal_master(&master, &recipient, "admin", keys::KeyKind::Admin)?;
        backend.put(
            Kind::Keys,
            &key_object_name(&recipient),
            &serde_json::to_vec_pretty(&obj)?,
        )?;
        if created {
            keys::write_secret_file(&key_file, &keys::identity_file_text(&identity))?;
        }
        // The config goes last: a directory with a config is a complete repository.
        backend.put(Kind::Config, "config", &serde_json::to_vec_pretty(&config)?)?;
        Ok(Created {
            repo_id,
            recipient: recipient.to_string(),
            key_file,
            key_file_created: created,
        })
    }

    pub fn read_config(backend: &dyn Backend) -> Result<RepoConfig> {
        // One request: a missing config is None, an unreachable store is
        // not "not a repository" but an error that says which it is.
        let raw = match backend.get_if_exists(Kind::Config, "config") {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                return Err(crate::Error::NotARepository {
                    path: backend.location(),
                }
                .into())
            }
            // A store that fails the read is not "not a repository".
            Err(e) if backend::is_store_failure(&e) => return Err(e),
            Err(_) => {
                return Err(crate::Error::NotARepository {
                    path: backend.location(),
                }
                .into())
            }
        };
        let config: RepoConfig = match serde_json::from_slice(&raw) {
            Ok(c) => c,
            Err(e) => {
                if let Some(tool) = keys::foreign_tool(backend) {
                    return Err(crate::Error::ForeignRepository {
                        path: backend.location(),
                        tool,
                    }
                    .into());
                }
                return Err(anyhow::Error::new(e).context(format!(
                    "the repository config at {} is damaged",
                    backend.location()
                )));
            }
        };
        if config.format != FORMAT {
            return Err(crate::Error::NotARepository {
                path: backend.location(),
            }
            .into());
        }
        if config.version != VERSION {
            bail!(
                "the repository at {} has format version {}; this Lifeboat reads version {VERSION}",
                backend.location(),
                config.version
            );
        }
        config.chunker.validate()?;
        Ok(config)
    }

    pub fn open(backend: Box<dyn Backend>, key: KeySource) -> Result<Repository> {
        // A key file's own key objects are fetched while the config is:
        // on object storage that is one round trip where a listing of
        // `keys/` and a read after the config's were three.
        let (config, mut prefetched) = match &key {
            KeySource::File(p) => std::thread::scope(|s| {
                let own = s.spawn(|| ahead::own_key_objects(backend.as_ref(), p));
                let config = Self::read_config(backend.as_ref());
                (config, own.join().unwrap_or_default())
            }),
            KeySource::Default => (Self::read_config(backend.as_ref()), Vec::new()),
        };
        let config = config?;
        let key_path = match key {
            KeySource::File(p) => p,
            KeySource::Default => {
                let p = crate::paths::key_dir().join(format!("{}.key", config.id));
                if !p.exists() {
                    return Err(crate::Error::NoKey {
                        repo: backend.location(),
                        looked: p.display().to_string(),
                    }
                    .into());
                }
                prefetched = ahead::own_key_objects(backend.as_ref(), &p);
                p
            }
        };
        let key_label = key_path.display().to_string();
        let recipient = |field: &str, value: &str| {
            crypto::parse_recipient(value).with_context(|| {
                format!(
                    "{}/config is damaged: its `{field}` is not an age recipient (one like age1… of 62 characters)",
                    backend.location()
                )
            })
        };
        let data_recipient = recipient("data_recipient", &config.data_recipient)?;
        let meta_recipient = recipient("meta_recipient", &config.meta_recipient)?;
        // After the recipients: a key is matched against them, and a
        // damaged config must be named as the config, not as the key.
        let access = keys::access_for(
            backend.as_ref(),
            &config,
            &key_path,
            &key_label,
            &prefetched,
        )?;
        Ok(Repository {
            backend: backend.into(),
            locks: lock::LockOptions::default(),
            config,
            access,
            key_label,
            data_recipient,
            meta_recipient,
            cache_dir: crate::paths::cache_dir(),
        })
    }

    /// Where the restore point cache is kept (the config's `cache_dir`);
    /// [`crate::paths::cache_dir`] unless told.
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Repository {
        self.cache_dir = dir;
        self
    }

    /// How jobs on this repository lock it (wait, `--no-lock`).
    pub fn with_lock_options(mut self, locks: lock::LockOptions) -> Repository {
        self.locks = locks;
        self
    }

    /// Takes a repository lock for `operation`, as [`Self::with_lock_options`]
    /// says; `notify` hears what is waited for and what stale locks went.
    pub fn lock(
        &self,
        mode: lock::Mode,
        operation: &str,
        notify: &dyn Fn(String),
    ) -> Result<lock::Lock> {
        lock::Lock::take(self.backend.clone(), mode, operation, &self.locks, notify)
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }
    pub fn access(&self) -> &Access {
        &self.access
    }
    pub fn chunk_key(&self) -> &[u8; 32] {
        self.access.chunk_key()
    }
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// The data identity, or a clear error for a write-only key.
    pub fn data_identity(&self) -> Result<&crypto::Identity> {
        self.access.data().ok_or_else(|| {
            crate::Error::WriteOnlyKey {
                key: self.key_label.clone(),
            }
            .into()
        })
    }

    pub fn master_key(&self) -> Result<&keys::MasterKey> {
        match &self.access {
            Access::Full(m) => Ok(m),
            Access::WriteOnly(_) => Err(crate::Error::WriteOnlyKey {
                key: self.key_label.clone(),
            }
            .into()),
        }
    }

    pub fn seal_data(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        crypto::seal(&[&self.data_recipient], plaintext)
    }

    /// Seals a pack and stores it, streaming where the backend can.
    /// Returns the size of the stored object.
    pub fn store_pack(&self, id: &PackId, plaintext: &[u8]) -> Result<u64> {
        let mut size = 0;
        self.backend.put_with(Kind::Data, &id.hex(), &mut |w| {
            let mut counted = Counted { inner: w, n: 0 };
            crypto::seal_to(&[&self.data_recipient], plaintext, &mut counted)?;
            size = counted.n;
            Ok(())
        })?;
        Ok(size)
    }

    pub fn seal_meta(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        crypto::seal(&[&self.meta_recipient], plaintext)
    }

    pub fn open_meta(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        crypto::open(&self.access.metas(), ciphertext)
    }

    /// Loads every index file, for reading. Damaged index files are
    /// returned by name rather than failing the whole load: verify reports
    /// them, backup simply cannot deduplicate against them. Where a chunk
    /// is stored more than once, a copy in a pack that exists and that
    /// verify did not find damaged is preferred. Writers use
    /// [`Repository::load_index_for_writing`].
    pub fn load_index(&self) -> Result<(Index, Damaged)> {
        // Two independent sets of listings and reads: side by side, the
        // pack listing costs no round trips of its own.
        let (files, health) = std::thread::scope(|s| {
            let health = s.spawn(|| self.copy_health());
            (self.load_index_files(), health.join())
        });
        let (files, damaged) = files?;
        let health = health.map_err(|_| anyhow!("listing the packs failed unexpectedly"))??;
        let rank = health.ranker();
        Ok((
            Index::build_ranked(files.into_iter().flat_map(|(_, packs)| packs), |p, c| {
                Some(rank(p, c))
            }),
            damaged,
        ))
    }

    /// Every index file as stored, by name, in listing order: read several
    /// at a time (a network store hides its latency behind requests in
    /// flight; decryption uses every core).
    pub fn load_index_files(&self) -> Result<(Vec<IndexFile>, Damaged)> {
        let names: Vec<String> = self
            .backend
            .list(Kind::Index)?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let read = index::in_parallel(&names, index::readers(self.backend()), |name| {
            self.backend
                .get(Kind::Index, name)
                .and_then(|raw| self.open_meta(&raw))
                .and_then(|plain| index::decode_index_file(&plain))
        });
        let mut files = Vec::new();
        let mut damaged = Vec::new();
        for (name, res) in names.into_iter().zip(read) {
            match res {
                Ok(packs) => files.push((name, packs)),
                Err(e) => damaged.push((name, format!("{e:#}"))),
            }
        }
        Ok((files, damaged))
    }

    pub fn write_index(&self, packs: &[(PackId, Vec<index::PackEntry>)]) -> Result<String> {
        let name = hex::encode(rand::random::<[u8; 32]>());
        let sealed = self.seal_meta(&index::encode_index_file(packs))?;
        self.backend.put(Kind::Index, &name, &sealed)?;
        Ok(name)
    }

    /// Reads and checks one chunk (trees, small restores).
    pub fn read_chunk(&self, index: &Index, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = index
            .get(id)
            .ok_or_else(|| crate::Error::ChunkNotIndexed { chunk: id.short() })?;
        let pack = index.pack_id(loc.pack);
        let mut r = self.open_pack(&pack)?;
        pack::read_chunk(&mut r, self.chunk_key(), id, &loc, &mut Vec::new())
            .with_context(|| format!("in pack {}", pack.short()))
    }

    /// A seekable plaintext view of a pack, for reading a few chunks. A
    /// damaged segment fails only the reads that touch it.
    pub fn open_pack(&self, pack: &PackId) -> Result<crypto::SealedReader> {
        let raw = self.backend.open(Kind::Data, &pack.hex())?;
        self.unseal_pack(raw)
            .with_context(|| format!("pack {}", pack.short()))
    }

    /// A pack's plaintext, opened with every generation's data identity
    /// and able to prove chunk ids with every generation's chunk key.
    pub(crate) fn unseal_pack(
        &self,
        raw: Box<dyn backend::ReadSeek>,
    ) -> Result<crypto::SealedReader> {
        self.data_identity()?;
        Ok(crypto::SealedReader::new(&self.access.datas(), raw)?
            .with_older_chunk_keys(self.access.older_chunk_keys()))
    }

    /// The same, for going through most of the pack: on object storage the
    /// pack is fetched in one request (16 MiB) rather than range by range,
    /// which costs one round trip per pack instead of several.
    pub fn read_pack(&self, pack: &PackId) -> Result<crypto::SealedReader> {
        let raw = self.backend.open_whole(Kind::Data, &pack.hex())?;
        self.unseal_pack(raw)
            .with_context(|| format!("pack {}", pack.short()))
    }

    /// Every restore point summary, oldest first, each read and decrypted
    /// from the repository (verify and repair need that); unreadable ones
    /// are returned by name.
    pub fn list_snapshots(&self) -> Result<(Vec<Snapshot>, Damaged)> {
        snapshot_cache::list(self, None)
    }

    /// The same, for looking at them (`snapshots`, the console, finding
    /// `latest`): summaries whose object is unchanged since they were last
    /// read come from the local cache (see [`snapshot_cache`]).
    pub fn list_snapshots_cached(&self) -> Result<(Vec<Snapshot>, Damaged)> {
        let path = snapshot_cache::file_for(&self.cache_dir, &self.config.id);
        snapshot_cache::list(self, path.as_deref())
    }

    pub fn load_snapshot(&self, name: &str) -> Result<Snapshot> {
        let raw = self.backend.get(Kind::Snapshots, name)?;
        let plain = self
            .open_meta(&raw)
            .with_context(|| format!("restore point {name} is damaged"))?;
        let mut s: Snapshot = serde_json::from_slice(&plain)
            .with_context(|| format!("restore point {name} is damaged"))?;
        s.id = name.to_string();
        Ok(s)
    }

    pub fn save_snapshot(&self, snap: &mut Snapshot) -> Result<()> {
        let name = hex::encode(rand::random::<[u8; 32]>());
        let sealed = self.seal_meta(&serde_json::to_vec(snap)?)?;
        self.backend.put(Kind::Snapshots, &name, &sealed)?;
        snap.id = name;
        Ok(())
    }

    /// Replaces a snapshot summary under its own name (its id stays, so
    /// copies, journals and records that name it keep working). The put is
    /// atomic: until the new summary is durable the old one is what every
    /// reader sees. Callers hold a shared lock, so prune cannot remove the
    /// snapshot meanwhile and have it come back referring to deleted data.
    pub fn update_snapshot(&self, snap: &Snapshot) -> Result<()> {
        backend::valid_name(&snap.id)?;
        if !self.backend.exists(Kind::Snapshots, &snap.id)? {
            bail!(
                "restore point {} was removed (forgotten) meanwhile; nothing was written",
                snap.short_id()
            );
        }
        let sealed = self.seal_meta(&serde_json::to_vec(snap)?)?;
        self.backend
            .put(Kind::Snapshots, &snap.id, &sealed)
            .with_context(|| format!("rewriting restore point {}", snap.short_id()))
    }

    /// Resolves `latest`, a full id or a unique id prefix, optionally
    /// restricted to one service.
    pub fn find_snapshot(&self, query: &str, service: Option<&str>) -> Result<Snapshot> {
        let (snaps, _) = self.list_snapshots_cached()?;
        let snaps: Vec<_> = snaps
            .into_iter()
            .filter(|s| service.is_none_or(|svc| s.service == svc))
            .collect();
        let (svc_q, id_q) = match query.split_once(':') {
            Some((svc, rest)) => (Some(svc), rest),
            None => (None, query),
        };
        let candidates: Vec<&Snapshot> = snaps
            .iter()
            .filter(|s| svc_q.is_none_or(|svc| s.service == svc))
            .collect();
        if id_q == "latest" {
            return candidates.last().map(|s| (*s).clone()).ok_or_else(|| {
                crate::Error::NoSnapshot {
                    query: query.into(),
                    suggest: String::new(),
                }
                .into()
            });
        }
        let matches: Vec<&&Snapshot> = candidates
            .iter()
            .filter(|s| s.id.starts_with(id_q))
            .collect();
        match matches.as_slice() {
            [] => Err(crate::Error::NoSnapshot {
                query: query.into(),
                suggest: String::new(),
            }
            .into()),
            [one] => Ok((**one).clone()),
            many => Err(crate::Error::AmbiguousSnapshot {
                query: query.into(),
                candidates: many
                    .iter()
                    .map(|s| s.short_id())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into()),
        }
    }

    /// The snapshot's tree, as nodes in depth-first order.
    pub fn read_tree(&self, index: &Index, snap: &Snapshot) -> Result<Vec<tree::Node>> {
        self.data_identity()?;
        let damaged = || {
            format!(
                "the file list of restore point {} is damaged",
                snap.short_id()
            )
        };
        let mut decoder = tree::Decoder::default();
        // A batch at a time: fetched ahead and in parallel (one round trip
        // per batch on object storage, not several per chunk), while the
        // plaintext held at once stays bounded.
        for batch in index::batches(index, &snap.tree, TREE_BATCH_BYTES) {
            let chunks = self.read_chunks(index, batch).with_context(|| {
                format!("reading the file list of restore point {}", snap.short_id())
            })?;
            for chunk in chunks {
                decoder.feed(&chunk).with_context(damaged)?;
            }
        }
        decoder.finish().with_context(damaged)
    }
}

/// At most this much tree plaintext is fetched and held at once.
const TREE_BATCH_BYTES: u64 = 64 << 20;

/// Counts what passes through, for the size of a sealed object.
struct Counted<'a> {
    inner: &'a mut dyn std::io::Write,
    n: u64,
}

impl std::io::Write for Counted<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The storage at a location given on the command line: `s3://bucket/prefix`
/// (endpoint and credentials from the `AWS_*` environment variables) or a
/// directory.
pub fn backend_at(location: &str) -> Result<Box<dyn Backend>> {
    if rest::is_rest(location) {
        Ok(Box::new(rest::RestBackend::new(location)?))
    } else if location.starts_with("s3://") {
        Ok(Box::new(s3::S3Backend::new(&s3::S3Settings {
            url: location.to_string(),
            ..Default::default()
        })?))
    } else {
        Ok(Box::new(LocalBackend::new(location)))
    }
}

fn key_object_name(r: &crypto::Recipient) -> String {
    hex::encode(&blake3::hash(r.to_string().as_bytes()).as_bytes()[..16])
}
