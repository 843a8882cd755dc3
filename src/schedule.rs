//! Unattended runs: systemd service + timer units, or crontab lines, for the
//! jobs in the config's `[schedule]` section.

use crate::config::{Config, When, WEEKDAYS};
use std::path::Path;

/// The command line a scheduled job runs.
fn command(exe: &Path, config: &Path, job: &str) -> String {
    let args = match job {
        "backup" => "backup --all",
        // A tenth of the data each night reads all of it every ten nights.
        "verify" => "verify --read-data=10%",
        "prune" => "forget --all --prune",
        // A random kept point each time, as AWS restore testing does:
        // over the months every point retention keeps gets proven.
        "drill" => "drill --all --point random",
        // Every repository with `copy_of` gets what its source has.
        "copy" => "copy",
        // Packs WAL segments left in a spool when no more WAL came.
        "wal-flush" => "wal-flush --all",
        other => other,
    };
    format!(
        "{} --quiet --config {} {args}",
        exe.display(),
        config.display()
    )
}

fn describe(job: &str) -> &'static str {
    match job {
        "backup" => "back up every service",
        "verify" => "verify every repository (a tenth of the data each run)",
        "prune" => "apply retention and reclaim space",
        "drill" => "restore drill of every service (a random restore point)",
        "copy" => "copy new restore points off-site",
        "wal-flush" => "pack WAL segments waiting in the spool (safety net for wal-push)",
        _ => "run a job",
    }
}

/// systemd's OnCalendar for a [`When`].
pub fn on_calendar(w: &When) -> String {
    let day = |d: u8| {
        let n = WEEKDAYS[d as usize];
        let mut c = n.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    match w {
        When::Hourly => "hourly".into(),
        When::Daily { hour, minute } => format!("*-*-* {hour:02}:{minute:02}:00"),
        When::Weekly {
            weekday,
            hour,
            minute,
        } => format!("{} *-*-* {hour:02}:{minute:02}:00", day(*weekday)),
        When::MonthlyFirst {
            weekday,
            hour,
            minute,
        } => format!("{} *-*-01..07 {hour:02}:{minute:02}:00", day(*weekday)),
        When::Monthly { day, hour, minute } => format!("*-*-{day:02} {hour:02}:{minute:02}:00"),
    }
}

/// Whether the config has a cluster whose spool needs the safety net:
/// a segment the background flush of `wal-push` missed (it was killed,
/// the repository was locked) reaches the repository within a minute,
/// even when no more WAL comes.
pub fn wants_wal_flush(config: &Config) -> bool {
    config.services.iter().any(|s| {
        s.sources
            .iter()
            .any(|src| matches!(src.kind, crate::model::SourceKind::PostgresCluster(_)))
    })
}

/// The wal-flush units: every minute, no random delay (it is about
/// seconds of RPO, and a spool elsewhere makes it a no-op).
fn wal_flush_units(config: &Config, exe: &Path) -> Vec<(String, String)> {
    let what = describe("wal-flush");
    vec![
        (
            "lifeboat-wal-flush.service".into(),
            format!(
                "[Unit]\nDescription=Lifeboat: {what}\n\n\
                 [Service]\nType=oneshot\nExecStart={}\n",
                command(exe, &config.path, "wal-flush")
            ),
        ),
        (
            "lifeboat-wal-flush.timer".into(),
            format!(
                "[Unit]\nDescription=Lifeboat: {what}, every minute\n\n\
                 [Timer]\nOnCalendar=minutely\nAccuracySec=1s\nPersistent=false\n\n\
                 [Install]\nWantedBy=timers.target\n"
            ),
        ),
    ]
}

/// (file name, contents) of every unit.
pub fn systemd_units(config: &Config, exe: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if wants_wal_flush(config) {
        out.extend(wal_flush_units(config, exe));
    }
    let delay = config.schedule.randomized_delay.as_secs();
    for (job, when) in &config.schedule.jobs {
        let what = describe(job);
        out.push((
            format!("lifeboat-{job}.service"),
            format!(
                "[Unit]\nDescription=Lifeboat: {what}\nWants=network-online.target\nAfter=network-online.target\n\n\
                 [Service]\nType=oneshot\nExecStart={}\nNice=10\nIOSchedulingClass=idle\n",
                command(exe, &config.path, job)
            ),
        ));
        out.push((
            format!("lifeboat-{job}.timer"),
            format!(
                "[Unit]\nDescription=Lifeboat: {what}, on schedule\n\n\
                 [Timer]\nOnCalendar={}\nRandomizedDelaySec={delay}\nPersistent=true\n\n\
                 [Install]\nWantedBy=timers.target\n",
                on_calendar(when)
            ),
        ));
    }
    out
}

/// Lines for `crontab -e` (root's crontab). cron ORs day-of-month with
/// day-of-week, so "first Sunday" is days 1-7 plus a weekday test.
pub fn cron_lines(config: &Config, exe: &Path) -> String {
    let delay = config.schedule.randomized_delay.as_secs();
    let mut out = String::from("# Lifeboat schedule, from the [schedule] section of the config\n");
    if wants_wal_flush(config) {
        out.push_str(&format!(
            "# {}\n* * * * * {}\n",
            describe("wal-flush"),
            command(exe, &config.path, "wal-flush")
        ));
    }
    for (job, when) in &config.schedule.jobs {
        let mut cmd = command(exe, &config.path, job);
        if delay > 0 {
            cmd = format!("sleep $(shuf -i 0-{delay} -n 1) && {cmd}");
        }
        let line = match when {
            When::Hourly => format!("0 * * * * {cmd}"),
            When::Daily { hour, minute } => format!("{minute} {hour} * * * {cmd}"),
            When::Weekly {
                weekday,
                hour,
                minute,
            } => format!("{minute} {hour} * * {} {cmd}", (weekday + 1) % 7),
            When::MonthlyFirst {
                weekday,
                hour,
                minute,
            } => {
                format!(
                    "{minute} {hour} 1-7 * * [ \"$(date +\\%u)\" = {} ] && {cmd}",
                    weekday + 1
                )
            }
            When::Monthly { day, hour, minute } => format!("{minute} {hour} {day} * * {cmd}"),
        };
        out.push_str(&format!("# {}\n{line}\n", describe(job)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_schedules_map_to_systemd_and_cron() {
        let w = |s| When::parse(s).unwrap();
        assert_eq!(on_calendar(&w("daily 02:00")), "*-*-* 02:00:00");
        assert_eq!(on_calendar(&w("weekly sun 03:00")), "Sun *-*-* 03:00:00");
        assert_eq!(
            on_calendar(&w("monthly first-sun 04:00")),
            "Sun *-*-01..07 04:00:00"
        );
        assert_eq!(on_calendar(&w("monthly 15 04:30")), "*-*-15 04:30:00");
        assert!(When::parse("daily 25:00").is_err());
        assert!(When::parse("weekly someday 03:00").is_err());
        assert!(
            When::parse("monthly 31 04:00").is_err(),
            "not every month has a 31st"
        );
    }
}
