//! VM disk images. What is stored is always the raw disk content, so
//! content-defined chunking finds unchanged blocks between nights whatever
//! the container format shuffled, and zero blocks collapse into one chunk.
//! Raw images are read directly; qcow2 (and any other format qemu-img
//! reads) is first converted to a sparse raw copy in the cache directory.
//! Restore writes a sparse raw file and converts back to the recorded
//! format. Images of running VMs must be read from a snapshot or with the
//! VM stopped: Lifeboat reads what is on disk.

use super::capture::{Artifact, Capture};
use super::ledger::{Ledger, Made};
use super::process::{self, find_tool};
use super::{Commit, Streams, To};
use crate::repo::snapshot::{Facts, SourceRecord};
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct ImageCapture {
    name: String,
    path: PathBuf,
    cache_dir: PathBuf,
    facts: Facts,
}

impl ImageCapture {
    pub fn new(name: &str, path: &Path, cache_dir: &Path) -> Self {
        ImageCapture {
            name: name.to_string(),
            path: path.to_path_buf(),
            cache_dir: cache_dir.to_path_buf(),
            facts: Facts::default(),
        }
    }
}

/// (format, virtual size) as qemu-img sees the image.
fn info(path: &Path) -> Result<(String, u64)> {
    let mut cmd = Command::new(find_tool(&["qemu-img"])?);
    // -U: read an image another process holds open (the caller vouches
    // that it is quiescent).
    cmd.args(["info", "-U", "--output=json"]).arg(path);
    let out = process::output("qemu-img", cmd)?;
    let v: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("qemu-img info {}", path.display()))?;
    let format = v["format"]
        .as_str()
        .ok_or_else(|| anyhow!("qemu-img info {}: no format", path.display()))?
        .to_string();
    let size = v["virtual-size"]
        .as_u64()
        .ok_or_else(|| anyhow!("qemu-img info {}: no virtual size", path.display()))?;
    Ok((format, size))
}

impl Capture for ImageCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "vm-image"
    }

    fn start(&mut self) -> Result<Vec<Artifact>> {
        if !self.path.is_file() {
            bail!("{} does not exist or is not a file", self.path.display());
        }
        let (format, size) = info(&self.path)?;
        self.facts.server = Some(format!("qemu-img ({format})"));
        self.facts.notes.insert("format".into(), format.clone());
        self.facts
            .notes
            .insert("virtual_size".into(), size.to_string());
        let file = "disk.raw".to_string();
        if format == "raw" {
            let f = fs::File::open(&self.path)
                .with_context(|| format!("opening {}", self.path.display()))?;
            return Ok(vec![Artifact {
                file,
                reader: Box::new(f),
                done: Box::new(|| Ok(())),
            }]);
        }
        fs::create_dir_all(&self.cache_dir)
            .with_context(|| format!("creating {}", self.cache_dir.display()))?;
        let raw = tempfile::Builder::new()
            .prefix(".lifeboat-image-")
            .tempfile_in(&self.cache_dir)
            .context("creating a raw copy of the image")?;
        let mut cmd = Command::new("qemu-img");
        cmd.args(["convert", "-U", "-O", "raw"])
            .arg(&self.path)
            .arg(raw.path());
        process::output("qemu-img", cmd).with_context(|| {
            format!(
                "converting {} to raw in {} (needs room for the image's data)",
                self.path.display(),
                self.cache_dir.display()
            )
        })?;
        let f = raw.reopen().context("reading the raw copy")?;
        Ok(vec![Artifact {
            file,
            reader: Box::new(f),
            done: Box::new(move || {
                drop(raw);
                Ok(())
            }),
        }])
    }

    fn facts(mut self: Box<Self>) -> Result<Facts> {
        Ok(std::mem::take(&mut self.facts))
    }
}

/// Copies `input` to a new file, seeking over all-zero blocks so the
/// result is as sparse as the original.
fn write_sparse(path: &Path, input: &mut dyn Read) -> Result<u64> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = input.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        if buf[..filled].iter().all(|b| *b == 0) {
            f.seek(SeekFrom::Current(filled as i64))?;
        } else {
            f.write_all(&buf[..filled])?;
        }
        len += filled as u64;
    }
    f.set_len(len)?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(len)
}

/// The live image's format and size against what a restore point recorded.
pub fn check_live(path: &Path, recorded: &Facts) -> Result<(String, Vec<String>)> {
    let (format, size) = info(path)?;
    let mut differences = Vec::new();
    if let Some(want) = recorded.notes.get("format") {
        if *want != format {
            differences.push(format!("format is {format}, {want} recorded"));
        }
    }
    if let Some(want) = recorded.notes.get("virtual_size") {
        if *want != size.to_string() {
            differences.push(format!("virtual size is {size}, {want} recorded"));
        }
    }
    Ok((
        format!("{format} image, {} virtual", crate::util::human_bytes(size)),
        differences,
    ))
}

/// Writes the image of `record` to a new file in its recorded format and
/// checks format and virtual size against the backup's.
pub fn stage(
    path: &Path,
    record: &SourceRecord,
    streams: &Streams,
    to: &To,
    ledger: &Ledger,
) -> Result<(String, Vec<String>, Commit)> {
    let file = record.file("", "disk image")?;
    let format = record
        .facts
        .notes
        .get("format")
        .cloned()
        .unwrap_or_else(|| "raw".into());
    let want_size: Option<u64> = record
        .facts
        .notes
        .get("virtual_size")
        .and_then(|s| s.parse().ok());
    let new = match to {
        To::Live { file: Some(f) } => f.clone(),
        To::Live { file: None } => super::swap::staging_path(path, &ledger.id()),
        To::Sandbox(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join(format!("{}.{format}", record.name))
        }
    };
    let raw = if format == "raw" {
        new.clone()
    } else {
        super::swap::staging_path(&new, "raw")
    };
    let made = [
        Made::Path { path: new.clone() },
        Made::Path { path: raw.clone() },
    ];
    for m in &made {
        ledger.made(m.clone())?;
    }
    let forget = || {
        for m in &made {
            if super::cleanup::remove(m).is_ok() {
                ledger.unmade(m);
            }
        }
    };
    let built = (|| -> Result<(String, u64)> {
        if let Some(dir) = new.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_sparse(&raw, &mut streams.open(file)?)?;
        if format != "raw" {
            let mut cmd = Command::new(find_tool(&["qemu-img"])?);
            cmd.args(["convert", "-O", &format]).arg(&raw).arg(&new);
            process::output("qemu-img", cmd)?;
            fs::remove_file(&raw)?;
            let mut check = Command::new("qemu-img");
            check.arg("check").arg(&new);
            process::output("qemu-img check", check)?;
        }
        info(&new)
    })();
    if format != "raw" {
        let _ = fs::remove_file(&raw);
        ledger.unmade(&made[1]);
    }
    let (got_format, got_size) = match built {
        Ok(v) => v,
        Err(e) => {
            forget();
            return Err(e.context(format!("{} was not touched", path.display())));
        }
    };
    let mut differences = Vec::new();
    if got_format != format {
        differences.push(format!("format is {got_format}, {format} recorded"));
    }
    if want_size.is_some_and(|w| w != got_size) {
        differences.push(format!(
            "virtual size is {got_size}, {} recorded",
            want_size.unwrap_or_default()
        ));
    }
    let summary = format!(
        "{format} image, {} virtual, content hash matches the backup",
        crate::util::human_bytes(got_size)
    );
    super::finish_file(
        "image",
        path,
        new.clone(),
        to,
        summary,
        differences,
        &[],
        forget,
    )
}
