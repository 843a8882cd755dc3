//! VM disk images. What is stored is always the raw disk content, so
//! content-defined chunking finds unchanged blocks between nights whatever
//! the container format shuffled, and zero blocks collapse into one chunk.
//! Raw images are read directly; qcow2 (and any other format qemu-img
//! reads) is first converted to a sparse raw copy in the cache directory,
//! except a qcow2 with internal snapshots, stored as it is so they come
//! back. Restore writes a sparse file and converts back to the recorded
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

/// What qemu-img sees in an image.
struct Info {
    format: String,
    size: u64,
    /// Internal snapshots (qcow2), name → date and saved VM state size.
    snapshots: Vec<(String, String)>,
    /// What else the image needs to be read whole (a backing file, an
    /// external data file); the qcow2 file alone would lose it.
    depends_on: Option<String>,
}

fn info(path: &Path) -> Result<Info> {
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
    let snapshots = v["snapshots"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_string(),
                        format!(
                            "taken {}, {} bytes of VM state",
                            s["date-sec"].as_u64().unwrap_or_default(),
                            s["vm-state-size"].as_u64().unwrap_or_default()
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let backing = v["backing-filename"]
        .as_str()
        .map(|b| format!("backing file {b}"));
    let data_file = v["format-specific"]["data"]["data-file"]
        .as_str()
        .map(|d| format!("external data file {d}"));
    Ok(Info {
        format,
        size,
        snapshots,
        depends_on: backing.or(data_file),
    })
}

/// The name of the file a backup stores an image's content in: its raw
/// disk content, or, for a qcow2 with internal snapshots, the qcow2 file
/// itself (a raw copy holds only the current state, and qcow2 leaves
/// clusters where they are, so the file still deduplicates night to night).
const RAW: &str = "disk.raw";
const QCOW2: &str = "disk.qcow2";

fn snapshot_key(name: &str) -> String {
    format!("internal snapshot {name}")
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
        let Info {
            format,
            size,
            snapshots,
            depends_on,
        } = info(&self.path)?;
        self.facts.server = Some(format!("qemu-img ({format})"));
        self.facts.notes.insert("format".into(), format.clone());
        self.facts
            .notes
            .insert("virtual_size".into(), size.to_string());
        let as_is = format == "qcow2" && !snapshots.is_empty() && depends_on.is_none();
        match &depends_on {
            // Flattened: the qcow2 file alone would come back without the
            // data it reads from elsewhere, and a raw copy holds only the
            // current state, so its snapshots cannot be kept.
            Some(dep) if !snapshots.is_empty() => {
                let dropped = format!(
                    "{} internal snapshot(s) not kept ({}): the image has a {dep}, so it is stored flattened",
                    snapshots.len(),
                    snapshots.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                );
                self.facts
                    .notes
                    .insert("internal_snapshots".into(), dropped.clone());
                self.facts.notes.insert("warning".into(), dropped);
            }
            _ => {
                for (name, what) in snapshots {
                    self.facts.objects.insert(snapshot_key(&name), what);
                }
            }
        }
        if format == "raw" || as_is {
            if as_is {
                self.facts.notes.insert(
                    "stored".into(),
                    "the qcow2 file as it is, to keep its internal snapshots".into(),
                );
            }
            let f = fs::File::open(&self.path)
                .with_context(|| format!("opening {}", self.path.display()))?;
            return Ok(vec![Artifact {
                file: if as_is { QCOW2 } else { RAW }.to_string(),
                reader: Box::new(f),
                done: Box::new(|| Ok(())),
            }]);
        }
        let file = RAW.to_string();
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
    let got = info(path)?;
    let summary = format!(
        "{} image, {} virtual",
        got.format,
        crate::util::human_bytes(got.size)
    );
    Ok((summary, differences(recorded, &got)))
}

fn differences(recorded: &Facts, got: &Info) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(want) = recorded.notes.get("format") {
        if *want != got.format {
            out.push(format!("format is {}, {want} recorded", got.format));
        }
    }
    if let Some(want) = recorded.notes.get("virtual_size") {
        if *want != got.size.to_string() {
            out.push(format!("virtual size is {}, {want} recorded", got.size));
        }
    }
    let snapshot_facts = recorded
        .objects
        .keys()
        .filter(|k| k.starts_with(&snapshot_key("")));
    for key in snapshot_facts {
        if !got.snapshots.iter().any(|(n, _)| snapshot_key(n) == *key) {
            out.push(format!("{key} is missing"));
        }
    }
    out
}

/// After `restore --target`: turns a raw image a restore point holds
/// (under `dir`, the restored copy) back into the format it was backed up
/// from, so a qcow2 comes back as a qcow2. Returns a warning when the raw
/// image was kept instead (qemu-img is not installed here).
///
/// The record comes from the repository, which anyone holding a
/// write-only key can write to: the file it names is only trusted once it
/// is the one place a backup puts an image, a regular file inside `dir`.
pub fn convert_restored(
    dir: &Path,
    snapshot: &str,
    record: &SourceRecord,
) -> Result<Option<String>> {
    let Some(format) = record.facts.notes.get("format") else {
        return Ok(None);
    };
    let Some(stored) = record.files.iter().find(|f| f.ends_with(RAW)) else {
        return Ok(None);
    };
    if format == "raw" {
        return Ok(None);
    }
    let folder = image_folder(dir, snapshot, record, stored)?;
    let raw = folder.join(RAW);
    match fs::symlink_metadata(&raw) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(_) => bail!("{} is not a regular file", raw.display()),
        // Left out of a partial restore (`--include`).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("looking at {}", raw.display())),
    }
    if format.is_empty() || !format.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("restore point records an odd image format {format:?}");
    }
    let Ok(qemu_img) = find_tool(&["qemu-img"]) else {
        return Ok(Some(format!(
            "qemu-img is not installed here, so {} stays a raw image; `qemu-img convert -f raw -O {format}` turns it back into a {format}",
            raw.display()
        )));
    };
    let new = folder.join(format!("disk.{format}"));
    // qemu-img opens its output without O_NOFOLLOW: it writes a name that
    // did not exist a moment ago, in a folder only this restore writes.
    let fresh = folder.join(format!(
        ".disk.{format}.lifeboat-{:08x}",
        rand::random::<u32>()
    ));
    if fs::symlink_metadata(&fresh).is_ok() {
        bail!("{} already exists", fresh.display());
    }
    let written = (|| -> Result<()> {
        let mut cmd = Command::new(&qemu_img);
        cmd.args(["convert", "-f", "raw", "-O", format])
            .arg(&raw)
            .arg(&fresh);
        process::output("qemu-img", cmd)
            .with_context(|| format!("converting the restored image back to {format}"))?;
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&fresh)
            .with_context(|| format!("opening {}", fresh.display()))?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("setting the mode of {}", fresh.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", fresh.display()))?;
        // The raw copy is the one whose hash was checked: it goes only
        // once the converted one is known to be sound.
        let mut check = Command::new(&qemu_img);
        check.args(["check", "-f", format]).arg(&fresh);
        process::output("qemu-img check", check)
            .with_context(|| format!("checking the image converted back to {format}"))?;
        fs::rename(&fresh, &new)
            .with_context(|| format!("renaming {} to {}", fresh.display(), new.display()))?;
        fs::File::open(&folder)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", folder.display()))?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&fresh);
        return Err(e);
    }
    fs::remove_file(&raw).with_context(|| format!("removing {}", raw.display()))?;
    Ok(None)
}

/// `dir/.lifeboat/NAME`, once `stored` is exactly where a backup stores
/// source NAME's raw image and every step to it is a real directory.
fn image_folder(
    dir: &Path,
    snapshot: &str,
    record: &SourceRecord,
    stored: &str,
) -> Result<PathBuf> {
    let plain =
        |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0');
    if !plain(&record.name) || stored != super::capture::artifact_path(&record.name, RAW) {
        return Err(crate::Error::UnsafePath {
            snapshot: snapshot.to_string(),
            path: stored.to_string(),
            why: "a vm-image source's image outside .lifeboat/SOURCE/disk.raw",
        }
        .into());
    }
    let mut folder = dir.to_path_buf();
    for step in [super::capture::DIR, record.name.as_str()] {
        folder.push(step);
        let m = fs::symlink_metadata(&folder)
            .with_context(|| format!("looking at {}", folder.display()))?;
        if !m.file_type().is_dir() {
            bail!("{} is not a directory", folder.display());
        }
    }
    Ok(folder)
}

/// Writes the image of `record` to a new file in its recorded format and
/// checks format, virtual size and internal snapshots against the backup's.
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
    // Stored in its own format: written as it is.
    let as_is = format == "raw" || file.ends_with(QCOW2);
    let new = match to {
        To::Live { file: Some(f) } => f.clone(),
        To::Live { file: None } => super::swap::staging_path(path, &ledger.id()),
        To::Sandbox(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join(format!("{}.{format}", record.name))
        }
    };
    let raw = if as_is {
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
    let built = (|| -> Result<Info> {
        if let Some(dir) = new.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_sparse(&raw, &mut streams.open(file)?)?;
        if !as_is {
            let mut cmd = Command::new(find_tool(&["qemu-img"])?);
            cmd.args(["convert", "-f", "raw", "-O", &format])
                .arg(&raw)
                .arg(&new);
            process::output("qemu-img", cmd)?;
            fs::remove_file(&raw)?;
        }
        if format != "raw" {
            let mut check = Command::new(find_tool(&["qemu-img"])?);
            check.arg("check").arg(&new);
            process::output("qemu-img check", check)?;
        }
        info(&new)
    })();
    if !as_is {
        let _ = fs::remove_file(&raw);
        ledger.unmade(&made[1]);
    }
    let got = match built {
        Ok(v) => v,
        Err(e) => {
            forget();
            return Err(e.context(format!("{} was not touched", path.display())));
        }
    };
    let differences = differences(&record.facts, &got);
    let snapshots = match got.snapshots.len() {
        0 => String::new(),
        n => format!(", {}", crate::util::plural(n as u64, "internal snapshot")),
    };
    let summary = format!(
        "{format} image, {} virtual{snapshots}, content hash matches the backup",
        crate::util::human_bytes(got.size)
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
