//! The wizard's path step as a picker over the chosen restore point's file
//! list: the path field above it is both the typed path and the picker's
//! fuzzy filter. With the field empty the picker is a tree whose
//! directories open and close; Enter on a row puts its path in the field
//! and checks it, as if it had been typed. The file list comes from a
//! background request; an answer to an older one is dropped.

use crate::repo::tree::NodeKind;
use crate::tui::action::Cmd;
use crate::tui::tree::TreeView;
use crossterm::event::KeyCode;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct PathPicker {
    /// The restore point whose file list this is (or is being read).
    pub snapshot: String,
    /// The file list asked for; only its answer counts.
    pub req: u64,
    pub tree: Option<Arc<TreeView>>,
    pub error: Option<String>,
    /// Open directories, by path.
    pub expanded: HashSet<String>,
    /// The filter's matches (None: no filter, the tree is shown).
    pub hits: Option<Vec<u32>>,
    pub generation: u64,
    pub searching: bool,
    pub sel: usize,
    /// The picker has the arrow keys (Tab moves here from the field).
    pub focused: bool,
}

/// One row as drawn: which node, how deep in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub node: u32,
    pub depth: usize,
}

/// The part of the field's text that filters: a typed path matches paths
/// stored without their leading slash.
pub fn filter_of(text: &str) -> &str {
    text.trim().trim_start_matches('/')
}

impl PathPicker {
    pub fn rows(&self) -> Vec<Row> {
        let Some(t) = &self.tree else {
            return vec![];
        };
        if let Some(h) = &self.hits {
            return h.iter().map(|&node| Row { node, depth: 0 }).collect();
        }
        let mut out = Vec::new();
        // Depth-first, without recursion: a deep tree must not overflow.
        let mut stack: Vec<(u32, usize)> =
            t.children_of("").iter().rev().map(|&i| (i, 0)).collect();
        while let Some((node, depth)) = stack.pop() {
            out.push(Row { node, depth });
            let n = &t.nodes[node as usize];
            if n.kind == NodeKind::Dir && self.expanded.contains(&n.path) {
                stack.extend(t.children_of(&n.path).iter().rev().map(|&i| (i, depth + 1)));
            }
        }
        out
    }

    /// The path (as typed: absolute) under the cursor.
    pub fn chosen(&self) -> Option<String> {
        let row = *self.rows().get(self.sel)?;
        let t = self.tree.as_ref()?;
        Some(format!("/{}", t.nodes.get(row.node as usize)?.path))
    }

    fn selected_dir(&self) -> Option<String> {
        let row = *self.rows().get(self.sel)?;
        let n = self.tree.as_ref()?.nodes.get(row.node as usize)?;
        (n.kind == NodeKind::Dir).then(|| n.path.clone())
    }

    /// The field's text changed: filter again (in the background).
    pub fn filter(&mut self, text: &str) -> Vec<Cmd> {
        self.sel = 0;
        self.generation += 1;
        let q = filter_of(text);
        let Some(tree) = self.tree.clone() else {
            return vec![];
        };
        if q.is_empty() {
            self.hits = None;
            self.searching = false;
            return vec![];
        }
        self.searching = true;
        vec![Cmd::SearchPaths {
            generation: self.generation,
            query: q.to_string(),
            tree,
        }]
    }

    pub fn on_hits(&mut self, generation: u64, hits: Vec<u32>) {
        if generation == self.generation && self.searching {
            self.hits = Some(hits);
            self.searching = false;
            self.sel = 0;
        }
    }

    /// A navigation key while the picker has the focus; false when it is
    /// not one (the caller treats it as text or as the wizard's key).
    pub fn key(&mut self, code: KeyCode) -> bool {
        let n = self.rows().len();
        match code {
            KeyCode::Down => self.sel = (self.sel + 1).min(n.saturating_sub(1)),
            KeyCode::Up => self.sel = self.sel.saturating_sub(1),
            KeyCode::PageDown => self.sel = (self.sel + 10).min(n.saturating_sub(1)),
            KeyCode::PageUp => self.sel = self.sel.saturating_sub(10),
            KeyCode::Right | KeyCode::Char(' ') if self.hits.is_none() => {
                if let Some(d) = self.selected_dir() {
                    if code == KeyCode::Char(' ') && self.expanded.contains(&d) {
                        self.expanded.remove(&d);
                    } else {
                        self.expanded.insert(d);
                    }
                }
            }
            KeyCode::Left if self.hits.is_none() => self.collapse(),
            _ => return false,
        }
        true
    }

    /// ←: close the directory under the cursor, or go up to its parent.
    fn collapse(&mut self) {
        if let Some(d) = self.selected_dir() {
            if self.expanded.remove(&d) {
                return;
            }
        }
        let rows = self.rows();
        let Some(row) = rows.get(self.sel).copied() else {
            return;
        };
        if let Some(up) = rows[..self.sel].iter().rposition(|r| r.depth < row.depth) {
            self.sel = up;
        }
    }
}
