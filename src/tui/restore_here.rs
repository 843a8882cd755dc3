//! `r` in the inventory: restore what the cursor is on. The service,
//! restore point and path are known here; the runbook is the one that fits
//! the kind of thing, and the Recover wizard takes it from there through
//! the same check, preflight, confirm and job as any recovery.

use super::app::{App, Cmd, Level, Screen};
use super::recover::Prefill;

/// Which runbooks fit, best first: a database dump restores through the
/// database runbook, a secrets file through the secrets one, anything
/// else as files. The wizard takes the first that applies to the service.
fn candidates(path: Option<&str>, secret: bool, kinds: &[&str]) -> Vec<String> {
    let has = |k: &str| kinds.contains(&k);
    let mut v: Vec<&str> = Vec::new();
    match path {
        // Database sources are stored under .lifeboat/<kind>/.
        Some(p) if p.starts_with(".lifeboat/") => v.push("db-corruption"),
        Some(_) if secret => v.push("secrets-lost"),
        Some(_) => {}
        None => {
            if ["postgres", "mysql", "sqlite"].iter().any(|k| has(k)) {
                v.push("db-corruption");
            }
            if has("vm-image") || has("command") {
                v.push("vm-lost");
            }
        }
    }
    v.push("files-deleted");
    v.into_iter().map(String::from).collect()
}

impl App {
    /// The prefilled recovery for the row under the cursor, if it is
    /// something that can be restored (a file, a directory, a restore
    /// point or a version of a file).
    fn prefill_here(&self) -> Result<Prefill, String> {
        let rows = self.visible_rows();
        let row = rows.get(self.inv.sel).copied();
        let svc = |i: usize| self.services().get(i);
        let kinds = |i: usize| -> Vec<&str> {
            svc(i)
                .map(|s| {
                    s.sources
                        .iter()
                        .filter_map(|d| d.split([' ', ':']).next())
                        .collect()
                })
                .unwrap_or_default()
        };
        let none = || "nothing here to restore".to_string();
        match (&self.inv.level, row) {
            (Level::Points { service }, Some(i)) => {
                let s = svc(*service).ok_or_else(none)?;
                let p = s.restore_points.get(i).ok_or_else(none)?;
                Ok(Prefill {
                    runbook: candidates(None, false, &kinds(*service)),
                    service: s.name.clone(),
                    point: p.id.clone(),
                    path: None,
                })
            }
            (Level::Files { service, .. }, Some(i)) => {
                let s = svc(*service).ok_or_else(none)?;
                let tree = self
                    .inv
                    .tree
                    .as_ref()
                    .ok_or("the file list is still loading")?;
                let n = tree.nodes.get(i).ok_or_else(none)?;
                Ok(Prefill {
                    runbook: candidates(Some(&n.path), n.secret, &kinds(*service)),
                    service: s.name.clone(),
                    point: tree.snapshot.clone(),
                    path: Some(format!("/{}", n.path)),
                })
            }
            (Level::Versions { service, path }, Some(i)) => {
                let s = svc(*service).ok_or_else(none)?;
                let v = self
                    .inv
                    .versions
                    .as_ref()
                    .and_then(|v| v.get(i))
                    .ok_or_else(none)?;
                let secret = self
                    .inv
                    .tree
                    .as_ref()
                    .and_then(|t| t.nodes.iter().find(|n| &n.path == path))
                    .is_some_and(|n| n.secret);
                Ok(Prefill {
                    runbook: candidates(Some(path), secret, &kinds(*service)),
                    service: s.name.clone(),
                    point: v.snapshot.clone(),
                    path: Some(format!("/{path}")),
                })
            }
            (Level::Services, _) => {
                Err("open a service first: r restores a restore point, a file or a version".into())
            }
            _ => Err(none()),
        }
    }

    /// `r`: open the Recover wizard on what the cursor is on.
    pub(super) fn restore_here(&mut self) -> Vec<Cmd> {
        match self.prefill_here() {
            Ok(p) => {
                self.screen = Screen::Recover;
                self.recover.leave = false;
                let inv = self.inventory.clone();
                self.recover.restore(p, inv.as_deref(), self.now)
            }
            Err(e) => {
                self.status = Some(e);
                vec![]
            }
        }
    }

    /// The configuration was read again: new thresholds, then the
    /// inventory and runbooks it names; a failed preflight waiting for
    /// this runs again.
    pub(super) fn on_reloaded(&mut self, r: Result<crate::health::Thresholds, String>) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        match r {
            Ok(t) => {
                self.thresholds = t;
                self.status = Some("configuration reloaded; reading the inventory…".into());
                cmds.push(Cmd::LoadInventory);
                cmds.push(Cmd::LoadRunbooks);
            }
            Err(e) => {
                let msg = format!("the configuration has problems, still using the old one: {e}");
                if self.recover.recheck {
                    self.recover.error = Some(msg);
                } else {
                    self.status = Some(msg);
                }
            }
        }
        if std::mem::take(&mut self.recover.recheck) {
            cmds.extend(self.recover.start_preflight());
        }
        cmds
    }
}

#[cfg(test)]
mod tests {
    use super::candidates;

    #[test]
    fn the_runbook_fits_the_kind() {
        assert_eq!(
            candidates(Some(".lifeboat/sqlite/db.sqlite3"), false, &["sqlite"])[0],
            "db-corruption"
        );
        assert_eq!(
            candidates(Some("srv/a/.env"), true, &["secrets"])[0],
            "secrets-lost"
        );
        assert_eq!(
            candidates(Some("srv/a/b.pdf"), false, &["files"]),
            ["files-deleted"]
        );
        assert_eq!(candidates(None, false, &["vm-image"])[0], "vm-lost");
    }
}
