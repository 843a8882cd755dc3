//! A repository on any S3-compatible object store (AWS, Backblaze B2,
//! Storj, MinIO, Garage, Wasabi) through the `object_store` crate.
//!
//! The engine is synchronous; `object_store` is async. The backend blocks
//! on the process's one runtime ([`crate::runtime`]), so every engine
//! thread can call it as it calls the local backend. A single PUT is atomic
//! on object storage, which is all the [`Backend`] contract asks of `put`.
//!
//! Retries happen in one place, here, around whole operations (a body that
//! breaks mid-download is retried too): transient failures (timeouts,
//! dropped connections, 5xx, throttling) with exponential backoff until the
//! repository's `deadline`, each request cut off after `request_timeout`.
//! Permanent ones (bad credentials, missing bucket) fail at once with a
//! [`crate::Error::Storage`] that says what to check.

use super::backend::{valid_name, Backend, Kind, ReadSeek};
use anyhow::{anyhow, bail, Result};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload, RetryConfig};
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A secret from the config: never printed, whatever prints its owner.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Where and how to reach a bucket. Anything not given comes from the
/// standard `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_REGION`, …).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// `s3://bucket/prefix`
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`); most self-hosted stores
    /// (MinIO, Garage) want them. Default: virtual-hosted style unless an
    /// endpoint is given.
    pub path_style: Option<bool>,
    pub access_key_id: Option<crate::util::SecretRef>,
    pub secret_access_key: Option<crate::util::SecretRef>,
    /// Packs uploaded or downloaded at once.
    pub transfers: Option<usize>,
    /// Bytes per second, uploads and downloads together.
    pub bandwidth_limit: Option<u64>,
    /// How long one operation may keep retrying before it is an error.
    pub deadline: Option<Duration>,
    /// How long one request may take before it is cut off and retried.
    pub request_timeout: Option<Duration>,
}

/// Retrying one operation gives up after this long unless the repository
/// says otherwise: long enough to ride out a provider's blip, short enough
/// that a nightly job fails (and pings) the same night.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
/// A 16 MiB pack on a slow uplink fits in it; a stalled request does not
/// hold a job for long.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// `s3://bucket/prefix` → (bucket, prefix without surrounding slashes).
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow!("{url:?} is not an s3:// URL (expected s3://bucket/prefix)"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty()
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        bail!("{url:?}: {bucket:?} is not a bucket name (expected s3://bucket/prefix)");
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") {
        bail!("{url:?}: the prefix may not contain . or .. segments");
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// "8MiB/s", "500 KB/s", "1048576": bytes per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t).trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (e.g. \"8MiB/s\" or \"500KB/s\")"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" => 1e3,
        "KiB" => 1024.0,
        "M" | "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "G" | "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit (use B, KB, KiB, MB, MiB, GB or GiB per second)"
            ))
        }
    };
    let v = n * mult;
    // Also catches NaN and infinity from odd input.
    if !v.is_finite() || v < 1024.0 {
        return Err(format!(
            "{s:?}: a bandwidth limit below 1 KiB/s would never finish"
        ));
    }
    Ok(v as u64)
}

/// Spaces transfers so their average rate stays under the limit. Coarse
/// (whole objects), which is what a limit on a shared uplink needs.
struct Pacer {
    bytes_per_sec: u64,
    next: Mutex<Instant>,
}

impl Pacer {
    /// Counts a small object against the limit without queueing it: an
    /// index file must not wait behind packs already scheduled, or an
    /// interrupted copy would lose what those index files record.
    fn charge(&self, bytes: usize) {
        if let Ok(mut next) = self.next.lock() {
            let now = Instant::now();
            *next = (*next).max(now)
                + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        }
    }

    fn wait(&self, bytes: usize) {
        let now = Instant::now();
        let start = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
            start
        };
        if start > now {
            std::thread::sleep(start - now);
        }
    }
}

struct Inner {
    store: Box<dyn ObjectStore>,
    url: String,
    pacer: Option<Pacer>,
    deadline: Duration,
}

type ObjResult<T> = std::result::Result<T, object_store::Error>;

impl Inner {
    /// Runs a future to completion from synchronous code, on the process's
    /// runtime. On one of its worker threads (the console's background
    /// work) the thread first gives up its place, so nothing deadlocks.
    fn block_on<T: Send>(
        &self,
        fut: impl std::future::Future<Output = ObjResult<T>> + Send,
    ) -> ObjResult<T> {
        let rt = match crate::runtime::get() {
            Ok(rt) => rt,
            Err(e) => {
                return Err(object_store::Error::Generic {
                    store: "S3",
                    source: e.to_string().into(),
                })
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| rt.handle().block_on(fut))
        } else {
            rt.block_on(fut)
        }
    }

    /// The one retry layer: transient failures are retried with backoff
    /// (0.2 s doubling to 10 s) until the deadline; others fail at once.
    fn retry<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> std::result::Result<T, object_store::Error>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) && started.elapsed() + delay < self.deadline => {
                    tracing::warn!(what, attempt, error = %crate::util::printable(&one_line(&e)), "storage request failed; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                Err(e) if transient(&e) => {
                    let e = self.error(what, e);
                    return Err(e.context(format!(
                        "gave up after {attempt} attempts in {} (the repository's deadline is {})",
                        crate::util::short_duration(started.elapsed()),
                        crate::util::short_duration(self.deadline)
                    )));
                }
                Err(e) => return Err(self.error(what, e)),
            }
        }
    }

    fn error(&self, what: &str, e: object_store::Error) -> anyhow::Error {
        let hint = match &e {
            // Before NotFound: a missing bucket is a 404 too.
            _ if e.to_string().contains("NoSuchBucket") => {
                "create the bucket first (lifeboat never creates buckets), and check the URL, endpoint and region"
            }
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                "check access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and that the key may use this bucket"
            }
            object_store::Error::NotFound { .. } => {
                "the object is missing: run `lifeboat verify` on this repository"
            }
            _ => {
                "the store kept failing after retries: check the endpoint, region and network, and the provider's status page; rerunning resumes where this stopped"
            }
        };
        crate::Error::Storage {
            what: format!("{what} at {}: {}", self.url, one_line(&e)),
            hint: hint.into(),
        }
        .into()
    }
}

/// object_store's messages nest causes over lines; a log line wants one.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The HTTP status a failed request got, if it got one.
fn status_of(message: &str) -> Option<u16> {
    let rest = message.split("status code: ").nth(1)?;
    rest.get(..3)?.parse().ok()
}

fn transient(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::Generic { .. } => {
            let s = one_line(e);
            if s.contains("NoSuchBucket") {
                return false;
            }
            // A refusal (bad credentials, a forbidden key) does not get
            // better by asking again; a timeout, throttling (429) or a
            // server error (5xx) may.
            match status_of(&s) {
                Some(408 | 429) | None => true,
                Some(code) => code >= 500,
            }
        }
        E::JoinError { .. } => true,
        _ => false,
    }
}

pub struct S3Backend {
    inner: Arc<Inner>,
    prefix: String,
    concurrency: usize,
}

impl S3Backend {
    pub fn new(s: &S3Settings) -> Result<S3Backend> {
        let (bucket, prefix) = parse_url(&s.url)?;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            // Set first: it replaces every client option, allow_http included.
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    // The bandwidth limit paces before sending, not
                    // during, so a request runs at the link's speed.
                    .with_timeout(s.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)),
            );
        // AWS_ENDPOINT_URL is what the AWS CLI and SDKs read; object_store
        // reads AWS_ENDPOINT. Honour both.
        if let Ok(ep) = std::env::var("AWS_ENDPOINT_URL") {
            b = b.with_endpoint(ep);
        }
        let endpoint = s
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        if let Some(ep) = &s.endpoint {
            b = b.with_endpoint(ep);
        }
        if let Some(ep) = &endpoint {
            b = b.with_allow_http(ep.starts_with("http://"));
            // Self-hosted stores rarely resolve bucket subdomains.
            if s.path_style.is_none() {
                b = b.with_virtual_hosted_style_request(false);
            }
        }
        if let Some(p) = s.path_style {
            b = b.with_virtual_hosted_style_request(!p);
        }
        if let Some(r) = &s.region {
            b = b.with_region(r);
        } else if std::env::var("AWS_REGION").is_err()
            && std::env::var("AWS_DEFAULT_REGION").is_err()
        {
            b = b.with_region("us-east-1");
        }
        if let Some(k) = &s.access_key_id {
            b = b.with_access_key_id(Secret::new(k.value()?).expose());
        }
        if let Some(k) = &s.secret_access_key {
            b = b.with_secret_access_key(Secret::new(k.value()?).expose());
        }
        let store = b
            // Retries are ours alone (see `Inner::retry`): two layers would
            // multiply into a failure that takes many minutes to surface.
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: Duration::ZERO,
                ..Default::default()
            })
            // No extra checksum header: not every provider accepts one, and
            // the signed payload hash (SigV4's x-amz-content-sha256) already
            // makes the server refuse a body damaged in transit.
            .with_unsigned_payload(false)
            .build()
            .map_err(|e| crate::Error::Storage {
                what: format!("cannot use {}: {}", s.url, one_line(&e)),
                hint: "set endpoint, region and credentials in the repository's config section, or the AWS_* environment variables".into(),
            })?;
        Ok(S3Backend {
            inner: Arc::new(Inner {
                store: Box::new(store),
                deadline: s.deadline.unwrap_or(DEFAULT_DEADLINE),
                url: s.url.clone(),
                pacer: s.bandwidth_limit.map(|b| Pacer {
                    bytes_per_sec: b,
                    next: Mutex::new(Instant::now()),
                }),
            }),
            prefix,
            concurrency: s.transfers.unwrap_or(4).clamp(1, 32),
        })
    }

    fn join(&self, rest: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(rest)
        } else {
            ObjPath::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn key(&self, kind: Kind, name: &str) -> ObjPath {
        match kind {
            Kind::Config => self.join("config"),
            // The same fan-out as a local repository, so a repository can
            // be moved between a disk and a bucket with a plain file copy.
            Kind::Data => self.join(&format!("data/{}/{name}", &name[..2.min(name.len())])),
            _ => self.join(&format!("{}/{name}", kind.dir())),
        }
    }

    fn get_bytes(&self, kind: Kind, name: &str) -> Result<bytes::Bytes> {
        valid_name(name)?;
        let key = self.key(kind, name);
        let inner = &self.inner;
        let data = inner.retry(&format!("reading {key}"), || {
            inner.block_on(async { inner.store.get(&key).await?.bytes().await })
        })?;
        if let Some(p) = &inner.pacer {
            p.wait(data.len());
        }
        Ok(data)
    }

    fn put_owned(&self, kind: Kind, name: &str, data: Vec<u8>) -> Result<()> {
        valid_name(name)?;
        let key = self.key(kind, name);
        match &self.inner.pacer {
            Some(p) if kind == Kind::Data => p.wait(data.len()),
            Some(p) => p.charge(data.len()),
            None => {}
        }
        // Shared bytes: every retry resends the same buffer without copying.
        let payload = PutPayload::from(data);
        let inner = &self.inner;
        inner.retry(&format!("storing {key}"), || {
            inner.block_on(inner.store.put(&key, payload.clone()))
        })?;
        Ok(())
    }

    fn list_under(&self, dir: &ObjPath, what: &str) -> Result<Vec<object_store::ObjectMeta>> {
        let inner = &self.inner;
        inner.retry(what, || {
            inner.block_on(inner.store.list(Some(dir)).try_collect::<Vec<_>>())
        })
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.inner.url.clone()
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.put_owned(kind, name, data.to_vec())
    }

    fn put_with(
        &self,
        kind: Kind,
        name: &str,
        write: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<()>,
    ) -> Result<()> {
        // One PUT needs the whole body; building it here avoids a copy.
        let mut buf = Vec::new();
        write(&mut buf)?;
        self.put_owned(kind, name, buf)
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        Ok(self.get_bytes(kind, name)?.to_vec())
    }

    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ReadSeek>> {
        valid_name(name)?;
        let key = self.key(kind, name);
        let inner = &self.inner;
        let size = inner
            .retry(&format!("opening {key}"), || {
                inner.block_on(inner.store.head(&key))
            })?
            .size;
        Ok(Box::new(RangedReader {
            inner: Arc::clone(&self.inner),
            key,
            size,
            pos: 0,
            buf: bytes::Bytes::new(),
            buf_start: 0,
            next_len: FIRST_READ,
        }))
    }

    fn open_whole(&self, kind: Kind, name: &str) -> Result<Box<dyn ReadSeek>> {
        let data = self.get_bytes(kind, name)?;
        Ok(Box::new(std::io::Cursor::new(data)))
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        if kind == Kind::Config {
            return Ok(if self.exists(Kind::Config, "config")? {
                vec![("config".into(), 0)]
            } else {
                Vec::new()
            });
        }
        let dir = self.join(kind.dir());
        let mut out: Vec<(String, u64)> = self
            .list_under(&dir, &format!("listing {dir}"))?
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                valid_name(&name).ok()?;
                Some((name, m.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn remove(&self, kind: Kind, name: &str) -> Result<()> {
        valid_name(name)?;
        let key = self.key(kind, name);
        let inner = &self.inner;
        inner.retry(&format!("removing {key}"), || {
            match inner.block_on(inner.store.delete(&key)) {
                // A retried delete may find its own earlier success.
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                r => r,
            }
        })
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        valid_name(name)?;
        let key = self.key(kind, name);
        let inner = &self.inner;
        inner.retry(&format!("looking for {key}"), || {
            match inner.block_on(inner.store.head(&key)) {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn create(&self) -> Result<()> {
        if self.exists(Kind::Config, "config")? {
            bail!("{} already holds a Lifeboat repository", self.inner.url);
        }
        let root = self.join("");
        let inner = &self.inner;
        let first = inner.retry("listing the prefix", || {
            inner.block_on(async {
                let mut s = inner.store.list(Some(&root));
                s.try_next().await
            })
        })?;
        if first.is_some() {
            bail!(
                "{} is not empty; a new repository needs an empty prefix",
                self.inner.url
            );
        }
        Ok(())
    }

    fn transfers(&self) -> usize {
        self.concurrency
    }
}

/// Ranged reads, for random access (a tree chunk, a pack's trailer): they
/// start small and double while the reader goes on sequentially, so a
/// single chunk costs one request. Readers of whole packs use `open_whole`.
const FIRST_READ: u64 = 512 * 1024;
const MAX_READ: u64 = 16 * 1024 * 1024;

struct RangedReader {
    inner: Arc<Inner>,
    key: ObjPath,
    size: u64,
    pos: u64,
    buf: bytes::Bytes,
    buf_start: u64,
    next_len: u64,
}

impl RangedReader {
    fn fill(&mut self) -> std::io::Result<()> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        // Reading on from where the last range ended is sequential.
        if self.pos == buf_end && !self.buf.is_empty() {
            self.next_len = (self.next_len * 2).min(MAX_READ);
        } else {
            self.next_len = FIRST_READ;
        }
        let end = (self.pos + self.next_len).min(self.size);
        let range = self.pos..end;
        let inner = &self.inner;
        let key = &self.key;
        let data = inner
            .retry(&format!("reading {key}"), || {
                inner.block_on(async {
                    let opts = GetOptions {
                        range: Some(GetRange::Bounded(range.clone())),
                        ..Default::default()
                    };
                    inner.store.get_opts(key, opts).await?.bytes().await
                })
            })
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        if data.len() as u64 != end - self.pos {
            return Err(std::io::Error::other(format!(
                "{key}: asked for {} bytes, got {}",
                end - self.pos,
                data.len()
            )));
        }
        if let Some(p) = &inner.pacer {
            p.wait(data.len());
        }
        self.buf_start = self.pos;
        self.buf = data;
        Ok(())
    }
}

impl Read for RangedReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos >= buf_end {
            self.fill()?;
        }
        let off = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - off);
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangedReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_url("s3://b/x/y/").unwrap(),
            ("b".into(), "x/y".into())
        );
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_url("s3:///x").is_err());
        assert!(parse_url("http://b/x").is_err());
        assert!(parse_url("s3://b/../x").is_err());
    }

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(parse_rate("8MiB/s").unwrap(), 8 * 1024 * 1024);
        assert_eq!(parse_rate("500 KB/s").unwrap(), 500_000);
        assert_eq!(parse_rate("2048").unwrap(), 2048);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10").is_err());
    }

    #[test]
    fn only_timeouts_throttling_and_server_errors_are_retried() {
        let e = |m: &str| object_store::Error::Generic {
            store: "S3",
            source: m.to_string().into(),
        };
        // A hash in the URL that contains "403" is not a 403.
        assert!(transient(&e("PUT http://h/data/c8403bb in 2ms - Server returned non-2xx status code: 503 Service Unavailable")));
        assert!(transient(&e(
            "Server returned non-2xx status code: 429 Too Many Requests"
        )));
        assert!(transient(&e("error sending request: connection reset")));
        assert!(!transient(&e(
            "Server returned non-2xx status code: 403 Forbidden"
        )));
        assert!(!transient(&e(
            "Server returned non-2xx status code: 400 Bad Request: NoSuchBucket"
        )));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = S3Settings {
            secret_access_key: Some(crate::util::SecretRef::new("hunter2", "")),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
