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
//! dropped connections, 5xx, throttling, a body damaged on the way) with
//! jittered exponential backoff until the repository's `deadline`; a
//! request is cut off when no bytes arrive for `progress_timeout`, and
//! after `request_timeout` in all. Permanent ones (bad credentials, a
//! missing bucket) fail at once with a [`crate::Error::Storage`] that says
//! what to check, with every credential scrubbed from it.

mod errors;
mod lock;
mod pace;
mod ranged;

pub use pace::parse_rate;
use pace::Pacer;

use super::backend::{valid_name, Backend, Kind, Listed, ReadSeek};
use anyhow::{anyhow, bail, Result};
use futures::TryStreamExt;
use md5::Digest;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, GetOptions, ObjectStore, PutPayload, RetryConfig};
use rand::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// How long a request may go without a byte (no response yet, or a
    /// body that stopped coming) before it is cut off and retried.
    pub progress_timeout: Option<Duration>,
    /// `object_lock = { mode, days }`: every upload carries a lock.
    pub object_lock: Option<crate::repo::object_lock::LockSettings>,
}

/// Retrying one operation gives up after this long unless the repository
/// says otherwise: long enough to ride out a provider's blip, short enough
/// that a nightly job fails (and pings) the same night.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
/// A 16 MiB pack on a slow uplink fits in it; a stalled request does not
/// hold a job for long.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// A store that sends nothing for a minute is stalled, not slow.
pub const DEFAULT_PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);

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

struct Inner {
    store: Box<dyn ObjectStore>,
    url: String,
    bucket: String,
    pacer: Option<Pacer>,
    deadline: Duration,
    /// No bytes for this long and a request is cut off and retried.
    progress: Duration,
    /// Credential values to scrub from every message.
    secrets: Vec<String>,
    /// Whole-object reads are checked against the ETag while it looks like
    /// the body's MD5 (a single-part upload's, on most stores). A store
    /// whose ETags are something else (AWS with SSE-KMS) turns this off the
    /// first time two reads agree with each other and not with the ETag.
    etag_is_md5: AtomicBool,
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

    /// `fut`, unless the store goes quiet for the progress timeout.
    async fn timed<T>(
        &self,
        what: &'static str,
        fut: impl std::future::Future<Output = ObjResult<T>>,
    ) -> ObjResult<T> {
        match tokio::time::timeout(self.progress, fut).await {
            Ok(r) => r,
            Err(_) => Err(errors::generic(errors::Stalled {
                what,
                after: self.progress,
            })),
        }
    }

    /// A GET, body and all, cut off when no bytes arrive for the progress
    /// timeout (a stalled response is retried, not waited out); returns the
    /// body and the object's metadata (ETag, whole size).
    async fn fetch(
        &self,
        key: &ObjPath,
        opts: GetOptions,
    ) -> ObjResult<(bytes::Bytes, object_store::ObjectMeta)> {
        let r = self
            .timed("waiting for a response", self.store.get_opts(key, opts))
            .await?;
        let meta = r.meta.clone();
        // A hint only: the body may be longer or shorter than announced.
        let expected = (r.range.end - r.range.start).min(64 << 20) as usize;
        let mut body = bytes::BytesMut::with_capacity(expected);
        let mut stream = r.into_stream();
        while let Some(part) = self
            .timed("sending a response body", stream.try_next())
            .await?
        {
            body.extend_from_slice(&part);
        }
        Ok((body.freeze(), meta))
    }

    /// Is a whole object's body what the store holds? `seen` carries the
    /// MD5 of an earlier body that did not match, across retries.
    fn check_whole(
        &self,
        key: &ObjPath,
        etag: Option<&str>,
        body: &[u8],
        seen: &mut Option<String>,
    ) -> ObjResult<()> {
        if !self.etag_is_md5.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(tag) = etag.map(|t| t.trim_matches('"').to_ascii_lowercase()) else {
            return Ok(());
        };
        // A multipart ETag ("…-3") or another provider's scheme.
        if tag.len() != 32 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(());
        }
        let got = hex::encode(md5::Md5::digest(body));
        if got == tag {
            return Ok(());
        }
        if seen.as_deref() == Some(got.as_str()) {
            // The same bytes twice. Cut short the same way each time (a
            // middlebox that truncates), or what the store holds and its
            // ETags are not MD5s: the object's size tells which.
            let size = self
                .block_on(self.timed("waiting for a response", self.store.head(key)))?
                .size;
            if size != body.len() as u64 {
                return Err(errors::generic(errors::DamagedInTransit {
                    key: key.to_string(),
                    cut: Some((body.len() as u64, size)),
                }));
            }
            // Damage in storage, if any, is for the caller's own checks
            // (chunk ids, age's authentication) to find.
            self.etag_is_md5.store(false, Ordering::Relaxed);
            tracing::info!(key = %key, "the store's ETags are not MD5 digests; whole reads are not checked against them");
            return Ok(());
        }
        *seen = Some(got);
        Err(errors::generic(errors::DamagedInTransit {
            key: key.to_string(),
            cut: None,
        }))
    }

    /// The one retry layer: transient failures are retried with backoff
    /// (0.2 s doubling to 10 s, each wait drawn at random from its upper
    /// half so clients that failed together do not retry together) until
    /// the deadline; others fail at once.
    fn retry<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> std::result::Result<T, object_store::Error>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut ceiling = Duration::from_millis(200);
        let mut attempt = 1;
        let mut damaged_in_transit = false;
        loop {
            let sent = Instant::now();
            let r = op();
            // One line per request (`LIFEBOAT_LOG=lifeboat::repo::s3=debug`):
            // how many round trips a job makes, and which wait on which.
            tracing::debug!(
                what,
                attempt,
                ms = sent.elapsed().as_millis() as u64,
                ok = r.is_ok(),
                "storage request"
            );
            let e = match r {
                Ok(v) => {
                    if damaged_in_transit {
                        tracing::warn!(
                            what,
                            attempt,
                            "a read was damaged in transit and fetched again"
                        );
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            if !errors::transient(&e) {
                return Err(self.error(what, e));
            }
            damaged_in_transit |= errors::is_transit_damage(&e);
            // The last wait ends at the deadline, for one last try there.
            let left = self.deadline.saturating_sub(started.elapsed());
            let delay = ceiling
                .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
                .min(left);
            if delay < Duration::from_millis(50) {
                let e = self.error(what, e);
                return Err(e.context(format!(
                    "gave up after {attempt} attempts in {} (the repository's deadline is {})",
                    crate::util::short_duration(started.elapsed()),
                    crate::util::short_duration(self.deadline)
                )));
            }
            let message = self.scrubbed(&e);
            tracing::warn!(what, attempt, error = %crate::util::printable(&message), "storage request failed; retrying");
            std::thread::sleep(delay);
            ceiling = (ceiling * 2).min(Duration::from_secs(10));
            attempt += 1;
        }
    }

    fn scrubbed(&self, e: &object_store::Error) -> String {
        errors::scrub(&errors::one_line(e), &self.secrets)
    }

    fn error(&self, what: &str, e: object_store::Error) -> anyhow::Error {
        let message = self.scrubbed(&e);
        let what = if message.contains("NoSuchBucket") {
            format!(
                "the bucket {} does not exist ({what} at {}: {message})",
                self.bucket, self.url
            )
        } else {
            format!(
                "{what} at {}: {message}{}",
                self.url,
                errors::explain(&message)
            )
        };
        crate::Error::Storage {
            what,
            hint: errors::hint(&e, &message).into(),
        }
        .into()
    }
}

/// Where object_store would look for credentials we were not given.
const OTHER_CREDENTIAL_SOURCES: &[&str] = &[
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    // Set on purpose by whoever wants an EC2 instance role used.
    "AWS_EC2_METADATA_ENDPOINT",
    "AWS_SKIP_SIGNATURE",
];

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Without a key pair object_store falls back to the EC2 instance-metadata
/// address, which off EC2 answers nothing: a missing credential would be
/// reported, many minutes later, as a network problem. Say it now.
fn check_credentials(s: &S3Settings) -> Result<()> {
    let id = s.access_key_id.is_some() || env_set("AWS_ACCESS_KEY_ID");
    let secret = s.secret_access_key.is_some() || env_set("AWS_SECRET_ACCESS_KEY");
    if (id && secret) || (!id && !secret && OTHER_CREDENTIAL_SOURCES.iter().any(|v| env_set(v))) {
        return Ok(());
    }
    let missing = match (id, secret) {
        (true, false) => "the secret access key is missing",
        (false, true) => "the access key id is missing",
        _ => "no credentials are given",
    };
    Err(crate::Error::Storage {
        what: format!("cannot use {}: {missing}", s.url),
        hint: "set access_key_id and secret_access_key in the repository's config section (a value, env:NAME or file:PATH), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment; to use an EC2 instance role, set AWS_EC2_METADATA_ENDPOINT to the instance-metadata address".into(),
    }
    .into())
}

pub struct S3Backend {
    inner: Arc<Inner>,
    prefix: String,
    concurrency: usize,
    locks: Option<lock::Locks>,
}

impl S3Backend {
    pub fn new(s: &S3Settings) -> Result<S3Backend> {
        let (bucket, prefix) = parse_url(&s.url)?;
        check_credentials(s)?;
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
        let mut secrets: Vec<String> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .collect();
        if let Some(k) = &s.access_key_id {
            let k = Secret::new(k.value()?);
            b = b.with_access_key_id(k.expose());
            secrets.push(k.expose().to_string());
        }
        if let Some(k) = &s.secret_access_key {
            let k = Secret::new(k.value()?);
            b = b.with_secret_access_key(k.expose());
            secrets.push(k.expose().to_string());
        }
        // Where object_store sends requests, for the ones it cannot make.
        let at = lock::Endpoint::of(&b);
        let store = b
            // Retries are ours alone (see `Inner::retry`): two layers would
            // multiply into a failure that takes many minutes to surface.
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: Duration::ZERO,
                ..Default::default()
            })
            // Every upload is signed with the SHA-256 of its body
            // (x-amz-content-sha256), which the server checks: a body
            // damaged on the way up is refused (and retried, see
            // `errors::transient`), never stored. No extra checksum header:
            // not every provider accepts one.
            .with_unsigned_payload(false)
            .build()
            .map_err(|e| crate::Error::Storage {
                what: format!(
                    "cannot use {}: {}",
                    s.url,
                    errors::scrub(&errors::one_line(&e), &secrets)
                ),
                hint: "set endpoint, region and credentials in the repository's config section, or the AWS_* environment variables".into(),
            })?;
        let locks = match s.object_lock {
            Some(l) => Some(lock::Locks::new(
                l,
                Arc::clone(store.credentials()),
                at,
                &bucket,
                s,
            )?),
            None => None,
        };
        Ok(S3Backend {
            locks,
            inner: Arc::new(Inner {
                store: Box::new(store),
                deadline: s.deadline.unwrap_or(DEFAULT_DEADLINE),
                progress: s.progress_timeout.unwrap_or(DEFAULT_PROGRESS_TIMEOUT),
                url: s.url.clone(),
                bucket,
                secrets,
                etag_is_md5: AtomicBool::new(true),
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
        let mut seen = None;
        let data = inner.retry(&format!("reading {key}"), || {
            let (data, meta) = inner.block_on(inner.fetch(&key, GetOptions::default()))?;
            inner.check_whole(&key, meta.e_tag.as_deref(), &data, &mut seen)?;
            Ok(data)
        })?;
        if let Some(p) = &inner.pacer {
            p.wait(data.len());
        }
        Ok(data)
    }

    /// `get_bytes`, or None for a missing object, in one request.
    fn get_bytes_if_exists(&self, kind: Kind, name: &str) -> Result<Option<bytes::Bytes>> {
        valid_name(name)?;
        let key = self.key(kind, name);
        let inner = &self.inner;
        let mut seen = None;
        let data = inner.retry(&format!("reading {key}"), || {
            match inner.block_on(inner.fetch(&key, GetOptions::default())) {
                Ok((data, meta)) => {
                    inner.check_whole(&key, meta.e_tag.as_deref(), &data, &mut seen)?;
                    Ok(Some(data))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        match &data {
            Some(d) => {
                if let Some(p) = &inner.pacer {
                    p.wait(d.len());
                }
            }
            // As `exists` does: a missing bucket is not a missing config.
            None if kind == Kind::Config => self.bucket_must_exist()?,
            None => {}
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
        if self.locks.is_some() && crate::repo::object_lock::lockable(kind) {
            return self.put_locked(&key, data.into());
        }
        // Shared bytes: every retry resends the same buffer without copying.
        let payload = PutPayload::from(data);
        let inner = &self.inner;
        // No progress timeout: the body goes out in one piece and its
        // progress is not visible here; `request_timeout` bounds it.
        inner.retry(&format!("storing {key}"), || {
            inner.block_on(inner.store.put(&key, payload.clone()))
        })?;
        Ok(())
    }

    fn list_under(&self, dir: &ObjPath, what: &str) -> Result<Vec<object_store::ObjectMeta>> {
        let inner = &self.inner;
        inner.retry(what, || {
            inner.block_on(inner.timed(
                "listing",
                inner.store.list(Some(dir)).try_collect::<Vec<_>>(),
            ))
        })
    }

    fn head(&self, key: &ObjPath) -> ObjResult<object_store::ObjectMeta> {
        let inner = &self.inner;
        inner.block_on(inner.timed("waiting for a response", inner.store.head(key)))
    }

    /// After the config was not found: a missing bucket says so (a HEAD's
    /// 404 has no body to tell), a present one is simply not a repository.
    fn bucket_must_exist(&self) -> Result<()> {
        let root = self.join("");
        let inner = &self.inner;
        inner.retry("listing the prefix", || {
            inner.block_on(inner.timed("listing", async {
                let mut s = inner.store.list(Some(&root));
                s.try_next().await.map(|_| ())
            }))
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
        let size = self
            .inner
            .retry(&format!("opening {key}"), || self.head(&key))?
            .size;
        Ok(Box::new(ranged::RangedReader::new(
            Arc::clone(&self.inner),
            key,
            size,
        )))
    }

    fn get_if_exists(&self, kind: Kind, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_bytes_if_exists(kind, name)?.map(|b| b.to_vec()))
    }

    fn open_ahead(
        &self,
        kind: Kind,
        name: &str,
        ahead: &[std::ops::Range<u64>],
    ) -> Result<Box<dyn ReadSeek>> {
        valid_name(name)?;
        let key = self.key(kind, name);
        match ranged::open_ahead(&self.inner, &key, ahead)? {
            Some(r) => Ok(Box::new(r)),
            None => self.open(kind, name),
        }
    }

    fn open_whole(&self, kind: Kind, name: &str) -> Result<Box<dyn ReadSeek>> {
        let data = self.get_bytes(kind, name)?;
        Ok(Box::new(std::io::Cursor::new(data)))
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        let listed = self.list_versions(kind)?;
        Ok(listed.into_iter().map(|l| (l.name, l.size)).collect())
    }

    fn list_versions(&self, kind: Kind) -> Result<Vec<Listed>> {
        if kind == Kind::Config {
            let there = self.exists(Kind::Config, "config")?;
            let config = there.then(|| Listed::new("config", 0, None));
            return Ok(config.into_iter().collect());
        }
        let dir = self.join(kind.dir());
        let mut out: Vec<Listed> = self
            .list_under(&dir, &format!("listing {dir}"))?
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                valid_name(&name).ok()?;
                let at = m.last_modified.timestamp_micros();
                let version = Listed::store_version(m.e_tag.as_deref(), at);
                Some(Listed::new(&name, m.size, version))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.size.cmp(&b.size)));
        Ok(out)
    }

    fn remove(&self, kind: Kind, name: &str) -> Result<()> {
        valid_name(name)?;
        let key = self.key(kind, name);
        if self.locks.is_some() {
            return self.remove_locked(kind, name, &key);
        }
        let inner = &self.inner;
        inner.retry(&format!("removing {key}"), || {
            match inner.block_on(inner.timed("waiting for a response", inner.store.delete(&key))) {
                // A retried delete may find its own earlier success.
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                r => r,
            }
        })
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        valid_name(name)?;
        let key = self.key(kind, name);
        let found = self
            .inner
            .retry(&format!("looking for {key}"), || match self.head(&key) {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            })?;
        if !found && kind == Kind::Config {
            self.bucket_must_exist()?;
        }
        Ok(found)
    }

    fn create(&self) -> Result<()> {
        if self.exists(Kind::Config, "config")? {
            bail!("{} already holds a Lifeboat repository", self.inner.url);
        }
        let root = self.join("");
        let inner = &self.inner;
        let first = inner.retry("listing the prefix", || {
            inner.block_on(inner.timed("listing", async {
                let mut s = inner.store.list(Some(&root));
                s.try_next().await
            }))
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

    fn object_lock(&self) -> Option<&dyn crate::repo::object_lock::ObjectLocks> {
        self.locks.as_ref().map(|_| self as _)
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
    fn secrets_do_not_print() {
        let s = S3Settings {
            secret_access_key: Some(crate::util::SecretRef::new("hunter2", "")),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
