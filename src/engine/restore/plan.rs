//! The plan of a live restore: exactly what will be written and what it
//! replaces, per path and per database, with sizes, built before anything
//! is touched. The console's confirm screen and `recover`'s prompt show it;
//! [`super::live::execute`] carries it out.
//!
//! Sources own what they restore. When sources of one service overlap (a
//! SQLite database inside a files path, `.env` secrets inside an app
//! directory), the most specific one owns its path: the files restore
//! leaves it out, and when that source is not restored too, the live copy
//! (with its `-wal`/`-shm`) stays where it is. Paths the files source
//! excludes from backups stay in place too.

use crate::model::{Service, Source, SourceKind};
use crate::repo::snapshot::SourceRecord;
use crate::repo::tree::{is_at_or_under, Node, NodeKind};
use crate::repo::Snapshot;
use crate::source::files::Excludes;
use crate::source::swap;
use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What part of a service a restore covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Only sources of these kinds (`postgres`, `files`, …); empty: all.
    pub kinds: Vec<String>,
    /// Only this path (and what is below it) of a files or secrets source.
    pub path: Option<PathBuf>,
}

impl Scope {
    fn covers(&self, src: &Source) -> bool {
        if self.path.is_some() {
            return false;
        }
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == src.kind.name())
    }
}

/// Files and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Size {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub source: String,
    pub kind: String,
    /// What is written: a live path, a database, an RDB file, a command.
    pub target: String,
    pub writes: Size,
    /// What is there now and will be replaced (None: nothing is there).
    pub replaces: Option<Size>,
    /// Where what it replaces is kept, or why it cannot be.
    pub keeps: String,
    /// What stays where it is inside the target, and why.
    pub leaves: Vec<String>,
    #[serde(skip)]
    pub(super) work: Work,
}

#[derive(Debug, Clone)]
pub(super) enum Work {
    /// A live path restored from the snapshot path `rel`, leaving out
    /// `skip` (snapshot paths) and keeping `carry` (relative to `live`)
    /// from the live copy.
    Tree {
        live: PathBuf,
        rel: String,
        skip: Vec<String>,
        carry: Vec<PathBuf>,
    },
    /// A streamed source; `inside` names the tree item (and the path below
    /// its live root) a file-based source writes its copy into.
    Stream {
        source: Box<Source>,
        record: Box<SourceRecord>,
        inside: Option<(usize, PathBuf)>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    /// The restore's id: names its staging and kept copies, and
    /// `lifeboat rollback ID` undoes it.
    pub id: String,
    pub service: String,
    pub point: String,
    pub point_time: String,
    pub items: Vec<Item>,
    /// Sources of the service this restore leaves alone.
    pub untouched: Vec<String>,
    /// Configured sources the restore point does not hold (added since).
    pub not_in_point: Vec<String>,
    #[serde(skip)]
    pub(super) tree: Arc<Vec<Node>>,
}

impl RestorePlan {
    pub fn writes(&self) -> Size {
        self.items.iter().fold(Size::default(), |a, i| Size {
            files: a.files + i.writes.files,
            bytes: a.bytes + i.writes.bytes,
        })
    }

    /// The plan as lines for people, short enough for 80 columns: what
    /// each item writes and replaces and where the old data is kept, what
    /// stays where it is, and what is not restored.
    pub fn lines(&self) -> Vec<String> {
        let h = crate::util::human_bytes;
        let size = |s: &Size| match s.files {
            0 => h(s.bytes),
            1 => format!("1 file, {}", h(s.bytes)),
            n => format!("{n} files, {}", h(s.bytes)),
        };
        let mut out = Vec::new();
        for i in &self.items {
            let what = if i.source == i.kind {
                i.kind.clone()
            } else {
                format!("{} `{}`", i.kind, i.source)
            };
            out.push(format!("{what}: {}", i.target));
            out.push(format!(
                "  writes {}; {}",
                size(&i.writes),
                match &i.replaces {
                    None => "nothing is there now".to_string(),
                    Some(r) if r.files == 0 && r.bytes == 0 => "replaces what is there".into(),
                    Some(r) => format!("replaces {}", size(r)),
                }
            ));
            if i.replaces.is_some() {
                out.push(format!("  {}", i.keeps));
            }
            for l in &i.leaves {
                out.push(format!("  stays in place: {l}"));
            }
        }
        for u in &self.untouched {
            out.push(format!("not restored: {u}"));
        }
        for n in &self.not_in_point {
            out.push(format!("not in this restore point, left as it is: {n}"));
        }
        out
    }
}

/// The live paths a streamed source keeps its data in, with companions.
fn stream_files(src: &Source) -> Vec<PathBuf> {
    let with = |p: &Path, sfx: &[&str]| -> Vec<PathBuf> {
        std::iter::once(p.to_path_buf())
            .chain(sfx.iter().map(|s| {
                let mut o = p.as_os_str().to_os_string();
                o.push(s);
                PathBuf::from(o)
            }))
            .collect()
    };
    match &src.kind {
        SourceKind::Sqlite { path } => with(path, crate::source::sqlite::COMPANIONS),
        SourceKind::VmImage { path } => with(path, &[]),
        SourceKind::Redis(r) => r.rdb_path.iter().cloned().collect(),
        _ => Vec::new(),
    }
}

fn tree_paths(src: &Source) -> &[PathBuf] {
    match &src.kind {
        SourceKind::Files { paths, .. } | SourceKind::Secrets { paths } => paths,
        _ => &[],
    }
}

fn rel(p: &Path) -> String {
    p.to_string_lossy().trim_matches('/').to_string()
}

fn strictly_under(p: &Path, root: &Path) -> Option<PathBuf> {
    p.strip_prefix(root)
        .ok()
        .filter(|r| !r.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// The live paths a restore of `scope` writes as trees, each with the
/// source that owns it, the snapshot paths left out of it (owned by other
/// sources) and the live entries kept in place (relative to the path).
/// Pure: looks at nothing but the config and which streamed sources the
/// restore point holds (`recorded`).
pub struct TreeSel<'a> {
    pub live: PathBuf,
    pub owner: &'a Source,
    pub skip: Vec<String>,
    pub carry: Vec<PathBuf>,
    pub leaves: Vec<String>,
}

pub fn tree_selections<'a>(
    svc: &'a Service,
    scope: &Scope,
    recorded: &[String],
) -> Result<Vec<TreeSel<'a>>> {
    let in_scope: Vec<&Source> = svc.sources.iter().filter(|s| scope.covers(s)).collect();
    // Tree roots: one path, or the paths of every tree source in scope,
    // nested ones merged into the path that holds them.
    let mut roots: Vec<(PathBuf, &Source)> = match &scope.path {
        Some(p) => vec![(p.clone(), path_owner(svc, p)?)],
        None => in_scope
            .iter()
            .flat_map(|s| tree_paths(s).iter().map(move |p| (p.clone(), *s)))
            .collect(),
    };
    // Two sources naming one path restore it once.
    roots.sort_by(|a, b| a.0.cmp(&b.0));
    roots.dedup_by(|a, b| a.0 == b.0);
    let all_roots: Vec<PathBuf> = roots.iter().map(|(p, _)| p.clone()).collect();
    roots.retain(|(p, _)| !all_roots.iter().any(|o| o != p && p.starts_with(o)));
    Ok(roots
        .into_iter()
        .map(|(live, owner)| select_tree(svc, scope, &in_scope, recorded, live, owner))
        .collect())
}

/// The tree source a one-path restore takes `p` from. A path that is a
/// database's or an image's own file is that source's to restore: its
/// tree copy is raw, and its `-wal`/`-shm` would be replayed into it.
fn path_owner<'a>(svc: &'a Service, p: &Path) -> Result<&'a Source> {
    if !p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
        bail!("path {}: give an absolute path without `..`", p.display());
    }
    if let Some(s) = svc
        .sources
        .iter()
        .find(|s| stream_files(s).iter().any(|f| f == p))
    {
        bail!(
            "{} is the data of the {} source `{}`: restore it with `lifeboat restore {} --live --kinds {}`, which restores it consistently and moves its companions aside",
            p.display(),
            s.kind.name(),
            s.name,
            svc.name,
            s.kind.name()
        );
    }
    svc.sources
        .iter()
        .filter(|s| tree_paths(s).iter().any(|t| p.starts_with(t)))
        .max_by_key(|s| {
            tree_paths(s)
                .iter()
                .filter(|t| p.starts_with(t))
                .map(|t| t.as_os_str().len())
                .max()
        })
        .ok_or_else(|| {
            anyhow!(
                "{} is not inside any files or secrets source of {}",
                p.display(),
                svc.name
            )
        })
}

fn select_tree<'a>(
    svc: &'a Service,
    scope: &Scope,
    in_scope: &[&Source],
    recorded: &[String],
    live: PathBuf,
    owner: &'a Source,
) -> TreeSel<'a> {
    let mut sel = TreeSel {
        live,
        owner,
        skip: Vec::new(),
        carry: Vec::new(),
        leaves: Vec::new(),
    };
    let live = sel.live.clone();
    for other in &svc.sources {
        if std::ptr::eq(other, owner) {
            continue;
        }
        let in_scope_here = scope.path.is_none() && in_scope.iter().any(|s| s.name == other.name);
        // A file-based source this run restores writes its copy into this
        // tree; otherwise (not in scope, or not in this restore point) its
        // live data stays put.
        let written_here = in_scope_here
            && recorded.contains(&other.name)
            && matches!(
                other.kind,
                SourceKind::Sqlite { .. } | SourceKind::VmImage { .. }
            );
        for f in stream_files(other) {
            let Some(below) = strictly_under(&f, &live) else {
                continue;
            };
            sel.skip.push(rel(&f));
            if !written_here {
                sel.leaves.push(format!(
                    "{} ({} source `{}`)",
                    below.display(),
                    other.kind.name(),
                    other.name
                ));
                sel.carry.push(below);
            }
        }
        // A nested files or secrets source is restored with this tree when
        // it is in scope (a one-path restore takes what is below the path).
        if scope.path.is_none() && !in_scope_here {
            for t in tree_paths(other) {
                if let Some(below) = strictly_under(t, &live) {
                    sel.skip.push(rel(t));
                    sel.leaves.push(format!(
                        "{} ({} source `{}`, not restored)",
                        below.display(),
                        other.kind.name(),
                        other.name
                    ));
                    sel.carry.push(below);
                }
            }
        }
    }
    sel
}

/// Plans restoring `scope` of `svc` from `snap` (whose tree is `tree`)
/// where the service lives.
pub fn plan_service(
    svc: &Service,
    snap: &Snapshot,
    tree: Arc<Vec<Node>>,
    scope: &Scope,
    id: &str,
) -> Result<RestorePlan> {
    for record in &snap.sources {
        if !svc.sources.iter().any(|s| s.name == record.name) {
            bail!(
                "restore point {} has a {} source `{}` that `{}` no longer configures; nothing was changed. Restore its files with `lifeboat restore {} .lifeboat/{} --target DIR`",
                snap.short_id(), record.kind, record.name, svc.name, snap.short_id(), record.name
            );
        }
    }
    let in_scope: Vec<&Source> = svc.sources.iter().filter(|s| scope.covers(s)).collect();
    let recorded: Vec<String> = snap.sources.iter().map(|r| r.name.clone()).collect();
    let sels = tree_selections(svc, scope, &recorded)?;
    let roots: Vec<PathBuf> = sels.iter().map(|s| s.live.clone()).collect();
    let mut items = Vec::new();
    for sel in sels {
        items.push(plan_tree(svc, snap, &tree, sel, id)?);
    }
    // Databases, streams and images of the point that are in scope.
    for record in &snap.sources {
        let Some(src) = in_scope.iter().find(|s| s.name == record.name) else {
            continue;
        };
        // A file-based source inside a tree is written into its staging;
        // Redis stages its RDB there too, so the tree's swap takes it along.
        let file = match &src.kind {
            SourceKind::Sqlite { path } | SourceKind::VmImage { path } => Some(path.clone()),
            SourceKind::Redis(r) => r.rdb_path.clone(),
            _ => None,
        };
        let inside = file.and_then(|f| {
            roots
                .iter()
                .enumerate()
                .find_map(|(i, r)| strictly_under(&f, r).map(|rest| (i, rest)))
        });
        let stored: u64 = tree
            .iter()
            .filter(|n| n.kind == NodeKind::File)
            .filter(|n| {
                is_at_or_under(
                    &n.path,
                    &format!("{}/{}", crate::source::capture::DIR, record.name),
                )
            })
            .map(|n| n.size)
            .sum();
        items.push(plan_stream(src, record, inside, &roots, stored, id));
    }
    let untouched = svc
        .sources
        .iter()
        .filter(|s| !in_scope.iter().any(|i| i.name == s.name))
        .filter(|s| scope.path.is_none() || !s.kind.is_tree())
        .map(|s| format!("{} `{}`", s.kind.name(), s.name))
        .collect();
    let not_in_point = in_scope
        .iter()
        .filter(|s| !s.kind.is_tree() && !snap.sources.iter().any(|r| r.name == s.name))
        .map(|s| format!("{} `{}`", s.kind.name(), s.name))
        .collect();
    if items.is_empty() {
        bail!(
            "restore point {} of {} holds nothing this restore covers{}",
            snap.short_id(),
            svc.name,
            if scope.kinds.is_empty() {
                String::new()
            } else {
                format!(" (kinds: {})", scope.kinds.join(", "))
            }
        );
    }
    Ok(RestorePlan {
        id: id.to_string(),
        service: svc.name.clone(),
        point: snap.id.clone(),
        point_time: snap.time.clone(),
        items,
        untouched,
        not_in_point,
        tree,
    })
}

fn plan_tree(
    svc: &Service,
    snap: &Snapshot,
    tree: &[Node],
    sel: TreeSel,
    id: &str,
) -> Result<Item> {
    let TreeSel {
        live,
        owner,
        skip,
        carry,
        mut leaves,
    } = sel;
    let mut carry = carry;
    let r = rel(&live);
    if !tree.iter().any(|n| n.path == r) {
        bail!(
            "{} is not in restore point {} (list it with `lifeboat ls {} {}`)",
            live.display(),
            snap.short_id(),
            snap.short_id(),
            live.display()
        );
    }
    let writes = tree
        .iter()
        .filter(|n| n.kind == NodeKind::File && is_at_or_under(&n.path, &r))
        .filter(|n| !skip.iter().any(|s| is_at_or_under(&n.path, s)))
        .fold(Size::default(), |a, n| Size {
            files: a.files + 1,
            bytes: a.bytes + n.size,
        });
    // What the live copy holds now, and what of it the backup excludes
    // (it stays, as it was never backed up).
    let patterns: Vec<String> = svc
        .sources
        .iter()
        .filter_map(|s| match &s.kind {
            SourceKind::Files { paths, exclude, .. }
                if paths
                    .iter()
                    .any(|p| p.starts_with(&live) || live.starts_with(p)) =>
            {
                Some(exclude.clone())
            }
            _ => None,
        })
        .flatten()
        .collect();
    let excludes = Excludes::new(&patterns)?;
    // Paths other sources own are theirs, excluded from backups or not: a
    // SQLite file restored into this tree is not "excluded" just because
    // the files source leaves it out of its backups.
    let owned: Vec<PathBuf> = skip
        .iter()
        .filter_map(|s| s.strip_prefix(&r).and_then(|b| b.strip_prefix('/')))
        .map(PathBuf::from)
        .collect();
    let (replaces, stays) = survey(&live, &excludes, &owned)?;
    for e in stays {
        let why = match e.file_name().is_some_and(swap::is_own_name) {
            true => "a restore's kept copy",
            false => "excluded from backups",
        };
        leaves.push(format!("{} ({why})", e.display()));
        carry.push(e);
    }
    let carry = outermost(carry);
    let keeps = match replaces {
        None => "nothing to keep".to_string(),
        Some(_) => format!(
            "what is there is kept as {}",
            swap::kept_path(&live, id).display()
        ),
    };
    Ok(Item {
        source: owner.name.clone(),
        kind: owner.kind.name().to_string(),
        target: live.display().to_string(),
        writes,
        replaces,
        keeps,
        leaves,
        work: Work::Tree {
            live,
            rel: r,
            skip,
            carry,
        },
    })
}

/// Mount points of this machine (`/proc/self/mountinfo`): a rename cannot
/// move one, so a restore must not try. Bind mounts share their device
/// with what they are mounted on, so comparing devices is not enough.
pub(super) fn mount_points() -> std::collections::HashSet<PathBuf> {
    let unescape = |s: &str| {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let octal = b.get(i + 1..i + 4).and_then(|o| {
                std::str::from_utf8(o)
                    .ok()
                    .and_then(|o| u8::from_str_radix(o, 8).ok())
            });
            match (b[i], octal) {
                (b'\\', Some(v)) => {
                    out.push(v);
                    i += 4;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        PathBuf::from(std::ffi::OsString::from_vec(out))
    };
    use std::os::unix::ffi::OsStringExt;
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape))
        .collect()
}

/// Files and bytes under `live` now (not counting what other sources
/// own), and the entries that stay where they are: what the backup
/// excludes (it was never backed up) and the restores' own kept copies. A
/// mount point cannot be swapped with a rename: that is refused here,
/// before anything is touched.
fn survey(
    live: &Path,
    excludes: &Excludes,
    owned: &[PathBuf],
) -> Result<(Option<Size>, Vec<PathBuf>)> {
    let meta = match std::fs::symlink_metadata(live) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, Vec::new())),
        Err(e) => return Err(anyhow!(e).context(format!("looking at {}", live.display()))),
        Ok(m) => m,
    };
    let mounts = mount_points();
    let is_mount = |p: &Path, m: &std::fs::Metadata| {
        mounts.contains(p)
            || p.parent()
                .and_then(|parent| std::fs::metadata(parent).ok())
                .is_some_and(|pm| pm.dev() != m.dev())
    };
    if meta.is_dir() && is_mount(live, &meta) {
        bail!(
            "{} is a mount point; Lifeboat swaps a restored copy in with a rename, which cannot replace a mount point: restore it with `--target DIR` and move the files, or restore paths inside it",
            live.display()
        );
    }
    let mut size = Size::default();
    let mut stays = Vec::new();
    if !meta.is_dir() {
        size.files = 1;
        size.bytes = meta.len();
        return Ok((Some(size), stays));
    }
    // Something another source owns lies below this entry.
    let holds_owned = |below: &Path| owned.iter().any(|o| o != below && o.starts_with(below));
    // (directory, inside an excluded directory?)
    let mut stack = vec![(live.to_path_buf(), false)];
    while let Some((dir, excluded_above)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(below) = p.strip_prefix(live).map(Path::to_path_buf) else {
                continue;
            };
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() && is_mount(&p, &m) {
                bail!(
                    "{} is a mount point inside {}; a restore of {} would have to move it: restore paths beside it instead",
                    p.display(),
                    live.display(),
                    live.display()
                );
            }
            if owned.contains(&below) {
                continue;
            }
            let own = swap::is_own_name(&e.file_name());
            if own || excluded_above || excludes.matches(&p) {
                if m.is_dir() && holds_owned(&below) {
                    // The rest of it stays; what another source restores
                    // inside it does not.
                    stack.push((p, true));
                } else {
                    stays.push(below);
                }
                continue;
            }
            if m.is_dir() {
                stack.push((p, false));
            } else {
                size.files += 1;
                size.bytes += m.len();
            }
        }
    }
    Ok((Some(size), stays))
}

/// Keeps the outermost of nested entries: moving a directory moves what
/// is inside it.
fn outermost(mut v: Vec<PathBuf>) -> Vec<PathBuf> {
    v.sort();
    v.dedup();
    let all = v.clone();
    v.retain(|p| !all.iter().any(|o| o != p && p.starts_with(o)));
    v
}

fn plan_stream(
    src: &Source,
    record: &SourceRecord,
    inside: Option<(usize, PathBuf)>,
    roots: &[PathBuf],
    stored: u64,
    id: &str,
) -> Item {
    let (target, keeps, replaces) = match &src.kind {
        SourceKind::Postgres(db) => {
            let (keeps, size) = crate::source::postgres::plan_keeps(db);
            (
                format!("database `{}` on {}:{}", db.database, db.host, db.port),
                keeps,
                size.map(|b| Size { files: 0, bytes: b }),
            )
        }
        SourceKind::Mysql(db) => (
            format!("database `{}` on {}:{}", db.database, db.host, db.port),
            format!(
                "the previous tables are kept in `{}_lifeboat_old_…`",
                db.database
            ),
            Some(Size::default()),
        ),
        SourceKind::Sqlite { path } | SourceKind::VmImage { path } => {
            let now = std::fs::metadata(path).ok().map(|m| Size {
                files: 1,
                bytes: m.len(),
            });
            let keeps = match &inside {
                Some((i, _)) => format!(
                    "written into the restored {}; the live one stays with the kept copy of it",
                    roots[*i].display()
                ),
                None => format!(
                    "the previous one is kept as {}",
                    swap::kept_path(path, id).display()
                ),
            };
            (path.display().to_string(), keeps, now)
        }
        SourceKind::Redis(r) => (
            match &r.rdb_path {
                Some(p) => format!("Redis at {}:{} (RDB {})", r.host, r.port, p.display()),
                None => format!("Redis at {}:{}", r.host, r.port),
            },
            "the server is stopped and started; the previous RDB is kept beside it".to_string(),
            Some(Size::default()),
        ),
        SourceKind::PostgresCluster(c) => (
            format!(
                "data directory {}",
                c.data_dir
                    .as_deref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "(no path configured)".into())
            ),
            "restored with `restore --at TIME --target DIR`".to_string(),
            None,
        ),
        SourceKind::Command(c) => (
            format!(
                "`{}`",
                c.restore.as_deref().unwrap_or("(no restore_command)")
            ),
            "piped in last; a stream cannot be kept or rolled back".to_string(),
            Some(Size::default()),
        ),
        SourceKind::Files { .. } | SourceKind::Secrets { .. } => {
            (String::new(), String::new(), None)
        }
    };
    Item {
        source: src.name.clone(),
        kind: src.kind.name().to_string(),
        target,
        writes: Size {
            files: 0,
            bytes: stored,
        },
        replaces,
        keeps,
        leaves: Vec::new(),
        work: Work::Stream {
            source: Box::new(src.clone()),
            record: Box::new(record.clone()),
            inside,
        },
    }
}
