//! A job report (markdown) as plain lines for the report pane: headings
//! and paragraphs as text, lists with bullets, tables as aligned columns
//! instead of raw pipes. Done once when the report is read, off the render
//! path.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Cells wider than this are cut: one long detail must not push every
/// other column off the screen.
const MAX_CELL: usize = 48;

pub fn to_lines(md: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut in_table = false;
    let mut cell = String::new();
    let flush = |line: &mut String, out: &mut Vec<String>| {
        if !line.trim().is_empty() {
            out.push(std::mem::take(line));
        }
        line.clear();
    };
    for ev in Parser::new_ext(md, Options::ENABLE_TABLES) {
        match ev {
            Event::Start(Tag::Table(_)) => {
                flush(&mut line, &mut out);
                in_table = true;
                table.clear();
            }
            Event::Start(Tag::TableHead) | Event::Start(Tag::TableRow) => table.push(Vec::new()),
            Event::End(TagEnd::TableCell) => {
                if let Some(row) = table.last_mut() {
                    row.push(std::mem::take(&mut cell).trim().to_string());
                }
            }
            Event::End(TagEnd::Table) => {
                in_table = false;
                out.extend(layout(&table));
                out.push(String::new());
            }
            Event::Start(Tag::Item) => {
                flush(&mut line, &mut out);
                line.push_str("• ");
            }
            Event::Text(t) | Event::Code(t) => {
                if in_table {
                    cell.push_str(&t);
                } else {
                    line.push_str(&t);
                }
            }
            Event::SoftBreak => line.push(' '),
            Event::HardBreak => flush(&mut line, &mut out),
            Event::End(TagEnd::Heading(_)) => {
                flush(&mut line, &mut out);
                out.push(String::new());
            }
            Event::End(TagEnd::Paragraph) => {
                let item = line.starts_with("• ");
                flush(&mut line, &mut out);
                if !item {
                    out.push(String::new());
                }
            }
            Event::End(TagEnd::Item) | Event::End(TagEnd::CodeBlock) => flush(&mut line, &mut out),
            _ => {}
        }
    }
    flush(&mut line, &mut out);
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_CELL {
        return s.to_string();
    }
    let mut c: String = s.chars().take(MAX_CELL - 1).collect();
    c.push('…');
    c
}

/// Rows (the first is the header) as columns padded to their widest cell,
/// with a rule under the header.
fn layout(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cut(c)).collect())
        .collect();
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = Vec::new();
    for (n, r) in rows.iter().enumerate() {
        let mut l = String::new();
        for (i, w) in widths.iter().enumerate() {
            let c = r.get(i).map(String::as_str).unwrap_or("");
            let pad = w.saturating_sub(c.chars().count());
            l.push_str(c);
            if i + 1 < cols {
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push(l.trim_end().to_string());
        if n == 0 {
            let total = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
            out.push("─".repeat(total));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_lines;

    #[test]
    fn tables_become_columns() {
        let md = "# Files deleted\n\nJob `x`, runbook `files-deleted`: **Success** in 9.0 s.\n\n## paperless\n\n| step | state | time |\n|---|---|---|\n| Confirm what is missing | ✓ Done | 1.0 s |\n| Check it | ✓ Done | 0.2 s |\n\n- [ ] one\n- two\n";
        let lines = to_lines(md);
        assert_eq!(lines[0], "Files deleted");
        assert!(lines.contains(&"Job x, runbook files-deleted: Success in 9.0 s.".to_string()));
        assert!(lines.iter().all(|l| !l.contains('|')), "{lines:#?}");
        let head = lines.iter().position(|l| l.starts_with("step")).unwrap();
        assert!(lines[head + 1].starts_with('─'));
        // The columns line up.
        let col = |l: &str| l.find("✓").unwrap();
        assert_eq!(col(&lines[head + 2]), col(&lines[head + 3]));
        assert!(lines.iter().any(|l| l == "• two"), "{lines:#?}");
    }
}
