//! Key material. A repository has three secrets, generated at `init`:
//!
//! - the data identity, which opens packs (file contents and trees);
//! - the metadata identity, which opens indexes and snapshot summaries;
//! - the chunk-id key (keyed BLAKE3, also seeds the chunker).
//!
//! An admin key (any age X25519 identity) opens `keys/<id>`, which holds all
//! three. A write-only key holds only the metadata identity and the chunk-id
//! key: enough to deduplicate and add snapshots, never enough to read a
//! file back. A ransomware-infected backup host cannot read its backups.

use super::crypto::{self, Identity, Recipient};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub struct MasterKey {
    pub data: Identity,
    pub meta: Identity,
    pub chunk_key: [u8; 32],
}

impl MasterKey {
    pub fn generate() -> Self {
        MasterKey {
            data: Identity::generate(),
            meta: Identity::generate(),
            chunk_key: rand::random(),
        }
    }
}

/// What a key file grants.
pub enum Access {
    Full(MasterKey),
    WriteOnly { meta: Identity, chunk_key: [u8; 32] },
}

impl Access {
    pub fn chunk_key(&self) -> &[u8; 32] {
        match self {
            Access::Full(m) => &m.chunk_key,
            Access::WriteOnly { chunk_key, .. } => chunk_key,
        }
    }
    pub fn meta(&self) -> &Identity {
        match self {
            Access::Full(m) => &m.meta,
            Access::WriteOnly { meta, .. } => meta,
        }
    }
    pub fn data(&self) -> Option<&Identity> {
        match self {
            Access::Full(m) => Some(&m.data),
            Access::WriteOnly { .. } => None,
        }
    }
}

/// The sealed master key stored in `keys/<id>`: readable by one recipient.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyObject {
    pub recipient: String,
    pub label: String,
    pub created: String,
    pub host: String,
    /// age ciphertext of [`MasterKeyFile`], hex.
    pub sealed: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MasterKeyFile {
    data_identity: String,
    meta_identity: String,
    chunk_key: String,
}

pub fn seal_master(master: &MasterKey, to: &Recipient, label: &str) -> Result<KeyObject> {
    use age::secrecy::ExposeSecret;
    let inner = MasterKeyFile {
        data_identity: master.data.to_string().expose_secret().to_string(),
        meta_identity: master.meta.to_string().expose_secret().to_string(),
        chunk_key: hex::encode(master.chunk_key),
    };
    let sealed = crypto::seal(&[to], &serde_json::to_vec(&inner)?)?;
    Ok(KeyObject {
        recipient: to.to_string(),
        label: label.to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        host: crate::paths::hostname(),
        sealed: hex::encode(sealed),
    })
}

/// Why a key object did not open with the identities of a key file.
pub enum Refusal {
    /// Sealed to someone else: not an error on its own.
    NotForThisKey,
    /// Unreadable. `ours` when its wrapper names one of the identities
    /// tried, so this key's own object is the one that is broken.
    Damaged { why: String, ours: bool },
}

/// Opens one stored key object (`raw`, its JSON) with any of `ids`,
/// telling a damaged object from one sealed to another recipient: age
/// cannot tell those apart for a damaged recipient stanza, so the
/// object's plaintext `recipient` decides.
pub fn try_open(raw: &[u8], ids: &[Identity]) -> std::result::Result<MasterKey, Refusal> {
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
    let inner: MasterKeyFile = serde_json::from_slice(&plain)
        .map_err(|_| damaged("its sealed key is not a master key".into(), true))?;
    let bad = |e: anyhow::Error| damaged(format!("{e:#}"), true);
    Ok(MasterKey {
        data: crypto::parse_identity(&inner.data_identity).map_err(bad)?,
        meta: crypto::parse_identity(&inner.meta_identity).map_err(bad)?,
        chunk_key: parse_key32(&inner.chunk_key).map_err(bad)?,
    })
}

fn parse_key32(s: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s.trim()).map_err(|_| anyhow!("chunk key is not hex"))?;
    v.try_into()
        .map_err(|_| anyhow!("chunk key must be 32 bytes"))
}

/// The write-only key file a backup host keeps.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteOnlyFile {
    lifeboat_key: String,
    repository: String,
    meta_identity: String,
    chunk_key: String,
}

/// The contents of a key file on disk.
pub enum KeyFile {
    /// An age identity file (`AGE-SECRET-KEY-1…`), as written by `init`
    /// or by `age-keygen`.
    Identity(Vec<Identity>),
    WriteOnly {
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
            return Ok(KeyFile::WriteOnly {
                repository: w.repository,
                meta: crypto::parse_identity(&w.meta_identity)?,
                chunk_key: parse_key32(&w.chunk_key)?,
            });
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

pub fn write_only_file_text(
    repository: &str,
    meta: &Identity,
    chunk_key: &[u8; 32],
) -> Result<String> {
    use age::secrecy::ExposeSecret;
    let w = WriteOnlyFile {
        lifeboat_key: "write-only".into(),
        repository: repository.into(),
        meta_identity: meta.to_string().expose_secret().to_string(),
        chunk_key: hex::encode(chunk_key),
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
