//! `cargo xtask build-ebpf`: builds the eBPF crate for the BPF target.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result};

use crate::{cargo, run, setup, target_dir};

/// The BPF crate.
pub const PACKAGE: &str = "sluice-ebpf";
/// The BPF target triple.
pub const TARGET: &str = "bpfel-unknown-none";
/// The `[[bin]]`s of `ebpf/programs`, one object per attach point.
const OBJECTS: &[&str] = &[SOCK_OBJECT, NODEPORT_OBJECT, NODEPORT_XDP_OBJECT];
/// The socket-LB object (cgroup connect4 and friends).
pub const SOCK_OBJECT: &str = "sluice-sock";
/// The north-south tc object (external interface ingress/egress).
pub const NODEPORT_OBJECT: &str = "sluice-nodeport";
/// The north-south XDP object (external interface ingress fast path).
pub const NODEPORT_XDP_OBJECT: &str = "sluice-nodeport-xdp";

/// Where the objects are copied: `$SLUICE_BPF_DIR`, else `target/bpf/`.
pub fn object_dir() -> PathBuf {
    std::env::var_os("SLUICE_BPF_DIR").map_or_else(|| target_dir().join("bpf"), PathBuf::from)
}

/// Builds the objects (cargo rebuilds only what is stale) and returns the socket-LB one.
pub fn build_sock() -> Result<PathBuf> {
    build()?
        .into_iter()
        .find(|path| path.ends_with(SOCK_OBJECT))
        .context("build-ebpf produced no socket-LB object")
}

/// Builds the objects and returns their stable paths (`target/bpf/<name>`).
pub fn build() -> Result<Vec<PathBuf>> {
    if !setup::bpf_linker_ok() {
        setup::toolchain()?;
    }
    let mut cmd = cargo();
    cmd.args([&format!("+{}", setup::NIGHTLY), "build", "-p", PACKAGE])
        .args(["-Z", "build-std=core", "--target", TARGET, "--release"]);
    nightly_env(&mut cmd);
    println!("[build-ebpf] building {PACKAGE} for {TARGET} (nightly, release)");
    run(&mut cmd)?;

    let built = target_dir().join(TARGET).join("release");
    let dir = object_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut paths = Vec::new();
    for name in OBJECTS {
        let from = built.join(name);
        let to = dir.join(name);
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        println!("[build-ebpf] wrote {}", to.display());
        paths.push(to);
    }
    Ok(paths)
}

/// The environment of a nightly cargo command for the BPF target.
pub fn nightly_env(cmd: &mut Command) {
    // BTF for the loader and for bpftool; only for the BPF target, so host
    // build scripts are unaffected.
    cmd.env(
        "CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS",
        "-C debuginfo=2 -C link-arg=--btf",
    )
    // Don't let the stable toolchain running xtask leak into nightly's build.
    .env_remove("RUSTUP_TOOLCHAIN")
    .env_remove("RUSTC")
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_ENCODED_RUSTFLAGS");
}
