//! The local images: built with umoci (no registry is reachable), imported
//! into containerd's `k8s.io` namespace with `ctr images import`.
//!
//! - `localhost/sluice/pause:1`: the CRI sandbox image, `/catatonit -P`.
//! - `localhost/sluice/test:1` and `:2`: static busybox plus `images/test/`
//!   (an HTTP responder on 8080 that answers with the pod's hostname, probe
//!   files). The tags differ only in env `SLUICE_TEST_VERSION` and a label.
//!
//! Each image is an OCI layout under `.state/images/<name>/`, tarred to
//! `.state/images/<name>.tar`. The archive is rebuilt when it is older than
//! its inputs (files under `images/`, the host binaries copied in, this
//! xtask binary) or on `--force`. A ref is imported when containerd lacks it
//! or holds another digest; `ctr images import --base-name <repo>` turns the
//! layout's tag annotations (`org.opencontainers.image.ref.name`: `1`) into
//! `<repo>:1`.

use std::{
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::Command,
    time::SystemTime,
};

use anyhow::{Context, Result, ensure};

use crate::containerd::Containerd;

/// The CRI sandbox image.
pub const PAUSE: &str = "localhost/sluice/pause:1";
/// The test image.
pub const TEST: &str = "localhost/sluice/test:1";
/// The test image's second tag (rolling updates).
pub const TEST_V2: &str = "localhost/sluice/test:2";

const CATATONIT: &str = "/usr/bin/catatonit";
const BUSYBOX: &str = "/bin/busybox";

/// One image repository: an OCI layout archive holding one or more tags.
#[derive(Clone, Debug)]
pub struct Archive {
    /// `localhost/sluice/test`.
    pub repo: &'static str,
    /// The `.tar` of the OCI layout.
    pub tar: PathBuf,
    /// `(full ref, manifest digest)` per tag.
    pub refs: Vec<(String, String)>,
}

/// Builds (when stale or `force`) both image archives under `out_dir`.
pub fn build_all(workspace: &Path, out_dir: &Path, force: bool) -> Result<Vec<Archive>> {
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    Ok(vec![
        build(&pause_recipe(), workspace, out_dir, force)?,
        build(&test_recipe(workspace), workspace, out_dir, force)?,
    ])
}

/// Imports the archives' refs that `containerd` lacks (or holds with another
/// digest); all of them with `force`. Returns the refs imported.
pub fn import(containerd: &Containerd, archives: &[Archive], force: bool) -> Result<Vec<String>> {
    let mut imported = Vec::new();
    for archive in archives {
        let present = image_digests(containerd)?;
        let stale = archive
            .refs
            .iter()
            .any(|(name, digest)| present.iter().all(|(n, d)| n != name || d != digest));
        if !force && !stale {
            continue;
        }
        let mut cmd = containerd.ctr();
        cmd.args(["images", "import", "--base-name", archive.repo])
            .arg(&archive.tar);
        crate::run(&mut cmd)?;
        let present = image_digests(containerd)?;
        for (name, digest) in &archive.refs {
            ensure!(
                present.iter().any(|(n, d)| n == name && d == digest),
                "after importing {}, containerd does not list {name}@{digest}",
                archive.tar.display()
            );
            imported.push(name.clone());
        }
    }
    Ok(imported)
}

/// `(ref, digest)` of every image in containerd's `k8s.io` namespace.
fn image_digests(containerd: &Containerd) -> Result<Vec<(String, String)>> {
    let mut cmd = containerd.ctr();
    cmd.args(["images", "ls"]);
    let listing = crate::output(&mut cmd).context("ctr images ls failed")?;
    Ok(listing
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let digest = fields.nth(1)?;
            Some((name.to_owned(), digest.to_owned()))
        })
        .collect())
}

/// How to build one repository.
struct Recipe {
    name: &'static str,
    repo: &'static str,
    /// Files whose change makes the archive stale.
    inputs: Vec<PathBuf>,
    /// Fills the root filesystem.
    populate: fn(&Path, &Path) -> Result<()>,
    /// `(tag, umoci config arguments)`; the first tag is built from the
    /// layer, later tags are config variants of it.
    tags: Vec<(&'static str, Vec<String>)>,
}

fn pause_recipe() -> Recipe {
    Recipe {
        name: "pause",
        repo: repo_of(PAUSE),
        inputs: vec![PathBuf::from(CATATONIT)],
        populate: populate_pause,
        tags: vec![(
            tag_of(PAUSE),
            args(&[
                "--config.entrypoint=/catatonit",
                "--config.entrypoint=-P",
                // Like registry.k8s.io/pause: nobody needs root to wait.
                "--config.user=65535:65535",
                "--config.workingdir=/",
                "--config.label=io.sluice.image=pause",
            ]),
        )],
    }
}

fn test_recipe(workspace: &Path) -> Recipe {
    let common = [
        "--config.entrypoint=/serve",
        "--config.env=PATH=/bin:/usr/bin",
        "--config.env=PORT=8080",
        "--config.exposedports=8080/tcp",
        "--config.workingdir=/",
        "--config.label=io.sluice.image=test",
    ];
    let tag = |version: &str| {
        let mut all = args(&common);
        all.push(format!("--config.env=SLUICE_TEST_VERSION={version}"));
        all.push(format!("--config.label=io.sluice.test.version={version}"));
        all
    };
    let mut inputs = vec![PathBuf::from(BUSYBOX), workspace.join(UDP_HOSTNAME_SRC)];
    inputs.extend(files_under(&workspace.join("images/test")));
    Recipe {
        name: "test",
        repo: repo_of(TEST),
        inputs,
        populate: populate_test,
        tags: vec![
            (tag_of(TEST), tag(tag_of(TEST))),
            (tag_of(TEST_V2), tag(tag_of(TEST_V2))),
        ],
    }
}

/// `localhost/sluice/test` of `localhost/sluice/test:1`.
fn repo_of(reference: &'static str) -> &'static str {
    reference
        .rsplit_once(':')
        .map_or(reference, |(repo, _)| repo)
}

/// `1` of `localhost/sluice/test:1`.
fn tag_of(reference: &'static str) -> &'static str {
    reference.rsplit_once(':').map_or("latest", |(_, tag)| tag)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

fn build(recipe: &Recipe, workspace: &Path, out_dir: &Path, force: bool) -> Result<Archive> {
    let layout = out_dir.join(recipe.name);
    let tar = out_dir.join(format!("{}.tar", recipe.name));
    let layout_ref = |tag: &str| format!("{}:{tag}", layout.display());
    let archive = |layout: &Path| -> Result<Archive> {
        let index = fs::read_to_string(layout.join("index.json"))
            .with_context(|| format!("reading {}/index.json", layout.display()))?;
        let refs = recipe
            .tags
            .iter()
            .map(|(tag, _)| {
                let digest = tag_digest(&index, tag)
                    .with_context(|| format!("{}/index.json has no tag {tag}", layout.display()))?;
                Ok((format!("{}:{tag}", recipe.repo), digest))
            })
            .collect::<Result<_>>()?;
        Ok(Archive {
            repo: recipe.repo,
            tar: tar.clone(),
            refs,
        })
    };
    if !force && !stale(&tar, &recipe.inputs) && layout.join("index.json").exists() {
        return archive(&layout);
    }
    println!("[images] building {} ({})", recipe.repo, tar.display());
    let bundle = out_dir.join(format!("{}.bundle", recipe.name));
    for dir in [&layout, &bundle] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    let (first, first_args) = &recipe.tags[0];
    umoci(&["init", "--layout"], &[layout.as_os_str()])?;
    umoci(&["new", "--image", &layout_ref(first)], &[])?;
    umoci(
        &["unpack", "--image", &layout_ref(first)],
        &[bundle.as_os_str()],
    )?;
    (recipe.populate)(workspace, &bundle.join("rootfs"))?;
    umoci(
        &["repack", "--image", &layout_ref(first)],
        &[bundle.as_os_str()],
    )?;
    let mut config = vec!["config".to_owned(), "--image".to_owned(), layout_ref(first)];
    config.extend(first_args.iter().cloned());
    umoci_owned(&config)?;
    for (tag, tag_args) in &recipe.tags[1..] {
        let mut config = vec![
            "config".to_owned(),
            "--image".to_owned(),
            layout_ref(first),
            "--tag".to_owned(),
            (*tag).to_owned(),
        ];
        config.extend(tag_args.iter().cloned());
        umoci_owned(&config)?;
    }
    umoci(&["gc", "--layout"], &[layout.as_os_str()])?;
    fs::remove_dir_all(&bundle).with_context(|| format!("removing {}", bundle.display()))?;
    let partial = tar.with_extension("tar.partial");
    crate::run(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&partial)
            .arg("."),
    )?;
    fs::rename(&partial, &tar).with_context(|| format!("writing {}", tar.display()))?;
    archive(&layout)
}

fn umoci(args: &[&str], paths: &[&std::ffi::OsStr]) -> Result<()> {
    crate::run(Command::new("umoci").args(args).args(paths))
}

fn umoci_owned(args: &[String]) -> Result<()> {
    crate::run(Command::new("umoci").args(args))
}

/// Whether `tar` is missing or older than any input (or this xtask binary).
fn stale(tar: &Path, inputs: &[PathBuf]) -> bool {
    let Ok(built) = fs::metadata(tar).and_then(|meta| meta.modified()) else {
        return true;
    };
    let xtask = std::env::current_exe().ok();
    inputs
        .iter()
        .chain(xtask.iter())
        .any(|input| modified(input).is_none_or(|time| time > built))
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

/// Every file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The manifest digest tagged `tag` in an OCI `index.json` as umoci writes
/// it: one line, each manifest descriptor's `digest` before its
/// `annotations`.
fn tag_digest(index: &str, tag: &str) -> Option<String> {
    let annotation = format!("\"org.opencontainers.image.ref.name\":\"{tag}\"");
    let at = index.find(&annotation)?;
    let before = &index[..at];
    let digest = &before[before.rfind("\"digest\":\"")? + "\"digest\":\"".len()..];
    Some(digest[..digest.find('"')?].to_owned())
}

fn populate_pause(_workspace: &Path, rootfs: &Path) -> Result<()> {
    copy_static(Path::new(CATATONIT), &rootfs.join("catatonit"))
}

fn populate_test(workspace: &Path, rootfs: &Path) -> Result<()> {
    for dir in ["bin", "usr/bin", "etc", "root", "tmp", "var/run"] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    let busybox = rootfs.join("bin/busybox");
    copy_static(Path::new(BUSYBOX), &busybox)?;
    let applets =
        crate::output(Command::new(&busybox).arg("--list")).context("busybox --list failed")?;
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", rootfs.join("bin").join(applet))
            .with_context(|| format!("linking /bin/{applet}"))?;
    }
    // `#!/usr/bin/env sh` scripts.
    symlink("/bin/busybox", rootfs.join("usr/bin/env"))?;
    build_static(
        &workspace.join(UDP_HOSTNAME_SRC),
        &rootfs.join("bin/udp-hostname"),
    )?;
    copy_tree(&workspace.join("images/test"), rootfs)
}

/// The UDP responder of the test image (busybox has no UDP server).
const UDP_HOSTNAME_SRC: &str = "images/src/udp-hostname.rs";

/// Compiles a one-file, std-only Rust program into a static executable at `dst`
/// (`rustc -C target-feature=+crt-static`: glibc linked in, the image has none).
fn build_static(src: &Path, dst: &Path) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    crate::run(
        Command::new(rustc)
            .args([
                "--edition",
                "2024",
                "-O",
                "-C",
                "target-feature=+crt-static",
            ])
            .arg(src)
            .arg("-o")
            .arg(dst),
    )
    .with_context(|| format!("compiling {}", src.display()))?;
    let bytes = fs::read(dst).with_context(|| format!("reading {}", dst.display()))?;
    ensure!(
        !has_interpreter(&bytes).with_context(|| format!("{} is not ELF64", dst.display()))?,
        "{} came out dynamically linked",
        dst.display()
    );
    Ok(())
}

/// Copies `src` to `dst` after checking it is a static ELF executable (the
/// images carry no libc).
fn copy_static(src: &Path, dst: &Path) -> Result<()> {
    let bytes = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    ensure!(
        !has_interpreter(&bytes).with_context(|| format!("{} is not ELF64", src.display()))?,
        "{} is dynamically linked; the images have no libc",
        src.display()
    );
    fs::write(dst, &bytes).with_context(|| format!("writing {}", dst.display()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Whether an ELF64 little-endian file has a `PT_INTERP` program header
/// (i.e. needs a dynamic loader). `None` if it is not such a file.
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4)? != b"\x7fELF" || *elf.get(4)? != 2 || *elf.get(5)? != 1 {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(elf.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for index in 0..phnum {
        let at = phoff + index * phentsize;
        let kind = u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?);
        if kind == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// Copies the files below `src` into `dst`, keeping their modes.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for file in files_under(src) {
        let relative = file.strip_prefix(src)?;
        if relative.file_name().is_some_and(|name| name == "README.md") {
            continue;
        }
        let target = dst.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if target.symlink_metadata().is_ok() {
            fs::remove_file(&target)?;
        }
        fs::copy(&file, &target)
            .with_context(|| format!("copying {} to {}", file.display(), target.display()))?;
    }
    Ok(())
}

/// `cargo xtask images`: builds the archives (`up` and `containerd` import
/// them).
pub fn command(out_dir: &Path, force: bool) -> Result<()> {
    let archives = build_all(crate::workspace_root(), out_dir, force)?;
    for archive in &archives {
        for (name, digest) in &archive.refs {
            println!("[images] {name} {digest} ({})", archive.tar.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tag_digests_from_an_umoci_index() {
        let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"annotations":{"org.opencontainers.image.ref.name":"1"}},{"mediaType":"m","digest":"sha256:bb","size":2,"annotations":{"org.opencontainers.image.ref.name":"2"}}]}"#;
        assert_eq!(tag_digest(index, "1").as_deref(), Some("sha256:aa"));
        assert_eq!(tag_digest(index, "2").as_deref(), Some("sha256:bb"));
        assert_eq!(tag_digest(index, "3"), None);
    }

    #[test]
    fn tells_static_from_dynamic_binaries() {
        let current = fs::read(std::env::current_exe().expect("exe")).expect("read");
        // Test binaries link libc dynamically.
        assert_eq!(has_interpreter(&current), Some(true));
        assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
    }
}
