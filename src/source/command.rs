//! Command streams: whatever a command writes to standard output (`vzdump
//! 100 --stdout`, `zfs send`, `tar c`) is the backup; restore pipes it into
//! the configured restore command. The escape hatch for Proxmox, ZFS and
//! Docker volumes.

use super::capture::{Artifact, Capture};
use super::process::{self, shell};
use super::{Commit, Streams, To};
use crate::model::Command as CommandSpec;
use crate::repo::snapshot::{Facts, SourceRecord};
use anyhow::{bail, Context, Result};

pub struct CommandCapture {
    name: String,
    spec: CommandSpec,
}

impl CommandCapture {
    pub fn new(name: &str, spec: &CommandSpec) -> Self {
        CommandCapture {
            name: name.to_string(),
            spec: spec.clone(),
        }
    }
}

impl Capture for CommandCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "command"
    }

    fn start(&mut self) -> Result<Vec<Artifact>> {
        Ok(vec![process::produce(
            &self.spec.backup,
            shell(&self.spec.backup),
            "stdout",
            Box::new(()),
        )?])
    }

    fn facts(self: Box<Self>) -> Result<Facts> {
        Ok(Facts::default())
    }
}

fn run_check(spec: &CommandSpec, env: &[(&str, &std::path::Path)]) -> Vec<String> {
    let Some(check) = &spec.check else {
        return Vec::new();
    };
    let mut cmd = shell(check);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match process::output(check, cmd) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("check command failed: {e:#}")],
    }
}

/// A stream cannot be put anywhere but into its restore command, so a live
/// restore stages nothing (the command runs last, when everything else is
/// in place). A sandbox restores it to a file, every byte checked against
/// its hash, that a configured check command inspects as
/// `$LIFEBOAT_RESTORED`.
pub fn stage(
    spec: &CommandSpec,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
) -> Result<(String, Vec<String>, Commit)> {
    let file = record.file("", "stream")?;
    let size = streams.size(file);
    match to {
        To::Live { .. } => {
            let Some(restore) = &spec.restore else {
                bail!(
                    "no `restore_command` is configured, so Lifeboat cannot put this stream back; restore it as a file with `lifeboat restore POINT {file} --target DIR` and feed it to your tool"
                );
            };
            Ok((
                format!(
                    "{} to pipe into `{restore}` once everything else is in place",
                    crate::util::human_bytes(size)
                ),
                Vec::new(),
                Commit::Command {
                    spec: spec.clone(),
                    file: file.to_string(),
                },
            ))
        }
        To::Sandbox(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let out = dir.join(format!("{}.stream", record.name));
            super::write_new_file(&out, &mut streams.open(file)?)?;
            let differences = run_check(spec, &[("LIFEBOAT_RESTORED", out.as_path())]);
            let _ = std::fs::remove_file(&out);
            Ok((
                format!(
                    "stream of {} restored into a sandbox file; its hash matches the backup{}",
                    crate::util::human_bytes(size),
                    if spec.check.is_some() {
                        "; check command ran"
                    } else {
                        ""
                    }
                ),
                differences,
                Commit::None,
            ))
        }
    }
}

/// Pipes the stream into the restore command, then runs the check command.
pub fn commit(spec: &CommandSpec, file: &str, streams: &Streams) -> Result<(String, Vec<String>)> {
    let Some(restore) = &spec.restore else {
        bail!("no `restore_command` is configured");
    };
    let size = streams.size(file);
    // A cancel now would cut the stream short inside the live restore.
    let mut input = streams.open(file)?.to_the_end();
    process::consume(restore, shell(restore), &mut input, &|| false)?;
    Ok((
        format!("{} piped into `{restore}`", crate::util::human_bytes(size)),
        run_check(spec, &[]),
    ))
}
