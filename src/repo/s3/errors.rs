//! What a failed S3 request means: whether asking again may help, what the
//! admin should check, and the message with every credential scrubbed out.
//!
//! Stores echo credentials in their error bodies (AWS puts the access key
//! id in `<AWSAccessKeyId>` for SignatureDoesNotMatch and
//! InvalidAccessKeyId), and object_store copies the body into its message,
//! so nothing here is printed, logged or pinged before [`scrub`].

use object_store::Error as E;

/// Elements of an S3 error body that carry a credential or what was signed
/// with one.
const SECRET_ELEMENTS: &[&str] = &[
    "AWSAccessKeyId",
    "SignatureProvided",
    "StringToSign",
    "StringToSignBytes",
    "CanonicalRequest",
    "CanonicalRequestBytes",
];

/// The message of a failed request with credentials removed: the known
/// values wherever they appear, and the elements stores echo them in.
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut s = message.to_string();
    for secret in secrets.iter().filter(|v| v.len() >= 4) {
        s = s.replace(secret.as_str(), "<redacted>");
    }
    for tag in SECRET_ELEMENTS {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(i) = rest.find(&open) {
            out.push_str(&rest[..i + open.len()]);
            rest = &rest[i + open.len()..];
            match rest.find(&close) {
                Some(j) => {
                    out.push_str("<redacted>");
                    rest = &rest[j..];
                }
                // A body cut off inside the element: drop the rest.
                None => {
                    out.push_str("<redacted>");
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        s = out;
    }
    // A signed header echoed back: `Credential=KEYID/date/region/s3/...`.
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find("Credential=") {
        out.push_str(&rest[..i + "Credential=".len()]);
        rest = &rest[i + "Credential=".len()..];
        let end = rest
            .find(|c: char| c == '/' || c == ',' || c.is_whitespace() || c == '<')
            .unwrap_or(rest.len());
        out.push_str("<redacted>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// object_store's messages nest causes over lines; a log line wants one.
pub fn one_line(e: &dyn std::error::Error) -> String {
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
pub fn status_of(message: &str) -> Option<u16> {
    let rest = message.split("status code: ").nth(1)?;
    rest.get(..3)?.parse().ok()
}

/// A body that arrived but is not what the store holds: cut short or
/// damaged on the way. Fetching it again is the remedy.
#[derive(Debug)]
pub struct DamagedInTransit {
    pub key: String,
    /// (bytes received, the object's size) when the body was short.
    pub cut: Option<(u64, u64)>,
}

impl std::fmt::Display for DamagedInTransit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cut {
            Some((got, size)) => write!(
                f,
                "the read of {} was cut short: {got} of its {size} bytes arrived",
                self.key
            ),
            None => write!(
                f,
                "the read of {} was cut short or damaged in transit (its MD5 does not match the object's ETag)",
                self.key
            ),
        }
    }
}

impl std::error::Error for DamagedInTransit {}

/// No bytes arrived for the repository's progress timeout.
#[derive(Debug)]
pub struct Stalled {
    pub what: &'static str,
    pub after: std::time::Duration,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the store sent nothing for {} while {} (the progress timeout)",
            crate::util::short_duration(self.after),
            self.what
        )
    }
}

impl std::error::Error for Stalled {}

pub fn generic(source: impl std::error::Error + Send + Sync + 'static) -> E {
    E::Generic {
        store: "S3",
        source: Box::new(source),
    }
}

pub fn is_transit_damage(e: &E) -> bool {
    match e {
        E::Generic { source, .. } => source.downcast_ref::<DamagedInTransit>().is_some(),
        _ => false,
    }
}

/// S3 error codes that say the body the server got was not the body that
/// was signed: damaged on the way up, so sending it again may work.
const DAMAGED_UPLOAD: &[&str] = &[
    "XAmzContentSHA256Mismatch",
    "BadDigest",
    "InvalidDigest",
    "Sha256Mismatch",
];

/// May asking again help? A refusal (bad credentials, a forbidden key, a
/// missing bucket) does not get better; a timeout, throttling (429), a
/// server error (5xx), a dropped connection or a body damaged on the way
/// may.
pub fn transient(e: &E) -> bool {
    match e {
        E::Generic { .. } => {
            let s = one_line(e);
            if s.contains("NoSuchBucket") {
                return false;
            }
            if DAMAGED_UPLOAD.iter().any(|c| s.contains(c)) {
                return true;
            }
            match status_of(&s) {
                Some(408 | 429) | None => true,
                Some(code) => code >= 500,
            }
        }
        E::JoinError { .. } => true,
        _ => false,
    }
}

/// What the admin should check, for an error that is final.
pub fn hint(e: &E, message: &str) -> &'static str {
    if message.contains("NoSuchBucket") {
        // Before NotFound: a missing bucket is a 404 too.
        return "create the bucket first (lifeboat never creates buckets), and check the URL, endpoint and region";
    }
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            "check access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), and that the bucket policy lets this key read, write, list and delete in the bucket; asking again will not help"
        }
        E::NotFound { .. } => "the object is missing: run `lifeboat verify` on this repository",
        _ if status_of(message).is_some_and(|c| (400..500).contains(&c)) => {
            "the store refused the request: check the endpoint, region and path_style settings"
        }
        _ => {
            "the store kept failing after retries: check the endpoint, region and network, and the provider's status page; rerunning resumes where this stopped"
        }
    }
}

/// Words that turn a transport message into what happened to the read.
pub fn explain(message: &str) -> &'static str {
    if message.contains("error decoding response body")
        || message.contains("end of file before message length")
        || message.contains("IncompleteMessage")
    {
        " (the read was cut short)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(m: &str) -> E {
        E::Generic {
            store: "S3",
            source: m.to_string().into(),
        }
    }

    #[test]
    fn only_timeouts_throttling_server_errors_and_damaged_bodies_are_retried() {
        // A hash in the URL that contains "403" is not a 403.
        assert!(transient(&e("PUT http://h/data/c8403bb in 2ms - Server returned non-2xx status code: 503 Service Unavailable")));
        assert!(transient(&e(
            "Server returned non-2xx status code: 429 Too Many Requests"
        )));
        assert!(transient(&e("error sending request: connection reset")));
        assert!(transient(&e(
            "Server returned non-2xx status code: 400 Bad Request: <Code>XAmzContentSHA256Mismatch</Code>"
        )));
        assert!(!transient(&e(
            "Server returned non-2xx status code: 403 Forbidden"
        )));
        assert!(!transient(&e(
            "Server returned non-2xx status code: 400 Bad Request: NoSuchBucket"
        )));
    }

    #[test]
    fn credentials_are_scrubbed_from_error_bodies() {
        let body = "403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><StringToSign>AWS4 x</StringToSign><SignatureProvided>abc</SignatureProvided></Error> Credential=AKIAOTHER/20260101/us-east-1/s3";
        let s = scrub(body, &["sekrit-value".into()]);
        assert!(!s.contains("AKIAEXAMPLE"), "{s}");
        assert!(!s.contains("AKIAOTHER"), "{s}");
        assert!(!s.contains("AWS4 x"), "{s}");
        assert!(s.contains("SignatureDoesNotMatch"), "{s}");
        let s = scrub(
            "key sekrit-value and <AWSAccessKeyId>cut",
            &["sekrit-value".into()],
        );
        assert_eq!(s, "key <redacted> and <AWSAccessKeyId><redacted>");
    }
}
