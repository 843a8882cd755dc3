//! A one-line text field: the editing keys a shell user expects (Ctrl-U,
//! Ctrl-W, Home/End, ←/→), pastes that never submit, and drawing that
//! scrolls sideways so the cursor stays on screen.

use super::theme::Theme;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::text::{Line, Span};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextField {
    text: String,
    /// In characters, 0..=len.
    cursor: usize,
}

/// What a key did to the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// The text changed.
    Changed,
    /// Only the cursor moved.
    Moved,
    /// Not an editing key: the caller decides (Enter, Esc, ↑↓…).
    Ignored,
}

impl TextField {
    pub fn new(text: &str) -> TextField {
        TextField {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }

    pub fn set(&mut self, text: &str) {
        *self = TextField::new(text);
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }

    fn len(&self) -> usize {
        self.text.chars().count()
    }

    pub fn insert(&mut self, c: char) {
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    /// A paste is text, whatever it holds: line breaks and tabs become
    /// spaces (a path copied with its newline must not submit the form),
    /// other control characters are dropped.
    pub fn paste(&mut self, s: &str) -> Edit {
        let clean: String = s
            .trim_end_matches(['\r', '\n'])
            .chars()
            .filter_map(|c| match c {
                '\r' | '\n' | '\t' => Some(' '),
                c if c.is_control() => None,
                c => Some(c),
            })
            .collect();
        if clean.is_empty() {
            return Edit::Ignored;
        }
        for c in clean.chars() {
            self.insert(c);
        }
        Edit::Changed
    }

    /// Applies an editing key. Printable characters are inserted; the
    /// caller filters out the ones it uses as commands first.
    pub fn key(&mut self, key: KeyEvent) -> Edit {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                if self.text.is_empty() {
                    return Edit::Ignored;
                }
                self.clear();
                Edit::Changed
            }
            KeyCode::Char('w') if ctrl => {
                if self.cursor == 0 {
                    return Edit::Ignored;
                }
                let chars: Vec<char> = self.text.chars().collect();
                let mut start = self.cursor;
                while start > 0 && chars[start - 1] == ' ' {
                    start -= 1;
                }
                // A path's word ends at a slash too, as in readline's
                // unix-filename-rubout.
                while start > 0 && chars[start - 1] != ' ' && chars[start - 1] != '/' {
                    start -= 1;
                }
                if start == self.cursor && start > 0 {
                    start -= 1;
                }
                let (a, b) = (self.byte_at(start), self.byte_at(self.cursor));
                self.text.replace_range(a..b, "");
                self.cursor = start;
                Edit::Changed
            }
            KeyCode::Char('a') if ctrl => self.move_to(0),
            KeyCode::Char('e') if ctrl => self.move_to(self.len()),
            KeyCode::Char(_) if ctrl || key.modifiers.contains(KeyModifiers::ALT) => Edit::Ignored,
            KeyCode::Char(c) => {
                self.insert(c);
                Edit::Changed
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let (a, b) = (self.byte_at(self.cursor - 1), self.byte_at(self.cursor));
                self.text.replace_range(a..b, "");
                self.cursor -= 1;
                Edit::Changed
            }
            KeyCode::Delete if self.cursor < self.len() => {
                let (a, b) = (self.byte_at(self.cursor), self.byte_at(self.cursor + 1));
                self.text.replace_range(a..b, "");
                Edit::Changed
            }
            KeyCode::Left if self.cursor > 0 => self.move_to(self.cursor - 1),
            KeyCode::Right if self.cursor < self.len() => self.move_to(self.cursor + 1),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(self.len()),
            _ => Edit::Ignored,
        }
    }

    fn move_to(&mut self, at: usize) -> Edit {
        self.cursor = at;
        Edit::Moved
    }

    /// `prompt`, then as much of the text as fits in `width` columns with
    /// the cursor in view; `…` marks text scrolled out on either side.
    pub fn line(&self, prompt: &str, width: usize, focused: bool, t: &Theme) -> Line<'static> {
        let chars: Vec<char> = self.text.chars().collect();
        let room = width.saturating_sub(prompt.chars().count() + 1).max(4);
        let (mut start, mut end) = (0, chars.len());
        if chars.len() >= room {
            // Keep the cursor a little away from the right edge.
            start = (self.cursor + 2).saturating_sub(room).min(self.cursor);
            end = (start + room).min(chars.len());
        }
        let mut body: String = chars[start..end].iter().collect();
        let cursor_col = self.cursor - start;
        if start > 0 {
            body.replace_range(..body.char_indices().nth(1).map_or(0, |(i, _)| i), "…");
        }
        if end < chars.len() && end > start + 1 {
            body.pop();
            body.push('…');
        }
        let (before, after): (String, String) = {
            let b: Vec<char> = body.chars().collect();
            let at = cursor_col.min(b.len());
            (b[..at].iter().collect(), b[at..].iter().collect())
        };
        let mut spans = vec![Span::styled(prompt.to_string(), t.key()), Span::raw(before)];
        if focused {
            spans.push(Span::styled("▏", t.key()));
        }
        spans.push(Span::raw(after));
        Line::from(spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(f: &mut TextField, code: KeyCode, m: KeyModifiers) -> Edit {
        f.key(KeyEvent::new(code, m))
    }

    #[test]
    fn editing_keys() {
        let mut f = TextField::new("/srv/paperless/media");
        assert_eq!(
            k(&mut f, KeyCode::Char('w'), KeyModifiers::CONTROL),
            Edit::Changed
        );
        assert_eq!(f.text(), "/srv/paperless/");
        k(&mut f, KeyCode::Char('w'), KeyModifiers::CONTROL);
        assert_eq!(f.text(), "/srv/paperless");
        k(&mut f, KeyCode::Home, KeyModifiers::NONE);
        k(&mut f, KeyCode::Char('x'), KeyModifiers::NONE);
        assert_eq!(f.text(), "x/srv/paperless");
        k(&mut f, KeyCode::End, KeyModifiers::NONE);
        k(&mut f, KeyCode::Backspace, KeyModifiers::NONE);
        assert_eq!(f.text(), "x/srv/paperles");
        k(&mut f, KeyCode::Char('u'), KeyModifiers::CONTROL);
        assert!(f.is_empty());
        assert_eq!(f.paste("/a/b\n"), Edit::Changed);
        assert_eq!(f.text(), "/a/b");
        f.paste("c\nd");
        assert_eq!(f.text(), "/a/bc d");
    }

    #[test]
    fn a_long_text_scrolls_to_the_cursor() {
        let t = Theme { color: false };
        let f = TextField::new(&"a".repeat(100));
        let text: String = f
            .line("> ", 20, true, &t)
            .spans
            .iter()
            .map(|s| s.content.to_string())
            .collect();
        assert!(text.chars().count() <= 20, "{text}");
        assert!(text.starts_with("> …") && text.ends_with('▏'), "{text}");
    }
}
