//! The Recover screen's state: a wizard from scenario to running job, and
//! the progress pane of a job (started here, or found running on reopen).
//! Keys change state and return [`Cmd`]s; nothing here does I/O.

use super::action::Cmd;
use super::input::{Edit, TextField};
use crate::inventory::Inventory;
use crate::jobs::{JobSpec, JobView};
use crate::runbook::preflight::Check;
use crate::runbook::Scope;
use crossterm::event::{KeyCode, KeyEvent};
use fuzzy_matcher::skim::SkimMatcherV2;
use fuzzy_matcher::FuzzyMatcher;
use std::time::SystemTime;

pub use super::action::RunbookInfo;

mod inputs;
pub mod moment;
pub mod picker;
mod run;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pick,
    Services,
    Inputs,
    Point,
    Preflight,
    Confirm,
    Run,
}

/// One restore point as the picker shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRow {
    pub id: String,
    pub time_text: String,
    pub age_secs: u64,
    pub bytes: u64,
    pub verified: bool,
    pub over_rpo: bool,
}

/// A row of the first list: a job to watch, or a scenario to start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PickRow {
    Job(usize),
    Runbook(usize),
}

#[derive(Default)]
pub struct Wizard {
    pub stage: Option<Stage>,
    pub runbooks: Vec<RunbookInfo>,
    pub load_error: Option<String>,
    pub jobs: Vec<JobView>,
    pub query: TextField,
    /// The search line has the keys (opened by `/`).
    pub searching: bool,
    pub sel: usize,
    pub runbook: Option<usize>,
    /// The runbook's services and which are chosen.
    pub services: Vec<(String, bool)>,
    pub inputs: Vec<TextField>,
    pub input_at: usize,
    pub points: Vec<PointRow>,
    /// None: `latest` for each service (several services).
    pub point: Option<String>,
    pub preflight: Option<Vec<(String, Check)>>,
    /// Per service, what the run will write and replace (the confirm
    /// screen shows it).
    pub plans: Vec<(String, Vec<String>)>,
    /// A destructive key waits for y: `C` (cancel the job) or `u` (roll
    /// back what it replaced).
    pub asking: Option<char>,
    pub typed: TextField,
    pub job: Option<JobView>,
    /// The finished job's report (markdown), shown in the pane.
    pub report: Option<Vec<String>>,
    /// A tail read is in flight (latest wins: one at a time).
    pub tailing: bool,
    pub error: Option<String>,
    /// What a key just did, when that is worth saying (✓, not ✗).
    pub notice: Option<String>,
    /// The wizard asks the app to go back to the Health screen.
    pub leave: bool,
    /// A restore asked for from the inventory, applied once the runbooks
    /// are known.
    pub prefill: Option<Prefill>,
    /// The path check in flight (its request id): the field waits for it.
    pub checking: Option<u64>,
    req: u64,
    /// The chosen restore point's repository (the picker and the path
    /// check read it).
    pub point_repo: Option<String>,
    /// The path step's picker over the restore point's file list.
    pub picker: Option<picker::PathPicker>,
    /// Tab moved the keys from the scenario list to its preview.
    pub preview_focus: bool,
    pub preview_scroll: usize,
    /// A failed preflight is re-run once the configuration is read again.
    pub recheck: bool,
    /// The restore-point step as a moment in time (a service with a
    /// postgres-cluster source).
    pub moment: Option<moment::MomentStep>,
}

/// What the inventory knows when `r` is pressed: which runbook fits, for
/// which service, from which restore point, and the path if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Prefill {
    /// Runbook ids that fit, best first.
    pub runbook: Vec<String>,
    pub service: String,
    pub point: String,
    pub path: Option<String>,
}

impl Wizard {
    pub fn stage(&self) -> Stage {
        self.stage.unwrap_or(Stage::Pick)
    }

    /// A text field has the keys: letters and digits are text, not
    /// commands.
    pub fn wants_text(&self) -> bool {
        match self.stage() {
            Stage::Pick => self.searching,
            Stage::Inputs | Stage::Confirm => true,
            Stage::Point => self.moment.is_some(),
            _ => false,
        }
    }

    /// The field a paste goes to, if one has the keys.
    pub fn field(&mut self) -> Option<&mut TextField> {
        match self.stage() {
            Stage::Pick if self.searching => Some(&mut self.query),
            Stage::Inputs if self.checking.is_none() => self.inputs.get_mut(self.input_at),
            Stage::Confirm => Some(&mut self.typed),
            Stage::Point => self.moment.as_mut().map(|m| &mut m.field),
            _ => None,
        }
    }

    /// A paste: text into the focused field, never a submit. A pasted
    /// path filters the picker as a typed one does.
    pub fn paste(&mut self, text: &str) -> Vec<Cmd> {
        let stage = self.stage();
        let on_path = stage == Stage::Inputs && self.path_input() == Some(self.input_at);
        let changed = self.field().is_some_and(|f| f.paste(text) == Edit::Changed);
        match stage {
            Stage::Pick if changed => self.sel = 0,
            Stage::Inputs if changed && on_path => return self.path_changed(),
            _ => {}
        }
        vec![]
    }

    /// Starts a new recovery from the inventory (`r`). Returns what to run
    /// now; with the runbooks not yet loaded it waits for them.
    pub fn restore(&mut self, p: Prefill, inv: Option<&Inventory>, now: SystemTime) -> Vec<Cmd> {
        self.job = None;
        self.report = None;
        self.asking = None;
        self.error = None;
        self.query.clear();
        self.searching = false;
        self.go(Stage::Pick);
        self.prefill = Some(p);
        if self.runbooks.is_empty() {
            return vec![Cmd::LoadRunbooks, Cmd::LoadJobs];
        }
        let mut cmds = vec![Cmd::LoadJobs];
        cmds.extend(self.apply_prefill(inv, now));
        cmds
    }

    /// The runbooks arrived: keep the chosen one (by id, the list may have
    /// changed) and apply a waiting restore.
    pub fn on_runbooks(
        &mut self,
        rbs: Vec<RunbookInfo>,
        inv: Option<&Inventory>,
        now: SystemTime,
    ) -> Vec<Cmd> {
        let current = self.current().map(|r| r.id.clone());
        self.runbooks = rbs;
        self.runbook = current.and_then(|id| self.runbooks.iter().position(|r| r.id == id));
        if self.runbook.is_none() && self.stage() != Stage::Pick && self.stage() != Stage::Run {
            self.error = Some("the runbook is gone after the reload: choose again".into());
            self.go(Stage::Pick);
        }
        self.apply_prefill(inv, now)
    }

    fn apply_prefill(&mut self, inv: Option<&Inventory>, now: SystemTime) -> Vec<Cmd> {
        let Some(p) = self.prefill.take() else {
            return vec![];
        };
        let fits = p.runbook.iter().find_map(|id| {
            self.runbooks
                .iter()
                .position(|r| &r.id == id && r.applies.contains(&p.service))
        });
        let Some(i) = fits else {
            self.error = Some(format!(
                "no runbook for this applies to {} (looked for {}): choose one below",
                p.service,
                p.runbook.join(", ")
            ));
            return vec![];
        };
        self.choose(i);
        for s in &mut self.services {
            s.1 = s.0 == p.service;
        }
        self.enter_point(inv, now);
        if let Some(at) = self.points.iter().position(|r| r.id == p.point) {
            self.sel = at;
        }
        self.point = Some(p.point.clone());
        let path_at = self.path_input();
        if let (Some(path), Some(at)) = (&p.path, path_at) {
            self.inputs[at].set(path);
        }
        if self.inputs.is_empty() {
            return self.go_preflight();
        }
        let mut cmds = self.enter_inputs();
        // The first empty field has the keys; with all filled in, the path
        // is checked as if Enter had been pressed on it.
        match self.inputs.iter().position(TextField::is_empty) {
            Some(at) => self.input_at = at,
            None => {
                self.input_at = self.inputs.len() - 1;
                cmds.extend(self.submit_input(inv));
            }
        }
        cmds
    }

    fn choose(&mut self, i: usize) {
        self.runbook = Some(i);
        let rb = &self.runbooks[i];
        // A site-wide runbook starts with every service chosen.
        let all = rb.scope == Scope::All;
        self.services = rb.applies.iter().map(|s| (s.clone(), all)).collect();
        self.inputs = rb
            .inputs
            .iter()
            .map(|i| TextField::new(i.default.as_deref().unwrap_or_default()))
            .collect();
        self.point = None;
        self.points.clear();
        self.moment = None;
    }

    /// Commands to run when the screen opens.
    pub fn open(&mut self) -> Vec<Cmd> {
        vec![Cmd::LoadRunbooks, Cmd::LoadJobs]
    }

    /// Running (or waiting) jobs first, then the scenarios, then recent
    /// finished jobs, newest first: a finished job never takes the place
    /// (or the cursor) a scenario had before it ran.
    pub fn pick_rows(&self) -> Vec<PickRow> {
        // Enough history to reach last week's reports without scrolling
        // past a wall of them.
        const RECENT: usize = 20;
        let matcher = SkimMatcherV2::default();
        let q = self.query.text();
        let job_matches = |j: &JobView| {
            q.is_empty()
                || matcher
                    .fuzzy_match(
                        &format!("{} {} {}", j.runbook, j.services.join(" "), j.id),
                        q,
                    )
                    .is_some()
        };
        let mut rows: Vec<PickRow> = self
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.running() && job_matches(j))
            .map(|(i, _)| PickRow::Job(i))
            .collect();
        let mut scored: Vec<(i64, usize)> = self
            .runbooks
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                if q.is_empty() {
                    return Some((0, i));
                }
                matcher
                    .fuzzy_match(&format!("{} {} {}", r.id, r.title, r.summary), q)
                    .map(|s| (-s, i))
            })
            .collect();
        scored.sort();
        rows.extend(scored.into_iter().map(|(_, i)| PickRow::Runbook(i)));
        rows.extend(
            self.jobs
                .iter()
                .enumerate()
                .filter(|(_, j)| !j.running() && job_matches(j))
                .take(RECENT)
                .map(|(i, _)| PickRow::Job(i)),
        );
        rows
    }

    pub fn current(&self) -> Option<&RunbookInfo> {
        self.runbook.and_then(|i| self.runbooks.get(i))
    }

    pub fn chosen(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, on)| *on)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// What has to be typed to start: the (first) service's name.
    pub fn confirm_word(&self) -> String {
        self.chosen().first().cloned().unwrap_or_default()
    }

    /// Whether `s skip` and the like apply: used by the footer too.
    pub fn preflight_ok(&self) -> Option<bool> {
        match &self.preflight {
            Some(p) if !p.is_empty() => Some(p.iter().all(|(_, c)| c.ok)),
            _ => None,
        }
    }

    fn rows_len(&self) -> usize {
        match self.stage() {
            Stage::Pick => self.pick_rows().len(),
            Stage::Services => self.services.len(),
            Stage::Point => self.points.len(),
            Stage::Run => self.report.as_ref().map_or(0, Vec::len),
            _ => 0,
        }
    }

    pub fn on_key(&mut self, key: KeyEvent, inv: Option<&Inventory>, now: SystemTime) -> Vec<Cmd> {
        self.error = None;
        self.notice = None;
        if self.stage() == Stage::Pick && !self.searching && self.preview_key(key.code) {
            return vec![];
        }
        let n = self.rows_len();
        // ↑↓ move between the fields of the details step.
        let typing = self.stage() == Stage::Point && self.moment.is_some();
        let code = if self.stage() == Stage::Inputs || typing {
            KeyCode::Null
        } else {
            key.code
        };
        match code {
            KeyCode::Down => {
                self.sel = (self.sel + 1).min(n.saturating_sub(1));
                return vec![];
            }
            KeyCode::Up => {
                self.sel = self.sel.saturating_sub(1);
                return vec![];
            }
            KeyCode::PageDown => {
                self.sel = (self.sel + 10).min(n.saturating_sub(1));
                return vec![];
            }
            KeyCode::PageUp => {
                self.sel = self.sel.saturating_sub(10);
                return vec![];
            }
            _ => {}
        }
        match self.stage() {
            Stage::Pick => self.pick_key(key),
            Stage::Services => self.services_key(key, inv, now),
            Stage::Inputs => self.inputs_key(key, inv),
            Stage::Point if self.moment.is_some() => self.moment_key(key),
            Stage::Point => self.point_key(key),
            Stage::Preflight => self.preflight_key(key),
            Stage::Confirm => self.confirm_key(key),
            Stage::Run => self.run_key(key),
        }
    }

    /// Tab between the scenario list and its preview; ↑↓ scroll the
    /// preview while it has the focus. True when the key was used.
    fn preview_key(&mut self, code: KeyCode) -> bool {
        match code {
            KeyCode::Tab | KeyCode::BackTab => {
                self.preview_focus = !self.preview_focus;
                self.preview_scroll = 0;
            }
            KeyCode::Down | KeyCode::Char('j') if self.preview_focus => self.preview_scroll += 1,
            KeyCode::Up | KeyCode::Char('k') if self.preview_focus => {
                self.preview_scroll = self.preview_scroll.saturating_sub(1)
            }
            KeyCode::Esc if self.preview_focus => self.preview_focus = false,
            _ => return false,
        }
        true
    }

    fn go(&mut self, stage: Stage) {
        self.stage = Some(stage);
        self.sel = 0;
        self.preview_focus = false;
    }

    fn pick_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if self.searching {
            match key.code {
                KeyCode::Esc => {
                    self.searching = false;
                    self.query.clear();
                    self.sel = 0;
                }
                KeyCode::Enter | KeyCode::Tab => self.searching = false,
                _ => {
                    if self.query.key(key) == Edit::Changed {
                        self.sel = 0;
                    }
                }
            }
            return vec![];
        }
        let n = self.pick_rows().len();
        match key.code {
            KeyCode::Char('/') => self.searching = true,
            KeyCode::Esc if self.query.is_empty() => self.leave = true,
            KeyCode::Esc => {
                self.query.clear();
                self.sel = 0;
            }
            KeyCode::Char('j') => self.sel = (self.sel + 1).min(n.saturating_sub(1)),
            KeyCode::Char('k') => self.sel = self.sel.saturating_sub(1),
            KeyCode::Home | KeyCode::Char('g') => self.sel = 0,
            KeyCode::End | KeyCode::Char('G') => self.sel = n.saturating_sub(1),
            KeyCode::Enter => match self.pick_rows().get(self.sel).copied() {
                Some(PickRow::Job(i)) => {
                    if let Some(j) = self.jobs.get(i) {
                        self.report = None;
                        // Read from the start: the pane shows all of it.
                        self.job = Some(JobView {
                            id: j.id.clone(),
                            ..Default::default()
                        });
                        self.go(Stage::Run);
                    }
                }
                Some(PickRow::Runbook(i)) => {
                    self.choose(i);
                    if self.services.is_empty() {
                        self.error = Some(format!(
                            "{} applies to none of the configured services",
                            self.runbooks[i].id
                        ));
                    } else {
                        self.go(Stage::Services);
                    }
                }
                None => {}
            },
            _ => {}
        }
        vec![]
    }

    fn services_key(
        &mut self,
        key: KeyEvent,
        inv: Option<&Inventory>,
        now: SystemTime,
    ) -> Vec<Cmd> {
        match key.code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => self.go(Stage::Pick),
            KeyCode::Char(' ') => {
                let host_of = |name: &str| {
                    inv.and_then(|i| i.services.iter().find(|s| s.name == name))
                        .map(|s| s.host.clone())
                };
                let host_wide = self.current().is_some_and(|r| r.scope == Scope::Host);
                if let Some((name, on)) = self.services.get(self.sel).cloned() {
                    match host_of(&name).filter(|_| host_wide) {
                        // A host-wide runbook: Space picks the whole host.
                        Some(host) => {
                            for s in &mut self.services {
                                if host_of(&s.0).as_ref() == Some(&host) {
                                    s.1 = !on;
                                }
                            }
                        }
                        None => self.services[self.sel].1 = !on,
                    }
                }
            }
            KeyCode::Char('j') => {
                self.sel = (self.sel + 1).min(self.services.len().saturating_sub(1))
            }
            KeyCode::Char('k') => self.sel = self.sel.saturating_sub(1),
            KeyCode::Enter => {
                if self.chosen().is_empty() {
                    // Nothing toggled: the highlighted one (its host, for a
                    // host-wide runbook).
                    self.services_key(KeyEvent::from(KeyCode::Char(' ')), inv, now);
                    if self.chosen().is_empty() {
                        return vec![];
                    }
                }
                self.enter_point(inv, now);
                if self.points.is_empty() && self.moment.is_none() {
                    return self.after_point();
                }
            }
            _ => {}
        }
        vec![]
    }

    fn back_to_point(&mut self) {
        let at = self
            .point
            .as_ref()
            .and_then(|p| self.points.iter().position(|r| &r.id == p))
            .unwrap_or(0);
        self.go(Stage::Point);
        self.sel = at;
    }

    fn go_preflight(&mut self) -> Vec<Cmd> {
        self.go(Stage::Preflight);
        self.start_preflight()
    }

    /// Restore points of the one chosen service, newest first, the cursor
    /// on the newest verified one. With several services, each takes its
    /// newest: the stage is passed straight to preflight.
    fn enter_point(&mut self, inv: Option<&Inventory>, now: SystemTime) {
        let chosen = self.chosen();
        self.points.clear();
        self.point = None;
        self.point_repo = None;
        self.moment = None;
        if let ([one], Some(inv)) = (chosen.as_slice(), inv) {
            if let Some(s) = inv.services.iter().find(|s| &s.name == one) {
                // A cluster archiving WAL goes back to a moment.
                if self.enter_moment(s) {
                    return;
                }
                self.point_repo = Some(s.repository.clone());
                let verified_at = s.last_verify.as_ref().filter(|v| v.ok).map(|v| v.time);
                self.points = s
                    .restore_points
                    .iter()
                    .rev()
                    .map(|p| {
                        let age = now.duration_since(p.time).unwrap_or_default();
                        PointRow {
                            id: p.id.clone(),
                            time_text: p.time_text.clone(),
                            age_secs: age.as_secs(),
                            bytes: p.bytes,
                            verified: verified_at.is_some_and(|v| v >= p.time),
                            over_rpo: age.as_secs() > s.rpo_secs,
                        }
                    })
                    .collect();
            }
        }
        if self.points.is_empty() {
            return;
        }
        // The newest point: an older one is a choice the admin makes (the
        // confirm screen says how many newer points it skips).
        self.go(Stage::Point);
    }

    fn preflight_cmd(&self) -> Vec<Cmd> {
        match self.current() {
            Some(rb) => vec![Cmd::Preflight {
                runbook: rb.file.clone(),
                services: self.chosen(),
                point: self.point.clone().unwrap_or_else(|| "latest".into()),
                inputs: rb
                    .inputs
                    .iter()
                    .zip(&self.inputs)
                    .map(|(i, v)| (i.name.clone(), v.text().trim().to_string()))
                    .collect(),
            }],
            None => vec![],
        }
    }

    fn point_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        match key.code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => self.go(Stage::Services),
            KeyCode::Char('j') => {
                self.sel = (self.sel + 1).min(self.points.len().saturating_sub(1))
            }
            KeyCode::Char('k') => self.sel = self.sel.saturating_sub(1),
            KeyCode::Enter => {
                if let Some(p) = self.points.get(self.sel) {
                    self.point = Some(p.id.clone());
                    return self.after_point();
                }
            }
            _ => {}
        }
        vec![]
    }

    pub fn start_preflight(&mut self) -> Vec<Cmd> {
        // Some(empty): the results are on their way.
        self.preflight = Some(Vec::new());
        self.plans.clear();
        self.preflight_cmd()
    }

    fn preflight_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        match key.code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => {
                if !self.inputs.is_empty() {
                    self.input_at = self.inputs.len() - 1;
                    return self.enter_inputs();
                } else if self.points.is_empty() && self.moment.is_none() {
                    self.go(Stage::Services)
                } else {
                    self.back_to_point()
                }
            }
            KeyCode::Enter => match self.preflight_ok() {
                Some(true) => {
                    self.typed.clear();
                    self.go(Stage::Confirm);
                }
                Some(false) => {
                    self.error = Some(
                        "preflight found problems: fix them, then r checks again (the config is read again)"
                            .into(),
                    )
                }
                None => {}
            },
            KeyCode::Char('r') if self.preflight_ok() == Some(false) => {
                self.recheck = true;
                self.preflight = Some(Vec::new());
                return vec![Cmd::Reload];
            }
            _ => {}
        }
        vec![]
    }

    fn confirm_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        match key.code {
            KeyCode::Esc => self.go(Stage::Preflight),
            KeyCode::Enter if self.typed.text().trim() == self.confirm_word() => {
                let Some(rb) = self.current() else {
                    return vec![];
                };
                let id = crate::jobs::new_id(&rb.id);
                let spec = JobSpec {
                    id: id.clone(),
                    runbook: rb.file.clone(),
                    services: self.chosen(),
                    point: self.point.clone().unwrap_or_else(|| "latest".into()),
                    inputs: rb
                        .inputs
                        .iter()
                        .zip(&self.inputs)
                        .map(|(i, v)| (i.name.clone(), v.text().trim().to_string()))
                        .collect(),
                    interactive: true,
                    key: None,
                };
                self.job = Some(JobView {
                    id,
                    title: rb.title.clone(),
                    steps: rb
                        .steps
                        .iter()
                        .map(|s| (s.clone(), crate::jobs::StepState::Pending))
                        .collect(),
                    services: self.chosen(),
                    ..Default::default()
                });
                self.report = None;
                self.go(Stage::Run);
                return vec![Cmd::StartJob(Box::new(spec))];
            }
            KeyCode::Enter => {
                self.error = Some(format!("type {} to start", self.confirm_word()));
            }
            _ => {
                self.typed.key(key);
            }
        }
        vec![]
    }
}
