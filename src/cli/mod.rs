//! The command line: parse arguments into plain data (clap), resolve the
//! repository and key, call the engine, format its results for people or,
//! with `--json`, for machines.

mod output;
mod runbooks;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use lifeboat::config::Config;
use lifeboat::engine::{self, BackupOptions, RestoreOptions, VerifyOptions};
use lifeboat::repo::tree::is_at_or_under;
use lifeboat::repo::{self as repo, Backend, KeySource, Repository};
use output::{human_bytes, Progress};
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository and an admin key (an age identity, mode 0600)
    Init(InitArgs),
    /// Back up services from the config, or paths given on the command line
    Backup(BackupArgs),
    /// List restore points
    Snapshots(SnapshotsArgs),
    /// List the files in a restore point
    Ls(LsArgs),
    /// Restore a restore point (or some paths of it) into a directory
    Restore(RestoreArgs),
    /// Check that every restore point can be restored
    Verify(VerifyArgs),
    /// Manage who can open the repository
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Remove stale repository locks
    Unlock(UnlockArgs),
    /// Check the configuration file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Is every service inside its RPO, verified and drilled? Exit code 0 ok, 1 warning, 2 breach, 3 unknown
    Health,
    /// Restore the newest restore point into a sandbox, measure the time against the RTO, record it
    Drill(DrillArgs),
    /// Open the console on a throwaway demo homelab (needs nothing installed)
    Demo(DemoArgs),
    /// Drop restore points the retention policy no longer keeps (see --dry-run)
    Forget(ForgetArgs),
    /// Reclaim the space that only forgotten restore points used
    Prune(PruneArgs),
    /// Print (or write) systemd units or crontab lines for the [schedule] section
    Schedule(ScheduleArgs),
    /// Write Prometheus metrics for node_exporter's textfile collector
    Metrics(MetricsArgs),
    /// Copy restore points another repository lacks (on-site → off-site), sending only missing data
    Copy(CopyArgs),
    /// Check or list the runbooks in runbooks/
    #[command(subcommand)]
    Runbook(runbooks::RunbookCommand),
    /// Follow a runbook to recover services; runs as a job that survives the terminal
    Recover(runbooks::RecoverArgs),
    /// List restore and drill jobs; attach to, answer or cancel one
    Jobs(runbooks::JobsArgs),
    /// Run a job started by `recover` or the console (internal)
    #[command(hide = true)]
    JobRun { id: String },
}

#[derive(Args)]
struct CopyArgs {
    /// Only these services' restore points [default: all]
    services: Vec<String>,
    /// Source repository: a name from the config, a directory or s3://bucket/prefix [default: the destination's copy_of]
    #[arg(long, value_name = "REPO")]
    from: Option<String>,
    /// Destination repository [default: every repository with copy_of in the config]
    #[arg(long, value_name = "REPO")]
    to: Option<String>,
    /// Key for the source when it is not in the config [default: --key]
    #[arg(long, value_name = "FILE")]
    from_key: Option<PathBuf>,
    /// Key for the destination when it is not in the config [default: --key]
    #[arg(long, value_name = "FILE")]
    to_key: Option<PathBuf>,
    /// Do not read back what was sent (presence, size and index are still checked)
    #[arg(long)]
    no_read_back: bool,
}

#[derive(Args)]
struct ScheduleArgs {
    /// systemd (service + timer units) or cron (crontab lines)
    #[arg(value_parser = ["systemd", "cron"])]
    format: String,
    /// Write the units into this directory (e.g. /etc/systemd/system) instead of printing them
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
    /// The lifeboat binary the jobs run [default: this one]
    #[arg(long, value_name = "PATH")]
    exe: Option<PathBuf>,
}

#[derive(Args)]
struct MetricsArgs {
    /// Where to write (atomically); prints to stdout without it
    #[arg(long, value_name = "PATH")]
    textfile: Option<PathBuf>,
}

#[derive(Args)]
struct ForgetArgs {
    /// Services whose restore points to thin out
    services: Vec<String>,
    /// Every service in the config
    #[arg(long, conflicts_with = "services")]
    all: bool,
    /// Show what would go and why each survivor stays, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Run prune afterwards
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    keep: KeepArgs,
}

/// A policy on the command line, instead of (or overriding) the config's.
#[derive(Args, Default)]
struct KeepArgs {
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
}

impl KeepArgs {
    fn given(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(Option::is_some)
    }
    fn policy(&self) -> lifeboat::engine::retention::Policy {
        lifeboat::engine::retention::Policy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
        }
    }
}

#[derive(Args)]
struct PruneArgs {
    /// Say what would be reclaimed, change nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct DrillArgs {
    /// Services to drill
    services: Vec<String>,
    /// Drill every service, most critical first
    #[arg(long, conflicts_with = "services")]
    all: bool,
    /// Where sandboxes go [default: <state_dir>/sandboxes]
    #[arg(long, value_name = "DIR")]
    sandbox: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Keep the demo directory on exit (its path is printed)
    #[arg(long)]
    keep: bool,
    /// Build the demo here instead of a new temporary directory
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Build the demo and print where, without opening the console
    #[arg(long)]
    no_tui: bool,
}

#[derive(Args)]
struct InitArgs {
    /// Where to write the new admin key, or an existing identity to reuse
    /// [default: ~/.config/lifeboat/keys/<repository id>.key]
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Args)]
struct BackupArgs {
    /// Services from the config, or paths (anything containing `/`) for an ad-hoc backup
    #[arg(value_name = "SERVICE|PATH")]
    targets: Vec<String>,
    /// Back up every service in the config, most critical first
    #[arg(long, conflicts_with = "targets")]
    all: bool,
    /// Name recorded for an ad-hoc backup of paths
    #[arg(long, default_value = "adhoc", value_name = "NAME")]
    name: String,
    /// Exclude pattern for an ad-hoc backup (repeatable)
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Read every file even when unchanged since the last backup
    #[arg(long)]
    no_cache: bool,
}

#[derive(Args)]
struct SnapshotsArgs {
    /// Only this service's restore points
    service: Option<String>,
}

#[derive(Args)]
struct LsArgs {
    /// Snapshot id (or unique prefix), `latest`, or `SERVICE:latest`
    snapshot: String,
    /// Only entries at or below this path
    path: Option<String>,
}

#[derive(Args)]
struct RestoreArgs {
    /// Snapshot id (or unique prefix), `latest`, `SERVICE:latest`, or a service name (its latest)
    snapshot: String,
    /// Restore only these paths (as shown by `lifeboat ls`)
    paths: Vec<String>,
    /// Directory to restore into (created if missing); database dumps land as files under .lifeboat/
    #[arg(
        long,
        short,
        value_name = "DIR",
        required_unless_present = "live",
        conflicts_with = "live"
    )]
    target: Option<PathBuf>,
    /// Put the service back where it lives: its paths (old content kept beside them) and its databases and streams (restored into a new copy, checked, then swapped in)
    #[arg(long, conflicts_with = "paths")]
    live: bool,
    /// With --live: do not ask for confirmation
    #[arg(long)]
    yes: bool,
    /// Restore into a non-empty target, moving what the restore replaces aside
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// Also decrypt and hash stored data: all of it, or N% of the packs per run, rotating so every pack is read within 100/N runs
    #[arg(long, value_name = "PERCENT", num_args = 0..=1, default_missing_value = "100%", require_equals = true)]
    read_data: Option<String>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the recipients that can open the repository
    List,
    /// Let another age recipient (e.g. a break-glass key) open the repository
    Add {
        /// An age recipient (age1…)
        recipient: String,
        #[arg(long, default_value = "break-glass")]
        label: String,
    },
    /// Write a key that can back up but never read (for backed-up hosts)
    WriteOnly {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Args)]
struct UnlockArgs {
    /// Also remove locks whose holder cannot be confirmed gone (another host)
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Parse and validate the configuration, printing file:line:col for problems
    Check,
}

struct Ctx {
    cli_repo: Option<String>,
    cli_key: Option<PathBuf>,
    config: Option<Config>,
    json: bool,
    quiet: bool,
    /// What a job told its user, for the monitor's failure ping.
    log: std::cell::RefCell<Vec<String>>,
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    // The demo brings its own config; a broken one on this host must not stop it.
    let command = match cli.command {
        Some(Command::Demo(a)) => return demo(a, cli.quiet),
        other => other,
    };
    let config = match load_config(cli.config.as_deref()) {
        Ok(c) => c,
        // A monitor reading `health` expects 3 (unknown) whenever health
        // cannot be evaluated, a broken config included.
        Err(e) if matches!(command, Some(Command::Health)) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = lifeboat::error::hint_for(&e) {
                eprintln!("  hint: {hint}");
            }
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e),
    };
    let ctx = Ctx {
        cli_repo: cli.repo,
        cli_key: cli.key,
        config,
        json: cli.json,
        quiet: cli.quiet,
        log: Default::default(),
    };
    let Some(command) = command else {
        let Some(config) = ctx.config else {
            bail!("no config found (looked for --config, $LIFEBOAT_CONFIG, /etc/lifeboat/lifeboat.toml, ~/.config/lifeboat/lifeboat.toml); try `lifeboat demo` to look around, or start from config/lifeboat.example.toml");
        };
        lifeboat::tui::run(config, None)?;
        return Ok(ExitCode::SUCCESS);
    };
    // Jobs that change or check data are logged and pinged; dry runs are not.
    let job = match &command {
        Command::Backup(_) => Some("backup"),
        Command::Verify(_) => Some("verify"),
        Command::Prune(a) if !a.dry_run => Some("prune"),
        Command::Forget(a) if !a.dry_run => Some("prune"),
        Command::Drill(_) => Some("drill"),
        Command::Restore(_) => Some("restore"),
        Command::Copy(_) => Some("copy"),
        _ => None,
    };
    let Some(job) = job else {
        return dispatch(&ctx, command);
    };
    let log_dir = ctx
        .config
        .as_ref()
        .map(|c| c.log_dir.clone())
        .unwrap_or_else(|| lifeboat::paths::state_dir().join("logs"));
    let (_log_guard, log_problem) = lifeboat::logging::init(&log_dir);
    let warn_all = |warnings: Vec<String>| {
        for w in warnings {
            eprintln!("warning: {w}");
        }
    };
    warn_all(log_problem.into_iter().collect());
    let monitors = ctx
        .config
        .as_ref()
        .map(|c| c.monitors.clone())
        .unwrap_or_default();
    let pinger = lifeboat::monitor::Pinger::new(&monitors, job);
    let started = std::time::Instant::now();
    tracing::info!(job, run_id = %pinger.run_id, host = %lifeboat::paths::hostname(), "job started");
    warn_all(pinger.start());
    let result = dispatch(&ctx, command);
    let took = started.elapsed().as_millis() as u64;
    let log = ctx.log.borrow().join("\n");
    match &result {
        Ok(code) if *code == ExitCode::SUCCESS => {
            tracing::info!(job, run_id = %pinger.run_id, outcome = "success", duration_ms = took, "job finished");
            warn_all(pinger.success(&log));
        }
        Ok(_) => {
            tracing::error!(job, run_id = %pinger.run_id, outcome = "failed", duration_ms = took, "job finished");
            warn_all(pinger.fail(&log));
        }
        Err(e) => {
            tracing::error!(job, run_id = %pinger.run_id, outcome = "failed", duration_ms = took, error = %format!("{e:#}"), "job finished");
            warn_all(pinger.fail(&format!("{log}\nerror: {e:#}")));
        }
    }
    result
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<ExitCode> {
    match command {
        Command::Init(a) => init(ctx, a),
        Command::Backup(a) => backup(ctx, a),
        Command::Snapshots(a) => snapshots(ctx, a),
        Command::Ls(a) => ls(ctx, a),
        Command::Restore(a) => restore(ctx, a),
        Command::Verify(a) => verify(ctx, a),
        Command::Keys(k) => keys(ctx, k),
        Command::Unlock(a) => unlock(ctx, a),
        Command::Config(ConfigCommand::Check) => config_check(ctx),
        Command::Health => health(ctx),
        Command::Drill(a) => drill(ctx, a),
        Command::Demo(a) => demo(a, ctx.quiet),
        Command::Forget(a) => forget(ctx, a),
        Command::Prune(a) => prune(ctx, &a),
        Command::Schedule(a) => schedule(ctx, a),
        Command::Metrics(a) => metrics(ctx, a),
        Command::Copy(a) => copy(ctx, a),
        Command::Runbook(c) => runbooks::runbook_cmd(ctx, c),
        Command::Recover(a) => runbooks::recover(ctx, a),
        Command::Jobs(a) => runbooks::jobs_cmd(ctx, a),
        Command::JobRun { id } => runbooks::job_run(ctx, &id),
    }
}

fn load_config(explicit: Option<&std::path::Path>) -> Result<Option<Config>> {
    if let Some(p) = explicit {
        return Config::load(p).map(Some);
    }
    let mut candidates = vec![PathBuf::from("/etc/lifeboat/lifeboat.toml")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".config/lifeboat/lifeboat.toml"));
    }
    match candidates.into_iter().find(|p| p.exists()) {
        Some(p) => Config::load(&p).map(Some),
        None => Ok(None),
    }
}

impl Ctx {
    /// The repository storage and key for a command, from (in order) the
    /// command line, the service's repository, the config's only repository.
    /// `--repo` takes a configured name, a directory or `s3://bucket/prefix`.
    fn location(&self, service_repo: Option<&str>) -> Result<(Box<dyn Backend>, KeySource)> {
        let named = |name: &str| self.config.as_ref().and_then(|c| c.repositories.get(name));
        let (backend, key_file) = match (&self.cli_repo, service_repo) {
            (Some(r), _) => match named(r) {
                Some(r) => (repo::backend_for(r)?, r.key_file.clone()),
                None => (repo::backend_at(r)?, None),
            },
            (None, Some(name)) => match named(name) {
                Some(r) => (repo::backend_for(r)?, r.key_file.clone()),
                None => bail!("no repository named `{name}` in the config"),
            },
            (None, None) => match self.config.as_ref().map(|c| c.repositories.values().collect::<Vec<_>>()) {
                Some(v) if v.len() == 1 => (repo::backend_for(v[0])?, v[0].key_file.clone()),
                Some(v) if v.len() > 1 => bail!(
                    "the config has several repositories; choose one with --repo ({})",
                    v.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
                _ => bail!("no repository given: pass --repo DIR (or set LIFEBOAT_REPO), or write a config (see config/lifeboat.example.toml)"),
            },
        };
        let key = match (&self.cli_key, key_file) {
            (Some(k), _) => KeySource::File(k.clone()),
            (None, Some(k)) => KeySource::File(k),
            (None, None) => KeySource::Default,
        };
        Ok((backend, key))
    }

    fn open(&self, service_repo: Option<&str>) -> Result<Repository> {
        let (backend, key) = self.location(service_repo)?;
        Repository::open(backend, key)
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

    fn say(&self, line: impl AsRef<str>) {
        self.log.borrow_mut().push(line.as_ref().to_string());
        if !self.quiet && !self.json {
            println!("{}", line.as_ref());
        }
    }

    /// An error the job survives (one service of several failed).
    fn error_line(&self, err: &anyhow::Error, what: &str) {
        let line = format!("error: {what}: {err:#}");
        eprintln!("{line}");
        if let Some(h) = lifeboat::error::hint_for(err) {
            eprintln!("  hint: {h}");
        }
        self.log.borrow_mut().push(line);
    }
}

fn demo(a: DemoArgs, quiet: bool) -> Result<ExitCode> {
    let (root, keep) = match a.dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                bail!(
                    "{} is not empty; the demo needs an empty or new directory",
                    d.display()
                );
            }
            (d, true)
        }
        None => (
            std::env::temp_dir().join(format!("lifeboat-demo-{:08x}", rand::random::<u32>())),
            a.keep,
        ),
    };
    if !quiet {
        eprintln!(
            "building a demo homelab in {} (a week of simulated nightly backups)…",
            root.display()
        );
    }
    let progress = Progress::start(quiet, "demo");
    let built = lifeboat::demo::build(&root, &progress.reporter());
    progress.finish();
    let result = built.and_then(|config| {
        if a.no_tui {
            println!("{}", config.path.display());
            Ok(())
        } else {
            lifeboat::tui::run(config, Some("DEMO: simulated history".into()))
        }
    });
    if keep || a.no_tui {
        if !quiet {
            eprintln!(
                "the demo is kept in {}; `lifeboat --config {}/lifeboat.toml` reopens it",
                root.display(),
                root.display()
            );
        }
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

fn health(ctx: &Ctx) -> Result<ExitCode> {
    let Some(config) = &ctx.config else {
        eprintln!("error: health needs a config (pass --config FILE)");
        return Ok(ExitCode::from(3));
    };
    let inv = lifeboat::inventory::load(config);
    let report = lifeboat::health::evaluate(&inv, std::time::SystemTime::now(), &config.thresholds);
    if ctx.json {
        output::json(&report)?;
    } else if !ctx.quiet {
        output::print_health(&report);
    }
    Ok(ExitCode::from(report.state.exit_code()))
}

fn drill(ctx: &Ctx, a: DrillArgs) -> Result<ExitCode> {
    let config = ctx.config.as_ref().context(
        "drills need a config (pass --config FILE): they measure against each service's RTO",
    )?;
    let chosen = config.select_services(&a.services, a.all, "drill")?;
    let records = lifeboat::records::Records::new(&config.state_dir);
    let sandbox_root = a
        .sandbox
        .clone()
        .unwrap_or_else(|| config.state_dir.join("sandboxes"));
    let mut failed = 0;
    for svc in chosen {
        let result = (|| -> Result<lifeboat::engine::DrillReport> {
            let repo = ctx.open(Some(&svc.repository))?;
            let snap = repo.find_snapshot("latest", Some(&svc.name))?;
            let progress = Progress::start(ctx.quiet || ctx.json, &format!("drill {}", svc.name));
            let r = engine::drill(
                &repo,
                &snap,
                &engine::DrillOptions {
                    sandbox_root: sandbox_root.clone(),
                    rto: svc.policy.rto,
                    service: Some(svc.clone()),
                },
                &progress.reporter(),
            );
            progress.finish();
            r
        })();
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                tracing::error!(job = "drill", service = %svc.name, error = %format!("{e:#}"), "drill could not run");
                ctx.error_line(&e, &format!("drill of {} could not run", svc.name));
                continue;
            }
        };
        tracing::info!(job = "drill", service = %svc.name, snapshot = %report.snapshot, ok = report.ok, within_rto = report.within_rto, duration_ms = report.duration_ms, rto_ms = report.rto_ms, "drill finished");
        records.add_drill(&lifeboat::records::DrillRecord::new(&svc.name, &report))?;
        if !(report.ok && report.within_rto) {
            failed += 1;
        }
        if ctx.json {
            output::json(&serde_json::json!({"service": svc.name, "report": report}))?;
        } else {
            let took = report.duration_ms as f64 / 1000.0;
            let verdict = match (report.ok, report.within_rto) {
                (false, _) => format!("FAILED: {}", report.detail),
                (true, false) => format!(
                    "restored, but {took:.1} s is over the RTO of {}",
                    lifeboat::health::short_duration(svc.policy.rto)
                ),
                (true, true) => format!(
                    "ok: {took:.1} s against an RTO of {}",
                    lifeboat::health::short_duration(svc.policy.rto)
                ),
            };
            println!(
                "drill {} ({}): {verdict}",
                svc.name,
                &report.snapshot[..8.min(report.snapshot.len())]
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<ExitCode> {
    // (service, repository in the config, policy)
    let mut jobs: Vec<(String, Option<String>, lifeboat::engine::retention::Policy)> = Vec::new();
    match &ctx.config {
        Some(config) if ctx.cli_repo.is_none() => {
            let chosen = config.select_services(&a.services, a.all, "thin out")?;
            for svc in chosen {
                let policy = if a.keep.given() {
                    a.keep.policy()
                } else {
                    svc.retention
                };
                jobs.push((svc.name.clone(), Some(svc.repository.clone()), policy));
            }
        }
        _ => {
            if !a.keep.given() {
                bail!("without a config, say what to keep: --keep-last, --keep-daily, --keep-weekly, …");
            }
            if a.services.is_empty() {
                bail!("name the services (as `lifeboat snapshots` shows them) to thin out");
            }
            for s in &a.services {
                jobs.push((s.clone(), None, a.keep.policy()));
            }
        }
    }
    let mut repos_touched: Vec<Option<String>> = Vec::new();
    for (service, repo_name, policy) in jobs {
        let repo = ctx.open(repo_name.as_deref())?;
        let plan = engine::plan_forget(&repo, &service, &policy)?;
        let going = plan.iter().filter(|(_, d)| !d.keep).count();
        if ctx.json {
            output::json(&serde_json::json!({
                "service": service, "policy": policy, "dry_run": a.dry_run,
                "restore_points": plan.iter().map(|(s, d)| serde_json::json!({"id": s.id, "time": s.time, "keep": d.keep, "reasons": d.reasons})).collect::<Vec<_>>(),
            }))?;
        } else {
            println!(
                "{service}: keep {} of {} restore points ({})",
                plan.len() - going,
                plan.len(),
                policy.describe()
            );
            for (s, d) in &plan {
                let when = s.time.get(..16).unwrap_or(&s.time).replace('T', " ");
                if d.keep {
                    println!(
                        "  keep    {}  {when}  {}",
                        s.short_id(),
                        d.reasons.join(", ")
                    );
                } else {
                    println!("  forget  {}  {when}", s.short_id());
                }
            }
        }
        if !a.dry_run && going > 0 {
            let removed = engine::forget(&repo, &plan)?;
            ctx.say(format!("{service}: forgot {removed} restore point(s); `lifeboat prune` reclaims their space"));
            if !repos_touched.contains(&repo_name) {
                repos_touched.push(repo_name);
            }
        }
    }
    if a.prune && !a.dry_run {
        for repo_name in repos_touched {
            prune_one(ctx, repo_name.as_deref(), false)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(ctx: &Ctx, a: &PruneArgs) -> Result<ExitCode> {
    for name in ctx.every_repository() {
        prune_one(ctx, name.as_deref(), a.dry_run)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn prune_one(ctx: &Ctx, repo_name: Option<&str>, dry_run: bool) -> Result<()> {
    let repo = ctx.open(repo_name)?;
    let progress = Progress::start(ctx.quiet || ctx.json, "prune");
    let r = engine::prune(
        &repo,
        &engine::PruneOptions {
            dry_run,
            ..Default::default()
        },
        &progress.reporter(),
    );
    progress.finish();
    let r = r?;
    if !dry_run {
        tracing::info!(job = "prune", repository = %repo.config().id, reclaimed = r.reclaimed(), packs_deleted = r.packs_deleted, packs_repacked = r.packs_repacked, "prune finished");
    }
    if ctx.json {
        output::json(&serde_json::json!({"report": r, "reclaimed": r.reclaimed()}))?;
    } else {
        ctx.say(format!(
            "{}{} packs: {} deleted, {} rewritten into {}, {} left by interrupted backups removed; {} reclaimed ({} -> {})",
            if dry_run { "would prune " } else { "pruned " },
            r.packs_before,
            r.packs_deleted,
            r.packs_repacked,
            if dry_run { "new ones".to_string() } else { r.packs_written.to_string() },
            r.packs_unreferenced,
            human_bytes(r.reclaimed()),
            human_bytes(r.bytes_before),
            human_bytes(r.bytes_after),
        ));
    }
    Ok(())
}

fn schedule(ctx: &Ctx, a: ScheduleArgs) -> Result<ExitCode> {
    let config = ctx
        .config
        .as_ref()
        .context("schedules come from the config's [schedule] section (pass --config FILE)")?;
    if config.schedule.jobs.is_empty() {
        bail!(
            "{} has no [schedule] section (see config/lifeboat.example.toml)",
            config.path.display()
        );
    }
    let exe = match a.exe {
        Some(e) => e,
        None => std::env::current_exe().context("finding this program's path (pass --exe)")?,
    };
    let config_path = std::path::absolute(&config.path)?;
    let config = lifeboat::config::Config {
        path: config_path,
        ..config.clone()
    };
    if a.format == "cron" {
        print!("{}", lifeboat::schedule::cron_lines(&config, &exe));
        return Ok(ExitCode::SUCCESS);
    }
    let units = lifeboat::schedule::systemd_units(&config, &exe);
    match a.write {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in &units {
                std::fs::write(dir.join(name), text)
                    .with_context(|| format!("writing {}", dir.join(name).display()))?;
            }
            let timers: Vec<&str> = units
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| n.ends_with(".timer"))
                .collect();
            ctx.say(format!("wrote {} units to {}; enable them with: systemctl daemon-reload && systemctl enable --now {}", units.len(), dir.display(), timers.join(" ")));
        }
        None => {
            for (name, text) in &units {
                println!("# {name}\n{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl Ctx {
    /// A repository named in the config, or at a directory or URL; its key
    /// from the config, else `explicit`, else --key, else the default.
    fn open_named(&self, name: &str, explicit: Option<&PathBuf>) -> Result<Repository> {
        let configured = self.config.as_ref().and_then(|c| c.repositories.get(name));
        let (backend, key_file) = match configured {
            Some(r) => (repo::backend_for(r)?, r.key_file.clone()),
            None => (repo::backend_at(name)?, None),
        };
        let key = match (explicit, key_file, &self.cli_key) {
            (Some(k), _, _) => KeySource::File(k.clone()),
            (None, Some(k), _) => KeySource::File(k),
            (None, None, Some(k)) => KeySource::File(k.clone()),
            (None, None, None) => KeySource::Default,
        };
        Repository::open(backend, key)
    }
}

fn copy(ctx: &Ctx, a: CopyArgs) -> Result<ExitCode> {
    let copy_of = |to: &str| {
        ctx.config
            .as_ref()
            .and_then(|c| c.repositories.get(to))
            .and_then(|r| r.copy_of.clone())
    };
    let pairs: Vec<(String, String)> = match (&a.from, &a.to) {
        (Some(f), Some(t)) => vec![(f.clone(), t.clone())],
        (None, Some(t)) => match copy_of(t) {
            Some(f) => vec![(f, t.clone())],
            None => bail!(
                "repository `{t}` has no copy_of in the config: say where to copy from with --from"
            ),
        },
        (Some(_), None) => bail!("say where to copy to with --to"),
        (None, None) => {
            let v: Vec<_> = ctx
                .config
                .iter()
                .flat_map(|c| c.repositories.values())
                .filter_map(|r| r.copy_of.clone().map(|f| (f, r.name.clone())))
                .collect();
            if v.is_empty() {
                bail!("nothing to copy: give --from and --to, or mark an off-site repository with copy_of = \"NAME\" in the config");
            }
            v
        }
    };
    let mut failed = 0;
    for (from, to) in pairs {
        let result = (|| -> Result<engine::CopyReport> {
            let src = ctx.open_named(&from, a.from_key.as_ref())?;
            let dst = ctx.open_named(&to, a.to_key.as_ref())?;
            let progress = Progress::start(ctx.quiet || ctx.json, &format!("copy {from} → {to}"));
            let r = engine::copy(
                &src,
                &dst,
                &engine::CopyOptions {
                    services: a.services.clone(),
                    no_read_back: a.no_read_back,
                    cache_dir: Some(ctx.cache_dir()),
                },
                &progress.reporter(),
            );
            progress.finish();
            r
        })();
        match result {
            Ok(r) => {
                tracing::info!(job = "copy", from = %from, to = %to, copied = r.copied.len(), chunks_sent = r.chunks_sent, bytes_sent = r.bytes_sent, packs_read_back = r.packs_read_back, "copy finished");
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
                if ctx.json {
                    output::json(&serde_json::json!({"from": from, "to": to, "report": r}))?;
                } else {
                    for c in &r.copied {
                        ctx.say(format!(
                            "copied {} of {} ({}) → {}",
                            &c.source[..8.min(c.source.len())],
                            c.service,
                            c.time.get(..19).unwrap_or(&c.time).replace('T', " "),
                            &c.destination[..8.min(c.destination.len())]
                        ));
                    }
                    if r.copied.is_empty() {
                        ctx.say(format!(
                            "{from} → {to}: nothing to copy ({} restore points already there)",
                            r.already_there
                        ));
                    } else {
                        ctx.say(format!(
                            "{from} → {to}: {} restore points copied ({} already there); sent {} chunks ({}) in {} packs, {} chunks were already there; {} packs read back and checked",
                            r.copied.len(),
                            r.already_there,
                            r.chunks_sent,
                            human_bytes(r.bytes_sent),
                            r.packs_sent,
                            r.chunks_present,
                            r.packs_read_back
                        ));
                    }
                }
            }
            Err(e) => {
                failed += 1;
                tracing::error!(job = "copy", from = %from, to = %to, error = %format!("{e:#}"), "copy failed");
                ctx.error_line(&e, &format!("copy {from} → {to} failed"));
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn metrics(ctx: &Ctx, a: MetricsArgs) -> Result<ExitCode> {
    let config = ctx
        .config
        .as_ref()
        .context("metrics need a config (pass --config FILE)")?;
    let inv = lifeboat::inventory::load(config);
    let report = lifeboat::health::evaluate(&inv, std::time::SystemTime::now(), &config.thresholds);
    let text = lifeboat::metrics::render(&inv, &report);
    match a.textfile {
        Some(p) => lifeboat::metrics::write_textfile(&p, &text)?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn init(ctx: &Ctx, a: InitArgs) -> Result<ExitCode> {
    let (backend, _) = ctx.location(None)?;
    let path = backend.location();
    let key_file = a.key_file.or_else(|| ctx.cli_key.clone());
    let created = Repository::init(backend, key_file)?;
    if ctx.json {
        output::json(&serde_json::json!({
            "repository": path, "id": created.repo_id, "recipient": created.recipient,
            "key_file": created.key_file, "key_file_created": created.key_file_created,
        }))?;
    } else if !ctx.quiet {
        println!("created repository {} at {path}", created.repo_id,);
        println!("admin recipient: {}", created.recipient);
        if created.key_file_created {
            println!(
                "admin key written to {} (mode 0600)",
                created.key_file.display()
            );
        } else {
            println!("admin key reused from {}", created.key_file.display());
        }
        println!();
        println!(
            "Keep a copy of that key away from this host: without it nothing can be restored."
        );
        println!("Add a break-glass key with `lifeboat keys add age1…`; give backed-up hosts a");
        println!("key that cannot read backups with `lifeboat keys write-only --out FILE`.");
    }
    Ok(ExitCode::SUCCESS)
}

fn backup(ctx: &Ctx, a: BackupArgs) -> Result<ExitCode> {
    let cache_dir = ctx.cache_dir();
    let mut jobs: Vec<(
        Option<String>,
        BackupOptions,
        Option<&lifeboat::config::Service>,
    )> = Vec::new();
    let (paths, services): (Vec<&String>, Vec<&String>) =
        a.targets.iter().partition(|t| t.contains('/'));
    if a.all || !services.is_empty() {
        let config = ctx.config.as_ref().context("backing up services needs a config (pass --config FILE), or give paths for an ad-hoc backup")?;
        if !paths.is_empty() {
            bail!("give either services or paths, not both");
        }
        let chosen = config.select_services(&services, a.all, "back up")?;
        for svc in chosen {
            jobs.push((
                Some(svc.repository.clone()),
                BackupOptions::for_service(svc, &cache_dir),
                Some(svc),
            ));
        }
    } else if !paths.is_empty() {
        let mut opts = BackupOptions::new(&a.name, paths.iter().map(PathBuf::from).collect());
        opts.excludes = a.exclude.clone();
        jobs.push((None, opts, None));
    } else {
        bail!("nothing to back up: name services, --all, or paths");
    }
    let mut failed = 0;
    for (repo_name, mut opts, svc) in jobs {
        opts.use_files_cache = !a.no_cache;
        opts.cache_dir = cache_dir.clone();
        let result = (|| -> Result<lifeboat::repo::Snapshot> {
            let repo = ctx.open(repo_name.as_deref())?;
            // Never back up the repository itself when it sits inside a source.
            opts.skip_paths = vec![PathBuf::from(repo.location()), cache_dir.clone()];
            let progress =
                Progress::start(ctx.quiet || ctx.json, &format!("backup {}", opts.service));
            let captures = svc
                .map(|s| lifeboat::source::captures(s, &cache_dir))
                .unwrap_or_default();
            let r = engine::backup_with(&repo, &opts, captures, &progress.reporter());
            progress.finish();
            r
        })();
        match result {
            Ok(snap) => {
                let st = &snap.stats;
                tracing::info!(job = "backup", service = %snap.service, snapshot = %snap.id, files = st.files, bytes = st.bytes, added = st.bytes_added, unchanged_files = st.files_unchanged, skipped = st.skipped, duration_ms = st.duration_ms, "backup finished");
                if ctx.json {
                    output::json(&output::snapshot_json(&snap))?;
                } else {
                    let secs = st.duration_ms as f64 / 1000.0;
                    ctx.say(format!(
                        "snapshot {} of {}: {} files, {} ({} unchanged files{}), {} added in {:.1} s ({}/s)",
                        snap.short_id(),
                        snap.service,
                        st.files,
                        human_bytes(st.bytes),
                        st.files_unchanged,
                        if st.skipped > 0 { format!(", {} skipped: see the warnings", st.skipped) } else { String::new() },
                        human_bytes(st.bytes_added),
                        secs,
                        human_bytes((st.bytes as f64 / secs.max(0.001)) as u64),
                    ));
                    for r in &snap.sources {
                        ctx.say(format!(
                            "  {} {}: {}",
                            r.kind,
                            r.name,
                            output::facts_line(&r.facts)
                        ));
                    }
                }
            }
            Err(e) => {
                failed += 1;
                tracing::error!(job = "backup", service = %opts.service, error = %format!("{e:#}"), "backup failed");
                ctx.error_line(&e, &format!("backup of {} failed", opts.service));
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<ExitCode> {
    let repo = ctx.open(service_repo(ctx, a.service.as_deref()))?;
    let (snaps, damaged) = repo.list_snapshots()?;
    let snaps: Vec<_> = snaps
        .into_iter()
        .filter(|s| a.service.as_ref().is_none_or(|svc| &s.service == svc))
        .collect();
    if ctx.json {
        output::json(&snaps.iter().map(output::snapshot_json).collect::<Vec<_>>())?;
    } else {
        println!(
            "{:<10} {:<20} {:<16} {:<12} {:>8} {:>10} {:>10}",
            "ID", "TIME", "SERVICE", "HOST", "FILES", "SIZE", "ADDED"
        );
        for s in &snaps {
            println!(
                "{:<10} {:<20} {:<16} {:<12} {:>8} {:>10} {:>10}",
                s.short_id(),
                s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
                s.service,
                s.host,
                s.stats.files,
                human_bytes(s.stats.bytes),
                human_bytes(s.stats.bytes_added)
            );
        }
        if snaps.is_empty() {
            println!("(no restore points yet)");
        }
    }
    for (name, why) in &damaged {
        eprintln!("warning: snapshot {name} is unreadable: {why} (run `lifeboat verify`)");
    }
    Ok(ExitCode::SUCCESS)
}

fn service_repo<'a>(ctx: &'a Ctx, service: Option<&str>) -> Option<&'a str> {
    let config = ctx.config.as_ref()?;
    let svc = config
        .services
        .iter()
        .find(|s| Some(s.name.as_str()) == service)?;
    Some(svc.repository.as_str())
}

/// `SERVICE:latest` names a service: use its repository.
fn snapshot_repo<'a>(ctx: &'a Ctx, query: &str) -> Option<&'a str> {
    service_repo(ctx, query.split_once(':').map(|(svc, _)| svc))
}

fn ls(ctx: &Ctx, a: LsArgs) -> Result<ExitCode> {
    let repo = ctx.open(snapshot_repo(ctx, &a.snapshot))?;
    let snap = repo.find_snapshot(&a.snapshot, None)?;
    let (index, _) = repo.load_index()?;
    let nodes = repo.read_tree(&index, &snap)?;
    let prefix = a
        .path
        .as_deref()
        .map(|p| p.trim_matches('/').to_string())
        .unwrap_or_default();
    let mut shown = 0;
    for n in nodes.iter().filter(|n| is_at_or_under(&n.path, &prefix)) {
        shown += 1;
        if ctx.json {
            output::json(&serde_json::json!({
                "path": format!("/{}", n.path), "kind": n.kind, "mode": format!("{:o}", n.mode),
                "size": n.size, "mtime_ns": n.mtime_ns, "uid": n.uid, "gid": n.gid, "target": n.target,
            }))?;
        } else {
            println!("{}", output::ls_line(n));
        }
    }
    if shown == 0 && !prefix.is_empty() {
        bail!("/{prefix} is not in snapshot {}", snap.short_id());
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(ctx: &Ctx, mut a: RestoreArgs) -> Result<ExitCode> {
    if let Some(config) = &ctx.config {
        if config.services.iter().any(|s| s.name == a.snapshot) {
            a.snapshot = format!("{}:latest", a.snapshot);
        }
    }
    let repo = ctx.open(snapshot_repo(ctx, &a.snapshot))?;
    let snap = repo.find_snapshot(&a.snapshot, None)?;
    let Some(target) = a.target.clone() else {
        return restore_live(ctx, &repo, &snap, a.yes);
    };
    let mut opts = RestoreOptions::new(&target);
    opts.include = a.paths;
    opts.force = a.force;
    let progress = Progress::start(
        ctx.quiet || ctx.json,
        &format!("restore {}", snap.short_id()),
    );
    let report = engine::restore(&repo, &snap, &opts, &progress.reporter());
    progress.finish();
    let report = report?;
    tracing::info!(job = "restore", snapshot = %snap.id, service = %snap.service, files = report.files, bytes = report.bytes, duration_ms = report.duration_ms, "restore finished");
    if ctx.json {
        output::json(&report)?;
    } else {
        let secs = report.duration_ms as f64 / 1000.0;
        ctx.say(format!(
            "restored snapshot {} of {} into {}: {} files, {} dirs, {} symlinks, {} in {:.1} s; every file matches its recorded hash",
            snap.short_id(),
            snap.service,
            report.target.display(),
            report.files,
            report.dirs,
            report.symlinks,
            human_bytes(report.bytes),
            secs
        ));
        if let Some(r) = &report.rollback {
            ctx.say(format!(
                "what was there before is kept in {} (delete it once you are happy)",
                r.display()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `restore --live`: the service goes back where it lives, after a
/// confirmation naming what will be replaced.
fn restore_live(
    ctx: &Ctx,
    repo: &lifeboat::repo::Repository,
    snap: &lifeboat::repo::Snapshot,
    yes: bool,
) -> Result<ExitCode> {
    let config = ctx.config.as_ref().context(
        "--live needs the config that says where the service lives (pass --config FILE)",
    )?;
    let svc = config.service(&snap.service)?;
    if !yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            bail!(
                "a live restore replaces {}'s data; pass --yes to confirm without a terminal",
                svc.name
            );
        }
        eprintln!(
            "This replaces the live data of `{}` with restore point {} ({}):",
            svc.name,
            snap.short_id(),
            snap.time
        );
        for s in &svc.sources {
            eprintln!("  {} {}", s.kind.name(), s.name);
        }
        eprintln!("What is replaced is kept beside it. Type the service name to go on:");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != svc.name {
            bail!("not confirmed; nothing was changed");
        }
    }
    let progress = Progress::start(ctx.quiet || ctx.json, &format!("restore {}", svc.name));
    let report = lifeboat::source::restore_live(svc, repo, snap, &progress.reporter(), None);
    progress.finish();
    let report = report?;
    tracing::info!(job = "restore", snapshot = %snap.id, service = %snap.service, files = report.files, bytes = report.bytes, live = true, "restore finished");
    if ctx.json {
        output::json(&report)?;
        return Ok(if report.differences().is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    for (path, kept) in &report.paths {
        ctx.say(format!("restored {}", path.display()));
        if let Some(k) = kept {
            ctx.say(format!("  what was there is kept as {}", k.display()));
        }
    }
    for s in &report.sources {
        ctx.say(format!("{} {}: {}", s.kind, s.source, s.restored.detail));
        if let Some(k) = &s.restored.kept {
            ctx.say(format!("  {k}"));
        }
    }
    for s in &report.not_in_point {
        ctx.say(format!("not in this restore point, left as it is: {s}"));
    }
    let differences = report.differences();
    if !differences.is_empty() {
        eprintln!(
            "error: {} was restored, but its check found differences: {}",
            svc.name,
            differences.join("; ")
        );
        return Ok(ExitCode::from(1));
    }
    ctx.say(format!(
        "{} is back at restore point {}; start it and check it",
        svc.name,
        snap.short_id()
    ));
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<ExitCode> {
    let percent = match a.read_data.as_deref() {
        None => 0.0,
        Some(p) => {
            let n: f64 = p
                .trim_end_matches('%')
                .parse()
                .with_context(|| format!("--read-data={p}: expected a percentage like 10%"))?;
            if !(n > 0.0 && n <= 100.0) {
                bail!("--read-data={p}: the percentage must be above 0 and at most 100");
            }
            n
        }
    };
    let mut ok = true;
    for name in ctx.every_repository() {
        if name.is_some() && !ctx.json && !ctx.quiet {
            println!("repository {}:", name.as_deref().unwrap_or_default());
        }
        ok &= verify_one(ctx, name.as_deref(), percent)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify_one(ctx: &Ctx, repo_name: Option<&str>, percent: f64) -> Result<bool> {
    let repo = ctx.open(repo_name)?;
    let state_dir = ctx
        .config
        .as_ref()
        .map(|c| c.state_dir.clone())
        .unwrap_or_else(lifeboat::paths::state_dir);
    let records = lifeboat::records::Records::new(&state_dir);
    let rotation = records.partial_reads(&repo.config().id);
    let progress = Progress::start(ctx.quiet || ctx.json, "verify");
    let report = engine::verify(
        &repo,
        &VerifyOptions {
            read_data_percent: percent,
            rotation,
        },
        &progress.reporter(),
    );
    progress.finish();
    let report = report?;
    tracing::info!(job = "verify", repository = %repo.config().id, ok = report.ok(), problems = report.problems.len(), snapshots = report.snapshots, packs_read = report.packs_read, bytes_read = report.bytes_read, "verify finished");
    let record = lifeboat::records::VerifyRecord::new(&repo.config().id, percent, &report);
    if let Err(e) = records.add_verify(&record) {
        eprintln!("warning: could not record the result for health: {e:#}");
    }
    if ctx.json {
        output::json(&report)?;
    } else {
        output::print_verify(&report, percent);
    }
    Ok(report.ok())
}

fn keys(ctx: &Ctx, k: KeysCommand) -> Result<ExitCode> {
    let repo = ctx.open(None)?;
    match k {
        KeysCommand::List => {
            let keys = repo.list_keys()?;
            if ctx.json {
                output::json(&keys.iter().map(|(id, k)| serde_json::json!({"id": id, "recipient": k.recipient, "label": k.label, "created": k.created, "host": k.host})).collect::<Vec<_>>())?;
            } else {
                for (id, k) in keys {
                    println!(
                        "{}  {:<12} {}  (added {} on {})",
                        &id[..8],
                        k.label,
                        k.recipient,
                        k.created,
                        k.host
                    );
                }
            }
        }
        KeysCommand::Add { recipient, label } => {
            repo.add_recipient(&recipient, &label)?;
            ctx.say(format!(
                "{recipient} ({label}) can now open every restore point, old and new"
            ));
        }
        KeysCommand::WriteOnly { out } => {
            let text = repo.write_only_key()?;
            lifeboat::repo::keys::write_secret_file(&out, &text)?;
            ctx.say(format!("wrote write-only key {} (mode 0600): it can back up into this repository but cannot read from it", out.display()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<ExitCode> {
    let (backend, _) = ctx.location(None)?;
    Repository::read_config(backend.as_ref())?;
    let remaining = lifeboat::repo::lock::list(backend.as_ref())?;
    let removed = lifeboat::repo::lock::unlock(backend.as_ref(), a.all)?;
    for l in &removed {
        ctx.say(format!("removed {}", l.describe()));
    }
    let left = remaining.len() - removed.len();
    if left > 0 {
        eprintln!("{left} lock(s) held by live or unconfirmable processes were kept; `lifeboat unlock --all` removes them too");
    } else if removed.is_empty() {
        ctx.say("no locks");
    }
    Ok(ExitCode::SUCCESS)
}

fn config_check(ctx: &Ctx) -> Result<ExitCode> {
    let Some(config) = &ctx.config else {
        bail!("no config file found (pass --config FILE; config/lifeboat.example.toml is a starting point)");
    };
    ctx.say(format!(
        "{}: ok — {} repositories, {} services",
        config.path.display(),
        config.repositories.len(),
        config.services.len()
    ));
    Ok(ExitCode::SUCCESS)
}
