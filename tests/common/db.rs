//! The database servers the tests talk to: PostgreSQL and MariaDB on
//! loopback as the `lifeboat_test` login that scripts/test-deps.sh makes.
#![allow(dead_code)]

use std::process::Command as Std;

pub const PASSWORD_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/db-password");
pub const START: &str = "run scripts/test-deps.sh (it installs and starts PostgreSQL, MariaDB and Redis and creates the lifeboat_test login)";

pub fn password() -> String {
    std::fs::read_to_string(PASSWORD_FILE)
        .unwrap()
        .trim()
        .to_string()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", rand::random::<u32>())
}

pub fn pg(db: &str) -> postgres::Client {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(5432)
        .user("lifeboat_test")
        .password(password())
        .dbname(db)
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable on 127.0.0.1:5432 as lifeboat_test ({e}); {START}")
        })
}

pub fn mariadb(sql: &str) -> String {
    let out = Std::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "lifeboat_test",
            "--batch",
            "--skip-column-names",
        ])
        .env("MYSQL_PWD", password())
        .args(["-e", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the mariadb client ({e}); {START}"));
    assert!(
        out.status.success(),
        "MariaDB on 127.0.0.1:3306 refused `{sql}`: {}; {START}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
