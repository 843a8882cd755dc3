//! What each `lifeboat` action of a runbook does, through the engine seam.

use super::{Restored, Run, SvcCtx};
use crate::engine::restore::plan::Scope;
use crate::jobs::Record;
use crate::runbook::engine_calls::{self as calls, Target};
use crate::runbook::report::secs;
use crate::runbook::{vars, Action};
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

impl Run<'_> {
    pub(super) fn action(&self, cx: &mut SvcCtx, action: &Action) -> Result<String> {
        let fill = |t: &str| vars::fill(t, &cx.vars, false).map_err(|e| anyhow!(e));
        let repos = self.repos();
        let shown = action.describe();
        self.journal
            .log(format!("lifeboat: {}", fill(&shown).unwrap_or(shown)));
        let detail = match action {
            Action::Restore {
                path,
                to,
                from,
                kinds,
            } => {
                let path = path.as_deref().map(fill).transpose()?;
                let target = Target::parse(&fill(to)?);
                let scope = self.runbook.restore_scope(kinds, path.as_deref());
                let other;
                let (repo, snap) = match from.as_deref().map(fill).transpose()? {
                    Some(name) if name != cx.repo_name => {
                        other = repos.open(&name)?;
                        let snap = calls::resolve_point(&other, &cx.svc.name, &self.spec.point)
                            .with_context(|| format!("in repository {name}"))?;
                        self.journal.log(format!(
                            "restoring from repository {name}: restore point {}",
                            snap.short_id()
                        ));
                        (&other, snap)
                    }
                    _ => {
                        let (r, s) = cx.point()?;
                        (r, s.clone())
                    }
                };
                // A PostgreSQL cluster goes back to a moment: into a new
                // data directory (the engine path of `restore --at
                // --target`), or live through `restore --at --live`'s
                // plan and swap (below).
                let cluster = crate::source::pitr::restore_at::cluster_of(cx.svc).is_some();
                if cluster && target != Target::Live {
                    let dir = match &target {
                        Target::Dir(d) => Some(d.as_path()),
                        _ => None,
                    };
                    let key = (self.config.path.as_path(), self.spec.key.as_deref());
                    let at = self.with_reporter(|r| {
                        crate::source::pitr::restore_at::for_job(
                            repo,
                            cx.svc,
                            &snap,
                            &self.spec.point,
                            dir,
                            key,
                            r,
                        )
                    })?;
                    if let Some(report) = at {
                        let lines = report.lines();
                        for l in &lines {
                            self.journal.log(l.clone());
                        }
                        return Ok(lines.join("; "));
                    }
                }
                let n = self.restores.get() + 1;
                self.restores.set(n);
                let id = format!("{}-{n}", self.spec.id);
                if target == Target::Live && !cluster {
                    if let Ok(plan) = calls::plan(cx.svc, repo, &snap, &scope, &id) {
                        for l in plan.lines() {
                            self.journal.log(format!("  plan: {l}"));
                        }
                    }
                }
                let out = self.with_reporter(|r| {
                    if cluster {
                        let key = self.spec.key.as_deref();
                        return calls::restore_cluster_live(
                            (self.config, key),
                            cx.svc,
                            repo,
                            &snap,
                            &self.spec.point,
                            (&id, &self.spec.id),
                            &|l| self.journal.log(format!("  plan: {l}")),
                            r,
                        );
                    }
                    calls::restore_service(
                        &repos,
                        cx.svc,
                        repo,
                        &snap,
                        &scope,
                        &target,
                        (&id, &self.spec.id),
                        r,
                    )
                });
                // What was replaced, even by a restore that failed halfway.
                let replaced = crate::source::ledger::load(&self.config.state_dir, &id)
                    .map(|r| r.replaced)
                    .unwrap_or_default();
                for r in &replaced {
                    cx.replaced.push(r.what());
                    self.journal.write(Record::Replaced {
                        service: cx.svc.name.clone(),
                        what: r.what(),
                        kept: r.kept_text(),
                    });
                    if let Some(k) = r.kept_text() {
                        self.journal.log(format!(
                            "the previous {} is kept as {k} (`lifeboat rollback {}` puts it back; `lifeboat leftovers` lists kept copies)",
                            r.what(),
                            self.spec.id
                        ));
                    }
                }
                let out = out?;
                cx.restored = match &target {
                    Target::Live => Some(Restored {
                        root: PathBuf::from("/"),
                        scope,
                    }),
                    Target::Dir(d) => Some(Restored {
                        root: d.clone(),
                        scope,
                    }),
                    Target::Sandbox => None,
                };
                out.detail
            }
            Action::Check { path } => {
                let path = path.as_deref().map(fill).transpose()?;
                let (root, scope) = match (&cx.restored, path) {
                    (Some(r), None) => (r.root.clone(), r.scope.clone()),
                    (Some(r), Some(p)) => (
                        r.root.clone(),
                        Scope {
                            kinds: Vec::new(),
                            path: Some(PathBuf::from(p)),
                        },
                    ),
                    (None, p) => (
                        PathBuf::from("/"),
                        self.runbook.restore_scope(&[], p.as_deref()),
                    ),
                };
                let (repo, snap) = cx.point()?;
                let r = calls::check_service(cx.svc, repo, snap, &scope, &root);
                let (ok, detail) = match &r {
                    Ok(d) => (true, d.clone()),
                    Err(e) => (false, format!("{e:#}")),
                };
                self.journal.write(Record::Check {
                    service: cx.svc.name.clone(),
                    ok,
                    detail: detail.clone(),
                });
                cx.check = Some((ok, detail));
                r?
            }
            Action::Verify => {
                let (repo, snap) = cx.point()?;
                self.with_reporter(|r| calls::verify_point(&repos, repo, snap, r))?
            }
            Action::Rollback { restore } => self.rollback(cx, &fill(restore)?)?,
            Action::Drill => {
                let report = self.with_reporter(|r| {
                    let (repo, snap) = cx.point()?;
                    calls::drill_service(&repos, cx.svc, repo, snap, r)
                })?;
                let line = format!(
                    "drill of {}: {} in {} (RTO {}){}",
                    cx.svc.name,
                    if report.ok {
                        "restored and checked"
                    } else {
                        "FAILED"
                    },
                    secs(report.duration_ms),
                    crate::health::short_duration(cx.svc.policy.rto),
                    if report.ok && !report.within_rto {
                        ", over the RTO"
                    } else {
                        ""
                    }
                );
                self.journal.write(Record::Check {
                    service: cx.svc.name.clone(),
                    ok: report.ok && report.within_rto,
                    detail: line.clone(),
                });
                cx.check = Some((report.ok && report.within_rto, line.clone()));
                if !report.ok {
                    bail!("{}", report.detail);
                }
                line
            }
            Action::Backup => {
                let snap = self.with_reporter(|r| calls::backup_service(&repos, cx.svc, r))?;
                format!(
                    "backed up {}: restore point {}, {} files, {} ({} new)",
                    cx.svc.name,
                    snap.short_id(),
                    snap.stats.files,
                    crate::util::human_bytes(snap.stats.bytes),
                    crate::util::human_bytes(snap.stats.bytes_added)
                )
            }
            Action::Stop | Action::Start => {
                let (cmd, what) = if *action == Action::Stop {
                    (&cx.svc.stop, "stop")
                } else {
                    (&cx.svc.start, "start")
                };
                let cmd = cmd.as_deref().ok_or_else(|| {
                    anyhow!(
                        "{} has no `{what}` command: add {what} = \"…\" to [services.{}] in {}",
                        cx.svc.name,
                        cx.svc.name,
                        self.config.path.display()
                    )
                })?;
                self.shell(cmd, crate::runbook::parse::DEFAULT_SHELL_TIMEOUT)?;
                cx.stopped = *action == Action::Stop;
                let done = if *action == Action::Stop {
                    "stopped"
                } else {
                    "started"
                };
                format!("{done} {}", cx.svc.name)
            }
            Action::WaitTcp { addr, timeout } => {
                let addr = fill(addr)?;
                wait_until(*timeout, &|| self.cancelled(), || {
                    use std::net::ToSocketAddrs;
                    addr.to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .is_some_and(|a| {
                            std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok()
                        })
                })
                .with_context(|| format!("nothing answered on {addr}"))?;
                format!("{addr} answers")
            }
            Action::WaitHttp { url, timeout } => {
                let url = fill(url)?;
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()?;
                wait_until(*timeout, &|| self.cancelled(), || {
                    client
                        .get(&url)
                        .send()
                        .is_ok_and(|r| r.status().is_success() || r.status().is_redirection())
                })
                .with_context(|| format!("{url} did not answer with success"))?;
                format!("{url} answers")
            }
        };
        // Checks and drills are already in the journal as check records.
        if !matches!(action, Action::Check { .. } | Action::Drill) {
            self.journal.log(format!("  {detail}"));
        }
        Ok(detail)
    }

    /// Puts back what restore (or job) `of` replaced of this service, as
    /// rollbacks that keep what they take out.
    pub(super) fn rollback(&self, cx: &mut SvcCtx, of: &str) -> Result<String> {
        let state_dir = &self.config.state_dir;
        let targets: Vec<_> = crate::engine::restore::rollback::targets(state_dir, of)
            .into_iter()
            .filter(|r| r.service == cx.svc.name)
            .collect();
        if targets.is_empty() {
            bail!(
                "nothing of {} to roll back in `{of}` (`lifeboat leftovers` lists what restores kept)",
                cx.svc.name
            );
        }
        let mut said = Vec::new();
        for rec in targets {
            let n = self.restores.get() + 1;
            self.restores.set(n);
            let id = format!("{}-{n}", self.spec.id);
            let ledger = crate::source::ledger::Ledger::new(
                Some(state_dir),
                &id,
                &cx.svc.name,
                (&rec.point, &rec.point_time),
            )?
            .in_job(&self.spec.id);
            let r = crate::engine::rollback(state_dir, &rec.id, &ledger);
            crate::source::cleanup::finish(&ledger);
            let r = r?;
            for d in &r.done {
                self.journal.log(format!("put back {d}"));
                cx.replaced.push(d.clone());
            }
            for k in &r.kept {
                self.journal.log(format!(
                    "what restore {} had written is kept as {k}",
                    rec.id
                ));
            }
            for s in &r.skipped {
                self.journal.log(format!("warning: {s}"));
            }
            said.push(format!(
                "restore {} rolled back: {} put back",
                rec.id,
                r.done.join(", ")
            ));
        }
        Ok(said.join("; "))
    }
}

fn wait_until(
    timeout: Duration,
    cancelled: &dyn Fn() -> bool,
    ok: impl Fn() -> bool,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if ok() {
            return Ok(());
        }
        if cancelled() {
            bail!("cancelled");
        }
        if start.elapsed() > timeout {
            bail!("gave up after {}", crate::health::short_duration(timeout));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
