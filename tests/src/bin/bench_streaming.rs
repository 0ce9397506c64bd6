//! `cargo xtask bench streaming`: on a real single-node cluster started as `cargo xtask up`
//! starts it (release binaries), the round trip of `kubectl exec <pod> -- true` (p50/p99,
//! over WebSocket and over SPDY) and the throughput of `kubectl port-forward` (both
//! transports) against a direct TCP connection to the pod IP, all in the same run,
//! interleaved over several rounds, medians reported with ratios to direct. Numbers, not
//! assertions.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use sluice_tests::cluster::Cluster;

#[derive(Parser, Debug)]
struct Args {
    /// Interleaved rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// `kubectl exec` runs per transport per round.
    #[arg(long, default_value_t = 10)]
    execs: usize,
    /// MiB read per transfer.
    #[arg(long, default_value_t = 64)]
    mib: usize,
    /// Use the debug binaries (target/debug) instead of release.
    #[arg(long)]
    dev: bool,
}

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: source}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: source
    image: localhost/sluice/test:1
    args: [sh, -c, "nc -ll -p 9000 -e cat /dev/zero"]
"#;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a percentile's index: non-negative and below the sample count"
    )]
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(0.0)
}

fn median(v: &mut [f64]) -> f64 {
    pct(v, 0.5)
}

/// Reads `bytes` from `addr`; MB/s (10^6 bytes per second).
fn transfer(addr: &str, bytes: usize) -> f64 {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_mins(1)))
        .expect("timeout");
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    let start = Instant::now();
    while got < bytes {
        match s.read(&mut buf) {
            Ok(0) => panic!("{addr} ended after {got} bytes"),
            Ok(n) => got += n,
            Err(e) => panic!("reading {addr} after {got} bytes: {e}"),
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
    let mbps = got as f64 / start.elapsed().as_secs_f64() / 1e6;
    mbps
}

/// A running `kubectl port-forward pod/source :9000` and its local address.
struct Forward {
    child: Child,
    addr: String,
}

impl Forward {
    fn start(cluster: &Cluster, websockets: &str) -> Self {
        let mut child = cluster
            .kubectl_cmd(&["port-forward", "pod/source", ":9000"])
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl port-forward");
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        let line = lines
            .find_map(|l| {
                l.ok()
                    .filter(|l| l.starts_with("Forwarding from 127.0.0.1:"))
            })
            .expect("kubectl printed its local port");
        let port = line["Forwarding from 127.0.0.1:".len()..]
            .split(' ')
            .next()
            .expect("port")
            .to_string();
        // Keep draining its stdout ("Handling connection for ...") so it never blocks.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr: format!("127.0.0.1:{port}"),
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `kubectl exec source -- true`, in milliseconds.
fn exec_once(cluster: &Cluster, websockets: &str) -> f64 {
    let start = Instant::now();
    let out = cluster
        .kubectl_cmd(&["exec", "source", "--", "true"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("kubectl exec");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert!(
        out.status.success(),
        "kubectl exec failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

fn main() {
    let args = Args::parse();
    let cluster = Cluster::start_with(args.dev);
    cluster.apply(POD);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/source",
        "--timeout=120s",
    ]);
    let ip = cluster.kubectl_ok(&["get", "pod", "source", "-o", "jsonpath={.status.podIP}"]);
    let direct = format!("{}:9000", ip.trim());
    let forwards = [
        ("websocket", Forward::start(&cluster, "true")),
        ("spdy", Forward::start(&cluster, "false")),
    ];
    let bytes = args.mib << 20;
    // Warm up every path once.
    transfer(&direct, 1 << 20);
    for (_, f) in &forwards {
        transfer(&f.addr, 1 << 20);
    }
    let _ = exec_once(&cluster, "true");
    let _ = exec_once(&cluster, "false");

    let mut direct_mbps = Vec::new();
    let mut pf_mbps = [Vec::new(), Vec::new()];
    let mut exec_ms = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        // Rotate the order each round so no variant always runs first.
        for k in 0..3 {
            match (k + round) % 3 {
                0 => direct_mbps.push(transfer(&direct, bytes)),
                v => pf_mbps[v - 1].push(transfer(&forwards[v - 1].1.addr, bytes)),
            }
        }
        for i in 0..args.execs * 2 {
            let t = (i + round) % 2;
            exec_ms[t].push(exec_once(&cluster, if t == 0 { "true" } else { "false" }));
        }
        println!("round {} done", round + 1);
    }
    let d = median(&mut direct_mbps);
    println!(
        "streaming: {} rounds; {} MiB per transfer; {} exec per transport per round; {} binaries",
        args.rounds,
        args.mib,
        args.execs,
        if args.dev { "debug" } else { "release" }
    );
    println!("direct TCP to the pod IP      {d:>9.1} MB/s");
    for (i, (name, _)) in forwards.iter().enumerate() {
        let m = median(&mut pf_mbps[i]);
        println!(
            "port-forward over {name:<10}  {m:>9.1} MB/s  {:.2}x direct",
            m / d
        );
    }
    for (i, name) in ["websocket", "spdy"].iter().enumerate() {
        println!(
            "kubectl exec -- true ({name:<9}) p50 {:>7.1} ms  p99 {:>7.1} ms",
            pct(&mut exec_ms[i], 0.5),
            pct(&mut exec_ms[i], 0.99)
        );
    }
    drop(forwards);
    drop(cluster);
}
