//! `lifeboat config init|check`: a starter config, and a check of the
//! config and of the world it describes.

use super::{output, Ctx};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use lifeboat::checkup::{self, Finding};
use lifeboat::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Write a commented starter config (a repository, its key, one service, the tiers)
    Init(InitArgs),
    /// Check the config and what it points at (key files, repositories, paths, database logins, runbook commands); every problem, exit 1 if any
    Check,
}

#[derive(Args)]
pub struct InitArgs {
    /// A directory to back up as the first service
    #[arg(long, value_name = "DIR")]
    path: Vec<PathBuf>,
    /// The first service's name [default: the first --path's directory name]
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// Write the system-wide config (/etc/lifeboat/lifeboat.toml, key and state under /etc and /var/lib)
    #[arg(long)]
    system: bool,
    /// Replace an existing config file
    #[arg(long)]
    force: bool,
}

const STARTER: &str = include_str!("../../assets/starter-lifeboat.toml");

/// Where a command looks for the config when `--config` is not given.
pub fn default_locations() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/etc/lifeboat/lifeboat.toml")];
    if let Some(home) = std::env::var_os("HOME") {
        v.push(PathBuf::from(home).join(".config/lifeboat/lifeboat.toml"));
    }
    v
}

fn data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join("lifeboat")
}

fn quoted(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// A service name from a directory: its last component, kept to the
/// characters names may hold.
fn name_from(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c| c == '-' || c == '.').to_string();
    if name.is_empty() {
        "files".into()
    } else {
        name
    }
}

pub fn config_init(ctx: &Ctx, explicit: Option<&Path>, a: InitArgs) -> Result<ExitCode> {
    let (file, repo, key, state) = if a.system {
        (
            PathBuf::from("/etc/lifeboat/lifeboat.toml"),
            PathBuf::from("/var/lib/lifeboat/repository"),
            PathBuf::from("/etc/lifeboat/keys/local.key"),
            PathBuf::from("/var/lib/lifeboat/state"),
        )
    } else {
        let file = match explicit {
            Some(f) => f.to_path_buf(),
            None => default_locations().pop().context(
                "HOME is not set, so there is no per-user config location; pass --config FILE or --system",
            )?,
        };
        (
            file,
            data_dir().join("repository"),
            lifeboat::paths::key_dir().join("local.key"),
            lifeboat::paths::state_dir(),
        )
    };
    let repo = match &ctx.cli_repo {
        Some(r) if r.starts_with("s3://") => bail!(
            "config init writes a config for a repository in a directory; for object storage, write the [repositories] section by hand (docs/offsite.md)"
        ),
        Some(r) => absolute(Path::new(r))?,
        None => repo,
    };
    let key = match &ctx.cli_key {
        Some(k) => absolute(k)?,
        None => key,
    };
    let paths: Vec<PathBuf> = a.path.iter().map(|p| absolute(p)).collect::<Result<_>>()?;
    for p in paths
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_err())
    {
        eprintln!(
            "warning: {} does not exist (yet); `config check` will say so until it does",
            p.display()
        );
    }
    let service = match (&a.service, paths.first()) {
        (Some(n), _) => n.clone(),
        (None, Some(p)) => name_from(p),
        (None, None) => "files".into(),
    };
    if let Err(why) = lifeboat::config::check_name(&service) {
        bail!("`{service}` cannot be a service name: {why}");
    }
    if file.exists() && !a.force {
        bail!(
            "{} already exists; `lifeboat config check` checks it (pass --force to replace it)",
            file.display()
        );
    }
    let service_text = if paths.is_empty() {
        format!(
            "# Uncomment, and list what to back up:\n#\n# [services.{service}]\n# tier = \"important\"\n# sources = [{{ kind = \"files\", paths = [\"/srv/data\"] }}]\n"
        )
    } else {
        let list: Vec<String> = paths.iter().map(|p| quoted(p)).collect();
        format!(
            "[services.{service}]\ntier = \"important\"\nsources = [{{ kind = \"files\", paths = [{}] }}]\n# Stopped during a restore of the whole service, started after:\n# stop = \"systemctl stop {service}\"\n# start = \"systemctl start {service}\"\n",
            list.join(", ")
        )
    };
    let text = STARTER
        .replace("\"{state_dir}\"", &quoted(&state))
        .replace("\"{repo}\"", &quoted(&repo))
        .replace("\"{key_file}\"", &quoted(&key))
        .replace("{service}\n", &service_text);
    // What we write must be what we read.
    Config::parse(&file, &text).context("the starter config does not parse (a bug)")?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_new(&file, &text)?;
    if ctx.json {
        output::json(&serde_json::json!({
            "config": file, "repository": repo, "key_file": key, "service": service,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let flag = match (a.system, explicit) {
        (false, Some(f)) => format!("--config {} ", f.display()),
        _ => String::new(),
    };
    ctx.say(format!("wrote {}", file.display()));
    ctx.say("Next:");
    if paths.is_empty() {
        ctx.say(format!("  edit {} to add a service", file.display()));
    } else {
        ctx.say(format!(
            "  add the stop and start commands of `{service}` (commented in the file)"
        ));
    }
    ctx.say(format!("  lifeboat {flag}config check"));
    ctx.say(format!("  lifeboat {flag}init"));
    ctx.say(format!("  lifeboat {flag}backup --all"));
    Ok(ExitCode::SUCCESS)
}

/// Writes `file` whole or not at all: a fresh temporary file beside it
/// (never a name someone could have planted a symlink at), synced, then
/// renamed over it. A file it replaces (`--force`) is kept as `FILE.bak`.
fn write_new(file: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lifeboat.toml.")
        .tempfile_in(dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", file.display()))?;
    if file.exists() {
        let bak = file.with_extension("toml.bak");
        // A copy, so there is never a moment without a config.
        std::fs::copy(file, &bak).with_context(|| format!("keeping {}", bak.display()))?;
    }
    tmp.persist(file)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

/// Every problem with the config at `path` and the world it describes.
pub fn config_check(ctx: &Ctx, path: Option<PathBuf>, runbooks: Option<&Path>) -> Result<ExitCode> {
    let Some(path) = path else {
        bail!(lifeboat::Error::NoConfig);
    };
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read config {}", path.display()))?;
    let findings = match Config::parse_all_bytes(&path, &bytes) {
        Err(e) => vec![Finding::of_parse_error(&path, &e)],
        Ok((config, parsed)) => {
            let (rbs, mut problems) = match lifeboat::runbook::load_all(&config, runbooks) {
                Ok(x) => x,
                Err(e) => (
                    Vec::new(),
                    vec![lifeboat::runbook::Problem {
                        file: config.path.clone(),
                        line: 0,
                        message: format!("{e:#}"),
                    }],
                ),
            };
            problems.extend(lifeboat::runbook::check(&rbs, &config));
            let mut f = checkup::check(&config, &parsed, &rbs, &problems);
            if config.services.is_empty() {
                f.push(Finding {
                    at: path.display().to_string(),
                    problem: "no services: nothing is backed up".into(),
                    hint: Some("add a [services.NAME] section (docs/usage.md)".into()),
                });
            }
            f
        }
    };
    if ctx.json {
        output::json(&serde_json::json!({
            "config": path, "ok": findings.is_empty(), "problems": findings,
        }))?;
    } else {
        for f in &findings {
            eprintln!("{}: {}", output::clean(&f.at), output::clean(&f.problem));
            if let Some(h) = &f.hint {
                eprintln!("  hint: {}", output::clean(h));
            }
        }
        if findings.is_empty() {
            ctx.say(format!("{}: ok", path.display()));
        } else {
            eprintln!(
                "{}: {}",
                path.display(),
                lifeboat::util::plural(findings.len() as u64, "problem")
            );
        }
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
