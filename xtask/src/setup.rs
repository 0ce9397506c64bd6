//! `cargo xtask setup`: idempotent installation of what sluice needs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{output, run};

/// Debian (bookworm) packages the project and its tests need.
const DEBIAN_PACKAGES: &[&str] = &[
    "containerd",
    "runc",
    "etcd-server",
    "iproute2",
    "bpftool",
    "iperf3",
    "wrk",
    "nginx",
    "iptables",
    "nftables",
    "containernetworking-plugins",
    "busybox-static",
    "catatonit",
    "umoci",
    // The reference DNS server of `bench dns` and the test upstream of `dns_e2e`.
    "dnsmasq-base",
    // GRO on the test network's veths (XDP_TX back out of a node's eth0).
    "ethtool",
];

/// The nightly toolchain that builds the eBPF crate (LLVM 22).
pub const NIGHTLY: &str = "nightly";
/// The LLVM major version of that toolchain; bpf-linker must link the same.
const LLVM_MAJOR: &str = "22";
/// The bpf-linker version known to build and work here.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Where bpffs is mounted.
const BPFFS: &str = "/sys/fs/bpf";

fn step(what: &str, result: &str) {
    println!("[setup] {what} ... {result}");
}

/// Everything: Debian packages, kubectl check, bpffs, toolchain.
pub fn all() -> Result<()> {
    debian_packages()?;
    kubectl();
    bpffs()?;
    toolchain()
}

/// Only the toolchain parts: nightly with rust-src, clippy and rustfmt, bpf-linker.
pub fn toolchain() -> Result<()> {
    nightly()?;
    components()?;
    bpf_linker()
}

fn dpkg_installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|status| status.trim_end() == "install ok installed")
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        step(
            &format!("debian packages ({})", DEBIAN_PACKAGES.len()),
            "ok (already present)",
        );
        return Ok(());
    }
    step(
        "debian packages",
        &format!("missing: {}", missing.join(" ")),
    );
    step("apt-get update", "running");
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("apt-get update failed (need root and access to the Debian mirror)")?;
    step("apt-get install", "running");
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("apt-get install {} failed", missing.join(" ")))?;
    let still: Vec<&str> = missing
        .into_iter()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if !still.is_empty() {
        bail!(
            "packages still not installed after apt-get: {}",
            still.join(" ")
        );
    }
    step("debian packages", "ok (installed)");
    Ok(())
}

fn kubectl() {
    match output(Command::new("kubectl").args(["version", "--client"])) {
        Some(version) => step(
            "kubectl",
            &format!("ok ({})", version.lines().next().unwrap_or("").trim()),
        ),
        None => step(
            "kubectl",
            "MISSING: not a Debian package; install kubectl (1.32) as /usr/bin/kubectl \
             for the kubectl tests",
        ),
    }
}

fn bpffs() -> Result<()> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    let mounted = mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&BPFFS) && fields.get(2) == Some(&"bpf")
    });
    if mounted {
        step(&format!("bpffs at {BPFFS}"), "ok (already mounted)");
        return Ok(());
    }
    run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))
        .with_context(|| format!("cannot mount bpffs at {BPFFS} (need root)"))?;
    step(&format!("bpffs at {BPFFS}"), "ok (mounted)");
    Ok(())
}

fn nightly() -> Result<()> {
    let installed = output(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup not found: install Rust with rustup")?;
    if installed
        .lines()
        .any(|line| line.starts_with(&format!("{NIGHTLY}-")))
    {
        step("nightly toolchain", "ok (already present)");
        return Ok(());
    }
    run(Command::new("rustup").args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]))
        .context("cannot install the nightly toolchain")?;
    step("nightly toolchain", "ok (installed)");
    Ok(())
}

/// rustup components: the BPF build needs nightly's `rust-src`; the lint gates need
/// clippy on both toolchains and rustfmt on the default one.
fn components() -> Result<()> {
    for (toolchain, component) in [
        (NIGHTLY, "rust-src"),
        (NIGHTLY, "clippy"),
        ("stable", "clippy"),
        ("stable", "rustfmt"),
    ] {
        let installed = output(Command::new("rustup").args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            toolchain,
        ]))
        .with_context(|| format!("cannot list the {toolchain} toolchain's components"))?;
        let what = format!("{toolchain} {component}");
        if installed.lines().any(|line| line.starts_with(component)) {
            step(&what, "ok (already present)");
            continue;
        }
        run(Command::new("rustup").args(["component", "add", component, "--toolchain", toolchain]))
            .with_context(|| format!("cannot add {component} to the {toolchain} toolchain"))?;
        step(&what, "ok (installed)");
    }
    Ok(())
}

/// The nightly sysroot's `lib` directory (holds nightly's `libLLVM.so.*`).
pub fn nightly_lib_dir() -> Result<PathBuf> {
    let sysroot =
        output(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))
            .context("cannot ask nightly rustc for its sysroot")?;
    Ok(Path::new(sysroot.trim()).join("lib"))
}

/// Whether an installed bpf-linker runs and links LLVM of the right major.
pub fn bpf_linker_ok() -> bool {
    let Ok(lib) = nightly_lib_dir() else {
        return false;
    };
    let Some(path) = output(Command::new("sh").args(["-c", "command -v bpf-linker"])) else {
        return false;
    };
    let runs = output(
        Command::new("bpf-linker")
            .arg("--version")
            .env("LD_LIBRARY_PATH", &lib),
    )
    .is_some();
    let links_llvm = output(Command::new("ldd").arg(path.trim()))
        .is_some_and(|libs| libs.contains(&format!("libLLVM.so.{LLVM_MAJOR}")));
    runs && links_llvm
}

fn bpf_linker() -> Result<()> {
    if bpf_linker_ok() {
        step(
            &format!("bpf-linker (LLVM {LLVM_MAJOR})"),
            "ok (already present)",
        );
        return Ok(());
    }
    step(
        &format!("bpf-linker (LLVM {LLVM_MAJOR})"),
        "building (about a minute)",
    );
    let lib = nightly_lib_dir()?;
    let llvm = std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&format!("libLLVM.so.{LLVM_MAJOR}")))
        })
        .with_context(|| {
            format!(
                "no libLLVM.so.{LLVM_MAJOR}* in {}: is the nightly toolchain on LLVM {LLVM_MAJOR}?",
                lib.display()
            )
        })?;
    // bpf-linker's build looks for `$LLVM_PREFIX/lib/libLLVM.so`.
    let prefix = crate::target_dir().join("llvm-prefix");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)?;
    let link = prefix_lib.join("libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)
        .with_context(|| format!("symlinking {}", link.display()))?;
    run(Command::new("cargo")
        .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{LLVM_MAJOR}"),
        ])
        .env("LLVM_PREFIX", &prefix))
    .context("cannot build bpf-linker")?;
    if !bpf_linker_ok() {
        bail!("bpf-linker installed but does not run against nightly's LLVM {LLVM_MAJOR}");
    }
    step(&format!("bpf-linker (LLVM {LLVM_MAJOR})"), "ok (installed)");
    Ok(())
}
