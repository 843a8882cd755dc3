//! Who can open a repository, and changing that after a compromise:
//! listing key objects, adding and revoking them, and rotating the
//! secrets future writes use. docs/security.md says what each protects.

use super::{
    open_write_only, seal_master, seal_write_only, try_open, Access, KeyFile, KeyKind, KeyObject,
    Refusal,
};
use crate::repo::{crypto, key_object_name, Backend, Kind, RepoConfig, Repository};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// One object under `keys/`, as `keys list` shows it.
pub struct KeyEntry {
    pub id: String,
    /// None when the object cannot be read as a key object.
    pub object: Option<KeyObject>,
    pub damaged: Option<String>,
}

/// What `keys rotate` did.
pub struct Rotated {
    /// How many generations the repository has now.
    pub generations: usize,
    pub readers: usize,
    pub write_only: usize,
    /// Key objects that could not be read, left as they were: they do not
    /// open the new generation.
    pub skipped: Vec<String>,
}

fn admin_error(key_label: &str, location: String) -> anyhow::Error {
    crate::Error::WrongKey {
        key: key_label.to_string(),
        repo: location,
    }
    .into()
}

/// The access the key file at `key_path` grants to the repository in
/// `backend` whose config is `config`.
///
/// `prefetched`: key objects already read (by name) that this key file
/// may open; when one does and holds the config's keys, `keys/` is not
/// listed. Anything else goes the usual way, which names what is wrong.
pub(in crate::repo) fn access_for(
    backend: &dyn Backend,
    config: &RepoConfig,
    key_path: &Path,
    key_label: &str,
    prefetched: &[(String, Vec<u8>)],
) -> Result<Access> {
    let stale = |what: &str| {
        anyhow::anyhow!(
            "the write-only key {key_label} {what}: it predates the repository's last `lifeboat keys rotate`; issue a new one on the admin box with `lifeboat keys write-only --out FILE`"
        )
    };
    match KeyFile::load(key_path)? {
        KeyFile::LegacyWriteOnly {
            repository,
            meta,
            chunk_key,
        } => {
            if repository != config.id {
                return Err(admin_error(key_label, backend.location()));
            }
            if meta.to_public().to_string() != config.meta_recipient.trim() {
                return Err(stale("holds an old metadata identity"));
            }
            Ok(Access::WriteOnly(super::WriteOnlyKey {
                meta,
                chunk_key,
                older_meta: Vec::new(),
            }))
        }
        KeyFile::WriteOnly {
            repository,
            identity,
        } => {
            if repository != config.id {
                return Err(admin_error(key_label, backend.location()));
            }
            let name = key_object_name(&identity.to_public());
            if !backend.exists(Kind::Keys, &name)? {
                bail!(
                    "the write-only key {key_label} was revoked: its key object keys/{name} is not in {}; ask the admin for a new one (`lifeboat keys write-only --out FILE` on the admin box)",
                    backend.location()
                );
            }
            let raw = backend.get(Kind::Keys, &name)?;
            let w = open_write_only(&raw, &identity).with_context(|| {
                format!("the write-only key {key_label}: its key object keys/{name}")
            })?;
            // Mid-rotation the object may already hold the next generation
            // while the config still names the one before: both work.
            let known = std::iter::once(&w.meta)
                .chain(&w.older_meta)
                .any(|m| m.to_public().to_string() == config.meta_recipient.trim());
            if !known {
                return Err(stale("was not re-sealed by the last rotation"));
            }
            Ok(Access::WriteOnly(w))
        }
        KeyFile::Identity(ids) => {
            for (_, raw) in prefetched {
                if let Ok(mut m) = try_open(raw, &ids) {
                    if m.select(&config.data_recipient, &config.meta_recipient) {
                        return Ok(Access::Full(m));
                    }
                }
            }
            let mut found = None;
            // (name, why, sealed to this key), this key's own first.
            let mut damaged: Vec<(String, String, bool)> = Vec::new();
            for (name, _) in backend.list(Kind::Keys)? {
                let raw = backend.get(Kind::Keys, &name)?;
                match try_open(&raw, &ids) {
                    Ok(m) => {
                        found = Some((name, m));
                        break;
                    }
                    Err(Refusal::Damaged { why, ours }) => damaged.push((name, why, ours)),
                    Err(Refusal::NotForThisKey) => {}
                }
            }
            damaged.sort_by_key(|(_, _, ours)| !ours);
            match (found, damaged.into_iter().next()) {
                (Some((name, mut m)), _) => {
                    if !m.select(&config.data_recipient, &config.meta_recipient) {
                        return Err(crate::Error::DamagedKey {
                            object: name,
                            why: "it does not hold the keys the repository config names (it was left out of a `keys rotate`)".into(),
                            key: key_label.to_string(),
                        }
                        .into());
                    }
                    Ok(Access::Full(m))
                }
                (None, Some((object, why, _))) => Err(crate::Error::DamagedKey {
                    object,
                    why,
                    key: key_label.to_string(),
                }
                .into()),
                (None, None) => Err(admin_error(key_label, backend.location())),
            }
        }
    }
}

impl Repository {
    /// Adds an admin or break-glass recipient that can open everything.
    pub fn add_recipient(&self, recipient: &str, label: &str, kind: KeyKind) -> Result<String> {
        if !kind.reads() {
            bail!("a write-only key is made with `lifeboat keys write-only`, not added");
        }
        let r = crypto::parse_recipient(recipient)?;
        let name = key_object_name(&r);
        if self.backend.exists(Kind::Keys, &name)? {
            bail!("{recipient} can already open this repository");
        }
        let obj = seal_master(self.master_key()?, &r, label, kind)?;
        self.backend
            .put(Kind::Keys, &name, &serde_json::to_vec_pretty(&obj)?)?;
        Ok(name)
    }

    /// Every object under `keys/`, the damaged ones too (so they can be
    /// revoked).
    pub fn list_keys(&self) -> Result<Vec<KeyEntry>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list(Kind::Keys)? {
            let raw = self.backend.get(Kind::Keys, &name)?;
            out.push(match serde_json::from_slice::<KeyObject>(&raw) {
                Ok(obj) => KeyEntry {
                    id: name,
                    object: Some(obj),
                    damaged: None,
                },
                Err(e) => KeyEntry {
                    id: name,
                    object: None,
                    damaged: Some(format!("not a key object: {e}")),
                },
            });
        }
        Ok(out)
    }

    /// Issues a write-only key: stores its key object and returns its id
    /// and the key file's text, which holds only the key's own identity.
    pub fn issue_write_only(&self, label: &str) -> Result<(String, String)> {
        let m = self.master_key()?;
        let id = crypto::Identity::generate();
        let r = id.to_public();
        let name = key_object_name(&r);
        let obj = seal_write_only(m, &r, label)?;
        self.backend
            .put(Kind::Keys, &name, &serde_json::to_vec_pretty(&obj)?)?;
        Ok((name, super::write_only_file_text(&self.config.id, &id)?))
    }

    /// The text of a new write-only key file (see [`Self::issue_write_only`]).
    pub fn write_only_key(&self) -> Result<String> {
        Ok(self.issue_write_only("write-only")?.1)
    }

    /// Removes the key object whose id starts with `id`. The last key that
    /// can read the repository is never removed: without it nothing could
    /// be restored.
    pub fn revoke_key(&self, id: &str) -> Result<KeyEntry> {
        let mut keys = self.list_keys()?;
        let matching: Vec<usize> = (0..keys.len())
            .filter(|&i| !id.is_empty() && keys[i].id.starts_with(id))
            .collect();
        let at = match matching.as_slice() {
            [] => bail!(
                "no key object has an id starting with {id:?}; `lifeboat keys list` shows them"
            ),
            [one] => *one,
            many => bail!(
                "{id:?} matches several key objects ({}); give more of the id",
                many.iter()
                    .map(|&i| keys[i].id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let reads = |k: &KeyEntry| k.object.as_ref().is_some_and(|o| o.kind().reads());
        if reads(&keys[at]) && keys.iter().filter(|k| reads(k)).count() < 2 {
            bail!(
                "keys/{} is the last key that can read this repository; removing it would make every restore point unreadable. Add another first (`lifeboat keys add age1…`)",
                keys[at].id
            );
        }
        self.backend.remove(Kind::Keys, &keys[at].id)?;
        Ok(keys.swap_remove(at))
    }

    /// Starts a new generation of secrets for future writes and re-seals
    /// every key object to it, keeping the old generations so old restore
    /// points stay readable. The config, which names the recipients
    /// writers seal to, is written last: until then nothing writes with
    /// the new generation, so an interrupted rotation changes nothing.
    pub fn rotate_keys(&self) -> Result<Rotated> {
        let next = self.master_key()?.rotated();
        let mut done = Rotated {
            generations: next.generations(),
            readers: 0,
            write_only: 0,
            skipped: Vec::new(),
        };
        let mut todo = Vec::new();
        for entry in self.list_keys()? {
            match entry
                .object
                .and_then(|o| Some((crypto::parse_recipient(&o.recipient).ok()?, o)))
            {
                Some((r, o)) => todo.push((entry.id, r, o)),
                None => done.skipped.push(entry.id),
            }
        }
        // Checked before anything is written: a rotation nobody can read
        // would lose every new backup.
        if !todo.iter().any(|(_, _, o)| o.kind().reads()) {
            bail!("no readable admin key object to re-seal; nothing was rotated");
        }
        // Readers first: were the rotation to stop half-way, every admin
        // key already opens both generations.
        todo.sort_by_key(|(_, _, o)| !o.kind().reads());
        for (id, r, old) in todo {
            let mut obj = match old.kind() {
                KeyKind::WriteOnly => {
                    done.write_only += 1;
                    seal_write_only(&next, &r, &old.label)?
                }
                kind => {
                    done.readers += 1;
                    seal_master(&next, &r, &old.label, kind)?
                }
            };
            // The key is the same key: it keeps its history.
            obj.created = old.created;
            obj.host = old.host;
            self.backend
                .put(Kind::Keys, &id, &serde_json::to_vec_pretty(&obj)?)
                .with_context(|| format!("re-sealing keys/{id}"))?;
        }
        let mut config = self.config.clone();
        config.data_recipient = next.data.to_public().to_string();
        config.meta_recipient = next.meta.to_public().to_string();
        self.backend
            .put(Kind::Config, "config", &serde_json::to_vec_pretty(&config)?)
            .context("writing the new config (the key objects already hold the new generation; run `lifeboat keys rotate` again)")?;
        Ok(done)
    }
}
