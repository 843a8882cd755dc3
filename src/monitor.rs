//! Pinging monitors from jobs: Healthchecks-style check URLs (start,
//! success, fail with the log tail), ntfy topics (on failure), Uptime Kuma
//! push URLs, and a generic JSON webhook. Every ping has a timeout and is
//! retried; a ping that still fails is a warning (returned for the caller
//! to show, and logged), never a failed job.

use crate::config::{Monitor, MonitorKind};
use crate::logging::redact_url;
use std::time::Duration;

const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Healthchecks accepts up to 100 kB; the end of a log is what matters.
const TAIL_BYTES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Start,
    Success,
    Fail,
}

impl Event {
    fn word(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Success => "success",
            Event::Fail => "fail",
        }
    }
}

/// A monitor with its URL read (it may hold a token).
struct Target {
    kind: MonitorKind,
    url: String,
}

pub struct Pinger {
    targets: Vec<Target>,
    client: Option<reqwest::blocking::Client>,
    job: String,
    host: String,
    /// Ties start and end of one run together on the monitor's side.
    pub run_id: String,
    /// Why no monitor can be pinged, if none can.
    setup_problem: Option<String>,
}

fn with_suffix(url: &str, suffix: &str, query: &str) -> String {
    let (base, q) = match url.split_once('?') {
        Some((b, q)) => (b.trim_end_matches('/'), Some(q)),
        None => (url.trim_end_matches('/'), None),
    };
    let mut out = format!("{base}{suffix}");
    let all: Vec<&str> = q
        .into_iter()
        .chain((!query.is_empty()).then_some(query))
        .collect();
    if !all.is_empty() {
        out.push('?');
        out.push_str(&all.join("&"));
    }
    out
}

fn tail(s: &str) -> &str {
    if s.len() <= TAIL_BYTES {
        return s;
    }
    let mut start = s.len() - TAIL_BYTES;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Pinger {
    /// The monitors that want this job.
    pub fn new(monitors: &[Monitor], job: &str) -> Pinger {
        let mut problems = Vec::new();
        let mut targets = Vec::new();
        for m in monitors
            .iter()
            .filter(|m| m.jobs.is_empty() || m.jobs.iter().any(|j| j == job))
        {
            // Read now: a monitor whose `env:` variable this shell lacks is
            // a warning, never a job that cannot run.
            match m.url.value() {
                Ok(url) if url.starts_with("http://") || url.starts_with("https://") => targets
                    .push(Target {
                        kind: m.kind.clone(),
                        url,
                    }),
                Ok(_) => problems.push(format!(
                    "monitor {}: its URL does not start with http:// or https://; not pinged",
                    m.url.text()
                )),
                Err(e) => problems.push(format!("monitor not pinged: {e:#}")),
            }
        }
        let client = if targets.is_empty() {
            None
        } else {
            match reqwest::blocking::Client::builder()
                .timeout(TIMEOUT)
                .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
                .build()
            {
                Ok(c) => Some(c),
                Err(e) => {
                    return Pinger::without_client(
                        targets,
                        job,
                        format!("monitors will not be pinged: cannot set up HTTP ({e})"),
                    )
                }
            }
        };
        Pinger {
            targets,
            client,
            job: job.to_string(),
            host: crate::paths::hostname(),
            run_id: hex::encode(rand::random::<[u8; 8]>()),
            setup_problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }

    fn without_client(targets: Vec<Target>, job: &str, problem: String) -> Pinger {
        Pinger {
            targets,
            client: None,
            job: job.to_string(),
            host: crate::paths::hostname(),
            run_id: hex::encode(rand::random::<[u8; 8]>()),
            setup_problem: Some(problem),
        }
    }

    /// Each returns the warnings of pings that failed.
    pub fn start(&self) -> Vec<String> {
        let mut w: Vec<String> = self.setup_problem.iter().cloned().collect();
        w.extend(self.send(Event::Start, ""));
        w
    }

    pub fn success(&self, summary: &str) -> Vec<String> {
        self.send(Event::Success, summary)
    }

    pub fn fail(&self, log_tail: &str) -> Vec<String> {
        self.send(Event::Fail, tail(log_tail))
    }

    fn send(&self, event: Event, message: &str) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(client) = &self.client else {
            return warnings;
        };
        for m in &self.targets {
            let rid = format!("rid={}", self.run_id);
            let request = match (&m.kind, event) {
                (MonitorKind::Healthchecks, Event::Start) => {
                    client.post(with_suffix(&m.url, "/start", &rid))
                }
                (MonitorKind::Healthchecks, Event::Success) => client
                    .post(with_suffix(&m.url, "", &rid))
                    .body(message.to_string()),
                (MonitorKind::Healthchecks, Event::Fail) => client
                    .post(with_suffix(&m.url, "/fail", &rid))
                    .body(message.to_string()),
                // A phone buzzing for every good night is how alerts get muted.
                (MonitorKind::Ntfy, Event::Fail) => client
                    .post(&m.url)
                    .header(
                        "Title",
                        format!("Lifeboat {} failed on {}", self.job, self.host),
                    )
                    .header("Priority", "high")
                    .header("Tags", "warning")
                    .body(message.to_string()),
                (MonitorKind::Ntfy, _) => continue,
                (MonitorKind::UptimeKuma, Event::Start) => continue,
                (MonitorKind::UptimeKuma, e) => {
                    let status = if e == Event::Success { "up" } else { "down" };
                    let first = message.lines().next().unwrap_or(if e == Event::Success {
                        "OK"
                    } else {
                        "failed"
                    });
                    client.get(with_suffix(
                        &m.url,
                        "",
                        &format!("status={status}&msg={}", encode(first)),
                    ))
                }
                (MonitorKind::Webhook, e) => {
                    let body = serde_json::json!({
                        "source": "lifeboat", "event": e.word(), "job": self.job, "host": self.host,
                        "run_id": self.run_id, "time": crate::repo::snapshot::now_rfc3339(), "message": message,
                    });
                    client
                        .post(&m.url)
                        .header("Content-Type", "application/json")
                        .body(body.to_string())
                }
            };
            warnings.extend(self.deliver(m, request));
        }
        warnings
    }

    fn deliver(&self, m: &Target, request: reqwest::blocking::RequestBuilder) -> Option<String> {
        let mut last_err = String::new();
        for attempt in 0..ATTEMPTS {
            let Some(req) = request.try_clone() else {
                break;
            };
            match req.send() {
                Ok(r) if r.status().is_success() => return None,
                // 4xx will not get better by retrying.
                Ok(r) if r.status().is_client_error() => {
                    last_err = format!("HTTP {}", r.status());
                    break;
                }
                Ok(r) => last_err = format!("HTTP {}", r.status()),
                Err(e) => {
                    last_err = if e.is_timeout() {
                        "timed out".into()
                    } else if e.is_connect() {
                        "cannot connect".into()
                    } else {
                        "request failed".into()
                    }
                }
            }
            if attempt + 1 < ATTEMPTS {
                std::thread::sleep(Duration::from_millis(300 << attempt));
            }
        }
        let where_ = redact_url(&m.url);
        tracing::warn!(monitor = %where_, job = %self.job, error = %last_err, "ping failed");
        Some(format!(
            "could not ping {where_} ({last_err}); the {} itself is not affected",
            self.job
        ))
    }
}

/// Runs one job the way every job runs, whoever started it (a CLI command,
/// a recovery job from `recover` or the console, a scheduled run): its
/// start and end logged as JSON lines under `log_dir`, its monitors pinged
/// at the start and with success or failure and the tail of what it said.
/// `said` returns that text once the job is over. Warnings about logging
/// or pings go to `warn`; they never fail the job.
pub fn observe<T>(
    job: &str,
    monitors: &[Monitor],
    log_dir: &std::path::Path,
    succeeded: impl Fn(&T) -> bool,
    said: impl Fn() -> String,
    warn: impl Fn(String),
    run: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (_guard, log_problem) = crate::logging::init(log_dir);
    log_problem.into_iter().for_each(&warn);
    let pinger = Pinger::new(monitors, job);
    let started = std::time::Instant::now();
    tracing::info!(job, run_id = %pinger.run_id, host = %crate::paths::hostname(), "job started");
    pinger.start().into_iter().for_each(&warn);
    let result = run();
    let took = started.elapsed().as_millis() as u64;
    let log = said();
    match &result {
        Ok(v) if succeeded(v) => {
            tracing::info!(job, run_id = %pinger.run_id, outcome = "success", duration_ms = took, "job finished");
            pinger.success(&log).into_iter().for_each(&warn);
        }
        Ok(_) => {
            tracing::error!(job, run_id = %pinger.run_id, outcome = "failed", duration_ms = took, "job finished");
            pinger.fail(&log).into_iter().for_each(&warn);
        }
        Err(e) => {
            let e = crate::util::printable(&format!("{e:#}")).into_owned();
            tracing::error!(job, run_id = %pinger.run_id, outcome = "failed", duration_ms = took, error = %e, "job finished");
            pinger
                .fail(&format!("{log}\nerror: {e}"))
                .into_iter()
                .for_each(&warn);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_their_suffix_before_any_query() {
        assert_eq!(
            with_suffix("https://hc-ping.com/abc/", "/start", "rid=1"),
            "https://hc-ping.com/abc/start?rid=1"
        );
        assert_eq!(
            with_suffix("https://kuma/api/push/tok?a=b", "", "status=up"),
            "https://kuma/api/push/tok?a=b&status=up"
        );
        assert_eq!(
            redact_url("https://hc-ping.com/secret-uuid?x=1"),
            "https://hc-ping.com/…"
        );
        assert_eq!(encode("disk full: 100%"), "disk%20full%3A%20100%25");
        let long = "é".repeat(TAIL_BYTES);
        assert!(tail(&long).len() <= TAIL_BYTES && long.ends_with(tail(&long)));
    }
}
