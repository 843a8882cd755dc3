//! Disk images and secrets come back as they were: an image restored to a
//! directory keeps its holes and its format (a qcow2 with its internal
//! snapshots), and a secret keeps a private mode and is left alone when it
//! did not change. Each test runs the built binary with qemu-img.

mod common;
#[path = "fidelity/support.rs"]
#[allow(dead_code)]
mod support;

use common::Env;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command as Std;
use support::*;

fn qemu(args: &[&str]) -> String {
    let out = Std::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; qemu-img and qemu-io must be installed", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_info(p: &Path) -> serde_json::Value {
    serde_json::from_str(&qemu(&[
        "qemu-img",
        "info",
        "-U",
        "--output=json",
        p.to_str().unwrap(),
    ]))
    .unwrap()
}

/// A 256 MiB raw disk holding 24 MiB of data at 32 MiB.
fn raw_disk(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let f = std::fs::File::create(p).unwrap();
    f.set_len(256 << 20).unwrap();
    f.write_all_at(&common::bytes(3, 24 << 20), 32 << 20)
        .unwrap();
}

fn vm_service(name: &str, images: &[(&str, &Path)]) -> String {
    let sources: Vec<String> = images
        .iter()
        .map(|(n, p)| {
            format!(
                "{{ name = \"{n}\", kind = \"vm-image\", path = \"{}\" }}",
                p.display()
            )
        })
        .collect();
    format!(
        "[services.{name}]\ntier = \"important\"\nsources = [{}]\n",
        sources.join(", ")
    )
}

#[test]
fn an_image_restored_to_a_directory_is_sparse_and_in_its_recorded_format() {
    let env = Env::new();
    let raw = env.path("vm/disk.img");
    raw_disk(&raw);
    let qcow = env.path("vm/disk.qcow2");
    qemu(&[
        "qemu-img",
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        qcow.to_str().unwrap(),
    ]);
    let cfg = config(
        &env,
        &vm_service("nas-vm", &[("system", &raw), ("data", &qcow)]),
    );
    lb(&env, &cfg).args(["backup", "nas-vm"]).assert().success();
    let target = env.path("restored");
    lb(&env, &cfg)
        .args(["restore", "nas-vm:latest", "--target"])
        .arg(&target)
        .assert()
        .success();

    let system = target.join(".lifeboat/system/disk.raw");
    let m = std::fs::metadata(&system).unwrap();
    assert_eq!(m.len(), 256 << 20);
    let allocated = m.blocks() * 512;
    assert!(
        allocated * 10 <= (24 << 20) * 12,
        "{allocated} bytes allocated for 24 MiB of data in a 256 MiB image"
    );
    assert_eq!(
        std::fs::read(&system).unwrap(),
        std::fs::read(&raw).unwrap()
    );

    let data = target.join(".lifeboat/data/disk.qcow2");
    assert_eq!(
        image_info(&data)["format"],
        "qcow2",
        "comes back as a qcow2"
    );
    assert!(
        !target.join(".lifeboat/data/disk.raw").exists(),
        "no raw copy is left beside it"
    );
    qemu(&[
        "qemu-img",
        "compare",
        "-q",
        data.to_str().unwrap(),
        qcow.to_str().unwrap(),
    ]);
}

#[test]
fn a_qcow2_comes_back_with_its_internal_snapshots() {
    let env = Env::new();
    let raw = env.path("raw.img");
    raw_disk(&raw);
    let img = env.path("vm/disk.qcow2");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    let i = img.to_str().unwrap();
    qemu(&[
        "qemu-img",
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        i,
    ]);
    qemu(&["qemu-img", "snapshot", "-c", "before-upgrade", i]);
    qemu(&["qemu-io", "-f", "qcow2", "-c", "write -P 0x77 40M 1M", i]);
    let golden = std::fs::read(&img).unwrap();
    let cfg = config(&env, &vm_service("router-vm", &[("disk", &img)]));
    lb(&env, &cfg)
        .args(["backup", "router-vm"])
        .assert()
        .success();
    let facts = &snapshots(&env, &cfg, "router-vm")[0]["sources"][0]["facts"];
    assert!(
        facts["objects"]["internal snapshot before-upgrade"].is_string(),
        "the snapshot is recorded: {facts}"
    );

    // Lost, and the disk overwritten: a live restore brings both back.
    qemu(&["qemu-img", "snapshot", "-d", "before-upgrade", i]);
    qemu(&["qemu-io", "-f", "qcow2", "-c", "write -P 0x00 0 100M", i]);
    lb(&env, &cfg)
        .args(["restore", "router-vm", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(image_info(&img)["snapshots"][0]["name"], "before-upgrade");
    assert!(
        std::fs::read(&img).unwrap() == golden,
        "the image is as it was"
    );

    // Restored to a directory: the same qcow2, snapshot and all.
    let target = env.path("restored");
    lb(&env, &cfg)
        .args(["restore", "router-vm:latest", "--target"])
        .arg(&target)
        .assert()
        .success();
    let copy = target.join(".lifeboat/disk/disk.qcow2");
    assert_eq!(image_info(&copy)["snapshots"][0]["name"], "before-upgrade");

    // A drill restores it into a sandbox and checks it, snapshot included.
    lb(&env, &cfg)
        .args(["drill", "router-vm"])
        .assert()
        .success();
}

fn secrets_service(dir: &Path) -> String {
    format!(
        "[services.vaultwarden]\ntier = \"critical\"\nsources = [{{ kind = \"secrets\", paths = [\"{}\"] }}]\n",
        dir.display()
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn secrets_keep_a_private_mode_and_unchanged_ones_stay_in_place() {
    let env = Env::new();
    let dir = env.path("vaultwarden");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let files = [
        (".env", "ADMIN_TOKEN=hunter2\n", 0o640),
        ("rsa_key.pem", "-----BEGIN KEY-----\n", 0o400),
        ("smtp.conf", "password=x\n", 0o644),
    ];
    for (name, text, m) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let cfg = config(&env, &secrets_service(&dir));
    lb(&env, &cfg)
        .args(["backup", "vaultwarden"])
        .assert()
        .success();

    // Lost: back with the modes they had, the public one made owner-only.
    std::fs::remove_dir_all(&dir).unwrap();
    lb(&env, &cfg)
        .args(["restore", "vaultwarden", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(mode(&dir.join(".env")), 0o640, "group-readable stays so");
    assert_eq!(
        mode(&dir.join("rsa_key.pem")),
        0o400,
        "a read-only key stays read-only"
    );
    assert_eq!(
        mode(&dir.join("smtp.conf")),
        0o600,
        "never readable by others"
    );
    assert_eq!(mode(&dir), 0o750);
    assert_eq!(
        std::fs::read_to_string(dir.join(".env")).unwrap(),
        "ADMIN_TOKEN=hunter2\n"
    );

    // Nothing changed since: the restore leaves every file where it is,
    // and keeps no copy of them beside them.
    let inode = std::fs::metadata(dir.join(".env")).unwrap().ino();
    lb(&env, &cfg)
        .args(["restore", "vaultwarden", "--live", "--yes"])
        .assert()
        .success();
    assert_eq!(std::fs::metadata(dir.join(".env")).unwrap().ino(), inode);
    let beside: Vec<String> = std::fs::read_dir(env.path(""))
        .unwrap()
        .chain(std::fs::read_dir(&dir).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lifeboat-"))
        .collect();
    assert!(beside.is_empty(), "kept copies left behind: {beside:?}");

    // Changed: swapped in, the old copy kept for a rollback.
    std::fs::write(dir.join(".env"), "ADMIN_TOKEN=changed\n").unwrap();
    let out = lb(&env, &cfg)
        .args(["restore", "vaultwarden", "--live", "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".env")).unwrap(),
        "ADMIN_TOKEN=hunter2\n"
    );
    assert!(
        std::fs::read_dir(env.path("")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("lifeboat-kept")),
        "the changed copy is kept"
    );
}

#[test]
fn a_forged_image_record_cannot_convert_or_delete_a_file_outside_the_target() {
    use lifeboat::progress::Reporter;
    use lifeboat::repo::snapshot::SourceRecord;
    let env = Env::new();
    let repo_dir = env.path("repo");
    let admin_key = env.init(&repo_dir);
    let admin = env.repo(&repo_dir, &admin_key);
    // All a backed-up host holds, and so all a forger needs.
    let wo = env.path("write-only.key");
    std::fs::write(&wo, admin.write_only_key().unwrap()).unwrap();
    let forger = env.repo(&repo_dir, &wo);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"honest").unwrap();
    let mut snap = lifeboat::engine::backup(
        &forger,
        &env.backup_opts("forged", &[&src]),
        &Reporter::silent(),
    )
    .unwrap();
    // Someone's live disk, where `../../outside` from the staging copy
    // beside `t/target` lands.
    let victim = env.path("outside/disk.raw");
    raw_disk(&victim);
    let before = std::fs::read(&victim).unwrap();
    let mut record = SourceRecord {
        name: "disk".into(),
        kind: "vm-image".into(),
        files: vec!["../../outside/disk.raw".into()],
        facts: Default::default(),
    };
    record.facts.notes.insert("format".into(), "qcow2".into());
    snap.sources = vec![record];
    snap.id = String::new();
    forger.save_snapshot(&mut snap).unwrap();

    let target = env.path("t/target");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let err = lifeboat::engine::restore(
        &admin,
        &snap,
        &lifeboat::engine::RestoreOptions::new(&target),
        &Reporter::silent(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<lifeboat::Error>(),
            Some(lifeboat::Error::UnsafePath { .. })
        ) && format!("{err:#}").contains("vm-image"),
        "{err:#}"
    );
    assert!(std::fs::read(&victim).unwrap() == before, "untouched");
    let beside: Vec<_> = std::fs::read_dir(env.path("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("disk.raw")]);
    assert!(!target.exists(), "nothing restored");
}

#[test]
fn a_qcow2_with_a_backing_file_is_flattened_and_says_its_snapshots_were_dropped() {
    let env = Env::new();
    let raw = env.path("raw.img");
    raw_disk(&raw);
    let base = env.path("vm/base.qcow2");
    std::fs::create_dir_all(base.parent().unwrap()).unwrap();
    qemu(&[
        "qemu-img",
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        base.to_str().unwrap(),
    ]);
    let img = env.path("vm/overlay.qcow2");
    let i = img.to_str().unwrap();
    qemu(&[
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        base.to_str().unwrap(),
        i,
    ]);
    qemu(&["qemu-img", "snapshot", "-c", "before-upgrade", i]);
    qemu(&["qemu-io", "-f", "qcow2", "-c", "write -P 0x77 40M 1M", i]);
    let cfg = config(&env, &vm_service("app-vm", &[("disk", &img)]));
    let out = lb(&env, &cfg).args(["backup", "app-vm"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("before-upgrade") && stderr.contains("backing file"),
        "the backup warns: {stderr}"
    );
    let facts = &snapshots(&env, &cfg, "app-vm")[0]["sources"][0]["facts"];
    assert!(
        facts["notes"]["internal_snapshots"]
            .as_str()
            .is_some_and(|n| n.contains("not kept")),
        "{facts}"
    );
    assert!(facts["objects"].is_null(), "not expected back: {facts}");

    let target = env.path("restored");
    lb(&env, &cfg)
        .args(["restore", "app-vm:latest", "--target"])
        .arg(&target)
        .assert()
        .success();
    let copy = target.join(".lifeboat/disk/disk.qcow2");
    let info = image_info(&copy);
    assert!(info["backing-filename"].is_null(), "stands alone: {info}");
    // Base and overlay's data both, in one file.
    qemu(&["qemu-img", "compare", "-q", copy.to_str().unwrap(), i]);
}

#[test]
fn without_qemu_img_on_the_restore_host_the_raw_image_is_kept_with_a_warning() {
    let env = Env::new();
    let raw = env.path("raw.img");
    raw_disk(&raw);
    let qcow = env.path("vm/disk.qcow2");
    std::fs::create_dir_all(qcow.parent().unwrap()).unwrap();
    qemu(&[
        "qemu-img",
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        qcow.to_str().unwrap(),
    ]);
    let cfg = config(&env, &vm_service("nas-vm", &[("data", &qcow)]));
    lb(&env, &cfg).args(["backup", "nas-vm"]).assert().success();
    let empty = env.path("no-tools");
    std::fs::create_dir_all(&empty).unwrap();
    let target = env.path("restored");
    let out = lb(&env, &cfg)
        .env("PATH", &empty)
        .args(["restore", "nas-vm:latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("qemu-img is not installed"), "{stderr}");
    let kept = target.join(".lifeboat/data/disk.raw");
    assert!(std::fs::read(&kept).unwrap() == std::fs::read(&raw).unwrap());
    assert!(!target.join(".lifeboat/data/disk.qcow2").exists());
}
