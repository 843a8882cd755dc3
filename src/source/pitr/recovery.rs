//! Writing a data directory that `pg_ctl start` turns into the cluster as
//! of a moment: the base backup's tar unpacked, `recovery.signal`, and
//! the recovery settings appended to `postgresql.auto.conf` (which
//! PostgreSQL reads last, so they win over the backed-up settings).

use super::base::BASE_TAR;
use super::window::Moment;
use crate::progress::Reporter;
use crate::repo::{Repository, Snapshot};
use crate::source::capture::artifact_path;
use crate::source::Streams;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Unpacks `base` (a restore point of a postgres-cluster source named
/// `source`) into `target`, which must be missing or empty, and sets it
/// up to recover to `moment` fetching WAL with `restore_command`.
pub fn write(
    repo: &Repository,
    base: &Snapshot,
    source: &str,
    target: &Path,
    moment: &Moment,
    restore_command: &str,
    reporter: &Reporter,
) -> Result<()> {
    if target.exists()
        && std::fs::read_dir(target)
            .with_context(|| format!("reading {}", target.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; a data directory is restored into a new or empty directory, so nothing there is overwritten",
            target.display()
        );
    }
    std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", target.display()))?;
    let (index, _) = repo.load_index()?;
    let tree = repo.read_tree(&index, base)?;
    let streams = Streams::new(repo, &index, &tree, reporter);
    unpack(&streams, source, base, target)?;
    settings(target, moment, restore_command)
}

/// Unpacks the base backup of `source` in `base` into `target`.
pub fn unpack(streams: &Streams, source: &str, base: &Snapshot, target: &Path) -> Result<()> {
    let mut reader = streams.open(&artifact_path(source, BASE_TAR))?;
    // GNU tar refuses members that climb out of the target (`..`,
    // absolute names) and keeps the recorded owners when run as root,
    // which is who the data directory must belong to.
    let mut tar = Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(target)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running tar to unpack the base backup (install GNU tar)")?;
    let copied = {
        let mut stdin = tar.stdin.take().context("tar has no input pipe")?;
        std::io::copy(&mut reader, &mut stdin)
    };
    let out = tar.wait_with_output().context("waiting for tar")?;
    copied.with_context(|| {
        format!(
            "reading the base backup of restore point {}",
            base.short_id()
        )
    })?;
    if !out.status.success() {
        bail!(
            "tar could not unpack the base backup into {}: {}",
            target.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `recovery.signal` and the recovery settings.
pub fn settings(target: &Path, moment: &Moment, restore_command: &str) -> Result<()> {
    let owner = std::fs::metadata(target.join("PG_VERSION")).with_context(|| {
        format!(
            "{} holds no PG_VERSION: the base backup did not unpack into a data directory",
            target.display()
        )
    })?;
    // A backup taken from a standby may carry standby.signal, which would
    // keep the copy a standby forever instead of promoting it.
    let standby = target.join("standby.signal");
    if standby.exists() {
        std::fs::remove_file(&standby)
            .with_context(|| format!("removing {}", standby.display()))?;
    }
    let mut conf = String::from(MARK);
    conf.push_str(
        ": recover from the archive, then\n\
         # open for writes. Archiving is off so this copy never pushes its own\n\
         # WAL into the live cluster's archive; turn it back on if this copy\n\
         # becomes the live cluster.\n",
    );
    conf.push_str(&format!("restore_command = '{}'\n", quote(restore_command)));
    if let Moment::At(t) = moment {
        // PostgreSQL reads `2026-12-01 14:03:00.000000+00`, not a `Z`.
        let text = humantime::format_rfc3339_micros(*t)
            .to_string()
            .replace('T', " ")
            .replace('Z', "+00");
        conf.push_str(&format!("recovery_target_time = '{text}'\n"));
    }
    conf.push_str("recovery_target_action = 'promote'\n");
    conf.push_str("recovery_target_timeline = 'latest'\n");
    conf.push_str("archive_mode = 'off'\n");
    let auto = target.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&auto)
        .with_context(|| format!("writing {}", auto.display()))?;
    f.write_all(conf.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", auto.display()))?;
    let signal = target.join("recovery.signal");
    std::fs::write(&signal, b"").with_context(|| format!("writing {}", signal.display()))?;
    use std::os::unix::fs::MetadataExt;
    for p in [&auto, &signal] {
        let _ = std::os::unix::fs::chown(p, Some(owner.uid()), Some(owner.gid()));
    }
    // The tar has no entry for the directory itself: made by whoever runs
    // the restore (root), it must become the cluster owner's, or the
    // server cannot even enter it.
    if std::fs::metadata(target)
        .with_context(|| format!("looking at {}", target.display()))?
        .uid()
        != owner.uid()
    {
        std::os::unix::fs::chown(target, Some(owner.uid()), Some(owner.gid())).with_context(
            || {
                format!(
                    "handing {} to the owner of the restored files (uid {})",
                    target.display(),
                    owner.uid()
                )
            },
        )?;
    }
    Ok(())
}

/// Where the recovery settings begin in postgresql.auto.conf.
const MARK: &str = "\n# Written by `lifeboat restore --at`";

/// A recovered and promoted copy is about to become the live cluster
/// (`restore --at --live`): the recovery settings go from
/// postgresql.auto.conf, so the cluster archives again with its own
/// `archive_command`, and the timeline history files the promotion wrote
/// (while archiving was off) are marked for the archiver, so a later
/// restore can follow the new timeline. `note` is left in their place.
pub fn settle_live(dir: &Path, note: &str) -> Result<()> {
    let auto = dir.join("postgresql.auto.conf");
    let text =
        std::fs::read_to_string(&auto).with_context(|| format!("reading {}", auto.display()))?;
    let Some(at) = text.rfind(MARK) else {
        bail!(
            "{} lacks the recovery settings `restore --at` wrote; not a directory this restore made",
            auto.display()
        );
    };
    let kept = format!("{}\n# {}\n", &text[..at], note.replace('\n', " "));
    crate::source::ledger::write_atomic(&auto, kept.as_bytes())?;
    let owner = std::fs::metadata(dir.join("PG_VERSION"))
        .with_context(|| format!("looking at {}", dir.display()))?;
    use std::os::unix::fs::MetadataExt;
    let _ = std::os::unix::fs::chown(&auto, Some(owner.uid()), Some(owner.gid()));
    let wal = dir.join("pg_wal");
    let status = wal.join("archive_status");
    for e in std::fs::read_dir(&wal)
        .with_context(|| format!("reading {}", wal.display()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".history") {
            continue;
        }
        let done = status.join(format!("{name}.done"));
        let ready = status.join(format!("{name}.ready"));
        if !done.exists() && !ready.exists() {
            std::fs::write(&ready, b"").with_context(|| format!("writing {}", ready.display()))?;
            let _ = std::os::unix::fs::chown(&ready, Some(owner.uid()), Some(owner.gid()));
        }
    }
    Ok(())
}

/// A value inside single quotes in postgresql.conf.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_copy_loses_the_recovery_settings_and_announces_its_timeline() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        std::fs::write(dir.join("PG_VERSION"), "15\n").unwrap();
        std::fs::create_dir_all(dir.join("pg_wal/archive_status")).unwrap();
        std::fs::write(dir.join("postgresql.auto.conf"), "work_mem = '8MB'\n").unwrap();
        std::fs::write(dir.join("standby.signal"), "").unwrap();
        settings(dir, &Moment::Latest, "lifeboat wal-fetch %f %p").unwrap();
        assert!(!dir.join("standby.signal").exists());
        assert!(dir.join("recovery.signal").exists());
        let auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
        assert!(auto.contains("archive_mode = 'off'"), "{auto}");
        std::fs::write(
            dir.join("pg_wal/00000002.history"),
            "1\t0/3000000\tbefore\n",
        )
        .unwrap();
        std::fs::write(dir.join("pg_wal/00000001.history"), "").unwrap();
        std::fs::write(dir.join("pg_wal/archive_status/00000001.history.done"), "").unwrap();
        settle_live(dir, "restored by a test").unwrap();
        let auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
        assert_eq!(auto, "work_mem = '8MB'\n\n# restored by a test\n");
        assert!(dir
            .join("pg_wal/archive_status/00000002.history.ready")
            .exists());
        assert!(!dir
            .join("pg_wal/archive_status/00000001.history.ready")
            .exists());
        // Twice is refused: the settings are gone.
        assert!(settle_live(dir, "again").is_err());
    }
}
