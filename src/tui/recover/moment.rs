//! The restore-point step for a service with a postgres-cluster source:
//! a moment in time instead of a restore point. The window (the oldest
//! base backup's end … the newest archived WAL) comes from the inventory,
//! which read it from the restore point summaries; what is typed is the
//! syntax of `restore --at` (`latest`, a UTC time, `before:TIME`) and is
//! checked against the window before the step is left.

use super::{Stage, Wizard};
use crate::inventory::ServiceView;
use crate::source::pitr::window::{Moment, Window};
use crate::tui::action::Cmd;
use crate::tui::input::{Edit, TextField};
use crossterm::event::{KeyCode, KeyEvent};
use std::time::SystemTime;

/// The runbook input a moment restore writes into (a new data directory).
pub const TARGET_INPUT: &str = "target";

#[derive(Debug, Clone, Default)]
pub struct MomentStep {
    pub window: Window,
    pub field: TextField,
    /// The last Enter's refusal, shown under the field.
    pub error: Option<String>,
    /// The runbook writes into a directory the admin names (its `target`
    /// input); without one it restores live (a new data directory beside
    /// the live one, checked, swapped in, the old one kept).
    pub into_dir: bool,
}

/// A time as the step shows it (UTC, to the second).
pub fn show(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

impl MomentStep {
    pub fn new(pitr: &crate::inventory::Pitr, into_dir: bool) -> MomentStep {
        MomentStep {
            window: pitr.window.clone(),
            field: TextField::new("latest"),
            error: None,
            into_dir,
        }
    }

    /// The job's point for the typed moment (`latest` or
    /// `before:RFC3339`), or why it cannot be reached.
    pub fn check(&self) -> Result<String, String> {
        let w = &self.window;
        let (Some(oldest), Some(newest)) = (w.oldest, w.newest) else {
            return Err(
                "no base backup yet, so no moment can be reached: take one with `lifeboat backup SERVICE`"
                    .into(),
            );
        };
        let typed = self.field.text().trim();
        let moment = Moment::parse(typed).map_err(|_| {
            format!(
                "{typed:?} is not a moment: type latest, a UTC time like {}, or before:TIME",
                show(newest).trim_end_matches(" UTC")
            )
        })?;
        match moment {
            Moment::Latest => Ok("latest".into()),
            Moment::At(t) if t < oldest => Err(format!(
                "{} is before the window: the oldest base backup ends at {}",
                show(t),
                show(oldest)
            )),
            Moment::At(t) if t > newest => Err(format!(
                "{} is after the window: the archived WAL reaches {} (`lifeboat wal-flush` on the database host packs waiting segments)",
                show(t),
                show(newest)
            )),
            Moment::At(t) => Ok(format!(
                "before:{}",
                humantime::format_rfc3339_micros(t)
            )),
        }
    }
}

/// The moment a job's point names, for the later steps' summaries.
pub fn describe(point: &str) -> Option<String> {
    match Moment::parse(point).ok()? {
        Moment::Latest => Some("the newest archived moment".into()),
        Moment::At(t) => Some(format!("the moment {}", show(t))),
    }
}

impl Wizard {
    /// Onto the moment step when the one chosen service archives WAL.
    /// True when it did.
    pub(super) fn enter_moment(&mut self, s: &ServiceView) -> bool {
        let Some(pitr) = &s.pitr else {
            self.moment = None;
            return false;
        };
        let into_dir = self
            .current()
            .is_some_and(|r| r.inputs.iter().any(|i| i.name == TARGET_INPUT));
        self.moment = Some(MomentStep::new(pitr, into_dir));
        self.point_repo = Some(s.repository.clone());
        self.go(Stage::Point);
        true
    }

    /// What the chosen point is, in words (a moment, or a point's id).
    pub fn point_text(&self) -> Option<String> {
        let p = self.point.as_ref()?;
        Some(match (&self.moment, describe(p)) {
            (Some(_), Some(d)) => d,
            _ => format!("restore point {}", &p[..8.min(p.len())]),
        })
    }

    pub(super) fn moment_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let Some(m) = &mut self.moment else {
            return vec![];
        };
        match key.code {
            KeyCode::Esc => {
                self.go(Stage::Services);
                vec![]
            }
            KeyCode::Enter => match m.check() {
                Ok(point) => {
                    m.error = None;
                    self.point = Some(point);
                    self.after_point()
                }
                Err(e) => {
                    m.error = Some(e);
                    vec![]
                }
            },
            _ => {
                if m.field.key(key) == Edit::Changed {
                    m.error = None;
                }
                vec![]
            }
        }
    }
}
