//! `http` and `tcp` probes: the restored application answers.

use super::{Outcome, Target};
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The body is read this far for `contains`.
const MAX_BODY: u64 = 1 << 20;

pub(super) fn tcp(address: &str, timeout: Duration, target: &Target) -> Outcome {
    let address = match target.substitute(address, false) {
        Ok(a) => a,
        Err(e) => return Outcome::Skip(e),
    };
    let addrs: Vec<_> = match address.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Outcome::Fail(format!("{address} does not resolve: {e}")),
    };
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return Outcome::Pass(format!("{a} accepts connections")),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Outcome::Fail(format!("nothing accepts connections: {last}"))
}

pub(super) fn http(
    url: &str,
    status: Option<u16>,
    contains: Option<&str>,
    timeout: Duration,
    target: &Target,
) -> Outcome {
    let url = match target.substitute(url, false) {
        Ok(u) => u,
        Err(e) => return Outcome::Skip(e),
    };
    let contains = contains.map(str::to_string);
    let shown = url.clone();
    let read_body = contains.is_some();
    // reqwest's blocking client must not run on an async runtime's thread.
    let got = super::within(
        timeout + Duration::from_secs(1),
        move || -> Result<(u16, String), String> {
            let client = reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| e.to_string())?;
            let resp = client.get(&url).send().map_err(|e| e.to_string())?;
            let code = resp.status().as_u16();
            let mut body = String::new();
            if read_body {
                let _ = resp.take(MAX_BODY).read_to_string(&mut body);
            }
            Ok((code, body))
        },
    );
    let (code, body) = match got {
        None => return super::timed_out(timeout),
        Some(Err(e)) => return Outcome::Fail(format!("GET {shown} failed: {e}")),
        Some(Ok(r)) => r,
    };
    let status_ok = match status {
        Some(s) => code == s,
        None => (200..400).contains(&code),
    };
    if !status_ok {
        let want = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "2xx or 3xx".into());
        return Outcome::Fail(format!("GET {shown} answered {code}, expected {want}"));
    }
    if let Some(c) = contains {
        if !body.contains(&c) {
            return Outcome::Fail(format!(
                "GET {shown} answered {code} without {c:?} in its body"
            ));
        }
    }
    Outcome::Pass(format!("GET {shown} answered {code}"))
}
