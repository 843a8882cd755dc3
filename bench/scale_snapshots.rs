//! Restore-point scale benchmark helper (not a test): multiplies one real
//! restore point into N through the library, so `lifeboat snapshots` and
//! the console can be timed over 50,000 of them without 50,000 backups.
//!
//!     cargo run --release --example scale_snapshots -- gen LOCATION KEY N
//!     cargo run --release --example scale_snapshots -- console CONFIG
//!
//! `gen` copies the repository's newest summary N times (an hour apart,
//! each a sealed object of its own referencing the same tree); LOCATION is
//! a directory or s3://bucket/prefix (AWS_* from the environment). On a
//! directory the objects are written without fsync: they are bench data.
//! `console` prints, in ms, how long until the console's first frame shows
//! the restore points of the config's services (inventory loaded, frame
//! drawn on a TestBackend), as `lifeboat` with no arguments does.
//!
//! Targets (issue 19): both under 1 s with 50,000 restore points.

use anyhow::{Context, Result};
use lifeboat::repo::{Kind, Snapshot};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen", location, key, n] => gen(location, key, n.parse().context("N")?),
        ["console", config] => console(config),
        _ => anyhow::bail!("usage: scale_snapshots gen LOCATION KEY N | console CONFIG"),
    }
}

fn gen(location: &str, key: &str, n: usize) -> Result<()> {
    let repo = lifeboat::repo::open_at(location, Some(std::path::Path::new(key)))?;
    let (snaps, _) = repo.list_snapshots()?;
    let base: Snapshot = snaps
        .last()
        .cloned()
        .context("the repository needs one real restore point to copy")?;
    let t0 = base
        .system_time()
        .context("the restore point's time is not RFC 3339")?;
    let local =
        (!location.contains("://")).then(|| std::path::Path::new(location).join("snapshots"));
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let workers = if local.is_some() { 2 } else { 32 };
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        let mut snap = base.clone();
                        let t = t0 - Duration::from_secs(3600 * (i as u64 + 1));
                        snap.time = humantime::format_rfc3339_nanos(t).to_string();
                        snap.stats.duration_ms = 1000 + (i as u64 % 977);
                        let name = hex::encode(rand::random::<[u8; 32]>());
                        let sealed = repo.seal_meta(&serde_json::to_vec(&snap)?)?;
                        match &local {
                            Some(dir) => std::fs::write(dir.join(&name), &sealed)?,
                            None => repo.backend().put(Kind::Snapshots, &name, &sealed)?,
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        Ok(())
    })?;
    eprintln!(
        "wrote {n} restore points in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn console(config: &str) -> Result<()> {
    use lifeboat::tui::app::{App, Msg};
    use lifeboat::tui::theme::Theme;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    let started = Instant::now();
    let cfg = lifeboat::config::Config::load(std::path::Path::new(config))?;
    let inventory = lifeboat::inventory::load(&cfg);
    let points: usize = inventory
        .services
        .iter()
        .map(|s| s.restore_points.len())
        .sum();
    anyhow::ensure!(points > 0, "the inventory holds no restore points");
    let mut app = App::new(Theme { color: true }, std::time::SystemTime::now());
    app.on_msg(Msg::Inventory(std::sync::Arc::new(inventory)));
    let mut term = Terminal::new(TestBackend::new(160, 48))?;
    term.draw(|f| lifeboat::tui::views::draw(f, &app))?;
    println!(
        "{:.0} ms ({points} restore points)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
