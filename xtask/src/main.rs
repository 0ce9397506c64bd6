//! sluice's workflow commands: `cargo xtask <setup|build-ebpf|up|test|bench>`.
//!
//! - `setup`: installs what the project needs on a Debian bookworm machine
//!   (Debian packages, nightly `rust-src`, `bpf-linker` built against
//!   nightly's LLVM), mounts bpffs. Idempotent.
//! - `build-ebpf`: builds `ebpf/programs` for `bpfel-unknown-none` and copies
//!   each object to `target/bpf/<name>` (today: `target/bpf/sluice-sock`).
//! - `test`: setup, build-ebpf, the lint gates (`cargo fmt --check`, clippy
//!   pedantic with `-D warnings` for the workspace and the BPF crate), then
//!   `cargo test` over the workspace with `SLUICE_BPF_OBJ` set
//!   (`--no-fail-fast`: every failure is reported). What `.ci/run` calls.
//! - `up`: setup, release build, build-ebpf, then a single-node cluster in the
//!   foreground: containerd with the local images, control plane, node agent.
//! - `containerd`: only the private containerd with the images, until Ctrl-C.
//! - `images`: builds the local OCI images (`localhost/sluice/{pause,test}`).
//! - `bench <name>`: setup, build-ebpf, release build, then runs
//!   `bench-<name>` from the `sluice-tests` crate.

mod containerd;
mod ebpf;
mod images;
mod lint;
mod process;
mod setup;
mod up;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "sluice's workflow commands")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install everything the project needs (idempotent).
    Setup {
        /// Only the eBPF toolchain (nightly rust-src, bpf-linker), no Debian packages.
        #[arg(long)]
        toolchain_only: bool,
    },
    /// Build the eBPF programs and copy the objects to target/bpf/.
    BuildEbpf {
        /// Accepted for symmetry: BPF objects are always built with the
        /// release profile (unoptimised BPF code does not pass the verifier).
        #[arg(long)]
        release: bool,
    },
    /// The whole test suite: setup, build-ebpf, cargo test.
    Test {
        /// Skip the setup step (packages and toolchain already in place).
        #[arg(long)]
        skip_setup: bool,
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Build (release) and run a single-node cluster in the foreground.
    Up(up::Options),
    /// Run sluice's private containerd with the local images, until Ctrl-C.
    Containerd(up::Options),
    /// Build the local images under .state/images/.
    Images {
        /// Rebuild even when the archives are up to date.
        #[arg(long)]
        force: bool,
    },
    /// Run a benchmark: `cargo run --release -p sluice-tests --bin bench-<name> -- args`.
    Bench {
        /// Benchmark name (`api` runs `bench-api`).
        name: String,
        /// Arguments passed to the benchmark.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Setup { toolchain_only } => {
            if toolchain_only {
                setup::toolchain()
            } else {
                setup::all()
            }
        }
        Cmd::BuildEbpf { release: _ } => ebpf::build().map(|_| ()),
        Cmd::Test {
            skip_setup,
            cargo_args,
        } => test(skip_setup, &cargo_args),
        Cmd::Up(opts) => up::run(&opts),
        Cmd::Containerd(opts) => up::containerd_only(&opts),
        Cmd::Images { force } => images::command(&workspace_root().join(".state/images"), force),
        Cmd::Bench { name, args } => bench(&name, &args),
    }
}

/// `cargo xtask bench <name>`: builds what every benchmark may need (the eBPF object, the
/// workspace binaries, optimised; cargo skips what is fresh), then runs `bench-<name>`.
fn bench(name: &str, args: &[String]) -> Result<()> {
    setup::all()?;
    let sock = ebpf::build_sock()?;
    println!("[bench] building the workspace binaries (release)");
    run(cargo().args([
        "build",
        "--release",
        "--workspace",
        "--exclude",
        "sluice-ebpf",
        "--bins",
    ]))?;
    let bench = target_dir().join("release").join(format!("bench-{name}"));
    if !bench.exists() {
        bail!(
            "no benchmark named {name:?} ({} is missing)",
            bench.display()
        );
    }
    run(Command::new(bench)
        .args(args)
        .env("SLUICE_BIN_DIR", target_dir().join("release"))
        .env("SLUICE_BPF_OBJ", sock))
}

fn test(skip_setup: bool, cargo_args: &[String]) -> Result<()> {
    if !skip_setup {
        setup::all()?;
    }
    let sock = ebpf::build_sock()?;
    println!("[test] SLUICE_BPF_OBJ={}", sock.display());
    // Lints are gates: a failure fails the suite, but the tests still run so one CI run
    // reports everything.
    let lints = lint::all();
    if let Err(err) = &lints {
        println!("[test] lint gate failed: {err:#}");
    }
    // End-to-end tests start the workspace's binaries (control plane, node agent, CNI).
    println!("[test] building the workspace binaries");
    run(cargo().args(["build", "--workspace", "--exclude", "sluice-ebpf", "--bins"]))?;
    // Tests that cannot run here (not root, a tool missing) append a line to this file
    // (outside CI; under CI they fail): they are counted as skipped, never as passed.
    let skip_log = target_dir().join("test-skips.log");
    let _ = std::fs::remove_file(&skip_log);
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--workspace",
        "--exclude",
        "sluice-ebpf",
        "--no-fail-fast",
    ])
    .args(cargo_args)
    .env("SLUICE_BPF_OBJ", &sock)
    .env("SLUICE_BPF_DIR", ebpf::object_dir())
    .env("SLUICE_SKIP_LOG", &skip_log)
    .stdout(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", describe(&cmd)))?;
    let mut totals = tally(child.stdout.take().context("cargo test stdout")?);
    let status = child.wait().context("waiting for cargo test")?;
    let skipped: Vec<String> = std::fs::read_to_string(&skip_log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    totals.count_skips(skipped.len() as u64);
    for line in &skipped {
        println!("[test] {line}");
    }
    // One closing line for the whole suite: every test binary's counts added up.
    println!(
        "\ntests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    if !status.success() || totals.failed > 0 {
        bail!("tests failed ({status})");
    }
    lints?;
    if totals.passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Tests that returned early because they could not run reported "ok" to the
    /// harness: move them from passed to skipped.
    fn count_skips(&mut self, skips: u64) {
        let moved = skips.min(self.passed);
        self.passed -= moved;
        self.ignored += moved;
    }
}

/// Echo cargo test's output while adding up its `test result:` lines.
fn tally(out: impl std::io::Read) -> Totals {
    use std::io::BufRead;
    let mut t = Totals::default();
    for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
        println!("{line}");
        add_result_line(&mut t, &line);
    }
    t
}

fn add_result_line(t: &mut Totals, line: &str) {
    let Some(rest) = line.trim().strip_prefix("test result: ") else {
        return;
    };
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => t.passed += n,
            "failed" => t.failed += n,
            "ignored" => t.ignored += n,
            _ => {}
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
}

/// The cargo target directory.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// `cargo` (through rustup's proxy, so `+toolchain` works), run from the
/// workspace root.
fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs a command with inherited stdio; fails on a non-zero exit.
fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", describe(cmd));
    }
    Ok(())
}

/// Runs a command quietly and returns its stdout, or `None` when it cannot
/// start or fails.
fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_add_up() {
        let mut t = Totals::default();
        add_result_line(
            &mut t,
            "test result: ok. 25 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        );
        add_result_line(
            &mut t,
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s",
        );
        add_result_line(&mut t, "running 3 tests");
        assert_eq!(
            t,
            Totals {
                passed: 28,
                failed: 2,
                ignored: 1
            }
        );
    }

    #[test]
    fn skipped_tests_do_not_count_as_passed() {
        let mut t = Totals {
            passed: 10,
            failed: 0,
            ignored: 1,
        };
        t.count_skips(3);
        assert_eq!(
            t,
            Totals {
                passed: 7,
                failed: 0,
                ignored: 4
            }
        );
    }
}
