//! The deeper checks after a restore: `pg_amcheck` on a restored
//! PostgreSQL copy, and MariaDB's table checksums at `check =
//! "checksums"`. Each test runs the built binary against the real servers
//! on loopback and tampers with the restored copy through a wrapper
//! around the restore tool, first on PATH.

mod common;
#[path = "fidelity/support.rs"]
#[allow(dead_code)]
mod support;

use common::db::{mariadb, pg, unique, PASSWORD_FILE};
use common::{fake_tool, Env};
use predicates::prelude::*;
use std::path::Path;
use support::*;

/// PATH with PostgreSQL's own bin directory (where Debian keeps
/// `pg_amcheck`) after `path`, so the binary finds the tool.
fn with_pg_bin(path: &str) -> String {
    let out = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config (PostgreSQL's development files) is not installed");
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        Path::new(&bin).join("pg_amcheck").exists(),
        "pg_amcheck is not in `{bin}`"
    );
    format!("{path}:{bin}")
}

/// A drill runs `pg_amcheck` on the restored copy and says so; a restored
/// copy whose B-tree index is damaged on disk fails the drill naming the
/// index. The damage is real: a `pg_restore` wrapper overwrites 16 bytes
/// of a leaf page in the copy's index file (found with
/// `pg_relation_filepath`; CREATE INDEX writes its pages past the buffer
/// cache, so the server reads them back from the file).
#[test]
fn postgres_drill_runs_pg_amcheck_and_a_damaged_index_fails_it() {
    let db = unique("lb_amck");
    pg("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    pg(&db)
        .batch_execute("CREATE TABLE items (id int, note text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 2000) g; ALTER TABLE items ADD PRIMARY KEY (id)")
        .unwrap();
    let env = Env::new();
    let cfg = config(
        &env,
        &pg_service(
            "shop-db",
            &db,
            "lifeboat_test",
            Path::new(PASSWORD_FILE),
            "",
        ),
    );
    lb(&env, &cfg)
        .args(["backup", "shop-db"])
        .assert()
        .success();
    let path = with_pg_bin(&std::env::var("PATH").unwrap());
    // The per-source detail is in the drill's JSON report.
    lb(&env, &cfg)
        .env("PATH", &path)
        .args(["--json", "drill", "shop-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "pg_amcheck: no corruption found in tables or B-tree indexes",
        ));
    let ext = pg(&db)
        .query("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[])
        .unwrap();
    assert!(ext.is_empty(), "amcheck was created in the live database");

    let real = real_tool("pg_restore");
    let psql =
        "psql -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -U lifeboat_test --no-password -d \"$db\"";
    let damaging = fake_tool(
        &env,
        "pg_restore",
        &format!(
            "{real} \"$@\" || exit $?\nfor a in \"$@\"; do [ \"$prev\" = --dbname ] && db=$a; prev=$a; done\n\
             dir=$({psql} -c 'SHOW data_directory') || exit 1\n\
             file=$({psql} -c \"SELECT pg_relation_filepath('items_pkey')\") || exit 1\n\
             printf '\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377\\377' | dd of=\"$dir/$file\" bs=1 seek=13192 conv=notrunc 2>/dev/null"
        ),
    );
    let said = fails(
        lb(&env, &cfg)
            .env("PATH", with_pg_bin(&damaging))
            .args(["drill", "shop-db"]),
    );
    assert!(
        said.contains("FAILED")
            && said.contains("pg_amcheck: corruption in btree index public.items_pkey"),
        "{said}"
    );
    drop_pg_databases(&db);
}

/// `check = "checksums"` for MariaDB: a checksum of each table's rows is
/// recorded from the dump at backup and a drill passes; a `mariadb`
/// wrapper that changes one value after loading the copy (counts
/// unchanged) fails the drill naming the table, and a live restore
/// through it leaves the live database alone.
#[test]
fn mariadb_checksums_catch_a_changed_value_in_drill_and_live_restore() {
    let db = unique("lb_msum");
    mariadb(&format!(
        "CREATE DATABASE {db}; CREATE TABLE {db}.items (id INT PRIMARY KEY, price INT) ENGINE=InnoDB; USE {db}; INSERT INTO items SELECT seq, seq * 3 FROM seq_1_to_500"
    ));
    let env = Env::new();
    let cfg = config(
        &env,
        &format!("{}check = \"checksums\"\n", mysql_service("shop-db", &db)),
    );
    lb(&env, &cfg)
        .args(["backup", "shop-db"])
        .assert()
        .success();
    let facts = &snapshots(&env, &cfg, "shop-db")[0]["sources"][0]["facts"];
    let sum = facts["objects"]["checksum items"].as_str().unwrap_or("");
    assert!(
        sum.len() == 32 && sum.chars().all(|c| c.is_ascii_hexdigit()),
        "{facts}"
    );
    lb(&env, &cfg)
        .args(["drill", "shop-db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok:"));

    let real = real_tool("mariadb");
    let path = fake_tool(
        &env,
        "mariadb",
        &format!(
            "{real} \"$@\" || exit $?\nfor a in \"$@\"; do [ \"$a\" = -e ] && exit 0; last=$a; done\n\
             case \"$last\" in lifeboat_drill_*|*_lifeboat_new_*) {real} \"$1\" -e 'UPDATE items SET price = price + 1 WHERE id = 7' \"$last\";; esac"
        ),
    );
    let said = fails(lb(&env, &cfg).env("PATH", &path).args(["drill", "shop-db"]));
    assert!(
        said.contains("FAILED") && said.contains("checksum items"),
        "{said}"
    );
    let said = fails(
        lb(&env, &cfg)
            .env("PATH", &path)
            .args(["restore", "shop-db", "--live", "--yes"]),
    );
    assert!(said.contains("checksum items"), "{said}");
    assert_eq!(
        mariadb(&format!("SELECT price FROM {db}.items WHERE id = 7")),
        "21"
    );
    // Without the wrapper the live restore passes its checks, the one of
    // the live database after the swap included.
    lb(&env, &cfg)
        .args(["restore", "shop-db", "--live", "--yes"])
        .assert()
        .success();
    for d in mariadb(&format!("SHOW DATABASES LIKE '{db}\\_lifeboat%'")).lines() {
        mariadb(&format!("DROP DATABASE `{d}`"));
    }
    mariadb(&format!("DROP DATABASE {db}"));
}
