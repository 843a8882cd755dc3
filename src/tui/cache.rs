//! What the console's background reads keep while it runs: per repository
//! the opened repository and its index, and the file lists already read.
//! Opening a repository (its key, its config) and loading its index cost
//! more than reading one restore point's file list, and an admin browsing
//! goes back and forth between the points of one repository.
//!
//! Forgotten on `R` (the config may point elsewhere now) and after a job
//! finishes (it may have written packs and snapshots). A backup made
//! outside the console can add a restore point whose file list is in packs
//! the kept index does not know: a read that fails on a kept repository is
//! retried once on a freshly opened one.

use super::tree::TreeView;
use crate::config::Config;
use crate::repo::{Index, Repository, Snapshot};
use anyhow::{anyhow, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A few file lists are plenty; a million-file list is big.
const TREES: usize = 16;

struct Opened {
    repo: Repository,
    index: Index,
}

#[derive(Default)]
pub struct Cache {
    repos: Mutex<HashMap<String, Arc<Opened>>>,
    /// By repository and snapshot id.
    trees: Mutex<HashMap<(String, String), Arc<TreeView>>>,
    snapshots: Mutex<HashMap<(String, String), Arc<Snapshot>>>,
    opens: AtomicU64,
    /// The latest path-picker search asked for (older ones give up).
    pub picker_search: AtomicU64,
}

impl Cache {
    /// How many times a repository was opened (and its index loaded).
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// Drops everything kept.
    pub fn forget(&self) {
        if let Ok(mut r) = self.repos.lock() {
            r.clear();
        }
        if let Ok(mut t) = self.trees.lock() {
            t.clear();
        }
        if let Ok(mut s) = self.snapshots.lock() {
            s.clear();
        }
    }

    fn opened(&self, config: &Config, name: &str) -> Result<Arc<Opened>> {
        if let Some(o) = self.repos.lock().ok().and_then(|r| r.get(name).cloned()) {
            return Ok(o);
        }
        let r = config.repositories.get(name).ok_or_else(|| {
            anyhow!("no repository named {name} in the config: press R after editing it")
        })?;
        // The config's cache, as the inventory and the CLI use it.
        let repo = r.open(None)?.with_cache_dir(config.cache_dir.clone());
        let (index, _) = repo.load_index()?;
        self.opens.fetch_add(1, Ordering::Relaxed);
        let o = Arc::new(Opened { repo, index });
        if let Ok(mut r) = self.repos.lock() {
            r.insert(name.to_string(), Arc::clone(&o));
        }
        Ok(o)
    }

    fn forget_repo(&self, name: &str) {
        if let Ok(mut r) = self.repos.lock() {
            r.remove(name);
        }
    }

    /// Runs `f` on the kept repository; if that fails, once more on a
    /// freshly opened one (see the module's note).
    fn with_repo<T>(
        &self,
        config: &Config,
        name: &str,
        f: impl Fn(&Opened) -> Result<T>,
    ) -> Result<T> {
        let was_kept = self.repos.lock().ok().is_some_and(|r| r.contains_key(name));
        let o = self.opened(config, name)?;
        match f(&o) {
            Err(_) if was_kept => {
                self.forget_repo(name);
                f(&*self.opened(config, name)?)
            }
            r => r,
        }
    }

    /// A restore point's metadata (its time, its tree's chunks).
    pub fn snapshot(&self, config: &Config, repository: &str, id: &str) -> Result<Arc<Snapshot>> {
        let key = (repository.to_string(), id.to_string());
        if let Some(s) = self
            .snapshots
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(s);
        }
        let s = Arc::new(self.with_repo(config, repository, |o| o.repo.load_snapshot(id))?);
        if let Ok(mut c) = self.snapshots.lock() {
            c.insert(key, Arc::clone(&s));
        }
        Ok(s)
    }

    /// A restore point's file list, prepared for browsing.
    pub fn tree(&self, config: &Config, repository: &str, id: &str) -> Result<Arc<TreeView>> {
        let key = (repository.to_string(), id.to_string());
        if let Some(t) = self.trees.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(t);
        }
        let snap = self.snapshot(config, repository, id)?;
        let nodes = self.with_repo(config, repository, |o| o.repo.read_tree(&o.index, &snap))?;
        let t = Arc::new(TreeView::new(id.to_string(), nodes));
        if let Ok(mut c) = self.trees.lock() {
            if c.len() >= TREES {
                c.clear();
            }
            c.insert(key, Arc::clone(&t));
        }
        Ok(t)
    }
}
