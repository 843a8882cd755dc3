//! Command streams: whatever a command writes to standard output (`vzdump
//! 100 --stdout`, `zfs send`, `tar c`) is the backup; restore pipes it into
//! the configured restore command. The escape hatch for Proxmox, ZFS and
//! Docker volumes.

use super::capture::{Artifact, Capture};
use super::process::{self, shell};
use super::{Restored, Streams, To};
use crate::config::Command as CommandSpec;
use crate::repo::snapshot::{Facts, SourceRecord};
use anyhow::{anyhow, bail, Context, Result};

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

pub fn restore(
    spec: &CommandSpec,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
) -> Result<Restored> {
    let file = record
        .files
        .first()
        .ok_or_else(|| anyhow!("the restore point holds no stream for `{}`", record.name))?;
    let size = streams.size(file);
    let check = |env: &[(&str, &std::path::Path)]| -> Result<Vec<String>> {
        let Some(check) = &spec.check else {
            return Ok(Vec::new());
        };
        let mut cmd = shell(check);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(match process::output(check, cmd) {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("check command failed: {e:#}")],
        })
    };
    match to {
        To::Live => {
            let Some(restore) = &spec.restore else {
                bail!(
                    "no `restore_command` is configured, so Lifeboat cannot put this stream back; restore it as a file with `lifeboat restore POINT {file} --target DIR` and feed it to your tool"
                );
            };
            let mut input = streams.open(file)?;
            process::consume(restore, shell(restore), &mut input)?;
            let differences = check(&[])?;
            Ok(Restored {
                detail: format!("{} piped into `{restore}`", crate::util::human_bytes(size)),
                differences,
                kept: None,
            })
        }
        To::Sandbox(dir) => {
            // No application to restore into: the stream is restored to a
            // file (every byte checked against its hash) that a configured
            // check command can inspect as $LIFEBOAT_RESTORED.
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let out = dir.join(format!("{}.stream", record.name));
            super::write_new_file(&out, &mut streams.open(file)?)?;
            let differences = check(&[("LIFEBOAT_RESTORED", out.as_path())])?;
            let _ = std::fs::remove_file(&out);
            Ok(Restored {
                detail: format!(
                    "stream of {} restored into a sandbox file; its hash matches the backup{}",
                    crate::util::human_bytes(size),
                    if spec.check.is_some() {
                        "; check command ran"
                    } else {
                        ""
                    }
                ),
                differences,
                kept: None,
            })
        }
    }
}
