//! Output that fits the terminal it is read on. On a terminal, tables are
//! cut to its width (an SSH session on a phone is 80 columns or less) and
//! summaries break between clauses; off a terminal, values are printed
//! whole, so a script gets whole paths.

use std::io::IsTerminal;

/// Tables are never cut narrower than this: below it, columns would be
/// nothing but ellipses.
const NARROWEST: usize = 60;

/// What a line may take when its width is unknown (not a terminal).
pub const DEFAULT: usize = 80;

/// The width of the terminal stdout is, or None when stdout is not one.
pub fn terminal_columns() -> Option<usize> {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct we pass,
    // and stdout stays open for the duration of the call.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    Some(if ok && ws.ws_col > 0 {
        usize::from(ws.ws_col).max(NARROWEST)
    } else {
        DEFAULT
    })
}

/// The width summaries are broken at: the terminal's, else 80.
pub fn line_width() -> usize {
    terminal_columns().unwrap_or(DEFAULT)
}

pub fn columns(s: &str) -> usize {
    s.chars().count()
}

/// `s` in at most `w` columns, its end cut off with an ellipsis.
pub fn cut_end(s: &str, w: usize) -> String {
    if columns(s) <= w {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(w.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `s` in at most `w` columns, its start cut off with an ellipsis: for a
/// path, whose file name is what tells entries apart.
pub fn cut_start(s: &str, w: usize) -> String {
    let n = columns(s);
    if n <= w {
        return s.to_string();
    }
    let keep = w.saturating_sub(1);
    let mut cut = String::from("…");
    cut.extend(s.chars().skip(n - keep));
    cut
}

/// Clauses joined with `sep` on as few lines as fit `width`; a clause
/// that starts a continuation line is indented two spaces. A clause is
/// never split, so what a script greps for stays on one line.
pub fn clauses(parts: &[String], sep: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let piece = if last {
            part.clone()
        } else {
            format!("{part}{}", sep.trim_end())
        };
        if line.is_empty() {
            line = if lines.is_empty() {
                piece
            } else {
                format!("  {piece}")
            };
        } else if columns(&line) + 1 + columns(&piece) <= width {
            line.push(' ');
            line.push_str(&piece);
        } else {
            lines.push(std::mem::take(&mut line));
            line = format!("  {piece}");
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// How a table column gives up room on a narrow terminal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Never: ids, sizes.
    Never,
    /// From the end, with an ellipsis: names, tags.
    End,
    /// From the start, with an ellipsis, keeping the file name: paths.
    Start,
    /// From the end, silently: a time loses its seconds.
    Clip,
}

pub struct Column {
    pub header: &'static str,
    pub right: bool,
    pub cut: Cut,
    /// Cut no narrower than this before dropping optional columns.
    pub soft_min: usize,
    /// May be left out altogether when even cut columns do not fit.
    pub optional: bool,
}

impl Column {
    pub fn new(header: &'static str) -> Column {
        Column {
            header,
            right: false,
            cut: Cut::Never,
            soft_min: 0,
            optional: false,
        }
    }
    pub fn right(mut self) -> Column {
        self.right = true;
        self
    }
    pub fn cut(mut self, cut: Cut, soft_min: usize) -> Column {
        self.cut = cut;
        self.soft_min = soft_min;
        self
    }
    pub fn optional(mut self) -> Column {
        self.optional = true;
        self
    }
}

/// Between columns: two spaces, so wide numbers never run together.
const GAP: usize = 2;

/// The header and rows as lines. With a `width` (a terminal), columns are
/// cut and optional ones left out until the lines fit; without one every
/// value is whole.
pub fn table(cols: &[Column], rows: &[Vec<String>], width: Option<usize>) -> Vec<String> {
    let natural: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|v| columns(v))
                .chain([columns(c.header)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut widths = natural.clone();
    let mut shown: Vec<bool> = vec![true; cols.len()];
    if let Some(width) = width {
        let total = |widths: &[usize], shown: &[bool]| {
            let (sum, n) = widths
                .iter()
                .zip(shown)
                .filter(|(_, s)| **s)
                .fold((0usize, 0usize), |(sum, n), (w, _)| (sum + w, n + 1));
            sum + GAP * n.saturating_sub(1)
        };
        let shrink = |widths: &mut [usize], shown: &[bool], floor: &dyn Fn(&Column) -> usize| {
            while total(widths, shown) > width {
                let widest = (0..cols.len())
                    .filter(|&i| shown[i] && cols[i].cut != Cut::Never)
                    .filter(|&i| widths[i] > floor(&cols[i]))
                    .max_by_key(|&i| widths[i] - floor(&cols[i]));
                match widest {
                    // A time loses its seconds at once, not digit by digit.
                    Some(i) if cols[i].cut == Cut::Clip => widths[i] = floor(&cols[i]),
                    Some(i) => widths[i] -= 1,
                    None => break,
                }
            }
        };
        let soft = |c: &Column| c.soft_min.max(columns(c.header));
        // Cut what can be cut; if that is not enough, leave an optional
        // column out and cut again from whole values, so the room it
        // gave goes to the others.
        loop {
            widths.clone_from(&natural);
            shrink(&mut widths, &shown, &soft);
            if total(&widths, &shown) <= width {
                break;
            }
            match (0..cols.len()).find(|&i| shown[i] && cols[i].optional) {
                Some(i) => shown[i] = false,
                None => break,
            }
        }
        shrink(&mut widths, &shown, &|c| match c.cut {
            Cut::Clip => soft(c),
            _ => columns(c.header).max(4),
        });
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, c) in cols.iter().enumerate().filter(|(i, _)| shown[*i]) {
            let w = widths[i];
            let v = cells.get(i).map(String::as_str).unwrap_or_default();
            let v = match c.cut {
                Cut::Never => v.to_string(),
                Cut::End => cut_end(v, w),
                Cut::Start => cut_start(v, w),
                Cut::Clip => v.chars().take(w).collect(),
            };
            if !out.is_empty() {
                out.push_str(&" ".repeat(GAP));
            }
            let pad = " ".repeat(w.saturating_sub(columns(&v)));
            if c.right {
                out.push_str(&pad);
                out.push_str(&v);
            } else {
                out.push_str(&v);
                out.push_str(&pad);
            }
        }
        out.trim_end().to_string()
    };
    let header: Vec<String> = cols.iter().map(|c| c.header.to_string()).collect();
    std::iter::once(line(&header))
        .chain(rows.iter().map(|r| line(r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_the_end_of_a_path_and_the_start_of_a_word() {
        assert_eq!(cut_start("/srv/app/data/app.sqlite3", 12), "…app.sqlite3");
        assert_eq!(cut_end("nightly,before-upgrade", 8), "nightly…");
        assert_eq!(cut_start("short", 12), "short");
        assert_eq!(columns(&cut_start("/a/very/long/path/name", 10)), 10);
    }

    #[test]
    fn clauses_break_between_clauses_never_inside_one() {
        let parts = vec!["a".repeat(50), "b".repeat(20), "c".repeat(20)];
        let lines = clauses(&parts, "; ", 80);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| columns(l) <= 80), "{lines:?}");
        assert!(lines[1].starts_with("  c"), "{lines:?}");
        assert_eq!(clauses(&["x".into(), "y".into()], ", ", 80), vec!["x, y"]);
    }

    #[test]
    fn a_table_fits_its_width_by_cutting_then_dropping() {
        let cols = [
            Column::new("ID"),
            Column::new("TIME").cut(Cut::Clip, 16).optional(),
            Column::new("SIZE").right(),
            Column::new("PATH").cut(Cut::Start, 20),
        ];
        let rows = vec![vec![
            "abcd1234".to_string(),
            "2026-12-02 06:53:12".into(),
            "190.73 MiB".into(),
            format!("/srv/{}/app.sqlite3", "d".repeat(80)),
        ]];
        let whole = table(&cols, &rows, None);
        assert!(whole[1].ends_with(&rows[0][3]), "{whole:?}");
        assert!(whole[1].contains("06:53:12  190.73 MiB"), "{whole:?}");
        let narrow = table(&cols, &rows, Some(60));
        assert!(narrow.iter().all(|l| columns(l) <= 60), "{narrow:?}");
        assert!(narrow[1].ends_with("/app.sqlite3"), "{narrow:?}");
        assert!(narrow[1].contains("2026-12-02 06:53  "), "{narrow:?}");
        let tiny = table(&cols, &rows, Some(40));
        assert!(!tiny[0].contains("TIME"), "{tiny:?}");
        assert!(tiny.iter().all(|l| columns(l) <= 40), "{tiny:?}");
    }
}
