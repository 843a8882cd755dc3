//! TUI benchmark (not a test): time to first frame over a large inventory,
//! and fuzzy-filter latency per keystroke over a million paths.
//!
//!     cargo run --release --example tui_bench
//!
//! Targets: first frame under 150 ms, filter under 50 ms per keystroke.

use lifeboat::config::Tier;
use lifeboat::inventory::{Capacity, Inventory, RepositoryView, RestorePoint, ServiceView};
use lifeboat::repo::tree::{Node, NodeKind};
use lifeboat::tui::app::{App, Msg};
use lifeboat::tui::theme::Theme;
use lifeboat::tui::tree::{search, TreeView};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

fn inventory(services: usize, points: usize) -> Inventory {
    let now = SystemTime::now();
    let tiers = [Tier::Critical, Tier::Important, Tier::Supporting];
    Inventory {
        repositories: vec![RepositoryView {
            name: "nas".into(),
            location: "/mnt/nas".into(),
            capacity: Some(Capacity {
                total: 8 << 40,
                used: 5 << 40,
            }),
            size: Some(2_000_000_000_000),
            error: None,
            object_storage: false,
            copy_of: None,
        }],
        services: (0..services)
            .map(|s| ServiceView {
                name: format!("service-{s:02}"),
                tier: tiers[s % 3],
                host: format!("host-{:02}", s / 5),
                description: String::new(),
                repository: "nas".into(),
                rpo_secs: 86400,
                rto_secs: 7200,
                sources: vec![format!("files: /srv/service-{s:02}")],
                restore_points: (0..points)
                    .map(|p| {
                        let t = now - Duration::from_secs(((points - p) as u64) * 3600);
                        RestorePoint {
                            id: format!(
                                "{:064x}",
                                (s * points + p) as u128 * 0x9E37_79B9_7F4A_7C15
                            ),
                            time: t,
                            time_text: humantime::format_rfc3339_seconds(t).to_string()[..19]
                                .replace('T', " "),
                            host: format!("host-{:02}", s / 5),
                            files: 1000,
                            bytes: 1 << 30,
                            added: (p as u64 % 17) << 20,
                            duration_ms: 4000,
                            unreadable: 0,
                        }
                    })
                    .collect(),
                last_verify: None,
                last_drill: None,
                offsite: Vec::new(),
                pitr: None,
            })
            .collect(),
        kept: Default::default(),
        notices: Default::default(),
    }
}

fn paths(n: usize) -> Vec<Node> {
    let words = [
        "immich",
        "library",
        "paperless",
        "media",
        "documents",
        "originals",
        "config",
        "data",
        "thumbs",
        "backup",
        "upload",
        "archive",
    ];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let depth = 3 + (next() % 4) as usize;
            let mut p = String::from("srv");
            for _ in 0..depth {
                p.push('/');
                p.push_str(words[(next() % words.len() as u64) as usize]);
            }
            p.push_str(&format!("/IMG_{i:07}.jpg"));
            Node {
                size: 1,
                ..Node::new(p, NodeKind::File)
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    println!("| measurement | result | target |");
    println!("|---|---:|---:|");

    // First frame: health evaluated and drawn from a 50 x 1,000 inventory.
    let inv = Arc::new(inventory(50, 1000));
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut times = Vec::new();
        for _ in 0..7 {
            let start = Instant::now();
            let mut app = App::new(Theme { color: true }, SystemTime::now());
            app.on_msg(Msg::Inventory(Arc::clone(&inv)));
            let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
            term.draw(|f| lifeboat::tui::views::draw(f, &app))
                .expect("draw");
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        println!("| first frame, 50 services x 1,000 restore points, {w}x{h} (median of 7) | {:.1} ms | < 150 ms |", median(times));
    }

    // Fuzzy filter over a million paths, one search per keystroke.
    let t = Instant::now();
    let tree = TreeView::new("bench".into(), paths(1_000_000));
    println!("| preparing 1,000,000 paths for browsing and search (once per restore point opened) | {:.0} ms | |", t.elapsed().as_secs_f64() * 1000.0);
    let latest = AtomicU64::new(1);
    let query = "immich/img_0042";
    let mut worst = 0.0f64;
    let mut all = Vec::new();
    for n in 1..=query.len() {
        let q = &query[..n];
        let start = Instant::now();
        let hits = search(&tree, q, 500, 1, &latest).expect("not superseded");
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        worst = worst.max(ms);
        all.push(ms);
        assert!(!hits.is_empty() || n > 3, "{q} should match something");
    }
    println!("| fuzzy filter over 1,000,000 paths, per keystroke typing \"{query}\" (median / worst) | {:.1} / {:.1} ms | < 50 ms |", median(all), worst);
}
