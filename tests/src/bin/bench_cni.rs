//! `bench-cni`: CNI ADD/DEL latency of `sluice-cni` against the reference
//! `ptp` + `host-local` plugins, side by side in one run.
//!
//! Usage: `bench-cni [-n CYCLES]` (default 100), as root. `sluice-cni` is
//! found in `$SLUICE_BIN_DIR`, else next to this executable; the reference
//! plugins in `$SLUICE_CNI_REF_DIR`, else `/usr/lib/cni` (also `CNI_PATH`).
//!
//! The bench re-executes itself inside a fresh "node" network namespace
//! (`ip netns exec`), so both plugins put their host-side veths, addresses
//! and routes there, never on the machine's real network. Each cycle makes a
//! fresh pod namespace per plugin (not timed), then times one ADD and one DEL
//! (process spawn to exit, as a runtime sees it). The plugins alternate
//! cycle by cycle so drift hits both alike. Same podCIDR shape (/24) for both.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use sluice_node_agent::cni::{self, Network};

const INNER: &str = "--inner";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cycles = 100usize;
    let mut inner = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" | "--cycles" => {
                cycles = it
                    .next()
                    .context("-n needs a number")?
                    .parse()
                    .context("-n needs a number")?;
            }
            INNER => inner = true,
            "-h" | "--help" => {
                println!("bench-cni [-n CYCLES]   (root; default 100 cycles)");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    ensure!(cycles > 0, "-n must be positive");
    if inner {
        run_inner(cycles)
    } else {
        run_outer(cycles)
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {args:?}"))?;
    ensure!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Makes the node namespace and runs this binary again inside it.
fn run_outer(cycles: usize) -> Result<()> {
    let node = format!("sluice-bench-node-{}", std::process::id());
    ip(&["netns", "add", &node])?;
    let exe = std::env::current_exe().context("locating bench-cni")?;
    let status = Command::new("ip")
        .args(["netns", "exec", &node])
        .arg(&exe)
        .args(["-n", &cycles.to_string(), INNER])
        .env("SLUICE_BIN_DIR", sluice_bin_dir(&exe))
        .status()
        .context("running the bench inside the node netns");
    let cleanup = ip(&["netns", "del", &node]);
    let status = status?;
    cleanup?;
    ensure!(status.success(), "bench failed ({status})");
    Ok(())
}

fn sluice_bin_dir(exe: &Path) -> PathBuf {
    std::env::var_os("SLUICE_BIN_DIR").map_or_else(
        || exe.parent().map(Path::to_path_buf).unwrap_or_default(),
        PathBuf::from,
    )
}

struct Plugin {
    label: &'static str,
    binary: PathBuf,
    conf: Value,
    add: Vec<Duration>,
    del: Vec<Duration>,
}

impl Plugin {
    /// Times ADD then DEL of one container in `netns`.
    fn cycle(&mut self, id: &str, netns: &str, cni_path: &str, record: bool) -> Result<()> {
        let t = invoke(&self.binary, "ADD", id, netns, cni_path, &self.conf)
            .with_context(|| format!("{} ADD", self.label))?;
        let t2 = invoke(&self.binary, "DEL", id, netns, cni_path, &self.conf)
            .with_context(|| format!("{} DEL", self.label))?;
        if record {
            self.add.push(t);
            self.del.push(t2);
        }
        Ok(())
    }
}

fn invoke(
    bin: &Path,
    verb: &str,
    id: &str,
    netns: &str,
    cni_path: &str,
    conf: &Value,
) -> Result<Duration> {
    use std::io::Write;
    let stdin = conf.to_string();
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    let elapsed = start.elapsed();
    ensure!(
        out.status.success(),
        "{} {verb} exited {}: {} {}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    if verb == "ADD" {
        let res: Value = serde_json::from_slice(&out.stdout).context("ADD result is not JSON")?;
        ensure!(
            res["ips"][0]["address"].is_string(),
            "ADD result has no address: {res}"
        );
    }
    Ok(elapsed)
}

fn run_inner(cycles: usize) -> Result<()> {
    let bin_dir = PathBuf::from(std::env::var_os("SLUICE_BIN_DIR").unwrap_or_default());
    let ref_dir = PathBuf::from(
        std::env::var_os("SLUICE_CNI_REF_DIR").unwrap_or_else(|| "/usr/lib/cni".into()),
    );
    let sluice = bin_dir.join("sluice-cni");
    ensure!(
        sluice.exists(),
        "{} not found (build it, or set SLUICE_BIN_DIR)",
        sluice.display()
    );
    for p in ["ptp", "host-local"] {
        ensure!(
            ref_dir.join(p).exists(),
            "reference plugin {} not found",
            ref_dir.join(p).display()
        );
    }
    let cni_path = ref_dir.display().to_string();
    ip(&["link", "set", "lo", "up"])?;
    let data = tempfile::tempdir()?;
    let mut plugins = [
        Plugin {
            label: "sluice-cni",
            binary: sluice.clone(),
            conf: Network {
                name: "bench-sluice".into(),
                mtu: Some(1500),
                ..Network::new(
                    cni::parse_pod_cidr("10.213.1.0/24")?,
                    &data.path().join("sluice"),
                )
            }
            .plugin_config(),
            add: Vec::new(),
            del: Vec::new(),
        },
        Plugin {
            label: "ptp + host-local",
            binary: ref_dir.join("ptp"),
            conf: json!({
                "cniVersion": "1.0.0", "name": "bench-ptp", "type": "ptp", "mtu": 1500,
                "ipam": {
                    "type": "host-local", "subnet": "10.213.2.0/24",
                    "dataDir": data.path().join("host-local"),
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }),
            add: Vec::new(),
            del: Vec::new(),
        },
    ];
    let pid = std::process::id();
    // One untimed warm-up cycle each (page cache, first-exec costs), then N.
    for i in 0..=cycles {
        for (k, p) in plugins.iter_mut().enumerate() {
            let ns = format!("sluice-bench-{pid}-{k}-{i}");
            ip(&["netns", "add", &ns])?;
            let path = format!("/var/run/netns/{ns}");
            let r = p.cycle(&format!("bench-{k}-{i}"), &path, &cni_path, i > 0);
            let cleanup = ip(&["netns", "del", &ns]);
            r?;
            cleanup?;
        }
    }
    print_table(cycles, &plugins);
    Ok(())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    // Nearest-rank percentile.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a percentile's rank: non-negative and below the sample count"
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    ms(sorted[rank.min(sorted.len()) - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut s = samples.to_vec();
    s.sort();
    #[allow(
        clippy::cast_precision_loss,
        reason = "sample counts are far below 2^52"
    )]
    let mean = s.iter().map(|d| ms(*d)).sum::<f64>() / s.len() as f64;
    Stats {
        p50: pct(&s, 50.0),
        p99: pct(&s, 99.0),
        mean,
    }
}

fn print_table(cycles: usize, plugins: &[Plugin; 2]) {
    println!(
        "CNI ADD/DEL latency: {cycles} cycles per plugin, fresh netns per cycle, \
         process spawn to exit"
    );
    println!();
    println!(
        "{:<18} {:<8} {:>10} {:>10} {:>10}",
        "plugin", "op", "p50 ms", "p99 ms", "mean ms"
    );
    println!("{}", "-".repeat(60));
    let mut rows = Vec::new();
    for op in ["ADD", "DEL", "ADD+DEL"] {
        let mut pair = Vec::new();
        for p in plugins {
            let samples: Vec<Duration> = match op {
                "ADD" => p.add.clone(),
                "DEL" => p.del.clone(),
                _ => p.add.iter().zip(&p.del).map(|(a, d)| *a + *d).collect(),
            };
            let s = stats(&samples);
            println!(
                "{:<18} {:<8} {:>10.2} {:>10.2} {:>10.2}",
                p.label, op, s.p50, s.p99, s.mean
            );
            pair.push(s);
        }
        rows.push((op, pair));
    }
    println!();
    println!(
        "{:<27} {:>10} {:>10} {:>10}",
        "ratio sluice / reference", "p50", "p99", "mean"
    );
    println!("{}", "-".repeat(60));
    for (op, pair) in rows {
        println!(
            "{:<27} {:>9.2}x {:>9.2}x {:>9.2}x",
            op,
            pair[0].p50 / pair[1].p50,
            pair[0].p99 / pair[1].p99,
            pair[0].mean / pair[1].mean
        );
    }
    println!("(below 1.00x: sluice-cni is faster)");
}
