//! Markdown → [`Runbook`]. A runbook stays a readable document: `##`
//! headings are steps, `sh` and `lifeboat` fenced blocks are what a step
//! does, `- [ ]` checkboxes are things a person confirms, and everything
//! else is prose shown alongside. Problems carry the line they are on.

use super::{Action, AppliesTo, FrontLines, Input, Item, Problem, Runbook, Scope, Step};
use crate::model::Tier;
use pulldown_cmark::{
    CodeBlockKind, Event, HeadingLevel, MetadataBlockKind, Options, Parser, Tag, TagEnd,
};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// Shell commands that say nothing get this long before they are stopped.
pub const DEFAULT_SHELL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `wait-for` keeps trying by default.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: Spanned<String>,
    title: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    applies_to: RawAppliesTo,
    #[serde(default)]
    scope: Option<Spanned<String>>,
    #[serde(default)]
    requires_stopped: bool,
    #[serde(default)]
    inputs: Vec<RawInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppliesTo {
    #[serde(default)]
    kinds: Vec<Spanned<String>>,
    #[serde(default)]
    services: Vec<Spanned<String>>,
    #[serde(default)]
    tiers: Vec<Tier>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    name: Spanned<String>,
    prompt: String,
    default: Option<String>,
}

/// Byte offset → 1-based line number.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        Lines(text.match_indices('\n').map(|(i, _)| i).collect())
    }
    fn at(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

/// Parses one runbook. A runbook with problems still comes back as far as
/// it could be read, so `runbook check` reports every problem at once.
pub fn parse(file: &Path, text: &str) -> (Option<Runbook>, Vec<Problem>) {
    // A UTF-8 byte order mark is not part of the markdown (configs accept
    // one too); without this the front matter would not be found.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = Lines::new(text);
    let mut problems = Vec::new();
    let problem = |line: usize, message: String| Problem {
        file: file.to_path_buf(),
        line,
        message,
    };
    let opts = Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS | Options::ENABLE_TASKLISTS;
    let mut front: Option<(usize, String)> = None;
    let mut steps: Vec<Step> = Vec::new();
    // State while walking the events.
    let mut in_meta: Option<usize> = None;
    let mut heading: Option<(usize, String, HeadingLevel)> = None;
    let mut code: Option<(usize, String, String)> = None;
    let mut task: Option<(usize, String)> = None;
    let mut para: Option<String> = None;
    for (ev, range) in Parser::new_ext(text, opts).into_offset_iter() {
        match ev {
            Event::Start(Tag::MetadataBlock(MetadataBlockKind::PlusesStyle)) => {
                in_meta = Some(lines.at(range.start));
            }
            Event::End(TagEnd::MetadataBlock(_)) => in_meta = None,
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some((lines.at(range.start), String::new(), level));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((line, title, level)) = heading.take() {
                    if level == HeadingLevel::H2 {
                        let title = title.trim().to_string();
                        let (title, optional) = match title.strip_suffix("(optional)") {
                            Some(t) => (t.trim().to_string(), true),
                            None => (title, false),
                        };
                        steps.push(Step {
                            title,
                            line,
                            optional,
                            text: String::new(),
                            items: Vec::new(),
                        });
                    }
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let line = lines.at(range.start);
                // Markdown lets a fence run to the end of the file; in a
                // runbook that swallows the steps after it unseen.
                if !fence_is_closed(&text[range.clone()]) {
                    problems.push(problem(
                        line,
                        "this code block is never closed: end it with a line of the same fence (```)".into(),
                    ));
                }
                code = Some((line, info.to_string(), String::new()));
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((line, info, body)) = code.take() {
                    let items =
                        code_items(line, &info, &body, &mut |l, m| problems.push(problem(l, m)));
                    if !items.is_empty() {
                        match steps.last_mut() {
                            Some(s) => s.items.extend(items),
                            None => problems.push(problem(
                                line,
                                "an action before the first `## step` heading: put it under one"
                                    .into(),
                            )),
                        }
                    }
                }
            }
            Event::TaskListMarker(_) => task = Some((lines.at(range.start), String::new())),
            Event::End(TagEnd::Item) => {
                if let Some((line, t)) = task.take() {
                    match steps.last_mut() {
                        Some(s) => s.items.push(Item::Manual {
                            line,
                            text: t.trim().to_string(),
                        }),
                        None => problems.push(problem(
                            line,
                            "a checkbox before the first `## step` heading: put it under one"
                                .into(),
                        )),
                    }
                }
            }
            Event::Start(Tag::Paragraph) if task.is_none() => para = Some(String::new()),
            Event::End(TagEnd::Paragraph) => {
                if let (Some(p), Some(s)) = (para.take(), steps.last_mut()) {
                    if s.text.is_empty() {
                        s.text = p.trim().to_string();
                    }
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(line) = in_meta {
                    front
                        .get_or_insert_with(|| (line, String::new()))
                        .1
                        .push_str(&t);
                } else if let Some((_, _, body)) = &mut code {
                    body.push_str(&t);
                } else if let Some((_, title, _)) = &mut heading {
                    title.push_str(&t);
                } else if let Some((_, text)) = &mut task {
                    text.push_str(&t);
                } else if let Some(p) = &mut para {
                    p.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((_, text)) = &mut task {
                    text.push(' ');
                } else if let Some(p) = &mut para {
                    p.push(' ');
                }
            }
            _ => {}
        }
    }

    let Some((meta_line, meta)) = front else {
        problems.push(problem(
            1,
            "no front matter: start the file with a `+++` block holding id and title".into(),
        ));
        return (None, problems);
    };
    let fm: FrontMatter = match toml::from_str(&meta) {
        Ok(f) => f,
        Err(e) => {
            // The TOML starts on the line after the opening `+++`.
            let line = e
                .span()
                .map(|s| meta_line + Lines::new(&meta).at(s.start))
                .unwrap_or(meta_line);
            problems.push(problem(
                line,
                format!("front matter: {}", e.message().trim().replace('\n', "; ")),
            ));
            return (None, problems);
        }
    };
    // The TOML starts on the line after the opening `+++`.
    let meta_lines = Lines::new(&meta);
    let line_of = |v: &Spanned<String>| meta_line + meta_lines.at(v.span().start);
    let scope = match fm.scope.as_ref().map(|s| (s, s.get_ref().as_str())) {
        None | Some((_, "service")) => Scope::Service,
        Some((_, "host")) => Scope::Host,
        Some((_, "all")) => Scope::All,
        Some((at, other)) => {
            problems.push(problem(
                line_of(at),
                format!("front matter: unknown scope `{other}` (scopes: service, host, all)"),
            ));
            Scope::Service
        }
    };
    let id = fm.id.get_ref();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        problems.push(problem(
            line_of(&fm.id),
            format!("front matter: id `{id}` may contain only letters, digits and `-`"),
        ));
    }
    let mut seen = std::collections::HashMap::new();
    for i in &fm.inputs {
        if let Some(first) = seen.insert(i.name.get_ref().as_str(), line_of(&i.name)) {
            problems.push(problem(
                line_of(&i.name),
                format!(
                    "front matter: input `{}` is already defined on line {first}: give each input its own name",
                    i.name.get_ref()
                ),
            ));
        }
    }
    if steps.is_empty() {
        problems.push(problem(
            meta_line,
            "no steps: each `## heading` is a step".into(),
        ));
    }
    let front_lines = FrontLines {
        id: line_of(&fm.id),
        kinds: fm.applies_to.kinds.iter().map(line_of).collect(),
        services: fm.applies_to.services.iter().map(line_of).collect(),
    };
    let rb = Runbook {
        file: file.to_path_buf(),
        id: fm.id.into_inner(),
        title: fm.title,
        summary: fm.summary,
        applies_to: AppliesTo {
            kinds: fm
                .applies_to
                .kinds
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            services: fm
                .applies_to
                .services
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            tiers: fm.applies_to.tiers,
        },
        scope,
        requires_stopped: fm.requires_stopped,
        inputs: fm
            .inputs
            .into_iter()
            .map(|i| Input {
                name: i.name.into_inner(),
                prompt: i.prompt,
                default: i.default,
            })
            .collect(),
        front_matter_line: meta_line,
        front_lines,
        steps,
    };
    (Some(rb), problems)
}

/// Whether a fenced block's source (from its opening fence to where the
/// parser ended it) ends with a closing fence: at least as many of the
/// same fence character, and nothing else on the line.
fn fence_is_closed(block: &str) -> bool {
    // Inside a list or a quote the markers and indentation come first.
    let mut lines = block.lines().map(|l| {
        l.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
            .trim_end()
    });
    let Some(open) = lines.next() else {
        return false;
    };
    let Some(ch) = open.chars().next() else {
        return false;
    };
    let width = open.chars().take_while(|c| *c == ch).count();
    let Some(last) = lines.rfind(|l| !l.is_empty()) else {
        return false;
    };
    last.chars().all(|c| c == ch) && last.chars().count() >= width
}

/// The executable items of one fenced block. Blocks in other languages
/// (`text`, `toml`, `console`) are examples for the reader, not actions.
fn code_items(
    line: usize,
    info: &str,
    body: &str,
    problem: &mut dyn FnMut(usize, String),
) -> Vec<Item> {
    let mut words = info
        .split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == ',')
        .filter(|w| !w.is_empty());
    let lang = words.next().unwrap_or("");
    match lang {
        "sh" | "bash" => {
            let mut timeout = DEFAULT_SHELL_TIMEOUT;
            let mut confirm = false;
            let mut may_fail = false;
            for w in words {
                match w.split_once('=') {
                    Some(("timeout", v)) => match humantime::parse_duration(v) {
                        Ok(d) => timeout = d,
                        Err(e) => problem(line, format!("timeout `{v}`: {e} (like 30s, 5m)")),
                    },
                    None if w == "confirm" => confirm = true,
                    None if w == "may-fail" => may_fail = true,
                    _ => problem(
                        line,
                        format!("unknown shell option `{w}` (options: timeout=DURATION, confirm, may-fail)"),
                    ),
                }
            }
            vec![Item::Shell {
                line: line + 1,
                command: body.trim_end().to_string(),
                timeout,
                confirm,
                may_fail,
            }]
        }
        "lifeboat" => body
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .filter_map(|(i, l)| match parse_action(l) {
                Ok(action) => Some(Item::Lifeboat {
                    line: line + 1 + i,
                    action,
                }),
                Err(m) => {
                    problem(line + 1 + i, m);
                    None
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One line of a `lifeboat` block: an action name, then `key=value`
/// options (wait-for takes its kind and address first).
pub fn parse_action(text: &str) -> Result<Action, String> {
    let mut words = text.split_whitespace();
    let name = words.next().unwrap_or("");
    let mut positional = Vec::new();
    let mut opts = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.contains(':') && !k.contains('/') => {
                opts.push((k.to_string(), v.to_string()))
            }
            _ => positional.push(w.to_string()),
        }
    }
    let mut take = |allowed: &[&str]| -> Result<Vec<(String, String)>, String> {
        for (k, _) in &opts {
            if !allowed.contains(&k.as_str()) {
                return Err(format!(
                    "`{name}` has no option `{k}` (options: {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ));
            }
        }
        Ok(std::mem::take(&mut opts))
    };
    let get = |o: &[(String, String)], k: &str| {
        o.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };
    let timeout = |o: &[(String, String)]| -> Result<Duration, String> {
        match get(o, "timeout") {
            None => Ok(DEFAULT_WAIT_TIMEOUT),
            Some(v) => humantime::parse_duration(&v).map_err(|e| format!("timeout `{v}`: {e}")),
        }
    };
    let no_positional = |p: &[String]| -> Result<(), String> {
        match p.first() {
            Some(w) => Err(format!(
                "`{name}` takes no argument `{w}` (options are key=value)"
            )),
            None => Ok(()),
        }
    };
    let action = match name {
        "restore" => {
            no_positional(&positional)?;
            let o = take(&["path", "to", "from", "kinds"])?;
            let kinds: Vec<String> = get(&o, "kinds")
                .map(|k| k.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default();
            if let Some(k) = kinds.iter().find(|k| !super::KINDS.contains(&k.as_str())) {
                return Err(format!(
                    "restore kinds=: unknown source kind `{k}` (kinds: {})",
                    super::KINDS.join(", ")
                ));
            }
            if !kinds.is_empty() && get(&o, "path").is_some() {
                return Err("restore takes path= or kinds=, not both".into());
            }
            Action::Restore {
                path: get(&o, "path"),
                to: get(&o, "to").unwrap_or_else(|| "live".into()),
                from: get(&o, "from"),
                kinds,
            }
        }
        "check" => {
            no_positional(&positional)?;
            let o = take(&["path"])?;
            Action::Check { path: get(&o, "path") }
        }
        "verify" => {
            no_positional(&positional)?;
            take(&[])?;
            Action::Verify
        }
        "drill" => {
            no_positional(&positional)?;
            take(&[])?;
            Action::Drill
        }
        "backup" => {
            no_positional(&positional)?;
            take(&[])?;
            Action::Backup
        }
        "rollback" => {
            no_positional(&positional)?;
            let o = take(&["restore"])?;
            Action::Rollback {
                restore: get(&o, "restore")
                    .ok_or("rollback needs restore=ID (a restore or job id)")?,
            }
        }
        "stop" | "start" => {
            no_positional(&positional)?;
            take(&[])?;
            if name == "stop" {
                Action::Stop
            } else {
                Action::Start
            }
        }
        "wait-for" => {
            let o = take(&["timeout"])?;
            let t = timeout(&o)?;
            match positional.as_slice() {
                [kind, addr] if kind == "tcp" => Action::WaitTcp {
                    addr: addr.clone(),
                    timeout: t,
                },
                [kind, url] if kind == "http" => Action::WaitHttp {
                    url: url.clone(),
                    timeout: t,
                },
                _ => {
                    return Err(
                        "wait-for needs `tcp HOST:PORT` or `http URL` (and optionally timeout=2m)"
                            .into(),
                    )
                }
            }
        }
        "" => return Err("empty action".into()),
        other => {
            return Err(format!(
                "unknown action `{other}` (actions: restore, check, verify, drill, backup, rollback, stop, start, wait-for)"
            ))
        }
    };
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"+++
id = "demo"
title = "A demo"
applies_to = { kinds = ["files"] }
[[inputs]]
name = "path"
prompt = "Which path?"
+++

# A demo

Intro prose.

## Stop the application

Why we stop it.

```lifeboat
stop
```

## Restore (optional)

```lifeboat
restore path={{input.path}}
wait-for tcp localhost:8000 timeout=1m
```

```sh {timeout=30s confirm}
echo {{service.name}}
```

- [ ] Look at the file
"#;

    #[test]
    fn reads_steps_actions_and_checkboxes_with_lines() {
        let (rb, problems) = parse(Path::new("x.md"), GOOD);
        assert!(problems.is_empty(), "{problems:?}");
        let rb = rb.unwrap();
        assert_eq!(rb.id, "demo");
        assert_eq!(rb.inputs[0].name, "path");
        assert_eq!(rb.steps.len(), 2);
        assert_eq!(rb.steps[0].title, "Stop the application");
        assert_eq!(rb.steps[0].text, "Why we stop it.");
        assert_eq!(rb.steps[0].line, 14);
        assert!(rb.steps[1].optional);
        let items = &rb.steps[1].items;
        assert_eq!(items.len(), 4, "{items:?}");
        assert!(
            matches!(&items[0], Item::Lifeboat { line: 25, action: Action::Restore { path: Some(p), .. } } if p == "{{input.path}}")
        );
        assert!(matches!(
            &items[1],
            Item::Lifeboat {
                line: 26,
                action: Action::WaitTcp { .. }
            }
        ));
        assert!(
            matches!(&items[2], Item::Shell { confirm: true, timeout, .. } if *timeout == Duration::from_secs(30))
        );
        assert!(matches!(&items[3], Item::Manual { text, line: 33 } if text == "Look at the file"));
    }

    #[test]
    fn problems_name_their_line() {
        let bad = GOOD.replace("stop\n", "explode now\n");
        let (_, problems) = parse(Path::new("x.md"), &bad);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 19);
        assert!(problems[0].message.contains("unknown action `explode`"));

        let bad = GOOD.replace("title = \"A demo\"", "title = A demo");
        let (rb, problems) = parse(Path::new("x.md"), &bad);
        assert!(rb.is_none());
        assert_eq!(problems[0].line, 3, "{problems:?}");

        let bad = GOOD.replace("title = \"A demo\"", "title = \"A\"\ncolour = \"red\"");
        let (_, problems) = parse(Path::new("x.md"), &bad);
        assert_eq!(problems[0].line, 4, "{problems:?}");
        assert!(problems[0].message.contains("colour"), "{problems:?}");
    }

    #[test]
    fn a_duplicate_input_is_reported_at_its_line() {
        let bad = GOOD.replace(
            "prompt = \"Which path?\"\n",
            "prompt = \"Which path?\"\n[[inputs]]\nname = \"path\"\nprompt = \"Again?\"\n",
        );
        let (_, problems) = parse(Path::new("x.md"), &bad);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 9, "{problems:?}");
        assert!(
            problems[0].message.contains("already defined on line 6"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unclosed_last_fence_is_reported_at_its_line() {
        let bad = format!("{GOOD}\n## Clean up\n\n```sh\nrm -rf /tmp/x\n");
        let (_, problems) = parse(Path::new("x.md"), &bad);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 37, "{problems:?}");
        assert!(problems[0].message.contains("never closed"), "{problems:?}");
        // Closed fences, longer closing fences and fences in quotes are fine.
        let ok = format!("{GOOD}\n> ```text\n> quoted\n> ```\n\n````sh\necho\n`````\n");
        let (_, problems) = parse(Path::new("x.md"), &ok);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn front_matter_values_are_reported_at_their_own_line() {
        let bad = GOOD.replace("id = \"demo\"", "id = \"demo\"\nscope = \"galaxy\"");
        let (_, problems) = parse(Path::new("x.md"), &bad);
        assert_eq!(problems[0].line, 3, "{problems:?}");
        let bad = GOOD.replace("id = \"demo\"", "# its id\nid = \"de mo\"");
        let (_, problems) = parse(Path::new("x.md"), &bad);
        assert_eq!(problems[0].line, 3, "{problems:?}");
        let (rb, _) = parse(Path::new("x.md"), GOOD);
        let rb = rb.unwrap();
        assert_eq!(
            (rb.front_lines.id, rb.front_lines.kinds.as_slice()),
            (2, &[4][..])
        );
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let (rb, problems) = parse(Path::new("x.md"), &format!("\u{feff}{GOOD}"));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rb.unwrap().steps[0].line, 14);
    }
}
