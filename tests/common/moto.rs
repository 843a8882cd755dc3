//! An S3 server that enforces Object Lock: moto's server mode (PyPI
//! `moto[server]`, installed by scripts/test-deps.sh) on a free loopback
//! port, and boto3 to act on it directly, as an attacker holding the
//! repository's S3 credentials would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEY_ID: &str = "lifeboat-moto-id";
pub const SECRET: &str = "moto-s3cret-Hk29dLq";

pub struct Moto {
    pub port: u16,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Moto {
    pub fn start() -> Moto {
        let works = Command::new("python3")
            .args(["-c", "import moto.server, boto3"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            works,
            "the Object Lock tests need moto's S3 server and boto3: run scripts/test-deps.sh (pip install 'moto[server]')"
        );
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting python3 -m moto.server");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken: another try
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Moto { port, child };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto's S3 server did not start listening (python3 -m moto.server)");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs Python with `s3` (a boto3 client on this server) and `bucket`
    /// defined; returns its stdout, panicking with its stderr on failure.
    pub fn py(&self, bucket: &str, code: &str) -> String {
        let script = format!(
            "import boto3, json, sys, datetime\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1')\n\
             bucket = '{bucket}'\n{code}\n",
            self.endpoint()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "python failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            code
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A bucket with versioning and (if `locked`) Object Lock enabled.
    pub fn bucket(&self, name: &str, locked: bool) {
        self.py(
            name,
            &format!(
                "s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket={})",
                if locked { "True" } else { "False" }
            ),
        );
    }

    /// A `[repositories.NAME]` section for a bucket on this server.
    pub fn repo_section(&self, name: &str, bucket: &str, key: &Path, lock: &str) -> String {
        format!(
            "[repositories.{name}]\nurl = \"s3://{bucket}/repo\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\naccess_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\nkey_file = \"{}\"\n{lock}\n",
            self.endpoint(),
            key.display()
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
