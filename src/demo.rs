//! `lifeboat demo`: a throwaway homelab in a temporary directory, with a
//! week of simulated nightly backups, so a newcomer sees every screen with
//! real data in one command. The history is simulated (restore points are
//! dated in the past); the backups, the verify and the drills are real.
//!
//! The outcome is chosen to show every state: Vaultwarden and Immich are
//! green (backed up, verified, drilled), Paperless is a warning (never
//! drilled), Home Assistant is a breach (its backups stopped three days ago).

use crate::config::Config;
use crate::engine::{self, BackupOptions, DrillOptions, VerifyOptions};
use crate::progress::Reporter;
use crate::records::{DrillRecord, Records, VerifyRecord};
use crate::repo::{KeySource, LocalBackend, Repository};
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(86400);

/// Deterministic filler: `n` bytes of text-like (compressible) or noisy data.
fn filler(seed: u64, n: usize, text: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 64);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if text {
            out.extend_from_slice(format!("line {} value {} ok\n", x % 5000, x % 77).as_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(n);
    out
}

fn write(p: &Path, data: &[u8]) -> Result<()> {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    fs::write(p, data).with_context(|| format!("writing {}", p.display()))
}

fn sqlite(path: &Path, table: &str, rows: u32, day: u32) -> Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    let conn =
        rusqlite::Connection::open(path).with_context(|| format!("creating {}", path.display()))?;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, body BLOB, day INTEGER);"
    ))?;
    let tx = conn.unchecked_transaction()?;
    {
        let mut st = tx.prepare(&format!(
            "INSERT INTO {table} (name, body, day) VALUES (?1, ?2, ?3)"
        ))?;
        for i in 0..rows {
            st.execute(rusqlite::params![
                format!("{table} item {day}-{i}"),
                filler(u64::from(day * 1000 + i), 600, true),
                day
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// One night of change in the simulated homelab.
fn night(root: &Path, day: u32) -> Result<()> {
    let srv = root.join("srv");
    sqlite(&srv.join("vaultwarden/data/db.sqlite3"), "cipher", 40, day)?;
    write(
        &srv.join(format!("vaultwarden/data/attachments/att-{day:02}.bin")),
        &filler(u64::from(day), 20_000, false),
    )?;
    for i in 0..3 {
        let n = day * 3 + i;
        write(
            &srv.join(format!("immich/library/2026/11/IMG_{n:04}.jpg")),
            &filler(u64::from(9000 + n), 300_000 + 7919 * n as usize, false),
        )?;
    }
    write(
        &srv.join(format!(
            "paperless/media/documents/originals/{day:04}-invoice.pdf"
        )),
        &filler(u64::from(500 + day), 60_000, true),
    )?;
    sqlite(
        &srv.join("homeassistant/config/home-assistant_v2.db"),
        "states",
        200,
        day,
    )?;
    Ok(())
}

fn setup_static(root: &Path) -> Result<()> {
    let srv = root.join("srv");
    write(&srv.join("vaultwarden/.env"), b"# Vaultwarden settings\nDOMAIN=https://vault.home.lan\nADMIN_TOKEN=demo-not-a-real-token\nSMTP_PASSWORD=demo-not-a-real-password\n")?;
    let files: [(&str, Vec<u8>); 6] = [
        ("vaultwarden/data/rsa_key.pem", filler(1, 1700, true)),
        (
            "immich/library/README.txt",
            b"Immich upload library\n".to_vec(),
        ),
        (
            "paperless/media/documents/archive/index.txt",
            filler(2, 4000, true),
        ),
        (
            "paperless/data/celerybeat-schedule.db",
            filler(3, 16_000, false),
        ),
        (
            "homeassistant/config/configuration.yaml",
            b"homeassistant:\n  name: Home\n  unit_system: metric\nhttp:\n  server_port: 8123\n"
                .to_vec(),
        ),
        (
            "homeassistant/config/automations.yaml",
            filler(4, 3000, true),
        ),
    ];
    for (path, content) in files {
        write(&srv.join(path), &content)?;
    }
    std::os::unix::fs::symlink(
        "configuration.yaml",
        srv.join("homeassistant/config/current.yaml"),
    )
    .context("creating a symlink")?;
    Ok(())
}

/// The demo's configuration, from `assets/demo-lifeboat.toml`.
fn config_text(root: &Path) -> String {
    // Escaped for TOML's "…" strings, so a directory name with a quote or
    // a backslash is safe.
    let escaped = root
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    include_str!("../assets/demo-lifeboat.toml").replace("{root}", &escaped)
}

/// Builds the demo under `root` (which must be empty or missing) and
/// returns its configuration.
pub fn build(root: &Path, reporter: &Reporter) -> Result<Config> {
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let config_path = root.join("lifeboat.toml");
    fs::write(&config_path, config_text(root))?;
    let config = Config::load(&config_path)?;
    let repo_cfg = config
        .repositories
        .get("nas")
        .context("demo config has no repository")?;
    Repository::init(
        Box::new(LocalBackend::new(&repo_cfg.path)),
        repo_cfg.key_file.as_ref().map(|k| k.path()).transpose()?,
    )?;
    let repo = Repository::open(
        Box::new(LocalBackend::new(&repo_cfg.path)),
        KeySource::File(root.join("admin.key")),
    )?;
    setup_static(root)?;

    let now = SystemTime::now();
    for day in 0..7u32 {
        night(root, day)?;
        // Nights from a week ago up to this morning, around 02:00-04:00.
        let days_ago = 6 - day;
        for (i, svc) in config.services.iter().enumerate() {
            // Home Assistant's backups stopped three days ago.
            if svc.name == "homeassistant" && days_ago < 3 {
                continue;
            }
            let mut opts = BackupOptions::for_service(svc, &config.cache_dir);
            opts.time = Some(now - DAY * days_ago - Duration::from_secs(3 * 3600 + 600 * i as u64));
            let captures = crate::source::captures(svc, &config.cache_dir);
            engine::backup_with(&repo, &opts, captures, reporter)
                .with_context(|| format!("demo backup of {}", svc.name))?;
        }
    }

    let records = Records::new(&config.state_dir);
    let verify = engine::verify(
        &repo,
        &VerifyOptions {
            read_data_percent: 100.0,
            rotation: 0,
        },
        reporter,
    )?;
    records.add_verify(&VerifyRecord::new(&repo.config().id, 100.0, &verify))?;
    let (snaps, _) = repo.list_snapshots()?;
    for svc in config
        .services
        .iter()
        .filter(|s| s.name == "vaultwarden" || s.name == "immich")
    {
        let Some(latest) = snaps.iter().rev().find(|s| s.service == svc.name) else {
            continue;
        };
        let sandbox_root = config.state_dir.join("sandboxes");
        let r = engine::drill(
            &repo,
            latest,
            &DrillOptions {
                sandbox_root,
                rto: svc.policy.rto,
                service: Some(svc.clone()),
                state_dir: Some(config.state_dir.clone()),
            },
            reporter,
        )?;
        records.add_drill(&DrillRecord::new(&svc.name, &r))?;
    }
    Ok(config)
}
