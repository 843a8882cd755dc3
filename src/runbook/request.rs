//! Building a recovery job, the same way from the command line and the
//! console: which services, which inputs, the preflight, the plan of every
//! live restore (what it writes and replaces), and the job's spec.

use super::engine_calls::{self as calls, PointInfo, Repos};
use super::preflight::Check;
use super::{vars, Action, Item, Runbook, Scope};
use crate::config::Config;
use crate::jobs::JobSpec;
use crate::model::Service;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How the admin named the services.
pub enum Pick<'a> {
    Services(&'a [String]),
    Host(&'a str),
    All,
}

pub fn applicable<'a>(config: &'a Config, rb: &Runbook) -> Vec<&'a Service> {
    config.services.iter().filter(|s| rb.applies(s)).collect()
}

fn names(v: &[&Service]) -> String {
    v.iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The services a run covers, most critical tier first.
pub fn services<'a>(config: &'a Config, rb: &Runbook, pick: Pick) -> Result<Vec<&'a Service>> {
    let fits = applicable(config, rb);
    let mut chosen: Vec<&Service> = match pick {
        Pick::All => fits.clone(),
        Pick::Services(names) if names.is_empty() && rb.scope == Scope::All => fits.clone(),
        Pick::Host(h) => fits.iter().copied().filter(|s| s.host == h).collect(),
        Pick::Services(asked) => {
            if asked.is_empty() {
                bail!(
                    "name the affected service with --service (this runbook applies to: {})",
                    names(&fits)
                );
            }
            let mut v = Vec::new();
            for n in asked {
                let s = config.service(n)?;
                if !rb.applies(s) {
                    bail!(
                        "runbook {} does not apply to {n} (it applies to: {})",
                        rb.id,
                        names(&fits)
                    );
                }
                v.push(s);
            }
            v
        }
    };
    if chosen.is_empty() {
        bail!("no service to run {} for", rb.id);
    }
    chosen.sort_by_key(|s| s.tier);
    Ok(chosen)
}

/// `NAME=VALUE` pairs checked against the runbook's inputs; every input
/// without a default must be given.
pub fn inputs(rb: &Runbook, given: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for i in given {
        let (k, v) = i
            .split_once('=')
            .with_context(|| format!("--input {i}: expected NAME=VALUE"))?;
        if !rb.inputs.iter().any(|x| x.name == k) {
            bail!("runbook {} has no input `{k}`", rb.id);
        }
        out.insert(k.to_string(), v.to_string());
    }
    for i in &rb.inputs {
        if i.default.is_none() && !out.contains_key(&i.name) {
            bail!(
                "runbook {} needs --input {}=… ({})",
                rb.id,
                i.name,
                i.prompt
            );
        }
    }
    Ok(out)
}

/// The preflight of every service, in order.
pub fn preflight(
    repos: &Repos,
    rb: &Runbook,
    services: &[&Service],
    point: &str,
    inputs: &BTreeMap<String, String>,
) -> Vec<(String, Check)> {
    services
        .iter()
        .flat_map(|s| {
            super::preflight::run(repos, rb, s, point, inputs)
                .into_iter()
                .map(|c| (s.name.clone(), c))
        })
        .collect()
}

/// What a run will do to one service, as lines for the confirmation: the
/// restore point (time, age, verified, newer points skipped), and per live
/// restore exactly what is written and what it replaces; per rollback what
/// goes back.
pub fn plan_lines(
    repos: &Repos,
    rb: &Runbook,
    svc: &Service,
    point: &str,
    inputs: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut v = vars::Vars::new();
    for i in &rb.inputs {
        if let Some(val) = inputs.get(&i.name).or(i.default.as_ref()) {
            v.insert(format!("input.{}", i.name), val.clone());
        }
    }
    v.insert("service.name".into(), svc.name.clone());
    let fill = |t: &str| vars::fill(t, &v, false).unwrap_or_else(|_| t.to_string());
    let actions: Vec<&Action> = rb
        .steps
        .iter()
        .flat_map(|s| &s.items)
        .filter_map(|i| match i {
            Item::Lifeboat { action, .. } => Some(action),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let repo_name = rb.source_repository(svc, inputs);
    let opened = repos
        .open(&repo_name)
        .and_then(|repo| Ok((calls::resolve_point(&repo, &svc.name, point)?, repo)));
    let needs_point = actions
        .iter()
        .any(|a| matches!(a, Action::Restore { .. } | Action::Drill | Action::Verify));
    if needs_point {
        match &opened {
            Ok((snap, repo)) => {
                let info = PointInfo::of(
                    repo,
                    snap,
                    &repos.config.state_dir,
                    std::time::SystemTime::now(),
                );
                out.push(format!("restore point {}", info.text()));
                out.extend(info.warning().map(|w| format!("warning: {w}")));
            }
            Err(e) => out.push(format!("restore point: {e:#}")),
        }
    }
    for (n, a) in actions.iter().enumerate() {
        match a {
            Action::Restore {
                path, to, kinds, ..
            } if to == "live" => {
                let path = path.as_deref().map(&fill);
                let scope = rb.restore_scope(kinds, path.as_deref());
                let plan = match &opened {
                    Ok((snap, repo)) => calls::plan(svc, repo, snap, &scope, &format!("plan-{n}")),
                    Err(e) => Err(anyhow::anyhow!("{e:#}")),
                };
                match plan {
                    Ok(p) => out.extend(p.lines()),
                    Err(e) => out.push(format!("cannot plan the restore: {e:#}")),
                }
            }
            Action::Rollback { restore } => {
                let of = fill(restore);
                let targets: Vec<_> =
                    crate::engine::restore::rollback::targets(&repos.config.state_dir, &of)
                        .into_iter()
                        .filter(|r| r.service == svc.name)
                        .collect();
                if targets.is_empty() {
                    out.push(format!("nothing of {} to roll back in `{of}`", svc.name));
                }
                for rec in targets {
                    for r in rec.replaced.iter().rev() {
                        if let crate::source::ledger::Replaced::Command { command, .. } = r {
                            out.push(format!("cannot take back what was piped into `{command}`"));
                            continue;
                        }
                        out.push(format!(
                            "put back {}{}",
                            r.what(),
                            r.kept_text()
                                .map(|k| format!(" from {k}"))
                                .unwrap_or_else(|| {
                                    " (it did not exist before: the restored one is set aside)"
                                        .into()
                                })
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The job's spec, ready for [`crate::jobs::launch`].
pub fn spec(
    rb: &Runbook,
    services: &[&Service],
    point: &str,
    inputs: BTreeMap<String, String>,
    interactive: bool,
    key: Option<PathBuf>,
) -> Result<JobSpec> {
    Ok(JobSpec {
        id: crate::jobs::new_id(&rb.id),
        runbook: rb.origin(),
        services: services.iter().map(|s| s.name.clone()).collect(),
        point: point.to_string(),
        inputs,
        interactive,
        key: key.map(std::path::absolute).transpose()?,
    })
}
