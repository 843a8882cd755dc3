//! Key material. A repository has three secrets, generated at `init`:
//!
//! - the data identity, which opens packs (file contents and trees);
//! - the metadata identity, which opens indexes and snapshot summaries;
//! - the chunk-id key (keyed BLAKE3, also seeds the chunker).
//!
//! An admin key (any age X25519 identity) opens `keys/<id>`, which holds all
//! three. A write-only key opens its own `keys/<id>`, which holds only the
//! metadata identity and the chunk-id key: enough to deduplicate and add
//! snapshots, never enough to read a file back. A ransomware-infected
//! backup host cannot read its backups, and `keys revoke` takes its key
//! object away. `keys rotate` (see `manage`) adds generations.

use super::crypto::{self, Identity, Recipient};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

mod manage;
pub(in crate::repo) use manage::access_for;
pub use manage::{KeyEntry, Rotated};

/// One generation of the repository's secrets. `keys rotate` starts a new
/// one for future writes; older ones are kept so old data stays readable.
#[derive(Clone)]
pub struct Generation {
    pub data: Identity,
    pub meta: Identity,
    pub chunk_key: [u8; 32],
}

impl Generation {
    pub fn generate() -> Self {
        Generation {
            data: Identity::generate(),
            meta: Identity::generate(),
            chunk_key: rand::random(),
        }
    }
}

/// Everything an admin key opens: the generation new data is written
/// with, and every earlier one, newest first.
pub struct MasterKey {
    pub data: Identity,
    pub meta: Identity,
    pub chunk_key: [u8; 32],
    pub older: Vec<Generation>,
}

impl MasterKey {
    pub fn generate() -> Self {
        let g = Generation::generate();
        MasterKey {
            data: g.data,
            meta: g.meta,
            chunk_key: g.chunk_key,
            older: Vec::new(),
        }
    }

    fn current(&self) -> Generation {
        Generation {
            data: self.data.clone(),
            meta: self.meta.clone(),
            chunk_key: self.chunk_key,
        }
    }

    /// The next generation: new secrets for writing, this one kept.
    pub fn rotated(&self) -> MasterKey {
        let g = Generation::generate();
        let mut older = vec![self.current()];
        older.extend(self.older.iter().cloned());
        MasterKey {
            data: g.data,
            meta: g.meta,
            chunk_key: g.chunk_key,
            older,
        }
    }

    /// Makes the generation whose recipients the config names the one to
    /// write with. After a rotation that stopped before its last step
    /// (the config) the key object's newest generation is not in use yet.
    pub fn select(&mut self, data_recipient: &str, meta_recipient: &str) -> bool {
        let is = |g: &Generation| {
            g.data.to_public().to_string() == data_recipient.trim()
                && g.meta.to_public().to_string() == meta_recipient.trim()
        };
        if is(&self.current()) {
            return true;
        }
        let Some(i) = self.older.iter().position(is) else {
            return false;
        };
        let chosen = self.older.remove(i);
        let was = self.current();
        self.older.insert(0, was);
        self.data = chosen.data;
        self.meta = chosen.meta;
        self.chunk_key = chosen.chunk_key;
        true
    }

    /// The number of generations (1 before any rotation).
    pub fn generations(&self) -> usize {
        1 + self.older.len()
    }
}

/// What a write-only key opens: enough to deduplicate and add snapshots.
pub struct WriteOnlyKey {
    pub meta: Identity,
    pub chunk_key: [u8; 32],
    /// Metadata identities of earlier generations, so indexes and
    /// summaries written before a rotation still read.
    pub older_meta: Vec<Identity>,
}

/// What a key file grants.
pub enum Access {
    Full(MasterKey),
    WriteOnly(WriteOnlyKey),
}

impl Access {
    pub fn chunk_key(&self) -> &[u8; 32] {
        match self {
            Access::Full(m) => &m.chunk_key,
            Access::WriteOnly(w) => &w.chunk_key,
        }
    }
    pub fn meta(&self) -> &Identity {
        match self {
            Access::Full(m) => &m.meta,
            Access::WriteOnly(w) => &w.meta,
        }
    }
    /// Every metadata identity, the current one first.
    pub fn metas(&self) -> Vec<&Identity> {
        match self {
            Access::Full(m) => std::iter::once(&m.meta)
                .chain(m.older.iter().map(|g| &g.meta))
                .collect(),
            Access::WriteOnly(w) => std::iter::once(&w.meta).chain(&w.older_meta).collect(),
        }
    }
    pub fn data(&self) -> Option<&Identity> {
        match self {
            Access::Full(m) => Some(&m.data),
            Access::WriteOnly(_) => None,
        }
    }
    /// Every data identity, the current one first (none for write-only).
    pub fn datas(&self) -> Vec<&Identity> {
        match self {
            Access::Full(m) => std::iter::once(&m.data)
                .chain(m.older.iter().map(|g| &g.data))
                .collect(),
            Access::WriteOnly(_) => Vec::new(),
        }
    }
    /// Chunk keys of earlier generations: chunks written before a
    /// rotation prove their ids with these.
    pub fn older_chunk_keys(&self) -> Vec<[u8; 32]> {
        match self {
            Access::Full(m) => m.older.iter().map(|g| g.chunk_key).collect(),
            Access::WriteOnly(_) => Vec::new(),
        }
    }
}

/// Who a key object is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// Opens everything (the key `init` made, or one added as admin).
    Admin,
    /// Opens everything; kept offline for emergencies.
    BreakGlass,
    /// Can back up, never read back.
    WriteOnly,
}

impl KeyKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Admin => "admin",
            KeyKind::BreakGlass => "break-glass",
            KeyKind::WriteOnly => "write-only",
        }
    }
    pub fn reads(self) -> bool {
        self != KeyKind::WriteOnly
    }
}

/// A key object as stored in `keys/<id>`: sealed to one recipient.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyObject {
    /// Absent in objects written before key kinds existed: those are
    /// admin keys, or break-glass ones by their label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KeyKind>,
    pub recipient: String,
    pub label: String,
    pub created: String,
    pub host: String,
    /// age ciphertext, hex: a [`MasterKeyFile`], or for a write-only key
    /// a [`WriteOnlySealed`].
    pub sealed: String,
}

impl KeyObject {
    pub fn kind(&self) -> KeyKind {
        match self.kind {
            Some(k) => k,
            None if self.label == "break-glass" => KeyKind::BreakGlass,
            None => KeyKind::Admin,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerationFile {
    data_identity: String,
    meta_identity: String,
    chunk_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MasterKeyFile {
    data_identity: String,
    meta_identity: String,
    chunk_key: String,
    /// Earlier generations, newest first (after `keys rotate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    older: Vec<GenerationFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteOnlySealed {
    meta_identity: String,
    chunk_key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    older_meta_identities: Vec<String>,
}

fn secret(id: &Identity) -> String {
    use age::secrecy::ExposeSecret;
    id.to_string().expose_secret().to_string()
}

fn object(kind: KeyKind, to: &Recipient, label: &str, plain: &[u8]) -> Result<KeyObject> {
    let sealed = crypto::seal(&[to], plain)?;
    Ok(KeyObject {
        kind: Some(kind),
        recipient: to.to_string(),
        label: label.to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        host: crate::paths::hostname(),
        sealed: hex::encode(sealed),
    })
}

pub fn seal_master(
    master: &MasterKey,
    to: &Recipient,
    label: &str,
    kind: KeyKind,
) -> Result<KeyObject> {
    let inner = MasterKeyFile {
        data_identity: secret(&master.data),
        meta_identity: secret(&master.meta),
        chunk_key: hex::encode(master.chunk_key),
        older: master
            .older
            .iter()
            .map(|g| GenerationFile {
                data_identity: secret(&g.data),
                meta_identity: secret(&g.meta),
                chunk_key: hex::encode(g.chunk_key),
            })
            .collect(),
    };
    object(kind, to, label, &serde_json::to_vec(&inner)?)
}

/// A write-only key's object: the metadata identities and the chunk key,
/// never a data identity.
pub fn seal_write_only(master: &MasterKey, to: &Recipient, label: &str) -> Result<KeyObject> {
    let inner = WriteOnlySealed {
        meta_identity: secret(&master.meta),
        chunk_key: hex::encode(master.chunk_key),
        older_meta_identities: master.older.iter().map(|g| secret(&g.meta)).collect(),
    };
    object(KeyKind::WriteOnly, to, label, &serde_json::to_vec(&inner)?)
}

/// Why a key object did not open with the identities of a key file.
pub enum Refusal {
    /// Sealed to someone else: not an error on its own.
    NotForThisKey,
    /// Unreadable. `ours` when its wrapper names one of the identities
    /// tried, so this key's own object is the one that is broken.
    Damaged { why: String, ours: bool },
}

/// Opens one stored key object's sealed part (`raw`, the object's JSON)
/// with any of `ids`, telling a damaged object from one sealed to another
/// recipient: age cannot tell those apart for a damaged recipient stanza,
/// so the object's plaintext `recipient` decides.
fn unseal(raw: &[u8], ids: &[Identity]) -> std::result::Result<(KeyObject, Vec<u8>), Refusal> {
    use std::io::Read;
    let damaged = |why: String, ours: bool| Refusal::Damaged { why, ours };
    let obj: KeyObject = serde_json::from_slice(raw)
        .map_err(|e| damaged(format!("it is not a key object's JSON: {e}"), false))?;
    let ours = ids
        .iter()
        .any(|id| id.to_public().to_string() == obj.recipient.trim());
    let sealed = hex::decode(obj.sealed.trim())
        .map_err(|e| damaged(format!("its sealed key is not hex: {e}"), ours))?;
    let d = age::Decryptor::new(&sealed[..])
        .map_err(|_| damaged("its age header cannot be parsed".into(), ours))?;
    let mut r = match d.decrypt(ids.iter().map(|i| i as &dyn age::Identity)) {
        Ok(r) => r,
        Err(age::DecryptError::NoMatchingKeys) if !ours => return Err(Refusal::NotForThisKey),
        Err(age::DecryptError::NoMatchingKeys) => {
            return Err(damaged(
                "it names this key as its recipient but its age header does not open with it"
                    .into(),
                true,
            ))
        }
        Err(e) => return Err(damaged(format!("its age header is damaged ({e})"), true)),
    };
    let mut plain = Vec::new();
    r.read_to_end(&mut plain)
        .map_err(|_| damaged("its sealed key fails authentication".into(), true))?;
    Ok((obj, plain))
}

/// Opens one stored admin (or break-glass) key object with any of `ids`.
pub fn try_open(raw: &[u8], ids: &[Identity]) -> std::result::Result<MasterKey, Refusal> {
    let (obj, plain) = unseal(raw, ids)?;
    let damaged = |why: String| Refusal::Damaged { why, ours: true };
    if !obj.kind().reads() {
        return Err(damaged(
            "it is a write-only key's object, not an admin key's".into(),
        ));
    }
    let inner: MasterKeyFile = serde_json::from_slice(&plain)
        .map_err(|_| damaged("its sealed key is not a master key".into()))?;
    let bad = |e: anyhow::Error| damaged(format!("{e:#}"));
    let generation = |data: &str, meta: &str, chunk: &str| -> Result<Generation> {
        Ok(Generation {
            data: crypto::parse_identity(data)?,
            meta: crypto::parse_identity(meta)?,
            chunk_key: parse_key32(chunk)?,
        })
    };
    let current =
        generation(&inner.data_identity, &inner.meta_identity, &inner.chunk_key).map_err(bad)?;
    let older = inner
        .older
        .iter()
        .map(|g| generation(&g.data_identity, &g.meta_identity, &g.chunk_key))
        .collect::<Result<Vec<_>>>()
        .map_err(bad)?;
    Ok(MasterKey {
        data: current.data,
        meta: current.meta,
        chunk_key: current.chunk_key,
        older,
    })
}

/// Opens a write-only key's object with its own identity.
pub fn open_write_only(raw: &[u8], id: &Identity) -> Result<WriteOnlyKey> {
    let (obj, plain) = match unseal(raw, std::slice::from_ref(id)) {
        Ok(v) => v,
        Err(Refusal::NotForThisKey) => bail!("it is sealed to another key"),
        Err(Refusal::Damaged { why, .. }) => bail!("it is damaged: {why}"),
    };
    if obj.kind() != KeyKind::WriteOnly {
        bail!("it is not a write-only key's object");
    }
    let inner: WriteOnlySealed =
        serde_json::from_slice(&plain).map_err(|_| anyhow!("its sealed part is damaged"))?;
    Ok(WriteOnlyKey {
        meta: crypto::parse_identity(&inner.meta_identity)?,
        chunk_key: parse_key32(&inner.chunk_key)?,
        older_meta: inner
            .older_meta_identities
            .iter()
            .map(|s| crypto::parse_identity(s))
            .collect::<Result<_>>()?,
    })
}

fn parse_key32(s: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s.trim()).map_err(|_| anyhow!("chunk key is not hex"))?;
    v.try_into()
        .map_err(|_| anyhow!("chunk key must be 32 bytes"))
}

/// The write-only key file a backup host keeps. Since key objects for
/// write-only keys, it holds only its own `identity`; the secrets it
/// needs are in its key object, which `keys revoke` removes. Older files
/// hold `meta_identity` and `chunk_key` themselves.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteOnlyFile {
    lifeboat_key: String,
    repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk_key: Option<String>,
}

/// The contents of a key file on disk.
pub enum KeyFile {
    /// An age identity file (`AGE-SECRET-KEY-1…`), as written by `init`
    /// or by `age-keygen`.
    Identity(Vec<Identity>),
    /// A write-only key with its own key object in the repository.
    WriteOnly {
        repository: String,
        identity: Identity,
    },
    /// A write-only key from before write-only key objects: it carries
    /// its secrets, so only a rotation stops it.
    LegacyWriteOnly {
        repository: String,
        meta: Identity,
        chunk_key: [u8; 32],
    },
}

impl KeyFile {
    pub fn load(path: &Path) -> Result<KeyFile> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("key file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<KeyFile> {
        if text.trim_start().starts_with('{') {
            let w: WriteOnlyFile =
                serde_json::from_str(text).map_err(|e| anyhow!("not a Lifeboat key file: {e}"))?;
            if w.lifeboat_key != "write-only" {
                bail!("unknown key kind {:?}", w.lifeboat_key);
            }
            return match (w.identity, w.meta_identity, w.chunk_key) {
                (Some(id), None, None) => Ok(KeyFile::WriteOnly {
                    repository: w.repository,
                    identity: crypto::parse_identity(&id)?,
                }),
                (None, Some(meta), Some(chunk)) => Ok(KeyFile::LegacyWriteOnly {
                    repository: w.repository,
                    meta: crypto::parse_identity(&meta)?,
                    chunk_key: parse_key32(&chunk)?,
                }),
                _ => bail!("a write-only key holds either `identity` or both `meta_identity` and `chunk_key`"),
            };
        }
        let ids = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(crypto::parse_identity)
            .collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            bail!("holds no age identity");
        }
        Ok(KeyFile::Identity(ids))
    }
}

/// Writes a secret file with mode 0600, refusing to overwrite.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub fn identity_file_text(id: &Identity) -> String {
    use age::secrecy::ExposeSecret;
    format!(
        "# Lifeboat admin identity, created {}\n# public key: {}\n{}\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        id.to_public(),
        id.to_string().expose_secret()
    )
}

pub fn write_only_file_text(repository: &str, identity: &Identity) -> Result<String> {
    let w = WriteOnlyFile {
        lifeboat_key: "write-only".into(),
        repository: repository.into(),
        identity: Some(secret(identity)),
        meta_identity: None,
        chunk_key: None,
    };
    Ok(serde_json::to_string_pretty(&w)? + "\n")
}

/// The backup tool whose repository `backend` holds, when it is not
/// Lifeboat's. restic's layout looks like ours (`config`, `keys/`,
/// `data/`, `index/`, `snapshots/`), but its `config` is encrypted and its
/// key files are JSON with a `kdf` and `data`; a damaged Lifeboat config
/// must not be mistaken for one, so the key files decide.
pub fn foreign_tool(backend: &dyn super::Backend) -> Option<&'static str> {
    use super::Kind;
    if !backend.exists(Kind::Config, "config").unwrap_or(false) {
        return None;
    }
    let raw = backend.get(Kind::Config, "config").ok()?;
    if serde_json::from_slice::<serde_json::Value>(&raw).is_ok_and(|v| v.is_object()) {
        return None;
    }
    let names = backend.list(Kind::Keys).ok()?;
    // A few are enough: restic writes one per password.
    let restic = names.iter().take(8).any(|(name, size)| {
        *size < 64 * 1024
            && backend
                .get(Kind::Keys, name)
                .ok()
                .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
                .is_some_and(|v| v.get("kdf").is_some() && v.get("data").is_some())
    });
    restic.then_some("restic")
}
