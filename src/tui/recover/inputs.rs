//! The wizard's details step: the runbook's questions, one field each,
//! and for the path the picker over the restore point's file list. A path
//! is checked against the restore point before preflight, typed or
//! picked.

use super::picker::{filter_of, PathPicker};
use super::{Stage, Wizard};
use crate::inventory::Inventory;
use crate::tui::action::Cmd;
use crate::tui::input::{Edit, TextField};
use crossterm::event::{KeyCode, KeyEvent};
use std::sync::Arc;

impl Wizard {
    /// The runbook input validated against the restore point's tree.
    pub fn path_input(&self) -> Option<usize> {
        self.current()?.inputs.iter().position(|i| i.name == "path")
    }

    /// The picker, when the path field is the one shown with the keys.
    pub fn shown_picker(&self) -> Option<&PathPicker> {
        (self.path_input() == Some(self.input_at))
            .then_some(self.picker.as_ref())
            .flatten()
    }

    /// Onto the details step; the picker's file list is asked for when
    /// the restore point is known and not the one already read.
    pub(super) fn enter_inputs(&mut self) -> Vec<Cmd> {
        self.go(Stage::Inputs);
        let (Some(_), Some(point), Some(repository)) = (
            self.path_input(),
            self.point.clone(),
            self.point_repo.clone(),
        ) else {
            self.picker = None;
            return vec![];
        };
        if let Some(p) = &mut self.picker {
            if p.snapshot == point {
                p.focused = false;
                return vec![];
            }
        }
        self.req += 1;
        self.picker = Some(PathPicker {
            snapshot: point.clone(),
            req: self.req,
            ..Default::default()
        });
        vec![Cmd::PickerTree {
            req: self.req,
            repository,
            snapshot: point,
        }]
    }

    /// After the restore point: the runbook's questions, or preflight.
    pub(super) fn after_point(&mut self) -> Vec<Cmd> {
        if self.inputs.is_empty() {
            return self.go_preflight();
        }
        self.input_at = self
            .inputs
            .iter()
            .position(TextField::is_empty)
            .unwrap_or(0);
        self.enter_inputs()
    }

    /// The picker's file list arrived (or could not be read: the field
    /// still takes a typed path).
    pub fn on_picker_tree(
        &mut self,
        req: u64,
        r: Result<Arc<crate::tui::tree::TreeView>, String>,
    ) -> Vec<Cmd> {
        let text = self
            .path_input()
            .and_then(|i| self.inputs.get(i))
            .map(|f| f.text().to_string())
            .unwrap_or_default();
        let Some(p) = self.picker.as_mut().filter(|p| p.req == req) else {
            return vec![];
        };
        match r {
            Ok(t) => {
                p.tree = Some(t);
                p.filter(&text)
            }
            Err(e) => {
                p.error = Some(e);
                vec![]
            }
        }
    }

    pub fn on_path_hits(&mut self, generation: u64, hits: Vec<u32>) {
        if let Some(p) = &mut self.picker {
            p.on_hits(generation, hits);
        }
    }

    /// Focus order on the details step: each field, then the picker.
    fn focus_next(&mut self, back: bool) {
        let n = self.inputs.len();
        let picker_shown = self.shown_picker().is_some();
        let in_picker = self.picker.as_ref().is_some_and(|p| p.focused) && picker_shown;
        // Stops: 0..n are the fields, n is the picker (after the path field).
        let path = self.path_input();
        let mut stops: Vec<usize> = Vec::new();
        for i in 0..n {
            stops.push(i);
            if Some(i) == path && self.picker.as_ref().is_some_and(|p| p.tree.is_some()) {
                stops.push(n);
            }
        }
        let here = if in_picker { n } else { self.input_at };
        let at = stops.iter().position(|&s| s == here).unwrap_or(0);
        let len = stops.len().max(1);
        let next = stops[if back {
            (at + len - 1) % len
        } else {
            (at + 1) % len
        }];
        if let Some(p) = &mut self.picker {
            p.focused = next == n;
        }
        if next == n {
            self.input_at = path.unwrap_or(self.input_at);
        } else {
            self.input_at = next;
        }
    }

    pub(super) fn inputs_key(&mut self, key: KeyEvent, inv: Option<&Inventory>) -> Vec<Cmd> {
        if self.checking.is_some() {
            // The path is being looked up; Esc gives up waiting.
            if key.code == KeyCode::Esc {
                self.checking = None;
            }
            return vec![];
        }
        let n = self.inputs.len();
        if self.input_at >= n {
            return self.go_preflight();
        }
        let on_path = self.path_input() == Some(self.input_at);
        let picker_ready = on_path && self.picker.as_ref().is_some_and(|p| p.tree.is_some());
        let in_picker = picker_ready && self.picker.as_ref().is_some_and(|p| p.focused);
        match key.code {
            KeyCode::Tab => {
                self.focus_next(false);
                return vec![];
            }
            KeyCode::BackTab => {
                self.focus_next(true);
                return vec![];
            }
            KeyCode::Esc if in_picker => {
                if let Some(p) = &mut self.picker {
                    p.focused = false;
                }
                return vec![];
            }
            KeyCode::Esc => {
                if self.points.is_empty() && self.moment.is_none() {
                    self.go(Stage::Services)
                } else {
                    self.back_to_point()
                }
                return vec![];
            }
            KeyCode::Enter if in_picker => {
                let chosen = self.picker.as_ref().and_then(PathPicker::chosen);
                let Some(path) = chosen else {
                    return vec![];
                };
                if let Some(p) = &mut self.picker {
                    p.focused = false;
                }
                self.inputs[self.input_at].set(&path);
                return self.submit_input(inv);
            }
            KeyCode::Up if in_picker && self.picker.as_ref().is_some_and(|p| p.sel == 0) => {
                if let Some(p) = &mut self.picker {
                    p.focused = false;
                }
                return vec![];
            }
            code if in_picker => {
                if let Some(p) = &mut self.picker {
                    if p.key(code) {
                        return vec![];
                    }
                }
            }
            // ↓ from the path field goes into its picker.
            KeyCode::Down if picker_ready => {
                if let Some(p) = &mut self.picker {
                    p.focused = true;
                }
                return vec![];
            }
            KeyCode::Up if self.input_at > 0 => {
                self.input_at -= 1;
                return vec![];
            }
            KeyCode::Down if self.input_at + 1 < n => {
                self.input_at += 1;
                return vec![];
            }
            _ => {}
        }
        let field = &mut self.inputs[self.input_at];
        match key.code {
            KeyCode::Enter if field.is_empty() => {
                self.error = Some("this value is needed".into());
                vec![]
            }
            KeyCode::Enter => self.submit_input(inv),
            _ => {
                if field.key(key) == Edit::Changed && on_path {
                    return self.path_changed();
                }
                vec![]
            }
        }
    }

    /// The path field's text changed (typed or pasted): filter the picker.
    pub(super) fn path_changed(&mut self) -> Vec<Cmd> {
        let text = self
            .path_input()
            .and_then(|i| self.inputs.get(i))
            .map(|f| filter_of(f.text()).to_string())
            .unwrap_or_default();
        match &mut self.picker {
            Some(p) => p.filter(&text),
            None => vec![],
        }
    }

    /// Enter on a filled-in field: a path is checked against the restore
    /// point first; then the next field, or preflight after the last.
    pub(super) fn submit_input(&mut self, inv: Option<&Inventory>) -> Vec<Cmd> {
        if Some(self.input_at) == self.path_input() {
            if let Some(cmd) = self.check_path_cmd(inv) {
                return vec![cmd];
            }
        }
        self.next_input()
    }

    fn next_input(&mut self) -> Vec<Cmd> {
        if let Some(at) =
            (self.input_at + 1..self.inputs.len()).find(|&i| self.inputs[i].is_empty())
        {
            self.input_at = at;
            return vec![];
        }
        self.go_preflight()
    }

    fn check_path_cmd(&mut self, inv: Option<&Inventory>) -> Option<Cmd> {
        let chosen = self.chosen();
        let [one] = chosen.as_slice() else {
            return None;
        };
        let snapshot = self.point.clone()?;
        let repository = match &self.point_repo {
            Some(r) => r.clone(),
            None => inv?
                .services
                .iter()
                .find(|s| &s.name == one)?
                .repository
                .clone(),
        };
        self.req += 1;
        self.checking = Some(self.req);
        Some(Cmd::CheckPath {
            req: self.req,
            repository,
            snapshot,
            path: self.inputs.get(self.input_at)?.text().to_string(),
        })
    }

    /// The answer to a path check: on to the next step, or the message
    /// with the field keeping the keys.
    pub fn on_path_checked(&mut self, req: u64, result: Result<(), String>) -> Vec<Cmd> {
        if self.checking != Some(req) || self.stage() != Stage::Inputs {
            return vec![];
        }
        self.checking = None;
        match result {
            Ok(()) => self.next_input(),
            Err(e) => {
                self.error = Some(e);
                vec![]
            }
        }
    }
}
