//! `{{name}}` variables: filled from the inventory (the service, its
//! repository), the wizard's choices (the restore point, inputs) and the
//! job. In shell commands every value is single-quoted, so a path with a
//! space or a `;` is one argument, never a second command.

use std::collections::BTreeMap;

/// Variables every runbook may use, besides `input.NAME` for its inputs.
pub const KNOWN: [&str; 12] = [
    "service.name",
    "service.host",
    "service.tier",
    "service.description",
    "service.repository",
    "service.paths",
    "point.id",
    "point.time",
    "repository.name",
    "repository.path",
    "state_dir",
    "job.id",
];

pub type Vars = BTreeMap<String, String>;

pub fn is_known(name: &str, inputs: &[&str]) -> bool {
    KNOWN.contains(&name)
        || name
            .strip_prefix("input.")
            .is_some_and(|i| inputs.contains(&i))
}

/// The names used in `text`, trimmed (`{{ service.name }}` is allowed).
pub fn names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    out
}

/// Quotes a value for `sh -c`.
pub fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c))
    {
        return v.to_string();
    }
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// Fills every `{{name}}`; an unknown name is an error naming it.
pub fn fill(text: &str, vars: &Vars, quote: bool) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("an unclosed `{{`".into());
        };
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("undefined variable `{{{{{name}}}}}`"))?;
        if quote {
            out.push_str(&shell_quote(value));
        } else {
            out.push_str(value);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_quotes() {
        let mut v = Vars::new();
        v.insert("service.name".into(), "paperless".into());
        v.insert("input.path".into(), "/srv/a b;rm -rf /".into());
        assert_eq!(
            fill("ls {{ input.path }} {{service.name}}", &v, true).unwrap(),
            "ls '/srv/a b;rm -rf /' paperless"
        );
        assert_eq!(
            fill("{{input.path}}", &v, false).unwrap(),
            "/srv/a b;rm -rf /"
        );
        assert!(fill("{{nope}}", &v, false).unwrap_err().contains("nope"));
        assert_eq!(names("a {{x}} b {{ y.z }}"), vec!["x", "y.z"]);
        assert!(is_known("input.path", &["path"]));
        assert!(!is_known("input.other", &["path"]));
    }
}
