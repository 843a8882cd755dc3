//! The TUI's state and how actions change it. Nothing here does I/O: work
//! that reads the repository is returned as a [`Cmd`] for the event loop to
//! run in the background, and its result comes back as a [`Msg`].

use super::input::{Edit, TextField};
use super::theme::Theme;
use super::tree::{DiffEntry, TreeView, Version};
use crate::health::{self, Report, Thresholds};
use crate::inventory::Inventory;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use fuzzy_matcher::skim::SkimMatcherV2;
use fuzzy_matcher::FuzzyMatcher;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Health,
    Inventory,
    Recover,
}

pub use super::action::{Cmd, Msg};

#[derive(Debug, Clone, PartialEq)]
pub enum Level {
    Services,
    Points {
        service: usize,
    },
    Files {
        service: usize,
        point: usize,
    },
    Versions {
        service: usize,
        path: String,
    },
    Diff {
        service: usize,
        older: usize,
        newer: usize,
    },
}

pub struct InventoryState {
    pub level: Level,
    pub sel: usize,
    /// The query being typed (Some while the search line is open).
    pub typing: Option<super::input::TextField>,
    /// The accepted or live filter.
    pub query: String,
    pub tree: Option<Arc<TreeView>>,
    /// Directory shown in the file browser ("" is the top).
    pub dir: String,
    pub file_hits: Option<Vec<u32>>,
    pub searching: bool,
    pub generation: u64,
    pub marked: Option<usize>,
    pub versions: Option<Vec<Version>>,
    pub diff: Option<Vec<DiffEntry>>,
    /// The id of the latest file list, versions or diff asked for: an
    /// answer to an older one is dropped.
    pub req: u64,
    /// Tab moved the keys to the details pane: ↑↓ scroll it.
    pub focus_details: bool,
    pub detail_scroll: usize,
}

pub struct App {
    pub screen: Screen,
    pub help: bool,
    pub quit: bool,
    pub theme: Theme,
    pub now: SystemTime,
    /// Shown in the title bar (the demo says so).
    pub banner: Option<String>,
    pub inventory: Option<Arc<Inventory>>,
    pub report: Option<Report>,
    pub status: Option<String>,
    pub health_sel: usize,
    pub inv: InventoryState,
    pub thresholds: Thresholds,
    pub recover: super::recover::Wizard,
    /// Running jobs were looked for once at start (and re-attached).
    pub jobs_checked: bool,
}

impl App {
    pub fn new(theme: Theme, now: SystemTime) -> App {
        App {
            screen: Screen::Health,
            help: false,
            quit: false,
            theme,
            now,
            banner: None,
            inventory: None,
            report: None,
            status: Some("loading the inventory…".into()),
            health_sel: 0,
            inv: InventoryState {
                level: Level::Services,
                sel: 0,
                typing: None,
                query: String::new(),
                tree: None,
                dir: String::new(),
                file_hits: None,
                searching: false,
                generation: 0,
                marked: None,
                versions: None,
                diff: None,
                req: 0,
                focus_details: false,
                detail_scroll: 0,
            },
            thresholds: Thresholds::default(),
            recover: Default::default(),
            jobs_checked: false,
        }
    }

    /// Called often (a few times a second): a shown job's journal is read.
    pub fn on_fast_tick(&mut self) -> Vec<Cmd> {
        if self.screen == Screen::Recover {
            self.recover.tail()
        } else {
            vec![]
        }
    }

    pub(super) fn open_recover(&mut self) -> Vec<Cmd> {
        self.screen = Screen::Recover;
        self.recover.leave = false;
        self.recover.open()
    }

    fn on_recover_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let inv = self.inventory.clone();
        let cmds = self.recover.on_key(key, inv.as_deref(), self.now);
        if self.recover.leave {
            self.recover.leave = false;
            self.screen = Screen::Health;
        }
        cmds
    }

    pub fn on_tick(&mut self, now: SystemTime) {
        self.now = now;
        self.evaluate();
    }

    fn evaluate(&mut self) {
        if let Some(inv) = &self.inventory {
            self.report = Some(health::evaluate(inv, self.now, &self.thresholds));
        }
    }

    /// Applies a background result; may ask for more work (a search typed
    /// while the file list was still loading runs once it arrives).
    pub fn on_msg(&mut self, msg: Msg) -> Vec<Cmd> {
        match msg {
            Msg::Inventory(inv) => {
                self.inventory = Some(inv);
                self.status = None;
                self.evaluate();
            }
            Msg::Tree(req, _) | Msg::Versions(req, _) | Msg::Diff(req, _)
                if req != self.inv.req => {}
            Msg::Tree(_, Ok(t)) => {
                self.inv.tree = Some(Arc::clone(&t));
                self.inv.dir.clear();
                self.inv.sel = 0;
                self.status = None;
                if !self.inv.query.is_empty() {
                    self.inv.generation += 1;
                    self.inv.searching = true;
                    return vec![Cmd::SearchFiles {
                        generation: self.inv.generation,
                        query: self.inv.query.clone(),
                        tree: t,
                    }];
                }
            }
            Msg::Tree(_, Err(e)) | Msg::Versions(_, Err(e)) | Msg::Diff(_, Err(e)) => {
                self.status = Some(format!("error: {e}"))
            }
            Msg::FileHits { generation, hits } => {
                // Latest wins: an older search finishing late is dropped.
                if generation == self.inv.generation {
                    self.inv.file_hits = Some(hits);
                    self.inv.searching = false;
                    self.inv.sel = 0;
                }
            }
            Msg::Versions(_, Ok(v)) => {
                self.inv.versions = Some(v);
                self.status = None;
            }
            Msg::Diff(_, Ok(d)) => {
                self.inv.diff = Some(d);
                self.status = None;
            }
            Msg::Runbooks(Ok(r)) => {
                self.recover.load_error = None;
                let inv = self.inventory.clone();
                return self.recover.on_runbooks(r, inv.as_deref(), self.now);
            }
            Msg::PathChecked(req, r) => return self.recover.on_path_checked(req, r),
            Msg::PickerTree(req, r) => return self.recover.on_picker_tree(req, r),
            Msg::PathHits { generation, hits } => self.recover.on_path_hits(generation, hits),
            Msg::Reloaded(r) => return self.on_reloaded(r),
            Msg::Runbooks(Err(e)) => self.recover.load_error = Some(e),
            Msg::Jobs(j) => {
                // On start, a job still running is re-attached at once.
                if !self.jobs_checked {
                    self.jobs_checked = true;
                    if let Some(run) = j.iter().find(|j| j.running()) {
                        self.screen = Screen::Recover;
                        self.recover.report = None;
                        self.recover.job = Some(run.clone());
                        self.recover.stage = Some(super::recover::Stage::Run);
                        self.recover.jobs = j;
                        return vec![Cmd::LoadRunbooks];
                    }
                }
                self.recover.jobs = j;
            }
            Msg::Preflight(p, plans) => {
                self.recover.preflight = Some(p);
                self.recover.plans = plans;
            }
            Msg::JobTail(v) => return self.recover.on_tail(*v),
            Msg::Report(lines) => self.recover.report = Some(lines),
            Msg::Discarded(r) => self.recover.on_discarded(r),
            Msg::JobError(e) => {
                self.recover.tailing = false;
                self.recover.error = Some(e);
            }
        }
        vec![]
    }

    pub fn services(&self) -> &[crate::inventory::ServiceView] {
        self.inventory
            .as_ref()
            .map(|i| i.services.as_slice())
            .unwrap_or(&[])
    }

    /// Indices of the rows the current inventory level shows, filtered by
    /// the query where the level filters in the foreground.
    pub fn visible_rows(&self) -> Vec<usize> {
        let matcher = SkimMatcherV2::default();
        let q = &self.inv.query;
        let keep = |text: &str| q.is_empty() || matcher.fuzzy_match(text, q).is_some();
        match &self.inv.level {
            Level::Services => {
                // Grouped by host: hosts → services.
                let mut rows: Vec<usize> = self
                    .services()
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| keep(&format!("{} {} {}", s.host, s.name, s.tier.name())))
                    .map(|(i, _)| i)
                    .collect();
                rows.sort_by(|&a, &b| {
                    let (a, b) = (&self.services()[a], &self.services()[b]);
                    (&a.host, a.tier, &a.name).cmp(&(&b.host, b.tier, &b.name))
                });
                rows
            }
            Level::Points { service } => {
                let Some(s) = self.services().get(*service) else {
                    return vec![];
                };
                // Newest first.
                (0..s.restore_points.len())
                    .rev()
                    .filter(|&i| {
                        let p = &s.restore_points[i];
                        keep(&format!("{} {} {}", p.short_id(), p.time_text, p.host))
                    })
                    .collect()
            }
            Level::Files { .. } => match (&self.inv.file_hits, &self.inv.tree) {
                (Some(h), _) => h.iter().map(|&i| i as usize).collect(),
                (None, Some(t)) => t
                    .children_of(&self.inv.dir)
                    .iter()
                    .map(|&i| i as usize)
                    .collect(),
                _ => vec![],
            },
            Level::Versions { .. } => {
                (0..self.inv.versions.as_ref().map(Vec::len).unwrap_or(0)).collect()
            }
            Level::Diff { .. } => (0..self.inv.diff.as_ref().map(Vec::len).unwrap_or(0)).collect(),
        }
    }

    /// A text field has the keys: global letters and digits are text.
    pub fn text_focus(&self) -> bool {
        match self.screen {
            Screen::Inventory => self.inv.typing.is_some(),
            Screen::Recover => self.recover.wants_text(),
            Screen::Health => false,
        }
    }

    /// A bracketed paste: text for the focused field, never a key (its
    /// newline does not submit). With no field focused it is ignored.
    pub fn on_paste(&mut self, text: &str) -> Vec<Cmd> {
        if self.help {
            return vec![];
        }
        match self.screen {
            Screen::Inventory => {
                let Some(f) = self.inv.typing.as_mut() else {
                    return vec![];
                };
                if f.paste(text) != Edit::Changed {
                    return vec![];
                }
                let q = f.text().to_string();
                self.search_changed(q)
            }
            Screen::Recover => self.recover.paste(text),
            Screen::Health => vec![],
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![];
        }
        if self.help {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?')
            ) {
                self.help = false;
            }
            return vec![];
        }
        // Function keys switch screens from anywhere, even a text field.
        match key.code {
            KeyCode::F(1) => self.screen = Screen::Health,
            KeyCode::F(2) => self.screen = Screen::Inventory,
            KeyCode::F(3) => return self.open_recover(),
            _ => {}
        }
        if matches!(key.code, KeyCode::F(1..=3)) {
            return vec![];
        }
        if self.screen == Screen::Inventory && self.inv.typing.is_some() {
            return self.on_search_key(key);
        }
        // Global keys, wherever no text field has the keys.
        if !self.text_focus() && !ctrl {
            match key.code {
                KeyCode::Char('?') => self.help = true,
                KeyCode::Char('1') => self.screen = Screen::Health,
                KeyCode::Char('2') => self.screen = Screen::Inventory,
                KeyCode::Char('3') => return self.open_recover(),
                KeyCode::Char('R') => {
                    self.status = Some("reading the configuration again…".into());
                    return vec![Cmd::Reload];
                }
                KeyCode::Char('q') if self.screen == Screen::Recover => {
                    // q backs out like Esc, and quits from the top.
                    let top = self.recover.stage() == super::recover::Stage::Pick
                        && self.recover.query.is_empty();
                    if top {
                        self.quit = true;
                        return vec![];
                    }
                    return self.on_recover_key(KeyEvent::from(KeyCode::Esc));
                }
                _ => return self.on_screen_key(key),
            }
            return vec![];
        }
        self.on_screen_key(key)
    }

    fn on_screen_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        match self.screen {
            Screen::Health => self.on_health_key(key),
            Screen::Inventory => self.on_inventory_key(key),
            Screen::Recover => self.on_recover_key(key),
        }
    }

    fn on_health_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let n = self.services().len();
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = key.code == KeyCode::Char('q'),
            KeyCode::Down | KeyCode::Char('j') => {
                self.health_sel = (self.health_sel + 1).min(n.saturating_sub(1))
            }
            KeyCode::Up | KeyCode::Char('k') => self.health_sel = self.health_sel.saturating_sub(1),
            KeyCode::Home | KeyCode::Char('g') => self.health_sel = 0,
            KeyCode::End | KeyCode::Char('G') => self.health_sel = n.saturating_sub(1),
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') if n > 0 => {
                self.screen = Screen::Inventory;
                self.inv.level = Level::Points {
                    service: self.health_sel,
                };
                self.inv.query.clear();
                self.inv.sel = 0;
            }
            _ => {}
        }
        vec![]
    }

    fn move_sel(&mut self, code: KeyCode) -> bool {
        let n = self.visible_rows().len();
        let s = &mut self.inv.sel;
        match code {
            KeyCode::Down | KeyCode::Char('j') => *s = (*s + 1).min(n.saturating_sub(1)),
            KeyCode::Up | KeyCode::Char('k') => *s = s.saturating_sub(1),
            KeyCode::PageDown => *s = (*s + 10).min(n.saturating_sub(1)),
            KeyCode::PageUp => *s = s.saturating_sub(10),
            KeyCode::Home | KeyCode::Char('g') => *s = 0,
            KeyCode::End | KeyCode::Char('G') => *s = n.saturating_sub(1),
            _ => return false,
        }
        true
    }

    fn on_inventory_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if matches!(key.code, KeyCode::Tab | KeyCode::BackTab) {
            self.inv.focus_details = !self.inv.focus_details;
            return vec![];
        }
        if self.inv.focus_details {
            let s = &mut self.inv.detail_scroll;
            match key.code {
                KeyCode::Down | KeyCode::Char('j') => *s += 1,
                KeyCode::Up | KeyCode::Char('k') => *s = s.saturating_sub(1),
                KeyCode::PageDown => *s += 5,
                KeyCode::PageUp => *s = s.saturating_sub(5),
                KeyCode::Home | KeyCode::Char('g') => *s = 0,
                KeyCode::Esc => self.inv.focus_details = false,
                _ => return self.on_inventory_list_key(key),
            }
            return vec![];
        }
        self.on_inventory_list_key(key)
    }

    fn on_inventory_list_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        if self.move_sel(key.code) {
            self.inv.detail_scroll = 0;
            return vec![];
        }
        match key.code {
            KeyCode::Char('/') => {
                self.inv.typing = Some(TextField::new(&self.inv.query));
            }
            KeyCode::Char('r') => return self.restore_here(),
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => return self.open(),
            KeyCode::Char(' ') => {
                if let Level::Points { .. } = self.inv.level {
                    let row = self.visible_rows().get(self.inv.sel).copied();
                    self.inv.marked = if self.inv.marked == row { None } else { row };
                }
            }
            KeyCode::Char('d') => return self.diff(),
            KeyCode::Esc
            | KeyCode::Char('q')
            | KeyCode::Left
            | KeyCode::Char('h')
            | KeyCode::Backspace => {
                // A filter belongs to its list: from a file's versions, Esc
                // goes back to the search results it was opened from.
                let filters = matches!(
                    self.inv.level,
                    Level::Services | Level::Points { .. } | Level::Files { .. }
                );
                if filters && (!self.inv.query.is_empty() || self.inv.file_hits.is_some()) {
                    self.clear_search();
                } else if self.inv.level == Level::Services {
                    if key.code == KeyCode::Char('q') {
                        self.quit = true;
                    } else if key.code == KeyCode::Esc {
                        self.screen = Screen::Health;
                    }
                } else {
                    self.back();
                }
            }
            _ => {}
        }
        vec![]
    }

    fn clear_search(&mut self) {
        self.inv.query.clear();
        self.inv.file_hits = None;
        self.inv.searching = false;
        self.inv.generation += 1;
        self.inv.sel = 0;
    }

    fn on_search_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let Some(f) = self.inv.typing.as_mut() else {
            return vec![];
        };
        match key.code {
            KeyCode::Esc => {
                self.inv.typing = None;
                self.clear_search();
                return vec![];
            }
            KeyCode::Enter | KeyCode::Down | KeyCode::Up | KeyCode::Tab => {
                self.inv.typing = None;
                return vec![];
            }
            _ => {
                if f.key(key) != Edit::Changed {
                    return vec![];
                }
            }
        }
        let q = f.text().to_string();
        self.search_changed(q)
    }

    /// The live query changed: filter, or search the file list.
    fn search_changed(&mut self, q: String) -> Vec<Cmd> {
        self.inv.query = q.clone();
        self.inv.sel = 0;
        if let (Level::Files { .. }, Some(tree)) = (&self.inv.level, &self.inv.tree) {
            self.inv.generation += 1;
            if q.is_empty() {
                self.inv.file_hits = None;
                self.inv.searching = false;
                return vec![];
            }
            self.inv.searching = true;
            return vec![Cmd::SearchFiles {
                generation: self.inv.generation,
                query: q,
                tree: Arc::clone(tree),
            }];
        }
        vec![]
    }

    fn open(&mut self) -> Vec<Cmd> {
        let rows = self.visible_rows();
        let Some(&row) = rows.get(self.inv.sel) else {
            return vec![];
        };
        match self.inv.level.clone() {
            Level::Services => {
                self.inv.level = Level::Points { service: row };
                self.inv.query.clear();
                self.inv.sel = 0;
                self.inv.marked = None;
            }
            Level::Points { service } => {
                let Some(s) = self.services().get(service) else {
                    return vec![];
                };
                let cmd = Cmd::LoadTree {
                    req: self.inv.req + 1,
                    service: s.name.clone(),
                    repository: s.repository.clone(),
                    snapshot: s.restore_points[row].id.clone(),
                };
                self.inv.level = Level::Files {
                    service,
                    point: row,
                };
                self.inv.tree = None;
                self.inv.query.clear();
                self.inv.file_hits = None;
                self.inv.sel = 0;
                self.status = Some("loading the file list…".into());
                self.inv.req += 1;
                return vec![cmd];
            }
            Level::Files { service, .. } => {
                let Some(tree) = self.inv.tree.clone() else {
                    return vec![];
                };
                let node = &tree.nodes[row];
                if node.kind == crate::repo::tree::NodeKind::Dir && self.inv.file_hits.is_none() {
                    self.inv.dir = node.path.clone();
                    self.inv.sel = 0;
                } else if node.kind != crate::repo::tree::NodeKind::Dir {
                    let Some(s) = self.services().get(service) else {
                        return vec![];
                    };
                    let cmd = Cmd::Versions {
                        req: self.inv.req + 1,
                        service: s.name.clone(),
                        repository: s.repository.clone(),
                        path: node.path.clone(),
                        snapshots: s.restore_points.iter().map(|p| p.id.clone()).collect(),
                    };
                    self.inv.level = Level::Versions {
                        service,
                        path: node.path.clone(),
                    };
                    self.inv.versions = None;
                    self.inv.sel = 0;
                    self.status = Some("reading every restore point of this file…".into());
                    self.inv.req += 1;
                    return vec![cmd];
                }
            }
            Level::Versions { .. } | Level::Diff { .. } => {}
        }
        vec![]
    }

    fn diff(&mut self) -> Vec<Cmd> {
        let Level::Points { service } = self.inv.level else {
            return vec![];
        };
        let (Some(marked), Some(&row)) = (self.inv.marked, self.visible_rows().get(self.inv.sel))
        else {
            self.status = Some("mark a restore point with Space, then press d on another".into());
            return vec![];
        };
        if marked == row {
            return vec![];
        }
        let Some(s) = self.services().get(service) else {
            return vec![];
        };
        let (older, newer) = (marked.min(row), marked.max(row));
        let cmd = Cmd::Diff {
            req: self.inv.req + 1,
            repository: s.repository.clone(),
            older: s.restore_points[older].id.clone(),
            newer: s.restore_points[newer].id.clone(),
        };
        self.inv.level = Level::Diff {
            service,
            older,
            newer,
        };
        self.inv.diff = None;
        self.inv.sel = 0;
        self.status = Some("comparing restore points…".into());
        self.inv.req += 1;
        vec![cmd]
    }

    fn back(&mut self) {
        // What was asked for on the level being left is no longer wanted.
        self.inv.req += 1;
        self.inv.sel = 0;
        self.inv.level = match std::mem::replace(&mut self.inv.level, Level::Services) {
            Level::Services | Level::Points { .. } => Level::Services,
            Level::Files { service, point } => {
                if self.inv.dir.is_empty() {
                    Level::Points { service }
                } else {
                    self.inv.dir = self
                        .inv
                        .dir
                        .rsplit_once('/')
                        .map(|(p, _)| p.to_string())
                        .unwrap_or_default();
                    Level::Files { service, point }
                }
            }
            Level::Versions { service, .. } => {
                // Back to the file list of the same restore point.
                match self.inv.tree.as_ref().and_then(|t| {
                    self.services()
                        .get(service)?
                        .restore_points
                        .iter()
                        .position(|p| p.id == t.snapshot)
                }) {
                    Some(point) => Level::Files { service, point },
                    None => Level::Points { service },
                }
            }
            Level::Diff { service, .. } => Level::Points { service },
        };
    }
}
