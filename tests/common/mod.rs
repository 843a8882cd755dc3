//! Shared helpers for the integration tests: isolated key and cache
//! directories, the real binary, and a strict tree comparison.
#![allow(dead_code)]

pub mod db;
pub mod pg;
pub mod tmux;

use assert_cmd::Command;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The real binary, with keys and caches inside this test's directory.
    pub fn lb(&self) -> Command {
        let mut c = Command::cargo_bin("lifeboat").expect("binary");
        // As users run it: from a directory of their own, not the source tree.
        c.current_dir(self.dir.path())
            .env("LIFEBOAT_KEY_DIR", self.path("keys"))
            .env("LIFEBOAT_CACHE_DIR", self.path("cache"))
            .env("HOME", self.path("home"))
            .env_remove("LIFEBOAT_REPO")
            .env_remove("LIFEBOAT_KEY")
            .env_remove("LIFEBOAT_CONFIG");
        c
    }

    /// The binary with the admin key made by [`Env::init`].
    pub fn lbk(&self) -> Command {
        let mut c = self.lb();
        c.env("LIFEBOAT_KEY", self.path("admin.key"));
        c
    }

    /// `lifeboat init --repo DIR --key-file KEY`; returns the key path.
    pub fn init(&self, repo: &Path) -> PathBuf {
        let key = self.path("admin.key");
        self.lb()
            .args(["init", "--repo"])
            .arg(repo)
            .arg("--key-file")
            .arg(&key)
            .assert()
            .success();
        key
    }

    pub fn repo(&self, repo: &Path, key: &Path) -> lifeboat::repo::Repository {
        lifeboat::repo::Repository::open(
            Box::new(lifeboat::repo::LocalBackend::new(repo)),
            lifeboat::repo::KeySource::File(key.to_path_buf()),
        )
        .expect("open repository")
    }

    pub fn backup_opts(&self, service: &str, paths: &[&Path]) -> lifeboat::engine::BackupOptions {
        let mut o = lifeboat::engine::BackupOptions::new(
            service,
            paths.iter().map(|p| p.to_path_buf()).collect(),
        );
        o.cache_dir = self.path("cache");
        o
    }
}

/// Where a backed-up absolute path lands under a restore target.
pub fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("absolute source"))
}

/// Asserts two trees are identical: names, kinds, contents, modes, mtimes
/// and symlink targets.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let ma = fs::symlink_metadata(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let mb = fs::symlink_metadata(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert_eq!(ma.file_type(), mb.file_type(), "kind of {}", b.display());
    assert_eq!(
        ma.permissions().mode() & 0o7777,
        mb.permissions().mode() & 0o7777,
        "mode of {}",
        b.display()
    );
    if !ma.file_type().is_symlink() {
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {}",
            b.display()
        );
    }
    if ma.file_type().is_symlink() {
        assert_eq!(
            fs::read_link(a).unwrap(),
            fs::read_link(b).unwrap(),
            "target of {}",
            b.display()
        );
    } else if ma.is_file() {
        assert!(
            fs::read(a).unwrap() == fs::read(b).unwrap(),
            "content of {}",
            b.display()
        );
    } else if ma.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        assert_eq!(na, nb, "entries of {}", b.display());
        for n in na {
            assert_same_tree(&a.join(&n), &b.join(&n));
        }
    }
}

/// Deterministic pseudo-random bytes, half compressible text, half noise.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / 65536) % 2 == 0 {
            out.extend_from_slice(format!("row {} value {}\n", x % 1000, x % 97).as_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Sets a file's mtime into the past so the files cache trusts it.
pub fn age_file(p: &Path) {
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

impl Env {
    /// The real binary as a plain process (for tests that kill it).
    pub fn lb_process(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"));
        c.current_dir(self.dir.path())
            .env("LIFEBOAT_KEY_DIR", self.path("keys"))
            .env("LIFEBOAT_CACHE_DIR", self.path("cache"))
            .env("HOME", self.path("home"))
            .env_remove("LIFEBOAT_REPO")
            .env_remove("LIFEBOAT_KEY")
            .env_remove("LIFEBOAT_CONFIG");
        c
    }
}

/// A directory holding fake tools, first on PATH; returns that PATH.
pub fn fake_tool(env: &Env, name: &str, script: &str) -> String {
    let dir = env.path("fake-bin");
    fs::create_dir_all(&dir).unwrap();
    write_executable(&dir.join(name), &format!("#!/bin/sh\n{script}\n"));
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

/// Writes an executable without this process ever holding a writable
/// descriptor of it: one written here could be inherited, between fork and
/// exec, by a child another test thread is starting, and running the file
/// then fails with "Text file busy". `sh` writes it in a process of its own.
pub fn write_executable(path: &Path, text: &str) {
    use std::io::Write;
    let mut sh = std::process::Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sh.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(sh.wait().unwrap().success(), "writing {}", path.display());
}

/// Puts the executable `from` at `to` without this process writing it, for
/// the reason [`write_executable`] gives: a hard link writes nothing; where
/// one cannot be made, `cp` writes it in a process of its own.
pub fn install_executable(from: &Path, to: &Path) {
    if fs::hard_link(from, to).is_ok() {
        return;
    }
    let status = std::process::Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp {} {}", from.display(), to.display());
}

/// Credentials of the test S3 server. The secret is distinctive so a test
/// can prove it never shows up in output or logs.
pub const S3_KEY_ID: &str = "lifeboat-test-id";
pub const S3_SECRET: &str = "s3cret-Zq8wX2vN5mLk";
/// The bucket every test server starts with.
pub const S3_BUCKET: &str = "lifeboat";

/// A real S3-compatible server (s3s-fs) on loopback, on a free port, with
/// its data in a temporary directory; stopped when dropped.
pub struct S3Server {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: std::process::Child,
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    pub fn start() -> S3Server {
        let bin = find_binary("s3s-fs").unwrap_or_else(|| {
            panic!("the S3 tests need s3s-fs, a real S3-compatible server: run scripts/test-deps.sh to install it")
        });
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(S3_BUCKET)).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = std::process::Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", S3_KEY_ID, "--secret-key", S3_SECRET])
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken by someone else: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return S3Server { port, dir, child };
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs ({}) did not start listening", bin.display());
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the server keeps the objects under `prefix` of the bucket.
    pub fn objects(&self, prefix: &str) -> PathBuf {
        self.dir.path().join(S3_BUCKET).join(prefix)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the fault-injecting proxy does to a share of requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Faults {
    /// Pass everything through.
    None,
    /// Out of every 100 requests, this many are dropped (connection closed
    /// unanswered), answered 500 or 503, or cut off halfway through the
    /// response, in equal parts.
    Transient(u64),
    /// Refuse every upload of a pack with 403, as a read-only key would.
    DenyPackUploads,
    /// Answer every request 503: a store that is down.
    Down,
    /// Cut the connection of the first this-many pack uploads halfway
    /// through the request body (reset, as a dropped link or a proxy
    /// timing out does), while Lifeboat is still writing it.
    CutUploads(u64),
    /// Never answer a DELETE outside `locks/` (a prune removing packs):
    /// the caller hangs there, holding its lock, until it is killed.
    StallDeletes,
    /// Never answer anything: every request hangs until the client gives
    /// up or is gone (a store behind a dead link).
    StallAll,
    /// Answer 503 to every GET and HEAD of a pack: the store fails while
    /// listings and small objects still work.
    PackReadsDown,
    /// Answer 503 to every whole-pack download (a GET without a Range),
    /// while ranged reads of trailers still work.
    PackDownloadsDown,
    /// Answer every request 503 for this long after the proxy started,
    /// then pass everything: a provider's blip.
    DownFor(std::time::Duration),
    /// Answer every GET whose request line contains this with its body cut
    /// to half and a Content-Length that matches the cut body: a short
    /// read the HTTP layer cannot see.
    ShortBodies(&'static str),
    /// Refuse every pack upload with a 403 SignatureDoesNotMatch whose
    /// body echoes the access key id, as AWS does.
    EchoKeyId,
    /// The first whole-pack download sends its headers and half its body,
    /// then nothing, until the client hangs up.
    StallDownloadOnce,
    /// Flip one byte in the body of the first this-many whole-pack
    /// downloads.
    FlipDownloads(u64),
    /// Flip one byte in the body of the first this-many pack uploads.
    FlipUploads(u64),
}

/// A small HTTP proxy between Lifeboat and the S3 server that injects
/// faults and records the request lines it saw.
pub struct FaultProxy {
    pub port: u16,
    pub faults_injected: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FaultProxy {
    pub fn start(upstream: u16, faults: Faults) -> FaultProxy {
        use std::sync::{atomic::AtomicU64, Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let injected = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (inj, reqs) = (injected.clone(), requests.clone());
        let started = std::time::Instant::now();
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                let (inj, reqs) = (inj.clone(), reqs.clone());
                std::thread::spawn(move || {
                    let _ = proxy_one(client, upstream, faults, n as u64, started, &inj, &reqs);
                });
            }
        });
        FaultProxy {
            port,
            faults_injected: injected,
            requests,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn faults(&self) -> u64 {
        self.faults_injected
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn request_lines(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// One request per connection: the proxy answers with `Connection: close`,
/// so every request gets its own fault decision.
fn proxy_one(
    mut client: std::net::TcpStream,
    upstream: u16,
    faults: Faults,
    n: u64,
    started: std::time::Instant,
    injected: &std::sync::atomic::AtomicU64,
    requests: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    let mut request_line = String::new();
    let mut ranged = false;
    let mut key_id = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if request_line.is_empty() {
            request_line = line.trim_end().to_string();
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        assert!(
            !lower.starts_with("transfer-encoding:"),
            "the proxy does not handle chunked requests"
        );
        if lower.starts_with("connection:") {
            continue;
        }
        ranged |= lower.starts_with("range:");
        if let Some(i) = line.find("Credential=") {
            let rest = &line[i + "Credential=".len()..];
            key_id = rest.split('/').next().unwrap_or("").to_string();
        }
        head.extend_from_slice(line.as_bytes());
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    if let Faults::CutUploads(n) = faults {
        let upload = request_line.starts_with("PUT ") && request_line.contains("/data/");
        if upload
            && content_length > 1
            && injected
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                    (c < n).then_some(c + 1)
                })
                .is_ok()
        {
            requests
                .lock()
                .unwrap()
                .push(format!("{request_line} (cut)"));
            let mut half = vec![0u8; content_length / 2];
            reader.read_exact(&mut half)?;
            drop(reader); // its handle would keep the socket open
            return reset(client);
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    requests.lock().unwrap().push(request_line.clone());
    // Takes one of the first `max` faults of a kind, if any are left.
    let take = |max: u64| {
        injected
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                (c < max).then_some(c + 1)
            })
            .is_ok()
    };
    let pack = request_line.contains("/data/");
    let pack_upload = request_line.starts_with("PUT ") && pack;
    let pack_download = request_line.starts_with("GET ") && pack && !ranged;
    if let Faults::FlipUploads(max) = faults {
        if pack_upload && !body.is_empty() && take(max) {
            let i = body.len() / 2;
            body[i] ^= 0x01;
        }
    }
    let stall = match faults {
        Faults::StallDeletes => {
            request_line.starts_with("DELETE ") && !request_line.contains("/locks/")
        }
        Faults::StallAll => true,
        _ => false,
    };
    if stall {
        injected.fetch_add(1, Ordering::SeqCst);
        // Returns once the client is gone.
        let _ = reader.read(&mut [0u8; 1]);
        return Ok(());
    }

    let reply = |client: &mut std::net::TcpStream, status: &str, code: &str| {
        let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>");
        let _ = write!(
            client,
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    // A fixed pseudo-random sequence: reproducible, and no two neighbouring
    // requests fail the same way.
    let roll = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % 100;
    let mut cut_response = false;
    match faults {
        Faults::None => {}
        Faults::DenyPackUploads if pack_upload => {
            injected.fetch_add(1, Ordering::Relaxed);
            reply(&mut client, "403 Forbidden", "AccessDenied");
            return Ok(());
        }
        Faults::Transient(share) if roll < share => {
            injected.fetch_add(1, Ordering::Relaxed);
            match roll % 4 {
                0 => return client.shutdown(std::net::Shutdown::Both),
                1 => {
                    reply(&mut client, "500 Internal Server Error", "InternalError");
                    return Ok(());
                }
                2 => {
                    reply(&mut client, "503 Slow Down", "SlowDown");
                    return Ok(());
                }
                _ => cut_response = true,
            }
        }
        Faults::PackReadsDown
            if pack && (request_line.starts_with("GET ") || request_line.starts_with("HEAD ")) =>
        {
            injected.fetch_add(1, Ordering::Relaxed);
            reply(&mut client, "503 Service Unavailable", "ServiceUnavailable");
            return Ok(());
        }
        Faults::PackDownloadsDown if pack_download => {
            injected.fetch_add(1, Ordering::Relaxed);
            reply(&mut client, "503 Service Unavailable", "ServiceUnavailable");
            return Ok(());
        }
        Faults::DownFor(window) if started.elapsed() < window => {
            injected.fetch_add(1, Ordering::Relaxed);
            reply(&mut client, "503 Service Unavailable", "ServiceUnavailable");
            return Ok(());
        }
        Faults::EchoKeyId if pack_upload => {
            injected.fetch_add(1, Ordering::Relaxed);
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><AWSAccessKeyId>{key_id}</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256 {key_id}</StringToSign></Error>");
            let _ = write!(
                client,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return Ok(());
        }
        Faults::Down => {
            injected.fetch_add(1, Ordering::Relaxed);
            reply(&mut client, "503 Service Unavailable", "ServiceUnavailable");
            return Ok(());
        }
        _ => {}
    }
    let mut up = std::net::TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(&head)?;
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    let body_at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(response.len());
    let has_body = response.len() > body_at + 1 && response.starts_with(b"HTTP/1.1 20");
    match faults {
        Faults::ShortBodies(what)
            if request_line.starts_with("GET ") && request_line.contains(what) && has_body =>
        {
            injected.fetch_add(1, Ordering::Relaxed);
            let body = &response[body_at..];
            let short = &body[..body.len() / 2];
            let head: String = String::from_utf8_lossy(&response[..body_at])
                .split("\r\n")
                .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:") && !l.is_empty())
                .map(|l| format!("{l}\r\n"))
                .collect();
            write!(client, "{head}Content-Length: {}\r\n\r\n", short.len())?;
            client.write_all(short)?;
            return client.shutdown(std::net::Shutdown::Both);
        }
        Faults::StallDownloadOnce if pack_download && has_body && take(1) => {
            let half = body_at + (response.len() - body_at) / 2;
            client.write_all(&response[..half])?;
            client.flush()?;
            // Returns once the client is gone.
            let _ = reader.read(&mut [0u8; 1]);
            return Ok(());
        }
        Faults::FlipDownloads(max) if pack_download && has_body && take(max) => {
            let i = body_at + (response.len() - body_at) / 2;
            response[i] ^= 0x01;
        }
        _ => {}
    }
    if cut_response {
        // Headers and part of the body, then the connection dies.
        let cut = (response.len() / 2).max(1);
        client.write_all(&response[..cut])?;
    } else {
        client.write_all(&response)?;
    }
    client.shutdown(std::net::Shutdown::Both)
}

/// Closes with a reset rather than a goodbye: what the sender sees when a
/// link drops mid-request. Data still unread makes the close a reset; a
/// zero linger makes sure of it.
fn reset(client: std::net::TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let r = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(client);
    Ok(())
}
