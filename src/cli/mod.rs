//! The command line: parse arguments into plain data (clap), resolve the
//! repository and key, call the engine, format its results for people or,
//! with `--json`, for machines.

mod audit;
mod backup;
mod browse;
mod completions;
mod config_cmd;
mod copy;
mod demo;
mod drill;
mod forget;
mod health;
mod init;
mod jobs;
mod keys;
mod leftovers;
mod locks;
mod output;
pub(crate) mod pipe;
mod recover;
mod repair;
mod report;
mod restore;
mod rollback;
mod runbook;
mod schedule;
mod serve;
mod snapshots;
mod stats;
mod tag;
mod verify;
mod wal;
mod wal_restore;
mod width;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use lifeboat::config::Config;
use lifeboat::repo::{self as repo, Backend, KeySource, Repository};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "lifeboat", version, about = "Backups you have restored before you need them.", long_about = None)]
struct Cli {
    /// Configuration file [default: /etc/lifeboat/lifeboat.toml, then ~/.config/lifeboat/lifeboat.toml]
    #[arg(long, global = true, env = "LIFEBOAT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Repository: a directory, or the name of a repository in the config
    #[arg(long, global = true, env = "LIFEBOAT_REPO", value_name = "REPO")]
    repo: Option<String>,
    /// Key file: an age identity, or a write-only key
    #[arg(long, global = true, env = "LIFEBOAT_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    json: bool,
    /// Print only errors and warnings
    #[arg(short, long, global = true)]
    quiet: bool,
    /// A directory of your own runbooks, added to the built-in ones (an id they share replaces the built-in one) [default: the config's runbooks_dir, else runbooks/ beside the config]
    #[arg(long, global = true, value_name = "DIR")]
    runbooks: Option<PathBuf>,
    /// Wait this long for another job's repository lock (e.g. "10m", "2h", "0") [default: 30m for backup, verify, restore, drill, copy, prune, forget and jobs; 0 otherwise]
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    retry_lock: Option<std::time::Duration>,
    /// Take no repository lock: for reading a read-only repository (restore, verify, drill, ls, snapshots)
    #[arg(long, global = true)]
    no_lock: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository and an admin key (an age identity, mode 0600)
    Init(init::InitArgs),
    /// Back up services from the config, or paths given on the command line
    Backup(backup::BackupArgs),
    /// List restore points
    Snapshots(snapshots::SnapshotsArgs),
    /// List the files in a restore point
    Ls(snapshots::LsArgs),
    /// Find files by name or glob across restore points
    Find(browse::FindArgs),
    /// What was added, removed and changed between two restore points
    Diff(browse::DiffArgs),
    /// Write one file of a restore point to stdout
    Dump(browse::DumpArgs),
    /// Repository and per-service totals: raw and stored bytes, dedup ratio, chunks
    Stats(stats::StatsArgs),
    /// Add or remove tags on a restore point
    Tag(tag::TagArgs),
    /// Restore a restore point (or some paths of it) into a directory
    Restore(restore::RestoreArgs),
    /// Check that every restore point can be restored
    Verify(verify::VerifyArgs),
    /// Repair a damaged repository: rebuild the index, drop what lost data restore points need
    #[command(subcommand)]
    Repair(repair::RepairCommand),
    /// Manage who can open the repository
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Remove stale repository locks
    Unlock(keys::UnlockArgs),
    /// S3 Object Lock: status, extend the locks of kept restore points, recover after an attack
    #[command(subcommand)]
    Locks(locks::LocksCommand),
    /// Serve a repository directory over HTTP (--append-only: hosts can add backups, never delete or overwrite them)
    Serve(serve::ServeArgs),
    /// Check the configuration file
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Is every service inside its RPO, verified and drilled? Exit code 0 ok, 1 warning, 2 breach, 3 unknown
    Health,
    /// What no backup covers: databases, Docker volumes and stacks, .env files; sources that silently went empty
    Audit(audit::AuditArgs),
    /// Restore a restore point (the newest, or --point random|ID) into a sandbox, run the service's probes, measure the time against the RTO, record it
    Drill(drill::DrillArgs),
    /// Open the console on a throwaway demo homelab (needs nothing installed)
    Demo(demo::DemoArgs),
    /// Drop restore points the retention policy no longer keeps (see --dry-run)
    Forget(forget::ForgetArgs),
    /// Reclaim the space that only forgotten restore points used
    Prune(forget::PruneArgs),
    /// Print (or write) systemd units or crontab lines for the [schedule] section
    Schedule(schedule::ScheduleArgs),
    /// Write Prometheus metrics for node_exporter's textfile collector
    Metrics(health::MetricsArgs),
    /// Copy restore points another repository lacks (on-site → off-site), sending only missing data
    Copy(copy::CopyArgs),
    /// Check or list the runbooks in runbooks/
    #[command(subcommand)]
    Runbook(runbook::RunbookCommand),
    /// Follow a runbook to recover services; runs as a job that survives the terminal
    Recover(recover::RecoverArgs),
    /// List restore and drill jobs; attach to, answer or cancel one
    Jobs(jobs::JobsArgs),
    /// Put back everything a restore (or a recovery job) replaced, from the copies it kept
    Rollback(rollback::RollbackArgs),
    /// List the copies restores kept for rollback, and discard them
    Leftovers(leftovers::LeftoversArgs),
    /// Archive one WAL segment (PostgreSQL's archive_command: `lifeboat wal-push %p`)
    WalPush(wal::WalPushArgs),
    /// Fetch one archived WAL file (PostgreSQL's restore_command: `lifeboat wal-fetch %f %p`); exit 1 when there is none
    WalFetch(wal::WalFetchArgs),
    /// Pack the WAL segments waiting in the spool into the repository now
    WalFlush(wal::WalFlushArgs),
    /// Export evidence for an audit: `report drills --since 90d [--json]`
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Print shell completions: `source <(lifeboat completions bash)`
    Completions(completions::CompletionsArgs),
    /// Print the manual page: `lifeboat man | man -l -`
    Man,
    /// Run a job started by `recover` or the console (internal)
    #[command(hide = true)]
    JobRun { id: String },
}

struct Ctx {
    cli_repo: Option<String>,
    cli_key: Option<PathBuf>,
    config: Option<Config>,
    json: bool,
    quiet: bool,
    /// How repositories opened for this command are locked.
    locks: repo::lock::LockOptions,
    /// What a job told its user, for the monitor's failure ping.
    log: std::cell::RefCell<Vec<String>>,
}

pub fn run() -> Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A script that asked for JSON gets its usage error as JSON too.
        Err(e) if e.use_stderr() && std::env::args_os().any(|a| a == "--json") => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let v = serde_json::json!({
                "error": first.trim_start_matches("error: "),
                "hint": "see `lifeboat help` and the command's --help",
            });
            eprintln!("{v}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => e.exit(),
    };
    let json = cli.json;
    match run_cli(cli) {
        // Under --json the error is JSON too, for the script that asked;
        // for people, with terminal escapes from names shown, not sent.
        Err(e) => {
            output::error_in(&e, json);
            Ok(ExitCode::from(1))
        }
        other => other,
    }
}

fn run_cli(mut cli: Cli) -> Result<ExitCode> {
    // The demo brings its own config; a broken one on this host must not stop it.
    let command = match cli.command.take() {
        Some(Command::Demo(a)) => return demo::demo(a, cli.quiet),
        Some(Command::Completions(a)) => return completions::completions(a),
        Some(Command::Man) => return completions::man(),
        other => other,
    };
    let config_path = match &cli.config {
        Some(p) => Some(p.clone()),
        None => config_cmd::default_locations()
            .into_iter()
            .find(|p| p.exists()),
    };
    // These two work on a config that does not exist yet or does not load.
    let command = match command {
        Some(Command::Config(c @ config_cmd::ConfigCommand::Check))
        | Some(Command::Config(c @ config_cmd::ConfigCommand::Init(_))) => {
            let ctx = Ctx::new(&cli, None);
            return match c {
                config_cmd::ConfigCommand::Check => {
                    config_cmd::config_check(&ctx, config_path, cli.runbooks.as_deref())
                }
                config_cmd::ConfigCommand::Init(a) => {
                    config_cmd::config_init(&ctx, cli.config.as_deref(), a)
                }
            };
        }
        other => other,
    };
    let config = match config_path.map(|p| Config::load(&p)).transpose() {
        Ok(c) => c,
        // A monitor reading `health` expects 3 (unknown) whenever health
        // cannot be evaluated, a broken config included.
        Err(e) if matches!(command, Some(Command::Health)) => {
            output::error_in(&e, cli.json);
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e),
    };
    let config = config.map(|mut c| {
        if cli.runbooks.is_some() {
            c.runbooks_dir = cli.runbooks.clone();
        }
        c
    });
    let mut ctx = Ctx::new(&cli, config);
    lifeboat::source::credentials::keep_credentials_in(ctx.state_dir().join("credentials"));
    let Some(command) = command else {
        let Some(config) = ctx.config else {
            bail!(lifeboat::Error::NoConfig);
        };
        console(config, None)?;
        return Ok(ExitCode::SUCCESS);
    };
    // Jobs that change or check data are logged and pinged; dry runs are not.
    let job = match &command {
        Command::Backup(_) => Some("backup".to_string()),
        Command::Verify(_) => Some("verify".into()),
        Command::Prune(a) if !a.dry_run => Some("prune".into()),
        Command::Forget(a) if !a.dry_run => Some("prune".into()),
        Command::Drill(_) => Some("drill".into()),
        Command::Restore(_) => Some("restore".into()),
        Command::Copy(_) => Some("copy".into()),
        Command::JobRun { id } => jobs::kind_of(&ctx, id),
        _ => None,
    };
    // Unattended jobs wait out a prune; quick interactive commands do not.
    if cli.retry_lock.is_none() && job.is_some() {
        ctx.locks.wait = repo::lock::DEFAULT_WAIT;
    }
    let Some(job) = job else {
        return dispatch(&ctx, command);
    };
    let (log_dir, monitors) = match &ctx.config {
        Some(c) => (c.log_dir.clone(), c.monitors.clone()),
        None => (lifeboat::paths::state_dir().join("logs"), Vec::new()),
    };
    lifeboat::monitor::observe(
        &job,
        &monitors,
        &log_dir,
        |code| *code == ExitCode::SUCCESS,
        || ctx.log.borrow().join("\n"),
        |w| eprintln!("warning: {w}"),
        || dispatch(&ctx, command),
    )
}

/// Opens the console, in a build that has it.
fn console(config: Config, banner: Option<String>) -> Result<()> {
    #[cfg(feature = "console")]
    return lifeboat::tui::run(config, banner);
    #[cfg(not(feature = "console"))]
    {
        let _ = (config, banner);
        bail!("this lifeboat was built without the console (the `console` feature); every command works, `lifeboat` alone does not")
    }
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<ExitCode> {
    match command {
        Command::Init(a) => init::init(ctx, a),
        Command::Backup(a) => backup::backup(ctx, a),
        Command::Snapshots(a) => snapshots::snapshots(ctx, a),
        Command::Ls(a) => snapshots::ls(ctx, a),
        Command::Find(a) => browse::find(ctx, a),
        Command::Diff(a) => browse::diff(ctx, a),
        Command::Dump(a) => browse::dump(ctx, a),
        Command::Stats(a) => stats::stats(ctx, a),
        Command::Tag(a) => tag::tag(ctx, a),
        Command::Restore(a) => restore::restore(ctx, a),
        Command::Verify(a) => verify::verify(ctx, a),
        Command::Repair(c) => repair::repair(ctx, c),
        Command::Keys(k) => keys::keys(ctx, k),
        Command::Unlock(a) => keys::unlock(ctx, a),
        Command::Locks(c) => locks::locks(ctx, c),
        Command::Serve(a) => serve::serve(ctx, a),
        // Handled before the config is loaded; kept here so nothing is lost.
        Command::Config(config_cmd::ConfigCommand::Check) => {
            let path = ctx.config.as_ref().map(|c| c.path.clone());
            config_cmd::config_check(ctx, path, None)
        }
        Command::Config(config_cmd::ConfigCommand::Init(a)) => {
            config_cmd::config_init(ctx, None, a)
        }
        Command::Health => health::health(ctx),
        Command::Audit(a) => audit::audit(ctx, a),
        Command::Drill(a) => drill::drill(ctx, a),
        Command::Demo(a) => demo::demo(a, ctx.quiet),
        Command::Forget(a) => forget::forget(ctx, a),
        Command::Prune(a) => forget::prune(ctx, &a),
        Command::Schedule(a) => schedule::schedule(ctx, a),
        Command::Metrics(a) => health::metrics(ctx, a),
        Command::Copy(a) => copy::copy(ctx, a),
        Command::Runbook(c) => runbook::runbook_cmd(ctx, c),
        Command::Recover(a) => recover::recover(ctx, a),
        Command::Jobs(a) => jobs::jobs_cmd(ctx, a),
        Command::Rollback(a) => rollback::rollback(ctx, a),
        Command::Leftovers(a) => leftovers::leftovers(ctx, a),
        Command::Report(c) => report::report(ctx, c),
        Command::JobRun { id } => jobs::job_run(ctx, &id),
        Command::WalPush(a) => wal::push(ctx, a),
        Command::WalFetch(a) => wal::fetch(ctx, a),
        Command::WalFlush(a) => wal::flush_cmd(ctx, a),
        Command::Completions(a) => completions::completions(a),
        Command::Man => completions::man(),
    }
}

impl Ctx {
    fn new(cli: &Cli, config: Option<Config>) -> Ctx {
        Ctx {
            cli_repo: cli.repo.clone(),
            cli_key: cli.key.clone(),
            config,
            json: cli.json,
            quiet: cli.quiet,
            locks: repo::lock::LockOptions {
                wait: cli.retry_lock.unwrap_or_default(),
                enabled: !cli.no_lock,
                ..Default::default()
            },
            log: Default::default(),
        }
    }

    /// The configured repository a command works on, from (in order) the
    /// command line, the service's repository, the config's only
    /// repository; `None` when `--repo` gives a location instead.
    fn configured(
        &self,
        service_repo: Option<&str>,
    ) -> Result<Option<&lifeboat::config::Repository>> {
        let config = self.config.as_ref();
        let named = |name: &str| config.and_then(|c| c.repositories.get(name));
        match (&self.cli_repo, service_repo) {
            (Some(r), _) => match (named(r), config) {
                (Some(r), _) => Ok(Some(r)),
                // `mian` is a mistyped name, `/mnt/nas` or `./repo` a place.
                (None, Some(c)) if !looks_like_location(r) && !c.repositories.is_empty() => {
                    Err(c.unknown_repository(r))
                }
                // The config's own repository given by its path keeps its key.
                (None, Some(c)) => Ok(c.repositories.values().find(|known| {
                    known.s3.is_none()
                        && std::path::absolute(r).ok().as_deref() == Some(known.path.as_path())
                })),
                (None, _) => Ok(None),
            },
            (None, Some(name)) => match (named(name), config) {
                (Some(r), _) => Ok(Some(r)),
                (None, Some(c)) => Err(c.unknown_repository(name)),
                (None, None) => bail!("no repository named `{name}`"),
            },
            (None, None) => match config.map(|c| c.repositories.values().collect::<Vec<_>>()) {
                Some(v) if v.len() == 1 => Ok(Some(v[0])),
                Some(v) if v.len() > 1 => bail!(
                    "the config has several repositories; choose one with --repo ({})",
                    v.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
                _ => bail!("no repository given: pass --repo DIR (or set LIFEBOAT_REPO), or write a config with `lifeboat config init`"),
            },
        }
    }

    /// The repository storage and key for a command (see [`Ctx::configured`]).
    /// `--repo` takes a configured name, a directory or `s3://bucket/prefix`.
    fn location(&self, service_repo: Option<&str>) -> Result<(Box<dyn Backend>, KeySource)> {
        let Some(configured) = self.configured(service_repo)? else {
            let r = self.cli_repo.as_deref().unwrap_or_default();
            let key = KeySource::choose(self.cli_key.as_deref(), None)?;
            return Ok((repo::backend_at(r)?, key));
        };
        let key = KeySource::choose(self.cli_key.as_deref(), configured.key_file.as_ref())?;
        if let (None, KeySource::File(path)) = (&self.cli_key, &key) {
            if !path.exists() {
                return Err(lifeboat::Error::KeyFileMissing {
                    path: path.clone(),
                    repo: configured.name.clone(),
                    exists: configured.s3.is_some() || configured.path.join("config").exists(),
                }
                .into());
            }
        }
        Ok((configured.backend()?, key))
    }

    fn open(&self, service_repo: Option<&str>) -> Result<Repository> {
        let (backend, key) = self.location(service_repo)?;
        Ok(Repository::open(backend, key)?
            .with_lock_options(self.locks)
            .with_cache_dir(self.cache_dir()))
    }

    /// The repositories a repository-wide job covers: the one given with
    /// --repo, else every repository in the config.
    fn every_repository(&self) -> Vec<Option<String>> {
        match &self.config {
            Some(c) if self.cli_repo.is_none() && !c.repositories.is_empty() => {
                c.repositories.keys().cloned().map(Some).collect()
            }
            _ => vec![None],
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.config
            .as_ref()
            .map(|c| c.cache_dir.clone())
            .unwrap_or_else(lifeboat::paths::cache_dir)
    }

    fn state_dir(&self) -> PathBuf {
        self.config
            .as_ref()
            .map(|c| c.state_dir.clone())
            .unwrap_or_else(lifeboat::paths::state_dir)
    }

    fn say(&self, line: impl AsRef<str>) {
        self.log.borrow_mut().push(line.as_ref().to_string());
        if !self.quiet && !self.json {
            println!("{}", line.as_ref());
        }
    }

    /// Checks a service name given on the command line: one the config
    /// defines, or one with restore points in the repository (`recorded`:
    /// their services) such as an ad-hoc backup's name. The one place this
    /// error is made.
    fn known_service(&self, name: &str, recorded: &[&str]) -> Result<()> {
        let mut known: Vec<&str> = self
            .config
            .iter()
            .flat_map(|c| c.services.iter().map(|s| s.name.as_str()))
            .chain(recorded.iter().copied())
            .collect();
        if known.contains(&name) {
            return Ok(());
        }
        known.sort_unstable();
        known.dedup();
        if known.is_empty() {
            bail!("unknown service `{name}` (the config names no services and the repository has no restore points)");
        }
        bail!(
            "unknown service `{name}`{}; services: {}",
            lifeboat::util::suggestion(name, known.iter().copied()),
            known.join(", ")
        )
    }

    /// An error the job survives (one service of several failed).
    fn error_line(&self, err: &anyhow::Error, what: &str) {
        output::error_about(Some(what), err, self.json);
        self.log
            .borrow_mut()
            .push(format!("error: {what}: {err:#}"));
    }
}

fn service_repo<'a>(ctx: &'a Ctx, service: Option<&str>) -> Option<&'a str> {
    let config = ctx.config.as_ref()?;
    let svc = config
        .services
        .iter()
        .find(|s| Some(s.name.as_str()) == service)?;
    Some(svc.repository.as_str())
}

/// `--repo` text that names a place rather than a configured repository.
fn looks_like_location(s: &str) -> bool {
    s.contains('/') || s.starts_with('.') || s.starts_with('~') || std::path::Path::new(s).exists()
}

/// `SERVICE:latest` names a service: use its repository.
fn snapshot_repo<'a>(ctx: &'a Ctx, query: &str) -> Option<&'a str> {
    service_repo(ctx, query.split_once(':').map(|(svc, _)| svc))
}
