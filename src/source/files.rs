//! Walking directory trees: deterministic (sorted) depth-first order,
//! symlinks stored and never followed, exclude globs applied to whole paths
//! or to single names.

use anyhow::{Context, Result};
use globset::{GlobSet, GlobSetBuilder};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Exclude patterns. A pattern with a `/` matches the absolute path
/// (`/srv/*/cache`, `**/node_modules`); one without matches any single
/// name (`*.tmp`, `.cache`). A trailing `/` is ignored.
#[derive(Default)]
pub struct Excludes {
    full: GlobSet,
    name: GlobSet,
    paths: Vec<PathBuf>,
}

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Excludes> {
        let mut full = GlobSetBuilder::new();
        let mut name = GlobSetBuilder::new();
        for p in patterns {
            let p = p.trim_end_matches('/');
            let build = |p: &str| {
                globset::GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .with_context(|| format!("exclude pattern {p:?}"))
            };
            if p.contains('/') {
                // A relative pattern ("cache/tmp") matches at any depth.
                if p.starts_with('/') || p.starts_with("**") {
                    full.add(build(p)?);
                } else {
                    full.add(build(&format!("**/{p}"))?);
                }
            } else {
                name.add(build(p)?);
            }
        }
        Ok(Excludes {
            full: full.build()?,
            name: name.build()?,
            paths: Vec::new(),
        })
    }

    /// Never back up these exact paths (the repository itself, caches).
    pub fn skip_path(&mut self, p: PathBuf) {
        self.paths.push(p);
    }

    pub fn matches(&self, abs: &Path) -> bool {
        if self.paths.iter().any(|p| p == abs) {
            return true;
        }
        if let Some(n) = abs.file_name() {
            if self.name.is_match(Path::new(n)) {
                return true;
            }
        }
        self.full.is_match(abs)
    }
}

pub struct Entry<'a> {
    /// The path as configured: recorded, excluded and cached by this.
    pub abs: &'a Path,
    /// Where its content is read: `abs`, or its copy in a filesystem
    /// snapshot.
    pub read: &'a Path,
    /// Path inside the snapshot: the absolute path without its leading `/`.
    pub rel: OsString,
    pub meta: Metadata,
}

/// Calls `visit` for every entry under `roots` (and for each root's
/// ancestors, so a restore recreates them), depth-first, sorted by name.
/// Unreadable directories are reported through `warn` and skipped.
pub fn walk(
    roots: &[PathBuf],
    excludes: &Excludes,
    visit: &mut dyn FnMut(Entry<'_>) -> Result<()>,
    warn: &mut dyn FnMut(String),
) -> Result<()> {
    walk_from(roots, &[], excludes, visit, warn)
}

/// Like `walk`, but a root at or under a view's first path is read from
/// the view's second (a snapshot), while entries keep the first's names.
pub fn walk_from(
    roots: &[PathBuf],
    views: &[(PathBuf, PathBuf)],
    excludes: &Excludes,
    visit: &mut dyn FnMut(Entry<'_>) -> Result<()>,
    warn: &mut dyn FnMut(String),
) -> Result<()> {
    let mut roots: Vec<PathBuf> = roots.to_vec();
    roots.sort();
    roots.dedup();
    // A root inside another root is already covered.
    let roots: Vec<PathBuf> = roots
        .iter()
        .filter(|r| !roots.iter().any(|o| o != *r && r.starts_with(o)))
        .cloned()
        .collect();
    let mut emitted_ancestors = std::collections::HashSet::new();
    for root in &roots {
        let read = views
            .iter()
            .find_map(|(path, at)| Some(at.join(root.strip_prefix(path).ok()?)))
            .unwrap_or_else(|| root.clone());
        let meta = fs::symlink_metadata(&read)
            .with_context(|| format!("backup source {}", root.display()))?;
        let mut ancestors: Vec<&Path> = root
            .ancestors()
            .skip(1)
            .filter(|a| a.parent().is_some())
            .collect();
        ancestors.reverse();
        for a in ancestors {
            if emitted_ancestors.insert(a.to_path_buf()) {
                let m =
                    fs::symlink_metadata(a).with_context(|| format!("reading {}", a.display()))?;
                visit(Entry {
                    abs: a,
                    read: a,
                    rel: rel_of(a),
                    meta: m,
                })?;
            }
        }
        descend(root, &read, meta, excludes, visit, warn)?;
    }
    Ok(())
}

fn rel_of(abs: &Path) -> OsString {
    let b = abs.as_os_str().as_bytes();
    let b = b.strip_prefix(b"/").unwrap_or(b);
    std::ffi::OsStr::from_bytes(b).to_os_string()
}

fn descend(
    path: &Path,
    read: &Path,
    meta: Metadata,
    excludes: &Excludes,
    visit: &mut dyn FnMut(Entry<'_>) -> Result<()>,
    warn: &mut dyn FnMut(String),
) -> Result<()> {
    let is_dir = meta.is_dir();
    visit(Entry {
        abs: path,
        read,
        rel: rel_of(path),
        meta,
    })?;
    if !is_dir {
        return Ok(());
    }
    let mut children = Vec::new();
    match fs::read_dir(read) {
        Ok(rd) => {
            for e in rd {
                match e {
                    Ok(e) => children.push(e.file_name()),
                    Err(err) => warn(format!("{}: {err}", path.display())),
                }
            }
        }
        Err(err) => {
            warn(format!("cannot list {}: {err}", path.display()));
            return Ok(());
        }
    }
    children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in children {
        // A restore's staging or kept copy, or a backup's transient
        // snapshot, is not the service's data.
        let own = super::swap::is_own_name(&name) || super::fs_snapshot::is_own_name(&name);
        let child = path.join(&name);
        if own || excludes.matches(&child) {
            continue;
        }
        let child_read = read.join(&name);
        match fs::symlink_metadata(&child_read) {
            Ok(m) => descend(&child, &child_read, m, excludes, visit, warn)?,
            // Vanished between listing and stat: a live system, not an error.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => warn(format!("cannot read {}: {err}", child.display())),
        }
    }
    Ok(())
}
