//! S3 Object Lock for [`S3Backend`]: uploads that carry a retain-until
//! date, and the requests `object_store` cannot make (object retention,
//! the bucket's lock and versioning configuration, object versions).
//!
//! Those requests are signed with `object_store`'s own SigV4 signer
//! ([`AwsAuthorizer`]) and its credential provider, so they use exactly the
//! credentials (keys, a session token, an instance role) every other
//! request uses, and go through the same retry layer ([`Inner::retry`]).

use super::{errors, Inner, ObjResult, S3Backend};
use crate::repo::backend::Kind;
use crate::repo::object_lock::{
    lockable, BucketProtection, LockMode, LockSettings, ObjectLock, ObjectLocks, Reclaimed,
    Recovered, StillLocked,
};
use anyhow::Result;
use bytes::Bytes;
use md5::Digest;
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::path::Path as ObjPath;
use object_store::Error as E;
use reqwest::header::{HeaderName, HeaderValue};
use std::time::{Duration, SystemTime};

/// An error body or a listing page is small; more is not an S3 reply.
const SMALL_REPLY: usize = 16 << 20;
/// One object version read back by `recover`: packs are tens of MiB.
const OBJECT_REPLY: usize = 1 << 30;

pub(super) struct Locks {
    pub(super) settings: LockSettings,
    http: reqwest::Client,
    creds: AwsCredentialProvider,
    region: String,
    /// `https://bucket.s3.region.amazonaws.com` or `endpoint/bucket`, as
    /// object_store builds it.
    base: String,
}

struct Reply {
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

/// One entry of a ListObjectVersions reply, newest first per key.
#[derive(Debug, Clone)]
pub(super) struct Version {
    key: String,
    id: String,
    latest: bool,
    delete_marker: bool,
    etag: String,
    size: u64,
    modified: Option<SystemTime>,
}

/// The region, endpoint and addressing style object_store was given.
pub(super) struct Endpoint {
    region: Option<String>,
    endpoint: Option<String>,
    virtual_hosted: bool,
}

impl Endpoint {
    pub(super) fn of(b: &object_store::aws::AmazonS3Builder) -> Endpoint {
        use object_store::aws::AmazonS3ConfigKey as K;
        Endpoint {
            region: b.get_config_value(&K::Region),
            endpoint: b.get_config_value(&K::Endpoint),
            virtual_hosted: b.get_config_value(&K::VirtualHostedStyleRequest).as_deref()
                == Some("true"),
        }
    }
}

impl Locks {
    pub(super) fn new(
        settings: LockSettings,
        creds: AwsCredentialProvider,
        at: Endpoint,
        bucket: &str,
        s: &super::S3Settings,
    ) -> Result<Locks> {
        let request_timeout = s.request_timeout.unwrap_or(super::DEFAULT_REQUEST_TIMEOUT);
        let region = at.region.unwrap_or_else(|| "us-east-1".into());
        let base = match (at.endpoint, at.virtual_hosted) {
            (Some(ep), true) => ep.trim_end_matches('/').to_string(),
            (Some(ep), false) => format!("{}/{bucket}", ep.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(request_timeout)
            .build()?;
        Ok(Locks {
            settings,
            http,
            creds,
            region,
            base,
        })
    }

    async fn send(
        &self,
        method: &'static str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&'static str, String)],
        body: Bytes,
        cap: usize,
    ) -> ObjResult<Reply> {
        let gen = |m: String| errors::generic(Message(m));
        let cred = self.creds.get_credential().await?;
        let mut url = format!("{}/{}", self.base, encode(key, true));
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            if !v.is_empty() {
                url.push('=');
                url.push_str(&encode(v, false));
            }
        }
        let mut req = HttpRequest::new(HttpRequestBody::from(body.clone()));
        *req.method_mut() = method
            .parse()
            .map_err(|_| gen(format!("bad method {method}")))?;
        *req.uri_mut() = url
            .parse()
            .map_err(|_| gen(format!("{url} is not a URL")))?;
        for (k, v) in headers {
            let v = HeaderValue::from_str(v).map_err(|_| gen(format!("bad header {k}")))?;
            req.headers_mut().insert(HeaderName::from_static(k), v);
        }
        AwsAuthorizer::new(&cred, "s3", &self.region).authorize(&mut req, None);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| gen(format!("bad method {method}")))?;
        let mut resp = self
            .http
            .request(method.clone(), &url)
            .headers(req.headers().clone())
            .body(body)
            .send()
            .await
            .map_err(|e| gen(format!("{method} {url}: {}", errors::one_line(&e))))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let cap = if status.is_success() { cap } else { 64 << 10 };
        let mut data = bytes::BytesMut::new();
        while let Some(c) = resp
            .chunk()
            .await
            .map_err(|e| gen(format!("{method} {url}: {}", errors::one_line(&e))))?
        {
            if data.len() + c.len() > cap {
                if !status.is_success() {
                    break;
                }
                return Err(gen(format!(
                    "{method} {url}: the reply is over {} (not an S3 reply)",
                    crate::util::human_bytes(cap as u64)
                )));
            }
            data.extend_from_slice(&c);
        }
        if status.is_success() {
            return Ok(Reply {
                headers,
                body: data.freeze(),
            });
        }
        let text = String::from_utf8_lossy(&data).into_owned();
        let message =
            format!("{method} {url} - Server returned non-2xx status code: {status}: {text}");
        Err(match status.as_u16() {
            404 => E::NotFound {
                path: key.to_string(),
                source: Box::new(Message(message)),
            },
            401 | 403 if !text.contains("ObjectLock") && !text.contains("object lock") => {
                E::PermissionDenied {
                    path: key.to_string(),
                    source: Box::new(Message(message)),
                }
            }
            _ => gen(message),
        })
    }
}

#[derive(Debug)]
struct Message(String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Percent-encoding as SigV4 wants it (RFC 3986 unreserved kept; `/`
/// kept in a path).
fn encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (path && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn content_md5(body: &[u8]) -> String {
    base64(&md5::Md5::digest(body))
}

fn date(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `<Version>` and `<DeleteMarker>` entries of a listing page, in order.
fn versions(xml: &str) -> Vec<Version> {
    let mut out = Vec::new();
    let mut rest = xml;
    loop {
        let v = rest.find("<Version>");
        let d = rest.find("<DeleteMarker>");
        let (at, tag) = match (v, d) {
            (Some(v), Some(d)) if d < v => (d, "DeleteMarker"),
            (Some(v), _) => (v, "Version"),
            (None, Some(d)) => (d, "DeleteMarker"),
            (None, None) => break,
        };
        let body_start = at + tag.len() + 2;
        let close = format!("</{tag}>");
        let Some(len) = rest[body_start..].find(&close) else {
            break;
        };
        let body = &rest[body_start..body_start + len];
        if let (Some(key), Some(id)) = (text(body, "Key"), text(body, "VersionId")) {
            out.push(Version {
                key: unescape(key),
                id: unescape(id),
                latest: text(body, "IsLatest") == Some("true"),
                delete_marker: tag == "DeleteMarker",
                etag: text(body, "ETag").map(unescape).unwrap_or_default(),
                size: text(body, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                modified: text(body, "LastModified")
                    .and_then(|t| humantime::parse_rfc3339_weak(t.trim()).ok()),
            });
        }
        rest = &rest[body_start + len + close.len()..];
    }
    out
}

fn lock_from(headers: &reqwest::header::HeaderMap) -> ObjectLock {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    ObjectLock {
        mode: h("x-amz-object-lock-mode").and_then(LockMode::parse),
        until: h("x-amz-object-lock-retain-until-date")
            .and_then(|d| humantime::parse_rfc3339_weak(d.trim()).ok()),
    }
}

impl S3Backend {
    fn locks(&self) -> Result<&Locks> {
        self.locks
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{} has no object_lock setting", self.inner.url))
    }

    /// One signed request, retried like every other; a 404 is `None`.
    #[allow(clippy::too_many_arguments)]
    fn call_opt(
        &self,
        what: &str,
        method: &'static str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&'static str, String)],
        body: Bytes,
        cap: usize,
    ) -> Result<Option<Reply>> {
        let l = self.locks()?;
        let inner: &Inner = &self.inner;
        inner.retry(what, || {
            match inner.block_on(inner.timed(
                "waiting for a response",
                l.send(method, key, query, headers, body.clone(), cap),
            )) {
                Ok(r) => Ok(Some(r)),
                Err(E::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        what: &str,
        method: &'static str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&'static str, String)],
        body: Bytes,
        cap: usize,
    ) -> Result<Reply> {
        self.call_opt(what, method, key, query, headers, body, cap)?
            .ok_or_else(|| {
                crate::Error::Storage {
                    what: format!("{what} at {}: {key} is not there", self.inner.url),
                    hint: "the object is missing: run `lifeboat verify` on this repository".into(),
                }
                .into()
            })
    }

    /// One PUT that carries the lock (S3 wants Content-MD5 with it).
    pub(super) fn put_locked(&self, key: &ObjPath, body: Bytes) -> Result<()> {
        let l = self.locks()?;
        let headers = [
            ("content-md5", content_md5(&body)),
            (
                "x-amz-object-lock-mode",
                l.settings.mode.header().to_string(),
            ),
            (
                "x-amz-object-lock-retain-until-date",
                date(l.settings.until(SystemTime::now())),
            ),
        ];
        self.call(
            &format!("storing {key}"),
            "PUT",
            key.as_ref(),
            &[],
            &headers,
            body,
            SMALL_REPLY,
        )?;
        Ok(())
    }

    /// The lock on a version of `key` (the current one without `version`);
    /// `None` when there is no such object.
    fn lock_at(&self, key: &str, version: Option<&str>) -> Result<Option<ObjectLock>> {
        let q: Vec<(&str, &str)> = version.map(|v| ("versionId", v)).into_iter().collect();
        let r = self.call_opt(
            &format!("reading the lock of {key}"),
            "HEAD",
            key,
            &q,
            &[],
            Bytes::new(),
            SMALL_REPLY,
        )?;
        Ok(r.map(|r| lock_from(&r.headers)))
    }

    /// Every version and delete marker under `prefix`, newest first per key.
    fn list_versions(&self, prefix: &str) -> Result<Vec<Version>> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (String::new(), String::new());
        // A listing that never ends is a broken store; a page holds 1000.
        for _ in 0..1_000_000 {
            let mut q = vec![("versions", ""), ("prefix", prefix)];
            if !key_marker.is_empty() {
                q.push(("key-marker", &key_marker));
                q.push(("version-id-marker", &version_marker));
            }
            let r = self.call(
                &format!("listing the versions under {prefix}"),
                "GET",
                "",
                &q,
                &[],
                Bytes::new(),
                SMALL_REPLY,
            )?;
            let xml = String::from_utf8_lossy(&r.body);
            out.extend(versions(&xml));
            if text(&xml, "IsTruncated") != Some("true") {
                return Ok(out);
            }
            key_marker = text(&xml, "NextKeyMarker")
                .map(unescape)
                .unwrap_or_default();
            version_marker = text(&xml, "NextVersionIdMarker")
                .map(unescape)
                .unwrap_or_default();
            if key_marker.is_empty() {
                return Ok(out);
            }
        }
        anyhow::bail!("listing the versions under {prefix} did not end")
    }

    fn delete_version(&self, key: &str, id: &str) -> Result<()> {
        self.call_opt(
            &format!("deleting a version of {key}"),
            "DELETE",
            key,
            &[("versionId", id)],
            &[],
            Bytes::new(),
            SMALL_REPLY,
        )?;
        Ok(())
    }

    fn root_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// The kind of object at a key, from its first path segment.
    fn kind_at(&self, key: &str) -> Option<Kind> {
        let rel = key.strip_prefix(&self.root_prefix())?;
        Some(match rel.split('/').next()? {
            "config" => Kind::Config,
            "keys" => Kind::Keys,
            "data" => Kind::Data,
            "index" => Kind::Index,
            "snapshots" => Kind::Snapshots,
            "locks" => Kind::Locks,
            "damage" => Kind::Damage,
            _ => return None,
        })
    }

    /// Deletes old versions of `key` whose lock has ended (and the delete
    /// markers over nothing); returns (bytes freed, bytes left locked,
    /// latest lock left).
    fn purge(&self, vs: &[&Version], r: &mut Reclaimed) -> Result<()> {
        let now = SystemTime::now();
        let mut left = 0;
        for v in vs.iter().filter(|v| !v.delete_marker) {
            let Some(lock) = self.lock_at(&v.key, Some(&v.id))? else {
                continue;
            };
            if lock.holds_at(now) {
                left += 1;
                r.versions_locked += 1;
                r.bytes_locked += v.size;
                r.locked_until = r.locked_until.max(lock.until);
                continue;
            }
            self.delete_version(&v.key, &v.id)?;
            r.versions_deleted += 1;
            r.bytes_freed += v.size;
        }
        if left == 0 {
            for v in vs.iter().filter(|v| v.delete_marker) {
                self.delete_version(&v.key, &v.id)?;
                r.versions_deleted += 1;
            }
        }
        Ok(())
    }

    /// `Backend::remove` under a lock: a locked object is refused (nothing
    /// changes); an index file, whose content the new index already
    /// covers, is hidden even while locked; anything else is hidden and
    /// its versions deleted.
    pub(super) fn remove_locked(&self, kind: Kind, name: &str, key: &ObjPath) -> Result<()> {
        if lockable(kind) && kind != Kind::Index {
            let Some(lock) = self.lock_at(key.as_ref(), None)? else {
                return Ok(());
            };
            if let Some(until) = lock.until.filter(|_| lock.holds_at(SystemTime::now())) {
                return Err(StillLocked {
                    what: format!("{}/{name}", kind.dir()),
                    until,
                }
                .into());
            }
        }
        let inner = &self.inner;
        inner.retry(&format!("removing {key}"), || {
            match inner.block_on(inner.timed("waiting for a response", inner.store.delete(key))) {
                Err(E::NotFound { .. }) => Ok(()),
                r => r,
            }
        })?;
        let vs = self.list_versions(key.as_ref())?;
        let mine: Vec<&Version> = vs.iter().filter(|v| v.key == key.as_ref()).collect();
        self.purge(&mine, &mut Reclaimed::default())
    }
}

/// Versions grouped by key, newest first. Stores list a key's versions
/// newest first, but some list delete markers apart from versions: the
/// time decides, the listing order breaks ties.
fn by_key(vs: &[Version]) -> std::collections::BTreeMap<&str, Vec<&Version>> {
    let mut m: std::collections::BTreeMap<&str, Vec<&Version>> = Default::default();
    for v in vs {
        m.entry(v.key.as_str()).or_default().push(v);
    }
    for list in m.values_mut() {
        // Stable: equal times keep the listing's order.
        list.sort_by_key(|v| std::cmp::Reverse(v.modified));
    }
    m
}

impl ObjectLocks for S3Backend {
    fn settings(&self) -> LockSettings {
        self.locks
            .as_ref()
            .map(|l| l.settings)
            .unwrap_or(LockSettings {
                mode: LockMode::Governance,
                retain: Duration::ZERO,
            })
    }

    fn protection(&self) -> Result<BucketProtection> {
        let versioning = self.call(
            "reading the bucket's versioning",
            "GET",
            "",
            &[("versioning", "")],
            &[],
            Bytes::new(),
            SMALL_REPLY,
        )?;
        let versioning =
            text(&String::from_utf8_lossy(&versioning.body), "Status") == Some("Enabled");
        // No configuration at all (a 404): a bucket made without Object Lock.
        let object_lock = self
            .call_opt(
                "reading the bucket's Object Lock configuration",
                "GET",
                "",
                &[("object-lock", "")],
                &[],
                Bytes::new(),
                SMALL_REPLY,
            )?
            .is_some_and(|r| {
                text(&String::from_utf8_lossy(&r.body), "ObjectLockEnabled") == Some("Enabled")
            });
        Ok(BucketProtection {
            versioning,
            object_lock,
        })
    }

    fn lock_of(&self, kind: Kind, name: &str) -> Result<ObjectLock> {
        crate::repo::backend::valid_name(name)?;
        let key = self.key(kind, name);
        self.lock_at(key.as_ref(), None)?.ok_or_else(|| {
            crate::Error::Storage {
                what: format!("{key} is not in {}", self.inner.url),
                hint: "the object is missing: run `lifeboat verify` on this repository".into(),
            }
            .into()
        })
    }

    fn extend(&self, kind: Kind, name: &str, until: SystemTime) -> Result<()> {
        let l = self.locks()?;
        let current = self.lock_of(kind, name)?;
        if current.until.is_some_and(|u| u >= until) {
            return Ok(());
        }
        // A compliance lock stays one: S3 refuses to weaken it.
        let mode = current.mode.unwrap_or(l.settings.mode);
        let body = Bytes::from(format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.header(),
            date(until)
        ));
        let key = self.key(kind, name);
        self.call(
            &format!("extending the lock of {key}"),
            "PUT",
            key.as_ref(),
            &[("retention", "")],
            &[("content-md5", content_md5(&body))],
            body,
            SMALL_REPLY,
        )?;
        Ok(())
    }

    fn reclaim(&self) -> Result<Reclaimed> {
        let mut r = Reclaimed::default();
        let all = self.list_versions(&self.root_prefix())?;
        for (_, vs) in by_key(&all) {
            // Only what is hidden: an object whose current version is
            // there keeps its older versions (`recover` may need them).
            if vs.iter().any(|v| v.latest && v.delete_marker) {
                self.purge(&vs, &mut r)?;
            }
        }
        Ok(r)
    }

    fn recover(&self) -> Result<Recovered> {
        let mut out = Recovered::default();
        let all = self.list_versions(&self.root_prefix())?;
        let now = SystemTime::now();
        for (key, vs) in by_key(&all) {
            if !self.kind_at(key).is_some_and(lockable) {
                continue;
            }
            let Some(latest) = vs.iter().find(|v| v.latest) else {
                continue;
            };
            // Lifeboat writes each object once: the oldest version is it.
            let Some(original) = vs.iter().rev().find(|v| !v.delete_marker) else {
                continue;
            };
            let deleted = latest.delete_marker;
            if !deleted && latest.etag == original.etag {
                continue;
            }
            if !self
                .lock_at(key, Some(&original.id))?
                .is_some_and(|l| l.holds_at(now))
            {
                out.unprotected.push(key.to_string());
                continue;
            }
            let data = self.call(
                &format!("reading the locked version of {key}"),
                "GET",
                key,
                &[("versionId", &original.id)],
                &[],
                Bytes::new(),
                OBJECT_REPLY,
            )?;
            self.put_locked(&ObjPath::from(key), data.body)?;
            if deleted {
                out.undeleted.push(key.to_string());
            } else {
                out.unreplaced.push(key.to_string());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn version_listings_keep_their_order_and_markers() {
        let xml = "<ListVersionsResult><IsTruncated>false</IsTruncated>\
            <DeleteMarker><Key>p/data/ab/x</Key><VersionId>3</VersionId><IsLatest>true</IsLatest></DeleteMarker>\
            <Version><Key>p/data/ab/x</Key><VersionId>2</VersionId><IsLatest>false</IsLatest><ETag>&quot;e2&quot;</ETag><Size>7</Size></Version>\
            <Version><Key>p/data/ab/x</Key><VersionId>1</VersionId><IsLatest>false</IsLatest><ETag>&quot;e1&quot;</ETag><Size>5</Size></Version>\
            </ListVersionsResult>";
        let v = versions(xml);
        assert_eq!(v.len(), 3);
        assert!(v[0].delete_marker && v[0].latest);
        assert_eq!(
            (v[2].id.as_str(), v[2].etag.as_str(), v[2].size),
            ("1", "\"e1\"", 5)
        );
    }

    #[test]
    fn keys_are_encoded_for_signing() {
        assert_eq!(encode("a b/c~", true), "a%20b/c~");
        assert_eq!(encode("a/b", false), "a%2Fb");
    }
}
