//! Before a runbook touches anything: can the repository be opened with
//! the key, does the restore point exist (and how old is it against the
//! RPO), is there room and write access at the target, and can the service
//! be stopped if the runbook needs it stopped. The wizard and `recover`
//! show the same list.

use super::engine_calls::{self as calls, Repos};
use super::Runbook;
use crate::model::{Service, SourceKind};
use serde::Serialize;
use std::path::Path;
use std::time::SystemTime;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

fn nearest_existing(p: &Path) -> Option<&Path> {
    p.ancestors().find(|a| a.exists())
}

pub fn run(
    repos: &Repos,
    runbook: &Runbook,
    svc: &Service,
    point: &str,
    inputs: &std::collections::BTreeMap<String, String>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut add = |name: &str, ok: bool, detail: String| {
        out.push(Check {
            name: name.into(),
            ok,
            detail,
        })
    };
    let repo_name = runbook.source_repository(svc, inputs);
    let repo = match repos.open(&repo_name) {
        Ok(r) => {
            add(
                "credentials",
                true,
                format!("repository {repo_name} opens with its key"),
            );
            r
        }
        Err(e) => {
            add("credentials", false, format!("{e:#}"));
            return out;
        }
    };
    let snap = match calls::resolve_point(&repo, &svc.name, point) {
        Ok(s) => s,
        Err(e) => {
            add("restore point", false, format!("{e:#}"));
            return out;
        }
    };
    let age = snap
        .system_time()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default();
    add(
        "restore point",
        true,
        format!(
            "{} from {}, {} old, {}{}",
            snap.short_id(),
            snap.time.get(..16).unwrap_or(&snap.time).replace('T', " "),
            crate::health::short_duration(age),
            crate::util::human_bytes(snap.stats.bytes),
            if age > svc.policy.rpo {
                format!(
                    " — older than the RPO of {}",
                    crate::health::short_duration(svc.policy.rpo)
                )
            } else {
                String::new()
            }
        ),
    );
    if !runbook.writes_live() {
        // Drills and read-backs write only into sandboxes.
        let sandboxes = &repos.config.state_dir;
        let at = nearest_existing(sandboxes).unwrap_or(sandboxes);
        match crate::util::fs_space(at).map(|(_, a)| a) {
            Some(f) => add(
                "free space",
                f >= snap.stats.bytes,
                format!(
                    "{} free for sandboxes at {}; the restore point holds {}",
                    crate::util::human_bytes(f),
                    at.display(),
                    crate::util::human_bytes(snap.stats.bytes)
                ),
            ),
            None => add("free space", false, format!("cannot stat {}", at.display())),
        }
    }
    for src in svc.sources.iter().filter(|_| runbook.writes_live()) {
        if !src.kind.is_tree() {
            for (what, ok, detail) in crate::source::preflight(src) {
                add(what, ok, detail);
            }
            continue;
        }
        match &src.kind {
            SourceKind::Files { paths, .. } | SourceKind::Secrets { paths } => {
                for p in paths {
                    let Some(at) = nearest_existing(p) else {
                        continue;
                    };
                    let free = crate::util::fs_space(at).map(|(_, a)| a);
                    match free {
                        Some(f) if f < snap.stats.bytes => add(
                            "free space",
                            false,
                            format!(
                                "{} has {} free; the restore point holds {}",
                                at.display(),
                                crate::util::human_bytes(f),
                                crate::util::human_bytes(snap.stats.bytes)
                            ),
                        ),
                        Some(f) => add(
                            "free space",
                            true,
                            format!("{} free at {}", crate::util::human_bytes(f), at.display()),
                        ),
                        None => add("free space", false, format!("cannot stat {}", at.display())),
                    }
                    let writable = {
                        use std::os::unix::ffi::OsStrExt;
                        std::ffi::CString::new(at.as_os_str().as_bytes())
                            // SAFETY: access only reads the NUL-terminated path.
                            .map(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
                            .unwrap_or(false)
                    };
                    add(
                        "target reachable",
                        writable,
                        if writable {
                            format!("{} is writable", at.display())
                        } else {
                            format!("{} is not writable by this user", at.display())
                        },
                    );
                }
            }
            _ => {}
        }
    }
    if runbook.needs_stop() {
        match &svc.stop {
            Some(cmd) => add(
                "service stopped",
                true,
                format!("the runbook stops it with `{cmd}`"),
            ),
            None => add(
                "service stopped",
                false,
                format!(
                    "this runbook stops the service, but [services.{}] has no stop = \"…\" command",
                    svc.name
                ),
            ),
        }
    }
    out
}
