//! The lint gates `cargo xtask test` runs: formatting, and clippy (pedantic, from
//! `[workspace.lints]`) with warnings as errors, for the workspace and for the BPF crate.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{cargo, describe, ebpf, setup};

/// Runs every gate, reports each, fails if any failed.
pub fn all() -> Result<()> {
    let mut failed = Vec::new();
    for (name, mut cmd) in gates() {
        println!("[lint] {name}: {}", describe(&cmd));
        match cmd.status() {
            Ok(status) if status.success() => println!("[lint] {name} ... ok"),
            Ok(status) => {
                println!("[lint] {name} ... FAILED ({status})");
                failed.push(name);
            }
            Err(err) => {
                println!("[lint] {name} ... cannot start: {err}");
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        bail!("lint gates failed: {}", failed.join(", "));
    }
    Ok(())
}

fn gates() -> Vec<(&'static str, Command)> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--exclude",
        ebpf::PACKAGE,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);

    // The BPF crate only builds for the BPF target, with nightly and build-std.
    let mut bpf = cargo();
    bpf.args([
        &format!("+{}", setup::NIGHTLY),
        "clippy",
        "-p",
        ebpf::PACKAGE,
    ])
    .args([
        "-Z",
        "build-std=core",
        "--target",
        ebpf::TARGET,
        "--release",
    ])
    .args(["--", "-D", "warnings"]);
    ebpf::nightly_env(&mut bpf);

    vec![
        ("cargo fmt --check", fmt),
        ("clippy (workspace)", clippy),
        ("clippy (BPF crate)", bpf),
    ]
}
