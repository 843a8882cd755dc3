//! A repository served over HTTP by `lifeboat serve` (`rest:http://host:port/`).
//! The server decides what may be overwritten or deleted; this client
//! only says clearly when it refused.

use super::backend::{valid_name, Backend, Kind, ReadSeek};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::time::Duration;

/// A listing bigger than this is not believed (a million objects is
/// about 80 MiB of JSON).
const MAX_LISTING: u64 = 256 << 20;

/// Nor an object bigger than this (packs are 16 MiB by default).
const MAX_OBJECT: u64 = 1 << 30;

pub struct RestBackend {
    /// `http://host:port/prefix/`, always ending in `/`.
    base: String,
    client: reqwest::blocking::Client,
}

/// Is this location a REST repository?
pub fn is_rest(location: &str) -> bool {
    location.starts_with("rest:")
}

/// Checks `rest:http(s)://host[:port][/prefix/]` and returns the HTTP URL,
/// ending in `/`.
pub fn parse_url(location: &str) -> Result<String> {
    let Some(url) = location.strip_prefix("rest:") else {
        bail!("{location:?} is not a REST repository URL (rest:http://host:port/)");
    };
    let parsed = reqwest::Url::parse(url)
        .with_context(|| format!("{location:?} is not a URL like rest:http://127.0.0.1:8734/"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!("{location:?}: a REST repository is rest:http://host:port/ or rest:https://host/");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        bail!("{location:?}: a REST repository URL takes no query, fragment or user name");
    }
    let mut base = parsed.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    Ok(base)
}

impl RestBackend {
    pub fn new(location: &str) -> Result<RestBackend> {
        let base = parse_url(location)?;
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .context("starting the HTTP client")?;
        Ok(RestBackend { base, client })
    }

    fn url(&self, kind: Kind, name: &str) -> Result<String> {
        Ok(match kind {
            Kind::Config => format!("{}config", self.base),
            _ => {
                valid_name(name)?;
                format!("{}{}/{name}", self.base, kind.dir())
            }
        })
    }

    fn what(kind: Kind, name: &str) -> String {
        match kind {
            Kind::Config => "config".into(),
            _ => format!("{}/{name}", kind.dir()),
        }
    }

    /// The server was unreachable or refused: a store failure, never damage.
    fn failure(&self, what: String, refused_body: Option<String>) -> anyhow::Error {
        let hint = match refused_body {
            Some(_) => "the server is append-only: forget, prune and key changes run on the admin box, through a full `lifeboat serve` (without --append-only) or on the disk".to_string(),
            None => format!(
                "check that `lifeboat serve` is running and reachable at {} (docs/security.md)",
                self.base
            ),
        };
        let what = match refused_body {
            Some(body) => format!("{what}: {}", body.trim()),
            None => what,
        };
        crate::Error::Storage { what, hint }.into()
    }

    fn send(
        &self,
        req: reqwest::blocking::RequestBuilder,
        doing: &str,
    ) -> Result<reqwest::blocking::Response> {
        let resp = req
            .send()
            .map_err(|e| self.failure(format!("{doing} at {}: {e}", self.base), None))?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(resp);
        }
        let body = read_bounded(resp, 64 * 1024).unwrap_or_default();
        let body = String::from_utf8_lossy(&body).into_owned();
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(self.failure(format!("{} refused {doing}", self.base), Some(body)));
        }
        Err(self.failure(
            format!("{doing} at {}: HTTP {status}: {}", self.base, body.trim()),
            None,
        ))
    }

    fn fetch(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let what = Self::what(kind, name);
        let resp = self.send(
            self.client.get(self.url(kind, name)?),
            &format!("reading {what}"),
        )?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            bail!("reading {what} at {}: no such object", self.base);
        }
        read_bounded(resp, MAX_OBJECT).with_context(|| format!("reading {what} at {}", self.base))
    }
}

/// Reads a response body, refusing one longer than `limit`.
fn read_bounded(resp: reqwest::blocking::Response, limit: u64) -> Result<Vec<u8>> {
    if resp.content_length().is_some_and(|n| n > limit) {
        bail!("the server announced more than {limit} bytes");
    }
    let mut out = Vec::new();
    resp.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        bail!("the server sent more than {limit} bytes");
    }
    Ok(out)
}

impl Backend for RestBackend {
    fn location(&self) -> String {
        format!("rest:{}", self.base)
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        let what = Self::what(kind, name);
        let resp = self.send(
            self.client.post(self.url(kind, name)?).body(data.to_vec()),
            &format!("writing {what}"),
        )?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(self.failure(
                format!(
                    "writing {what} at {}: the server has no such place",
                    self.base
                ),
                None,
            ));
        }
        Ok(())
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.fetch(kind, name)
    }

    /// The whole object, fetched once: a pack is read chunk by chunk
    /// afterwards from memory.
    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ReadSeek>> {
        Ok(Box::new(std::io::Cursor::new(self.fetch(kind, name)?)))
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_versions(kind)?
            .into_iter()
            .map(|l| (l.name, l.size))
            .collect())
    }

    fn list_versions(&self, kind: Kind) -> Result<Vec<super::backend::Listed>> {
        #[derive(serde::Deserialize)]
        struct Item {
            name: String,
            size: u64,
            /// Sent by a server that can tell rewrites apart; absent, the
            /// object is always read again.
            #[serde(default)]
            version: Option<String>,
        }
        let doing = format!("listing {}", kind.dir());
        let resp = self.send(
            self.client.get(format!("{}{}/", self.base, kind.dir())),
            &doing,
        )?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let raw = read_bounded(resp, MAX_LISTING).with_context(|| doing.clone())?;
        let items: Vec<Item> = serde_json::from_slice(&raw)
            .with_context(|| format!("{doing} at {}: not a Lifeboat server's answer", self.base))?;
        let mut out = Vec::with_capacity(items.len());
        for i in items {
            // A name the server invents is never used as a path here.
            valid_name(&i.name)?;
            out.push(super::backend::Listed {
                name: i.name,
                size: i.size,
                version: i.version.filter(|v| !v.is_empty() && v.len() <= 256),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.size.cmp(&b.size)));
        Ok(out)
    }

    fn remove(&self, kind: Kind, name: &str) -> Result<()> {
        let what = Self::what(kind, name);
        self.send(
            self.client.delete(self.url(kind, name)?),
            &format!("deleting {what}"),
        )?;
        Ok(())
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        let what = Self::what(kind, name);
        let resp = self.send(
            self.client.head(self.url(kind, name)?),
            &format!("looking for {what}"),
        )?;
        Ok(resp.status() != reqwest::StatusCode::NOT_FOUND)
    }

    fn create(&self) -> Result<()> {
        let resp = self
            .client
            .post(format!("{}?create=true", self.base))
            .send()
            .map_err(|e| {
                self.failure(format!("creating a repository at {}: {e}", self.base), None)
            })?;
        if resp.status() == reqwest::StatusCode::CONFLICT {
            let body = read_bounded(resp, 64 * 1024).unwrap_or_default();
            bail!("{}", String::from_utf8_lossy(&body).trim());
        }
        if !resp.status().is_success() {
            let status = resp.status();
            let body = read_bounded(resp, 64 * 1024).unwrap_or_default();
            return Err(self.failure(
                format!(
                    "creating a repository at {}: HTTP {status}: {}",
                    self.base,
                    String::from_utf8_lossy(&body).trim()
                ),
                None,
            ));
        }
        Ok(())
    }

    fn transfers(&self) -> usize {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("rest:http://127.0.0.1:8734").unwrap(),
            "http://127.0.0.1:8734/"
        );
        assert_eq!(
            parse_url("rest:https://nas.lan/repo").unwrap(),
            "https://nas.lan/repo/"
        );
        for bad in [
            "http://x/",
            "rest:ftp://x/",
            "rest:nothing",
            "rest:http://u@x/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
