//! Base backups: `pg_basebackup` in tar format on its standard output,
//! with the WAL it needs to be consistent (`-X fetch`), streamed into the
//! restore point as `.lifeboat/SOURCE/base.tar`.

use crate::model::Cluster;
use crate::repo::snapshot::Facts;
use crate::source::capture::{Artifact, Capture};
use crate::source::process;
use anyhow::Result;
use std::process::Command;

/// The artifact's file name in the restore point.
pub const BASE_TAR: &str = "base.tar";
/// The note that says when the backup was complete: the earliest moment
/// a restore from it can reach.
pub const STOP_NOTE: &str = "stop_time";

pub struct BaseCapture {
    name: String,
    cluster: Cluster,
    facts: Facts,
    /// The backup_label, read from the head of the tar as it streams.
    label: super::label::Found,
}

impl BaseCapture {
    pub fn new(name: &str, cluster: &Cluster) -> Self {
        BaseCapture {
            name: name.to_string(),
            cluster: cluster.clone(),
            facts: Facts::default(),
            label: Default::default(),
        }
    }
}

/// `tool` with the cluster's connection (see `postgres::client_tool`).
pub fn tool(c: &Cluster, tool: &str) -> Result<(Command, Option<tempfile::NamedTempFile>)> {
    crate::source::postgres::client_tool(tool, &c.host, c.port, &c.user, c.password_file.as_ref())
}

impl Capture for BaseCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "postgres-cluster"
    }

    fn start(&mut self) -> Result<Vec<Artifact>> {
        process::find_tool(&["pg_basebackup"])?;
        let (mut cmd, pass) = tool(&self.cluster, "pg_basebackup")?;
        // Fast checkpoint: the backup starts now rather than at the next
        // scheduled checkpoint. `-X fetch` puts the WAL written during the
        // backup into the tar, so each base backup restores on its own
        // (drills, verify) and the archive is only needed to go further.
        cmd.args(["-D", "-", "-F", "t", "-X", "fetch", "--checkpoint=fast"]);
        self.facts.notes.insert(
            "start_time".into(),
            humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        );
        let mut tar = process::produce("pg_basebackup", cmd, BASE_TAR, Box::new(pass))?;
        tar.reader = Box::new(super::label::Tap::new(tar.reader, self.label.clone()));
        Ok(vec![tar])
    }

    fn facts(mut self: Box<Self>) -> Result<Facts> {
        // Called once the tar is stored and pg_basebackup exited cleanly:
        // the backup's end lies before this moment.
        self.facts.notes.insert(
            STOP_NOTE.into(),
            humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        );
        // Where its WAL starts: what WAL retention keeps from, and where
        // gap detection begins (see `archive`).
        let label = self.label.lock().ok().and_then(|l| l.clone());
        if let Some(seg) = label.as_deref().and_then(super::label::start_segment) {
            self.facts
                .notes
                .insert(super::archive::START_SEGMENT_NOTE.into(), seg);
        }
        Ok(std::mem::take(&mut self.facts))
    }
}
