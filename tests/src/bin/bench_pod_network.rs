//! `cargo xtask bench pod-network`: TCP throughput (iperf3, one stream and `--streams`
//! streams) and request/response latency (1-byte ping-pong over one TCP connection, `TCP_RR`
//! style: p50/p99 and transactions/s) pod to pod across nodes, on a two-node cluster started
//! as `cargo xtask up --nodes 2` starts it (release binaries), once with native routing and
//! once over VXLAN (`--tunnel vxlan`), against a baseline measured in the same run: two plain
//! network namespaces joined by a veth pair.
//!
//! Two pods of the test image run `sleep`, pinned to `node-1` (client) and `node-2` (server).
//! The tools run from the host inside the pods' network namespaces (`nsenter --net` into the
//! namespace of each pod's container), so the traffic takes the pods' own path: pod veth, the
//! node namespace's routes, the `sluice0` bridge (natively) or the VXLAN device, the other
//! node, its pod veth. The ping-pong is this binary itself, re-executed there (no extra tool).
//! The tools run in the host's cgroup, not the pods': the pods have no limits anyway, and the
//! agents' cgroup socket hooks sit at the cgroup2 root, so they see every connect (the
//! baseline's too, while a cluster runs; only at connect time).
//!
//! Only one multi-node cluster fits the machine (fixed namespace and bridge names), and one
//! starts in ~15 s, so every round starts each cluster once (their order rotated per round),
//! and while a cluster runs, each metric is measured on it and on the baseline in turn (the
//! order alternating), so the baseline shares the cluster's background load and has two runs
//! per round. Reported: per-variant medians over the runs, spread, and ratios to the baseline.
//!
//! Everything it creates (the baseline namespaces, servers started in the pods' namespaces,
//! a work dir) is removed on exit, on error and on SIGINT/SIGTERM, and leftovers of a killed run
//! at start; each cluster stops with its round (`xtask up` is interrupted). Numbers, not
//! assertions.
#![allow(
    clippy::cast_precision_loss,
    reason = "statistics for display: counts and durations far below 2^52"
)]

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use serde_json::Value;
use sluice_tests::cluster::Cluster;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Seconds per measured run (each iperf3 run and each ping-pong run).
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Interleaved rounds; each starts both clusters once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Parallel streams of the multi-stream iperf3 run.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Use the debug binaries (target/debug) instead of release.
    #[arg(long)]
    dev: bool,
    /// Internal: serve the ping-pong on this address (in the current network namespace).
    #[arg(long, hide = true)]
    rr_server: Option<SocketAddr>,
    /// Internal: run the ping-pong client against this address and print the result as JSON.
    #[arg(long, hide = true)]
    rr_client: Option<SocketAddr>,
}

/// The baseline: `NS_CLIENT` and `NS_SERVER` joined by a veth pair (`eth0` in each, no host
/// side, so no node agent ever sees it).
const NS_CLIENT: &str = "sluice-bench-pn-a";
const NS_SERVER: &str = "sluice-bench-pn-b";
const BASE_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);
const BASE_SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);
const IPERF_PORT: u16 = 5201;
const RR_PORT: u16 = 5202;

fn work_dir() -> PathBuf {
    std::env::temp_dir().join("sluice-bench-pod-network")
}

// ---- processes and cleanup -----------------------------------------------------------------

/// Runs `cmd`; its stdout, or an error naming the command, its status and stderr.
fn run(cmd: &mut Command) -> Result<String> {
    let shown = sluice_test_util::describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    ensure!(
        out.status.success(),
        "`{shown}` failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

/// Removes everything this benchmark creates, by fixed names (so also what a killed run left):
/// the servers it started in pods' namespaces (by their pid files), the baseline namespaces
/// (and the veth pair and servers in them), the work dir. Calls run one at a time.
fn cleanup() {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let report = |what: &str, result: Result<()>| {
        if let Err(error) = result {
            eprintln!("[bench] cleanup: {what}: {error:#}");
        }
    };
    let dir = work_dir();
    report("servers", kill_pid_files(&dir));
    for ns in [NS_CLIENT, NS_SERVER] {
        report(ns, remove_namespace(ns));
    }
    if dir.exists() {
        report(
            "work dir",
            std::fs::remove_dir_all(&dir).with_context(|| format!("rm -r {}", dir.display())),
        );
    }
}

/// Kills the processes named by the `*.pid` files in `dir` that are still this benchmark's
/// servers (their command line names iperf3 or `--rr-server`), and removes the files.
fn kill_pid_files(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "pid") {
            continue;
        }
        let pid = std::fs::read_to_string(&path).unwrap_or_default();
        let pid = pid.trim();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !pid.is_empty() && (cmdline.contains("iperf3") || cmdline.contains("--rr-server")) {
            run(Command::new("kill").args(["-KILL", pid]))?;
        }
        std::fs::remove_file(&path).with_context(|| format!("rm {}", path.display()))?;
    }
    Ok(())
}

fn remove_namespace(ns: &str) -> Result<()> {
    if Path::new("/run/netns").join(ns).exists() {
        let pids = ip(&["netns", "pids", ns])?;
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if !pids.is_empty() {
            run(Command::new("kill").arg("-KILL").args(&pids))?;
        }
        ip(&["netns", "del", ns])?;
    }
    Ok(())
}

struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup();
    }
}

/// The baseline: two namespaces, one veth pair between them, a /30 on it.
fn create_baseline() -> Result<()> {
    ip(&["netns", "add", NS_CLIENT])?;
    ip(&["netns", "add", NS_SERVER])?;
    ip(&[
        "-n", NS_CLIENT, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
        NS_SERVER,
    ])?;
    for (ns, addr) in [(NS_CLIENT, BASE_CLIENT_IP), (NS_SERVER, BASE_SERVER_IP)] {
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// A network namespace the tools run in: a command prefix entering it.
#[derive(Clone)]
struct Netns(PathBuf);

impl Netns {
    fn named(ns: &str) -> Self {
        Self(Path::new("/run/netns").join(ns))
    }

    fn of_pid(pid: u32) -> Self {
        Self(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    /// `nsenter --net=<ns> <program>` (nsenter execs it: the child is the program).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.0.display())).arg(program);
        cmd
    }

    /// The MTU of `eth0` there.
    fn mtu(&self) -> Result<String> {
        let out = run(self.command("ip").args(["-o", "link", "show", "eth0"]))?;
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "mtu")
            .map(|w| w[1].to_owned())
            .with_context(|| format!("no mtu in {out:?}"))
    }
}

/// A server started in a namespace, its pid recorded in the work dir (for [`cleanup`] after a
/// kill), killed on drop.
struct Server {
    child: Child,
    pid_file: PathBuf,
}

impl Server {
    fn start(name: &str, mut cmd: Command) -> Result<Self> {
        let shown = sluice_test_util::describe(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn `{shown}`"))?;
        let pid_file = work_dir().join(format!("{name}.pid"));
        std::fs::write(&pid_file, child.id().to_string())
            .with_context(|| format!("write {}", pid_file.display()))?;
        Ok(Self { child, pid_file })
    }

    /// iperf3's server and the ping-pong server in `ns`.
    fn both(tag: &str, ns: &Netns) -> Result<[Self; 2]> {
        let mut iperf = ns.command("iperf3");
        iperf.args(["-s", "-p", &IPERF_PORT.to_string()]);
        let mut rr = ns.command(std::env::current_exe().context("own executable")?);
        rr.arg("--rr-server")
            .arg(SocketAddr::from((Ipv4Addr::UNSPECIFIED, RR_PORT)).to_string());
        Ok([
            Self::start(&format!("iperf3-{tag}"), iperf)?,
            Self::start(&format!("rr-{tag}"), rr)?,
        ])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

// ---- the ping-pong (`TCP_RR`) ----------------------------------------------------------------

/// Serves the ping-pong: every connection echoes each byte it reads, one thread per connection.
fn rr_server(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            let mut byte = [0u8; 1];
            while conn.read_exact(&mut byte).is_ok() {
                if conn.write_all(&byte).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// One ping-pong run: 1 byte each way over one TCP connection (`TCP_NODELAY`), one in flight,
/// for `duration`. Prints `{"transactions", "seconds", "p50_us", "p99_us"}`.
fn rr_client(addr: SocketAddr, duration: Duration) -> Result<()> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connect {addr}"))?;
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut byte = [1u8; 1];
    // A few exchanges first, not recorded (the first ones pay for cold caches).
    for _ in 0..100 {
        conn.write_all(&byte)?;
        conn.read_exact(&mut byte)?;
    }
    let mut lat_ns: Vec<u64> = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        conn.write_all(&byte).context("send")?;
        conn.read_exact(&mut byte).context("receive")?;
        lat_ns.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    let seconds = start.elapsed().as_secs_f64();
    lat_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a percentile's index: non-negative and below the sample count"
        )]
        let i = ((lat_ns.len() as f64 - 1.0) * p).round() as usize;
        lat_ns.get(i).map_or(f64::NAN, |&ns| ns as f64 / 1e3)
    };
    println!(
        "{}",
        serde_json::json!({
            "transactions": lat_ns.len(),
            "seconds": seconds,
            "p50_us": pct(0.5),
            "p99_us": pct(0.99),
        })
    );
    Ok(())
}

// ---- measurements --------------------------------------------------------------------------

/// Where a variant's client runs and what it connects to.
#[derive(Clone)]
struct Target {
    client: Netns,
    server: Ipv4Addr,
}

/// One run's numbers.
#[derive(Clone, Copy, Default)]
struct Sample {
    gbps: f64,
    retransmits: f64,
    p50_us: f64,
    p99_us: f64,
    tps: f64,
}

/// One iperf3 run from `path.client` to `path.server`: Gbit/s received and retransmits.
/// Retried a few times (the server refuses a test while it is still finishing the last).
fn iperf(path: &Target, streams: usize, seconds: u64) -> Result<(f64, f64)> {
    let mut last = None;
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        let result = run(path.client.command("iperf3").args([
            "-c",
            &path.server.to_string(),
            "-p",
            &IPERF_PORT.to_string(),
            "-t",
            &seconds.to_string(),
            "-P",
            &streams.to_string(),
            "-J",
        ]))
        .and_then(|out| {
            let v: Value = serde_json::from_str(&out).context("iperf3 -J output")?;
            if let Some(e) = v.get("error") {
                bail!("iperf3: {e}");
            }
            let bps = v["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .context("no end.sum_received.bits_per_second")?;
            let retr = v["end"]["sum_sent"]["retransmits"].as_f64().unwrap_or(0.0);
            Ok((bps / 1e9, retr))
        });
        match result {
            Ok(r) => return Ok(r),
            Err(e) => {
                eprintln!("[bench] iperf3 to {} failed: {e:#}", path.server);
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("iperf3 never ran")))
}

/// One ping-pong run (this binary re-executed in `path.client`): p50, p99 (µs), per second.
fn ping_pong(path: &Target, seconds: u64) -> Result<(f64, f64, f64)> {
    let me = std::env::current_exe().context("own executable")?;
    let addr = SocketAddr::from((path.server, RR_PORT));
    let out = run(path.client.command(me).args([
        "--rr-client",
        &addr.to_string(),
        "--duration",
        &seconds.to_string(),
    ]))?;
    let v: Value = serde_json::from_str(out.trim()).context("ping-pong output")?;
    let f = |k: &str| v[k].as_f64().with_context(|| format!("no {k} in {out}"));
    Ok((
        f("p50_us")?,
        f("p99_us")?,
        f("transactions")? / f("seconds")?,
    ))
}

/// Waits until both servers behind `path` answer (they need a moment to bind).
fn wait_servers(path: &Target) -> Result<()> {
    let started = Instant::now();
    loop {
        let ok = ping_pong(path, 1).and_then(|_| iperf(path, 1, 1));
        match ok {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or_default();
                eprintln!("[bench] servers at {} not ready yet: {first}", path.server);
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e.context(format!("servers at {} never ready", path.server))),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Baseline,
    Native,
    Vxlan,
}

impl Variant {
    const ALL: [Self; 3] = [Self::Baseline, Self::Native, Self::Vxlan];

    fn label(self) -> &'static str {
        match self {
            Self::Baseline => "baseline: 2 netns + veth",
            Self::Native => "sluice native routing",
            Self::Vxlan => "sluice VXLAN",
        }
    }

    fn tunnel(self) -> &'static str {
        if self == Self::Vxlan { "vxlan" } else { "none" }
    }
}

#[derive(Clone, Copy)]
enum Metric {
    OneStream,
    Streams,
    PingPong,
}

/// Every run of every variant, per metric.
#[derive(Default)]
struct Results {
    one: [Vec<Sample>; 3],
    many: [Vec<Sample>; 3],
    rr: [Vec<Sample>; 3],
    /// The client's `eth0` MTU per variant.
    mtu: [String; 3],
}

impl Results {
    fn index(v: Variant) -> usize {
        Variant::ALL.iter().position(|x| *x == v).unwrap_or(0)
    }

    fn of(&mut self, m: Metric, v: Variant) -> &mut Vec<Sample> {
        let i = Self::index(v);
        match m {
            Metric::OneStream => &mut self.one[i],
            Metric::Streams => &mut self.many[i],
            Metric::PingPong => &mut self.rr[i],
        }
    }
}

fn measure(args: &Args, m: Metric, path: &Target) -> Result<Sample> {
    Ok(match m {
        Metric::OneStream | Metric::Streams => {
            let streams = if matches!(m, Metric::OneStream) {
                1
            } else {
                args.streams
            };
            let (gbps, retransmits) = iperf(path, streams, args.duration)?;
            Sample {
                gbps,
                retransmits,
                ..Sample::default()
            }
        }
        Metric::PingPong => {
            let (p50_us, p99_us, tps) = ping_pong(path, args.duration)?;
            Sample {
                p50_us,
                p99_us,
                tps,
                ..Sample::default()
            }
        }
    })
}

// ---- the cluster ---------------------------------------------------------------------------

fn pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: localhost/sluice/test:1
    command: ["sleep", "100000"]
"#
    )
}

/// The host pid of `pod`'s first container, from the containerd of `node`.
fn pod_pid(cluster: &Cluster, pod: &str, node: &str) -> Result<u32> {
    let id = cluster.kubectl_ok(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    let id = id.trim().trim_start_matches("containerd://");
    ensure!(!id.is_empty(), "pod {pod} has no container id");
    let tasks = run(Command::new("ctr")
        .arg("--address")
        .arg(cluster.node_containerd_socket(node))
        .args(["-n", "k8s.io", "tasks", "ls"]))?;
    tasks
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(id)).then(|| words.next()?.parse().ok())?
        })
        .with_context(|| format!("no task {id} in `ctr tasks ls` of {node}:\n{tasks}"))
}

/// One round's share of a cluster variant: start it, place the pods, start the servers, then
/// each metric on the cluster and on the baseline in turn.
fn cluster_round(
    args: &Args,
    variant: Variant,
    round: usize,
    baseline: &Target,
    results: &mut Results,
) -> Result<()> {
    eprintln!(
        "[bench] round {}: starting a 2-node cluster, tunnel {}",
        round + 1,
        variant.tunnel()
    );
    let cluster = Cluster::start_nodes_with(args.dev, 2, variant.tunnel());
    let result = measure_on(args, &cluster, variant, round, baseline, results);
    if result.is_err() {
        eprintln!("{}", cluster.logs());
    }
    drop(cluster);
    result
}

fn measure_on(
    args: &Args,
    cluster: &Cluster,
    variant: Variant,
    round: usize,
    baseline: &Target,
    results: &mut Results,
) -> Result<()> {
    cluster.apply(&format!(
        "{}---{}",
        pod("pn-client", "node-1"),
        pod("pn-server", "node-2")
    ));
    for p in ["pn-client", "pn-server"] {
        cluster.kubectl_ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=180s",
        ]);
    }
    let server_ip: Ipv4Addr = cluster
        .kubectl_ok(&["get", "pod", "pn-server", "-o", "jsonpath={.status.podIP}"])
        .trim()
        .parse()
        .context("pn-server's pod IP")?;
    let client = Netns::of_pid(pod_pid(cluster, "pn-client", "node-1")?);
    let server = Netns::of_pid(pod_pid(cluster, "pn-server", "node-2")?);
    let _servers = Server::both(&format!("pod-{}", variant.tunnel()), &server)?;
    let path = Target {
        client: client.clone(),
        server: server_ip,
    };
    wait_servers(&path)?;
    let mtu = client.mtu()?;
    eprintln!(
        "[bench] {}: pod-to-pod {} (node-1) -> {server_ip} (node-2), pod MTU {mtu}",
        variant.label(),
        client.0.display(),
    );
    results.mtu[Results::index(variant)] = mtu;
    for (k, m) in [Metric::OneStream, Metric::Streams, Metric::PingPong]
        .into_iter()
        .enumerate()
    {
        let mut order = [(Variant::Baseline, baseline), (variant, &path)];
        if (k + round) % 2 == 1 {
            order.reverse();
        }
        for (v, p) in order {
            let s = measure(args, m, p).with_context(|| v.label())?;
            results.of(m, v).push(s);
        }
    }
    Ok(())
}

// ---- report --------------------------------------------------------------------------------

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

/// Median and (max - min) / median in percent of `f` over `runs`.
fn stat(runs: &[Sample], f: fn(&Sample) -> f64) -> (f64, f64) {
    let v: Vec<f64> = runs.iter().map(f).collect();
    let m = median(v.clone());
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    (m, (max - min) / m * 100.0)
}

fn report(args: &Args, results: &mut Results) {
    println!(
        "pod-network benchmark: pod (node-1) to pod (node-2) of a 2-node cluster vs two netns \
         joined by a veth; {} rounds (each starts both clusters), {} s per run, {} binaries; \
         medians over runs (baseline: 2 runs per round), spread = (max - min) / median; ratios \
         to the baseline",
        args.rounds,
        args.duration,
        if args.dev { "debug" } else { "release" },
    );
    println!(
        "MTU: {}",
        Variant::ALL
            .iter()
            .map(|&v| format!("{} {}", v.label(), results.mtu[Results::index(v)]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (m, title) in [
        (
            Metric::OneStream,
            "TCP throughput, iperf3, 1 stream".to_owned(),
        ),
        (
            Metric::Streams,
            format!("TCP throughput, iperf3, {} streams", args.streams),
        ),
    ] {
        println!("-- {title}");
        println!(
            "{:<28} {:>5} {:>10} {:>7} {:>7} {:>8}",
            "variant", "runs", "Gbit/s", "spread", "ratio", "retrans"
        );
        let (base, _) = stat(results.of(m, Variant::Baseline), |s| s.gbps);
        for v in Variant::ALL {
            let runs = results.of(m, v);
            let (g, spread) = stat(runs, |s| s.gbps);
            let (retr, _) = stat(runs, |s| s.retransmits);
            println!(
                "{:<28} {:>5} {g:>10.2} {spread:>6.0}% {:>6.2}x {retr:>8.0}",
                v.label(),
                runs.len(),
                g / base
            );
        }
    }
    println!("-- TCP request/response, 1 byte each way over one connection (TCP_RR style)");
    println!(
        "{:<28} {:>5} {:>9} {:>7} {:>9} {:>9} {:>7} {:>7} {:>7}",
        "variant", "runs", "trans/s", "spread", "p50 us", "p99 us", "tps x", "p50 x", "p99 x"
    );
    let (bt, _) = stat(results.of(Metric::PingPong, Variant::Baseline), |s| s.tps);
    let (b50, _) = stat(results.of(Metric::PingPong, Variant::Baseline), |s| {
        s.p50_us
    });
    let (b99, _) = stat(results.of(Metric::PingPong, Variant::Baseline), |s| {
        s.p99_us
    });
    for v in Variant::ALL {
        let runs = results.of(Metric::PingPong, v);
        let (t, spread) = stat(runs, |s| s.tps);
        let (p50, _) = stat(runs, |s| s.p50_us);
        let (p99, _) = stat(runs, |s| s.p99_us);
        println!(
            "{:<28} {:>5} {t:>9.0} {spread:>6.0}% {p50:>9.1} {p99:>9.1} {:>6.2}x {:>6.2}x {:>6.2}x",
            v.label(),
            runs.len(),
            t / bt,
            p50 / b50,
            p99 / b99
        );
    }
}

// ---- main ----------------------------------------------------------------------------------

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(addr) = args.rr_server {
        return rr_server(addr);
    }
    if let Some(addr) = args.rr_client {
        return rr_client(addr, Duration::from_secs(args.duration));
    }
    ensure!(
        args.rounds >= 1 && args.duration >= 1 && args.streams >= 1,
        "--rounds, --duration and --streams must be at least 1"
    );
    for tool in ["iperf3", "nsenter", "ctr", "ip", "kill"] {
        ensure!(
            sluice_test_util::has_tool(tool),
            "{tool} is missing (Debian: `apt-get install iperf3 util-linux`)"
        );
    }
    // Leftovers of a killed run go first; from here on, every way out cleans up.
    cleanup();
    let _cleanup = Cleanup;
    sluice_tests::cleanup_on_signal(cleanup)?;
    let dir = work_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    create_baseline()?;
    let _baseline_servers = Server::both("baseline", &Netns::named(NS_SERVER))?;
    let baseline = Target {
        client: Netns::named(NS_CLIENT),
        server: BASE_SERVER_IP,
    };
    wait_servers(&baseline)?;
    let mut results = Results::default();
    let mtu = baseline.client.mtu()?;
    eprintln!(
        "[bench] baseline: {BASE_CLIENT_IP} ({NS_CLIENT}) -> {BASE_SERVER_IP} ({NS_SERVER}), MTU {mtu}"
    );
    results.mtu[Results::index(Variant::Baseline)] = mtu;
    for round in 0..args.rounds {
        let mut order = [Variant::Native, Variant::Vxlan];
        order.rotate_left(round % 2);
        for v in order {
            cluster_round(&args, v, round, &baseline, &mut results)?;
        }
    }
    report(&args, &mut results);
    Ok(())
}
