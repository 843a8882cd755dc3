//! The Recover wizard's "a moment in time" for a PostgreSQL cluster,
//! headless on ratatui's TestBackend against a real private cluster
//! (initdb into a temporary directory, a free port, `archive_command`
//! calling the built binary): the restore-point step shows the window
//! the repository holds, a moment outside it is refused under the field,
//! and a moment inside it runs as a detached job (`lifeboat job-run`,
//! as the console starts it) that writes a data directory whose recovery
//! settings name that moment — and `pg_ctl start` on it gives the rows
//! committed before the moment.

mod common;

use common::free_port;
use common::pg::{append, PgCluster};
use lifeboat::tui::app::{App, Cmd, Msg, Screen};
use lifeboat::tui::recover::Stage;
use lifeboat::tui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use std::process::Child;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A cluster archiving into a repository through the built binary, with
/// a base backup, rows written before a moment T and after it, and all
/// of it archived and packed. Returns the cluster, T (RFC 3339, UTC) and
/// the row count at T.
fn cluster_with_history() -> (PgCluster, String, i64) {
    cluster_with(false)
}

/// [`cluster_with_history`]; with `stop_start`, the service has stop and
/// start commands (`pg_ctl` on the live data directory), which a live
/// restore's runbook runs.
fn cluster_with(stop_start: bool) -> (PgCluster, String, i64) {
    let c = PgCluster::start_with(|data| {
        match stop_start {
        true => format!(
            "stop = \"pg_ctl -D {d} -m fast -w stop\"\nstart = \"pg_ctl -D {d} -l {d}.log -w start\"",
            d = data.display()
        ),
        false => String::new(),
    }
    });
    let mut db = c.sql(c.port);
    db.batch_execute("CREATE TABLE orders (id serial PRIMARY KEY, note text); INSERT INTO orders (note) SELECT 'before the base backup' FROM generate_series(1, 100)")
        .unwrap();
    c.ok(c.lb().args(["backup", "db"]));
    db.batch_execute(
        "INSERT INTO orders (note) SELECT 'after the base backup' FROM generate_series(1, 50)",
    )
    .unwrap();
    // T: every row so far committed before it, every later one after.
    let (t, at_t): (String, i64) = {
        let row = db
            .query_one(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), (SELECT count(*) FROM orders)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    // Commit times have microseconds: the next commit is after T.
    std::thread::sleep(Duration::from_millis(5));
    db.batch_execute("INSERT INTO orders (note) SELECT 'after T' FROM generate_series(1, 70); DELETE FROM orders WHERE id < 10")
        .unwrap();
    c.archive_all();
    c.ok(c.lb().args(["wal-flush"]));
    (c, t, at_t)
}

fn key(app: &mut App, code: KeyCode) -> Vec<Cmd> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn typed(app: &mut App, text: &str) -> Vec<Cmd> {
    text.chars()
        .flat_map(|ch| key(app, KeyCode::Char(ch)))
        .collect()
}

fn clear(app: &mut App) {
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
}

fn draw(app: &App) -> String {
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| lifeboat::tui::views::draw(f, app)).unwrap();
    let buf = term.backend().buffer();
    (0..24)
        .map(|y| {
            (0..80)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the console's commands as its loader does, and feeds the answers
/// back; a started job is `lifeboat job-run ID` run as the cluster's user
/// (as `jobs::launch` starts it, but with the built binary).
struct Loader<'a> {
    c: &'a PgCluster,
    config: lifeboat::config::Config,
    cache: lifeboat::tui::cache::Cache,
    latest: AtomicU64,
    job: Option<Child>,
}

impl Loader<'_> {
    fn pump(&mut self, app: &mut App, cmds: Vec<Cmd>) {
        let mut queue = cmds;
        while let Some(cmd) = queue.pop() {
            if let Cmd::StartJob(spec) = cmd {
                lifeboat::jobs::write_spec(&self.config.state_dir, &spec).unwrap();
                self.c.own(&self.config.state_dir);
                let child = self
                    .c
                    .lb()
                    .args(["job-run", &spec.id])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                self.job = Some(child);
                continue;
            }
            if let Some(msg) = lifeboat::tui::execute(&self.config, &self.cache, &self.latest, cmd)
            {
                queue.extend(app.on_msg(msg));
            }
        }
    }
}

#[test]
fn a_cluster_goes_back_to_a_moment_typed_in_the_wizard() {
    let (mut c, t, rows_at_t) = cluster_with_history();
    let config = lifeboat::config::Config::load(&c.config()).unwrap();
    let inv = lifeboat::inventory::load(&config);
    let window = inv.services[0]
        .pitr
        .as_ref()
        .expect("the inventory knows the cluster's window")
        .window
        .clone();
    let (oldest, newest) = (window.oldest.unwrap(), window.newest.unwrap());
    let t_time = humantime::parse_rfc3339(&t).unwrap();
    assert!(oldest < t_time && t_time <= newest, "{window:?} {t}");

    let mut app = App::new(Theme { color: false }, SystemTime::now());
    app.on_msg(Msg::Inventory(Arc::new(inv)));
    let mut l = Loader {
        c: &c,
        config,
        cache: Default::default(),
        latest: AtomicU64::new(0),
        job: None,
    };
    let cmds = key(&mut app, KeyCode::Char('3'));
    l.pump(&mut app, cmds);
    assert_eq!(app.screen, Screen::Recover);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "point-in-time");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Services, "{}", draw(&app));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Point, "{}", draw(&app));

    // The window, as the repository holds it, at 80×24 without colour.
    let s = draw(&app);
    let show = lifeboat::tui::recover::moment::show;
    for want in [
        "a moment in time".to_string(),
        format!("from   {}", show(oldest)),
        format!("to     {}", show(newest)),
        "1 base backup".into(),
        "> latest".into(),
    ] {
        assert!(s.contains(&want), "{want:?} missing:\n{s}");
    }

    // Before the oldest base backup: refused under the field, the step
    // stays, nothing starts.
    clear(&mut app);
    typed(&mut app, "2001-01-01 00:00:00");
    let cmds = key(&mut app, KeyCode::Enter);
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(app.recover.stage(), Stage::Point);
    let s = draw(&app);
    let field = s.find("> 2001-01-01 00:00:00").expect(&s);
    let refusal = s
        .find("✗ 2001-01-01 00:00:00 UTC is before the window")
        .expect(&s);
    assert!(refusal > field, "the refusal is under the field:\n{s}");
    // Not a moment at all: refused too.
    clear(&mut app);
    typed(&mut app, "yesterday");
    key(&mut app, KeyCode::Enter);
    assert!(draw(&app).contains("is not a moment"), "{}", draw(&app));
    assert_eq!(app.recover.stage(), Stage::Point);

    // T, as the ransomware runbook writes it: on to the data directory.
    clear(&mut app);
    typed(&mut app, &format!("before:{t}"));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Inputs, "{}", draw(&app));
    let target = c.env.path("restored");
    typed(&mut app, &target.display().to_string());
    let cmds = key(&mut app, KeyCode::Enter);
    l.pump(&mut app, cmds);
    assert_eq!(app.recover.stage(), Stage::Preflight);
    assert_eq!(
        app.recover.preflight_ok(),
        Some(true),
        "{:?}",
        app.recover.preflight
    );
    key(&mut app, KeyCode::Enter);
    let s = draw(&app);
    assert!(s.contains("Back to the moment"), "{s}");
    typed(&mut app, "db");
    let cmds = key(&mut app, KeyCode::Enter);
    assert!(matches!(cmds.as_slice(), [Cmd::StartJob(_)]), "{cmds:?}");
    l.pump(&mut app, cmds);
    assert_eq!(app.recover.stage(), Stage::Run);

    // The job reads on in its journal; its manual step is answered with
    // Enter, as on the console.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let cmds = app.on_fast_tick();
        l.pump(&mut app, cmds);
        let j = app.recover.job.clone().unwrap();
        if j.finished.is_some() {
            break;
        }
        if j.waiting.as_ref().is_some_and(|w| w.kind != "failed") {
            let cmds = key(&mut app, KeyCode::Enter);
            l.pump(&mut app, cmds);
        }
        assert!(
            j.waiting.as_ref().is_none_or(|w| w.kind != "failed"),
            "the job failed:\n{}",
            j.log.join("\n")
        );
        assert!(
            Instant::now() < deadline,
            "the job did not finish in 40 s:\n{}",
            draw(&app)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = l.job.take().unwrap().wait().unwrap();
    let j = app.recover.job.clone().unwrap();
    assert!(status.success(), "job-run failed:\n{}", j.log.join("\n"));
    assert_eq!(
        j.finished.as_ref().map(|f| f.0),
        Some(lifeboat::jobs::Outcome::Success),
        "{}",
        j.log.join("\n")
    );

    // The recovery settings name the moment; PostgreSQL's form of it.
    let auto = std::fs::read_to_string(target.join("postgresql.auto.conf")).unwrap();
    let pg_time = t.replace('T', " ").replace('Z', "+00");
    assert!(
        auto.contains(&format!("recovery_target_time = '{pg_time}'")),
        "{auto}"
    );
    // Quoted for postgresql.conf: the shell's quotes doubled.
    assert!(auto.contains("wal-fetch --service ''db'' %f %p"), "{auto}");
    assert!(target.join("recovery.signal").is_file());

    // And it comes up as of T: the rows committed before it, no later.
    let port = free_port();
    append(
        &target.join("postgresql.auto.conf"),
        &format!("port = {port}\n"),
    );
    c.pg_start(&target);
    let mut db = c.sql(port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while db
        .query_one("SELECT pg_is_in_recovery()", &[])
        .unwrap()
        .get::<_, bool>(0)
    {
        assert!(Instant::now() < deadline, "recovery did not finish in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let n: i64 = db
        .query_one("SELECT count(*) FROM orders", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, rows_at_t, "the restored cluster holds the rows of T");
}

/// The same in a real terminal at 80×24 with no colour: the console
/// started on the cluster's config, the moment typed, the job started
/// by the console itself (detached, as over SSH).
#[test]
fn a_moment_in_a_real_terminal_80x24() {
    use common::tmux::Tmux;
    const LONG: Duration = Duration::from_secs(60);
    let (c, t, _) = cluster_with_history();
    let target = c.env.path("restored-tmux");
    let script = format!(
        "cd {dir} && env NO_COLOR=1 HOME={dir}/home LIFEBOAT_KEY_DIR={dir}/keys LIFEBOAT_CACHE_DIR={dir}/cache {lb} --config {cfg}; echo LIFEBOAT-EXITED $?; sleep 600",
        dir = c.env.dir.path().display(),
        lb = c.lifeboat.display(),
        cfg = c.config().display(),
    );
    let tm = Tmux::start("pitr", 80, 24, &script);
    tm.wait_for("db", LONG);
    tm.keys(&["3"]);
    tm.wait_for("what happened?", LONG);
    tm.keys(&["/"]);
    tm.literal("point-in-time");
    tm.keys(&["Enter", "Enter"]);
    tm.wait_for("which services?", LONG);
    tm.keys(&["Enter"]);
    let s = tm.wait_for("a moment in time", LONG);
    assert!(s.contains("(oldest base backup's end)"), "{s}");
    assert!(s.contains("(newest archived WAL)"), "{s}");
    assert!(s.contains("> latest"), "{s}");

    tm.keys(&["C-u"]);
    tm.literal("2001-01-01 00:00:00");
    tm.keys(&["Enter"]);
    tm.wait_for("is before the window", LONG);

    tm.keys(&["C-u"]);
    tm.literal(&format!("before:{t}"));
    tm.keys(&["Enter"]);
    tm.wait_for("The new data directory", LONG);
    tm.literal(&target.display().to_string());
    tm.keys(&["Enter"]);
    tm.wait_for("All clear", LONG);
    tm.keys(&["Enter"]);
    let s = tm.wait_for("Type db:", LONG);
    assert!(s.contains("Back to the moment"), "{s}");
    tm.literal("db");
    tm.keys(&["Enter"]);
    tm.wait_for("Recover ▸ job", LONG);
    // The runbook's two confirmations, each answered with Enter.
    tm.wait_for("Enter when done", LONG);
    tm.keys(&["Enter"]);
    tm.wait_for("? Decided what to do with it", LONG);
    tm.keys(&["Enter"]);
    let s = tm.wait_for("Recovered in", LONG);
    assert!(!s.contains("FAILED"), "{s}");

    let auto = std::fs::read_to_string(target.join("postgresql.auto.conf")).unwrap();
    let pg_time = t.replace('T', " ").replace('Z', "+00");
    assert!(
        auto.contains(&format!("recovery_target_time = '{pg_time}'")),
        "{auto}"
    );
    tm.keys(&["q"]);
    tm.wait_for("what happened?", LONG);
    tm.keys(&["q"]);
    let s = tm.wait_for("LIFEBOAT-EXITED", LONG);
    assert!(s.contains("LIFEBOAT-EXITED 0"), "{s}");
}

/// Follows the shown job to its end as the console does, answering each
/// question but a failure with Enter; returns the finished job.
fn follow(app: &mut App, l: &mut Loader) -> lifeboat::jobs::JobView {
    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let cmds = app.on_fast_tick();
        l.pump(app, cmds);
        let j = app.recover.job.clone().unwrap();
        if j.finished.is_some() {
            let status = l.job.take().unwrap().wait().unwrap();
            assert!(status.success(), "job-run failed:\n{}", j.log.join("\n"));
            return j;
        }
        match &j.waiting {
            Some(w) if w.kind == "failed" => panic!("the job failed:\n{}", j.log.join("\n")),
            Some(_) => {
                let cmds = key(app, KeyCode::Enter);
                l.pump(app, cmds);
            }
            None => {}
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish in 50 s:\n{}",
            j.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scenario that restores live (ransomware) on the cluster: the same
/// moment step, then `restore --at --live`'s plan and swap; the old data
/// directory is kept, and the started cluster holds the rows of T.
#[test]
fn a_live_scenario_puts_the_cluster_back_at_the_moment() {
    let (c, t, rows_at_t) = cluster_with(true);
    let config = lifeboat::config::Config::load(&c.config()).unwrap();
    let inv = lifeboat::inventory::load(&config);
    let mut app = App::new(Theme { color: false }, SystemTime::now());
    app.on_msg(Msg::Inventory(Arc::new(inv)));
    let mut l = Loader {
        c: &c,
        config,
        cache: Default::default(),
        latest: AtomicU64::new(0),
        job: None,
    };
    let cmds = key(&mut app, KeyCode::Char('3'));
    l.pump(&mut app, cmds);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "ransomware");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.recover.stage(), Stage::Point, "{}", draw(&app));
    let s = draw(&app);
    assert!(s.contains("a moment in time"), "{s}");
    assert!(s.contains("swaps it in"), "the step says it is live:\n{s}");
    clear(&mut app);
    typed(&mut app, &t);
    let cmds = key(&mut app, KeyCode::Enter);
    l.pump(&mut app, cmds);
    assert_eq!(app.recover.stage(), Stage::Preflight, "{}", draw(&app));
    assert_eq!(
        app.recover.preflight_ok(),
        Some(true),
        "{:?}",
        app.recover.preflight
    );
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "db");
    let cmds = key(&mut app, KeyCode::Enter);
    l.pump(&mut app, cmds);
    let j = follow(&mut app, &mut l);
    let log = j.log.join("\n");
    assert_eq!(
        j.finished.as_ref().map(|f| f.0),
        Some(lifeboat::jobs::Outcome::Success),
        "{log}"
    );
    assert!(
        log.contains("  plan: "),
        "the plan is in the journal:\n{log}"
    );
    assert!(
        !j.replaced.is_empty(),
        "the old data directory is kept for rollback:\n{log}"
    );
    // The runbook's last step started the service on its own port.
    let n: i64 = c
        .sql(c.port)
        .query_one("SELECT count(*) FROM orders", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, rows_at_t, "the live cluster is back at T:\n{log}");
}
