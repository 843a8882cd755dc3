//! The terminal UI: an event loop that turns key presses, a clock tick and
//! background results into state changes, and draws from state. Repository
//! reads run as background tasks; the render path never waits on I/O. The
//! terminal is restored on exit, on error and on panic.

pub mod action;
pub mod app;
pub mod cache;
pub mod columns;
mod details;
mod health_view;
pub mod help;
pub mod input;
pub mod markdown;
pub mod recover;
pub mod recover_view;
mod restore_here;
pub mod theme;
pub mod tree;
pub mod views;

use crate::config::Config;
use anyhow::{anyhow, Context, Result};
use app::{App, Cmd, Msg};
use crossterm::event::{
    DisableBracketedPaste, EnableBracketedPaste, Event, EventStream, KeyEventKind,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::ExecutableCommand;
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

fn restore_terminal() {
    let _ = std::io::stdout().execute(DisableBracketedPaste);
    let _ = disable_raw_mode();
    let _ = std::io::stdout().execute(LeaveAlternateScreen);
    let _ = std::io::stdout().execute(crossterm::cursor::Show);
}

/// Restores the terminal when dropped, whatever path leaves `run`.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Opens the TUI over the configured repositories until the user quits.
pub fn run(config: Config, banner: Option<String>) -> Result<()> {
    crate::runtime::get()?.block_on(run_async(config, banner))
}

async fn run_async(config: Config, banner: Option<String>) -> Result<()> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    enable_raw_mode().context("this needs an interactive terminal")?;
    let _guard = TerminalGuard;
    std::io::stdout().execute(EnterAlternateScreen)?;
    // A paste arrives as one event, so its newline is text, not Enter.
    std::io::stdout().execute(EnableBracketedPaste)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;

    let (tx, mut rx) = unbounded_channel::<Msg>();
    let mut app = App::new(theme::Theme::from_env(), SystemTime::now());
    app.thresholds = config.thresholds;
    let loader = Loader::new(config, tx);
    app.banner = banner;
    loader.run(Cmd::LoadInventory);
    loader.run(Cmd::LoadJobs);

    // `kill`, a closed SSH session or Ctrl-\ elsewhere: leave through the
    // same door as `q`, so the terminal is put back.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    // A shown job's journal is read this often.
    let mut fast = tokio::time::interval(Duration::from_millis(250));
    let mut dirty = true;
    loop {
        if dirty {
            terminal.draw(|f| views::draw(f, &app))?;
            dirty = false;
        }
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => {
                    for cmd in app.on_key(k) {
                        loader.run(cmd);
                    }
                    dirty = true;
                }
                Some(Ok(Event::Paste(text))) => {
                    for cmd in app.on_paste(&text) {
                        loader.run(cmd);
                    }
                    dirty = true;
                }
                Some(Ok(Event::Resize(..))) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow!("reading the terminal: {e}")),
                None => break,
            },
            Some(msg) = rx.recv() => {
                // A burst of results costs one frame.
                let mut cmds = app.on_msg(msg);
                while let Ok(msg) = rx.try_recv() {
                    cmds.extend(app.on_msg(msg));
                }
                for cmd in cmds {
                    loader.run(cmd);
                }
                dirty = true;
            }
            _ = term.recv() => break,
            _ = hangup.recv() => break,
            _ = tick.tick() => {
                app.on_tick(SystemTime::now());
                dirty = true;
            }
            _ = fast.tick() => {
                for cmd in app.on_fast_tick() {
                    loader.run(cmd);
                }
            }
        }
        if app.quit {
            break;
        }
    }
    Ok(())
}

/// Runs [`Cmd`]s on blocking threads and sends their results back.
pub struct Loader {
    /// Swapped whole by a reload; work in flight keeps the one it began with.
    config: Arc<Mutex<Arc<Config>>>,
    tx: UnboundedSender<Msg>,
    /// Repositories, indexes and file lists already read.
    cache: Arc<cache::Cache>,
    latest_search: Arc<AtomicU64>,
}

impl Loader {
    pub fn new(config: Config, tx: UnboundedSender<Msg>) -> Loader {
        Loader {
            config: Arc::new(Mutex::new(Arc::new(config))),
            tx,
            cache: Arc::default(),
            latest_search: Arc::default(),
        }
    }

    pub fn run(&self, cmd: Cmd) {
        let slot = Arc::clone(&self.config);
        let tx = self.tx.clone();
        let cache = Arc::clone(&self.cache);
        let latest = Arc::clone(&self.latest_search);
        match &cmd {
            Cmd::SearchFiles { generation, .. } => {
                latest.store(*generation, std::sync::atomic::Ordering::Relaxed)
            }
            Cmd::SearchPaths { generation, .. } => cache
                .picker_search
                .store(*generation, std::sync::atomic::Ordering::Relaxed),
            // Before anything queued after it reads the repository again.
            Cmd::Forget | Cmd::Reload => cache.forget(),
            _ => {}
        }
        tokio::task::spawn_blocking(move || {
            if let Cmd::Reload = cmd {
                let _ = tx.send(reload(&slot));
                return;
            }
            let Some(config) = slot.lock().ok().map(|c| Arc::clone(&c)) else {
                return;
            };
            if let Some(msg) = execute(&config, &cache, &latest, cmd) {
                let _ = tx.send(msg);
            }
        });
    }
}

/// Reads the configuration file again; a broken edit keeps the old one.
fn reload(slot: &Mutex<Arc<Config>>) -> Msg {
    let Some(path) = slot.lock().ok().map(|c| c.path.clone()) else {
        return Msg::Reloaded(Err("the console's state is damaged: restart it".into()));
    };
    match Config::load(&path) {
        Ok(c) => {
            let thresholds = c.thresholds;
            if let Ok(mut s) = slot.lock() {
                *s = Arc::new(c);
            }
            Msg::Reloaded(Ok(thresholds))
        }
        Err(e) => Msg::Reloaded(Err(format!("{e:#}"))),
    }
}

/// Executes one command; this is where the TUI's I/O happens.
pub fn execute(config: &Config, cache: &cache::Cache, latest: &AtomicU64, cmd: Cmd) -> Option<Msg> {
    let err = |e: anyhow::Error| format!("{e:#}");
    Some(match cmd {
        Cmd::LoadInventory => Msg::Inventory(Arc::new(crate::inventory::load(config))),
        Cmd::LoadTree {
            req,
            repository,
            snapshot,
            ..
        } => Msg::Tree(req, cache.tree(config, &repository, &snapshot).map_err(err)),
        Cmd::PickerTree {
            req,
            repository,
            snapshot,
        } => Msg::PickerTree(req, cache.tree(config, &repository, &snapshot).map_err(err)),
        Cmd::SearchPaths {
            generation,
            query,
            tree,
        } => {
            let hits = tree::search(&tree, &query, 500, generation, &cache.picker_search)?;
            Msg::PathHits { generation, hits }
        }
        Cmd::SearchFiles {
            generation,
            query,
            tree,
        } => {
            let hits = tree::search(&tree, &query, 500, generation, latest)?;
            Msg::FileHits { generation, hits }
        }
        Cmd::Versions {
            req,
            repository,
            path,
            snapshots,
            ..
        } => Msg::Versions(
            req,
            (|| -> Result<Vec<tree::Version>> {
                let mut trees = Vec::new();
                for id in &snapshots {
                    let snap = cache.snapshot(config, &repository, id)?;
                    let t = cache.tree(config, &repository, id)?;
                    trees.push((
                        id.clone(),
                        snap.time.get(..19).unwrap_or(&snap.time).replace('T', " "),
                        t,
                    ));
                }
                Ok(tree::versions(&path, &trees))
            })()
            .map_err(err),
        ),
        Cmd::CheckPath {
            req,
            repository,
            snapshot,
            path,
        } => Msg::PathChecked(
            req,
            cache
                .tree(config, &repository, &snapshot)
                .map_err(err)
                .and_then(|t| tree::check_path(&t.nodes, &path, &snapshot)),
        ),
        Cmd::Reload | Cmd::Forget => return None,
        Cmd::LoadRunbooks
        | Cmd::LoadJobs
        | Cmd::Preflight { .. }
        | Cmd::StartJob(_)
        | Cmd::TailJob(_)
        | Cmd::AnswerJob { .. }
        | Cmd::CancelJob { .. }
        | Cmd::DiscardKept { .. }
        | Cmd::ReadReport(_) => return recover_exec(config, cmd),
        Cmd::Diff {
            req,
            repository,
            older,
            newer,
        } => Msg::Diff(
            req,
            (|| -> Result<Vec<tree::DiffEntry>> {
                let a = cache.tree(config, &repository, &older)?;
                let b = cache.tree(config, &repository, &newer)?;
                Ok(tree::diff(&a.nodes, &b.nodes))
            })()
            .map_err(err),
        ),
    })
}

/// The Recover screen's work: reading runbooks and journals, preflight,
/// starting, answering and cancelling jobs.
fn recover_exec(config: &Config, cmd: Cmd) -> Option<Msg> {
    use crate::runbook;
    let state = &config.state_dir;
    Some(match cmd {
        Cmd::LoadRunbooks => Msg::Runbooks(
            runbook::load_all(config, None)
                .map(|(rbs, _)| {
                    rbs.iter()
                        .map(|r| recover::RunbookInfo {
                            id: r.id.clone(),
                            title: r.title.clone(),
                            summary: r.summary.clone(),
                            file: r.origin(),
                            scope: r.scope,
                            inputs: r.inputs.clone(),
                            steps: r.steps.iter().map(|s| s.title.clone()).collect(),
                            applies: config
                                .services
                                .iter()
                                .filter(|s| r.applies(s))
                                .map(|s| s.name.clone())
                                .collect(),
                        })
                        .collect()
                })
                .map_err(|e| format!("{e:#}")),
        ),
        Cmd::LoadJobs => Msg::Jobs(crate::jobs::list(state)),
        Cmd::Preflight {
            runbook: file,
            services,
            point,
            inputs,
        } => {
            let text = match runbook::read_text(&file) {
                Ok(t) => t,
                Err(e) => return Some(Msg::JobError(format!("{e:#}"))),
            };
            let (Some(rb), _) = runbook::parse::parse(&file, &text) else {
                return Some(Msg::JobError(format!(
                    "{} has problems: run `lifeboat runbook check`",
                    file.display()
                )));
            };
            let repos = runbook::engine_calls::Repos { config, key: None };
            let mut out = Vec::new();
            let mut plans = Vec::new();
            for name in &services {
                match config.service(name) {
                    Ok(svc) => {
                        out.extend(
                            runbook::preflight::run(&repos, &rb, svc, &point, &inputs)
                                .into_iter()
                                .map(|c| (name.clone(), c)),
                        );
                        plans.push((
                            name.clone(),
                            runbook::request::plan_lines(&repos, &rb, svc, &point, &inputs),
                        ));
                    }
                    Err(e) => out.push((
                        name.clone(),
                        runbook::preflight::Check {
                            name: "service".into(),
                            ok: false,
                            detail: format!("{e:#}"),
                        },
                    )),
                }
            }
            Msg::Preflight(out, plans)
        }
        Cmd::StartJob(spec) => match crate::jobs::launch(config, &spec) {
            Ok(_) => return None,
            Err(e) => Msg::JobError(format!("could not start the job: {e:#}")),
        },
        Cmd::TailJob(mut view) => {
            // The job may not have written its first line yet.
            let _ = view.refresh(state);
            Msg::JobTail(view)
        }
        Cmd::AnswerJob { id, ask, answer } => match crate::jobs::answer(state, &id, ask, &answer) {
            Ok(()) => return None,
            Err(e) => Msg::JobError(format!("{e:#}")),
        },
        Cmd::ReadReport(p) => Msg::Report(match std::fs::read_to_string(&p) {
            Ok(t) => markdown::to_lines(&t),
            Err(e) => vec![format!("cannot read the report {}: {e}", p.display())],
        }),
        Cmd::CancelJob { id } => match crate::jobs::cancel(state, &id) {
            Ok(()) => return None,
            Err(e) => Msg::JobError(format!("{e:#}")),
        },
        Cmd::DiscardKept { job } => Msg::Discarded(discard_kept(state, &job)),
        _ => return None,
    })
}

/// Discards the copies a job's restores kept of what they replaced, as
/// `lifeboat leftovers remove` does for each of them.
fn discard_kept(state: &std::path::Path, job: &str) -> Result<Vec<String>, String> {
    let restores = crate::engine::restore::rollback::targets(state, job);
    if restores.is_empty() {
        return Err(format!(
            "job {job} keeps nothing to discard (`lifeboat leftovers` lists what is kept)"
        ));
    }
    let mut said = Vec::new();
    for r in restores {
        said.extend(
            crate::engine::leftovers::remove(state, Some(&r.id), Duration::ZERO)
                .map_err(|e| format!("{e:#}"))?,
        );
    }
    Ok(said)
}
