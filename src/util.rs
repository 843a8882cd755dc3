//! Small formatting helpers shared by the front ends.

/// 1.4 GiB, 812 MiB, 512 B.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// "3h", "2d 4h", "45m": short enough for a table cell.
pub fn short_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 if s % 3600 < 60 => format!("{}h", s / 3600),
        3600..=86399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ if s % 86400 < 3600 => format!("{}d", s / 86400),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// (total, available to unprivileged writers) bytes of the filesystem
/// holding `path`.
pub fn fs_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes into the struct we pass, and `c` is a
    // valid NUL-terminated path for the duration of the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some((s.f_blocks as u64 * frsize, s.f_bavail as u64 * frsize))
}

/// A running process, named so that a later look can tell whether it is
/// certainly gone: same host, same boot, and no process with that pid and
/// start time. A pid alone is reused after a reboot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    #[serde(default)]
    pub boot_id: String,
    /// Clock ticks since boot at which the process started (`/proc/PID/stat`).
    #[serde(default)]
    pub start: u64,
}

impl Holder {
    pub fn me() -> Holder {
        let pid = std::process::id();
        Holder {
            host: crate::paths::hostname(),
            pid,
            boot_id: boot_id(),
            start: process_start(pid).unwrap_or(0),
        }
    }

    /// True only when the holder is provably no longer running: on this
    /// host, and either the machine has rebooted since or no process with
    /// its pid and start time exists.
    pub fn is_gone(&self) -> bool {
        if self.host != crate::paths::hostname() {
            return false;
        }
        if !self.boot_id.is_empty() && self.boot_id != boot_id() {
            return true;
        }
        match process_start(self.pid) {
            None => true,
            Some(start) => self.start != 0 && start != self.start,
        }
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// When process `pid` started, or None when there is no such process (a
/// zombie counts as gone).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start
    // after the last `)`.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // Field 22 of the whole line is the 20th after the command name.
    fields.get(19)?.parse().ok()
}

/// A short random suffix for names that must not collide.
pub fn random_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Text that came from outside (a snapshot's file names, a host name, a
/// config value), safe to print on a terminal: control characters, which
/// could be terminal escapes, are shown escaped instead of sent.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().collect()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A reference to a secret, as the config gives it: a literal (a path, or
/// a value), `env:NAME` (the variable holds it) or `file:PATH` (a value on
/// the file's first line). Resolved only when a command needs it, so a
/// shell that lacks one timer's variable can still run everything else.
/// Printing it prints the reference, never the secret.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretRef {
    text: String,
    /// Where the config gives it (`file:line:col`), for messages.
    #[serde(skip)]
    at: String,
}

impl SecretRef {
    pub fn new(text: impl Into<String>, at: impl Into<String>) -> SecretRef {
        SecretRef {
            text: text.into(),
            at: at.into(),
        }
    }

    /// A path given directly (a command-line flag).
    pub fn literal(path: &std::path::Path) -> SecretRef {
        SecretRef::new(path.display().to_string(), "")
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn fail(&self, why: String) -> anyhow::Error {
        if self.at.is_empty() {
            anyhow::anyhow!("{why}")
        } else {
            anyhow::anyhow!("{}: {why}", self.at)
        }
    }

    /// The path it names: itself, or `env:NAME`'s value.
    pub fn path(&self) -> anyhow::Result<std::path::PathBuf> {
        match self.text.strip_prefix("env:") {
            Some(var) => std::env::var_os(var)
                .map(std::path::PathBuf::from)
                .ok_or_else(|| self.fail(format!("environment variable {var} is not set"))),
            None if self.text.is_empty() => Err(self.fail("empty path".into())),
            None => Ok(std::path::PathBuf::from(&self.text)),
        }
    }

    /// The value it names: itself, `env:NAME`'s value or `file:PATH`'s
    /// first line.
    pub fn value(&self) -> anyhow::Result<String> {
        if let Some(var) = self.text.strip_prefix("env:") {
            return std::env::var(var)
                .map_err(|_| self.fail(format!("environment variable {var} is not set")));
        }
        if let Some(path) = self.text.strip_prefix("file:") {
            return std::fs::read_to_string(path)
                .map(|t| t.lines().next().unwrap_or_default().trim().to_string())
                .map_err(|e| self.fail(format!("cannot read {path}: {e}")));
        }
        Ok(self.text.clone())
    }
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A literal may be the secret itself (an S3 key in the file).
        match self.text.split_once(':') {
            Some(("env" | "file", _)) => write!(f, "{:?}", self.text),
            _ => f.write_str("<secret>"),
        }
    }
}

/// "1 file", "3 files": a count and its noun (regular plurals only).
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if noun.ends_with('y') && !noun.ends_with("ey") {
        format!("{n} {}ies", &noun[..noun.len() - 1])
    } else {
        format!("{n} {noun}s")
    }
}

/// The candidate a mistyped `name` most likely meant: the closest within
/// an edit distance of a third of its length, but at least 2 for a name
/// of four letters or more (`fotos` is two edits from `photos`) and 1 for
/// a shorter one (transpositions count one).
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = name.chars().count();
    let limit = if len >= 4 { (len / 3).max(2) } else { 1 };
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// " (did you mean `x`?)", or nothing.
pub fn suggestion<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(name, candidates) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

/// Optimal string alignment distance, case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod words {
    use super::*;

    #[test]
    fn plurals_and_suggestions() {
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(2, "repository"), "2 repositories");
        assert_eq!(plural(0, "key"), "0 keys");
        let names = ["vaultwarden", "immich", "nextcloud"];
        assert_eq!(did_you_mean("valutwarden", names), Some("vaultwarden"));
        assert_eq!(did_you_mean("imich", names), Some("immich"));
        assert_eq!(did_you_mean("postgres", names), None);
    }

    #[test]
    fn names_of_four_letters_or_more_allow_two_edits() {
        let names = ["photos", "vaultwarden", "db", "git"];
        assert_eq!(did_you_mean("fotos", names), Some("photos"));
        assert_eq!(did_you_mean("photo", names), Some("photos"));
        assert_eq!(did_you_mean("vaultwardn", names), Some("vaultwarden"));
        // Short names keep one edit: `gt` is `git`, `xyz` is nothing.
        assert_eq!(did_you_mean("gt", names), Some("git"));
        assert_eq!(did_you_mean("xyz", names), None);
        assert_eq!(did_you_mean("dbx", names), Some("db"));
        // Two edits, but not of a four-letter name that is something else.
        assert_eq!(did_you_mean("mail", names), None);
    }
}
