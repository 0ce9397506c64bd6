//! `cargo xtask bench dns`: queries/s and p50/p99 latency of cluster DNS from a pod's network
//! namespace, for the A record of a Service (`web.default.svc.cluster.local`), against a
//! reference server on the same machine: Debian's dnsmasq serving the same record from a hosts
//! file. And the propagation latency of record changes: from an API write (a Service created,
//! an endpoint added, an endpoint removed) to the first answer that shows it.
//!
//! The cluster is started as `cargo xtask up` starts it (release binaries), its DNS upstream
//! the bench's dnsmasq, so no query leaves the machine. A pod (the test image) provides the
//! network namespace the queries come from: this binary re-executes itself there
//! (`nsenter --net`), with `--clients` threads each keeping one query in flight over UDP
//! (closed loop), for `--duration` seconds or `--max-queries`, whichever ends first. Variants:
//!   - sluice: the kube-dns VIP, which the eBPF proxy sends to the node agent on the node IP
//!     (one veth from the pod, as any pod's lookup);
//!   - dnsmasq in a network namespace of the bench, reached from the pod through the host (one
//!     routed hop more than sluice);
//!   - dnsmasq on the pod's loopback (one veth less than sluice).
//!
//! The two references bracket sluice's path. Variants run in interleaved rounds (their order
//! rotated every round), per round one run per variant and client count; the report gives
//! per-variant medians over the rounds and ratios to the routed dnsmasq.
//!
//! Everything it creates (netns, veth, dnsmasq processes, temp files) is removed on exit, on
//! error and on SIGINT/SIGTERM, and leftovers of a killed run are removed at start; the cluster
//! stops with it (`xtask up` is interrupted). Numbers, not assertions (beyond checking that
//! every variant answers the Service's address).
#![allow(
    clippy::cast_precision_loss,
    reason = "statistics for display: counts and durations far below 2^52"
)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice_tests::cluster::Cluster;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Seconds per measured run.
    #[arg(long, default_value_t = 3)]
    duration: u64,
    /// Interleaved rounds; medians are over rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrent clients of the loaded runs (the other runs have one).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// At most this many queries per run.
    #[arg(long, default_value_t = 1_000_000)]
    max_queries: u64,
    /// Record changes timed per kind (Service created, endpoint added, endpoint removed).
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Use the debug binaries (target/debug) instead of release.
    #[arg(long)]
    dev: bool,
    /// Internal: query this server from the current network namespace and print the result.
    #[arg(long, hide = true)]
    load: Option<SocketAddr>,
    /// Internal, with `--load`: the clients of this run.
    #[arg(long, hide = true, default_value_t = 1)]
    load_clients: usize,
    /// Internal, with `--load`: the address every answer must carry.
    #[arg(long, hide = true)]
    expect: Option<Ipv4Addr>,
}

/// The name every variant is asked for.
const NAME: &str = "web.default.svc.cluster.local";
/// The bench's namespace for the routed dnsmasq, and the veth to it. The host side's name
/// starts with `veth`, so the node agent never takes it for the node IP.
const NS: &str = "sluice-bench-dns";
const VETH: &str = "vethbdns0";
const PEER: &str = "bdns0p";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 202, 53, 1);
const REF_IP: Ipv4Addr = Ipv4Addr::new(10, 202, 53, 2);
/// How long one query may wait for its answer before it counts as an error.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

fn work_dir() -> PathBuf {
    std::env::temp_dir().join("sluice-bench-dns")
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
        "`{shown}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

/// Removes everything this benchmark creates, by its fixed names (so also what a killed run
/// left): the dnsmasq processes (by their pid files), the namespace (and with it the veth
/// pair), the work dir. Calls run one at a time.
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
    for variant in Variant::ALL {
        if let Some(pid_file) = variant.pid_file() {
            report("dnsmasq", kill_pid_file(&pid_file));
        }
    }
    report("namespace", remove_namespace());
    if dir.exists() {
        report(
            "work dir",
            std::fs::remove_dir_all(&dir).with_context(|| format!("rm -r {}", dir.display())),
        );
    }
}

/// Kills the dnsmasq whose pid `file` holds, if it still runs.
fn kill_pid_file(file: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Ok(());
    };
    let pid = text.trim();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "dnsmasq" {
        run(Command::new("kill").args(["-KILL", pid]))?;
    }
    Ok(())
}

fn remove_namespace() -> Result<()> {
    if Path::new("/run/netns").join(NS).exists() {
        let pids = ip(&["netns", "pids", NS])?;
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if !pids.is_empty() {
            run(Command::new("kill").arg("-KILL").args(&pids))?;
        }
        ip(&["netns", "del", NS])?;
    }
    if Path::new("/sys/class/net").join(VETH).exists() {
        ip(&["link", "del", VETH])?;
    }
    Ok(())
}

struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup();
    }
}

/// The bench's namespace, a veth pair to it, and a default route back through the host (the
/// pod's queries are routed to it).
fn create_namespace() -> Result<()> {
    ip(&["netns", "add", NS])?;
    ip(&[
        "link", "add", VETH, "type", "veth", "peer", "name", PEER, "netns", NS,
    ])?;
    ip(&["addr", "add", &format!("{HOST_IP}/30"), "dev", VETH])?;
    ip(&["link", "set", VETH, "up"])?;
    ip(&["-n", NS, "link", "set", "lo", "up"])?;
    ip(&[
        "-n",
        NS,
        "addr",
        "add",
        &format!("{REF_IP}/30"),
        "dev",
        PEER,
    ])?;
    ip(&["-n", NS, "link", "set", PEER, "up"])?;
    ip(&[
        "-n",
        NS,
        "route",
        "add",
        "default",
        "via",
        &HOST_IP.to_string(),
    ])?;
    Ok(())
}

/// A dnsmasq serving `hosts` and nothing else, killed on drop.
struct Dnsmasq(Child);

impl Dnsmasq {
    /// Starts `dnsmasq` under `prefix` (the command that enters its namespace) on `listen`.
    fn start(prefix: &[String], listen: Ipv4Addr, hosts: &Path, pid_file: &Path) -> Result<Self> {
        let (program, enter) = prefix.split_first().context("empty prefix")?;
        let child = Command::new(program)
            .args(enter)
            .args(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null"])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--bind-interfaces",
            ])
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--listen-address={listen}"))
            .arg(format!("--pid-file={}", pid_file.display()))
            .arg("--log-facility=/dev/null")
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn dnsmasq on {listen}"))?;
        Ok(Self(child))
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        // `ip netns exec` and `nsenter` exec dnsmasq: the child is dnsmasq itself.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---- DNS on the wire -----------------------------------------------------------------------

/// A query for the A records of `name` (id 0, RD, no EDNS).
fn query_a(name: &str) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        bytes.push(u8::try_from(label.len()).unwrap_or(63));
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.extend_from_slice(&[0, 0, 1, 0, 1]);
    bytes
}

/// Skips a (possibly compressed) name at `at`; the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

/// A reply's response code and the addresses of its A answers (`None`: no DNS reply).
fn parse_reply(msg: &[u8]) -> Option<(u8, Vec<Ipv4Addr>)> {
    let u16_at = |at: usize| Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]));
    if msg.len() < 12 || msg[2] & 0x80 == 0 {
        return None;
    }
    let rcode = msg[3] & 0x0f;
    let mut at = 12;
    for _ in 0..u16_at(4)? {
        at = skip_name(msg, at)? + 4;
    }
    let mut ips = Vec::new();
    for _ in 0..u16_at(6)? {
        at = skip_name(msg, at)?;
        let (rtype, len) = (u16_at(at)?, usize::from(u16_at(at + 8)?));
        let data = msg.get(at + 10..at + 10 + len)?;
        if rtype == 1 && len == 4 {
            ips.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Some((rcode, ips))
}

// ---- the load (runs inside the pod's network namespace) ------------------------------------

/// What one client thread saw: latencies of good answers (ns), and errors.
struct ClientRun {
    latencies: Vec<u32>,
    errors: u64,
}

fn client(
    target: SocketAddr,
    index: u16,
    deadline: Instant,
    max: u64,
    expect: Option<Ipv4Addr>,
) -> Result<ClientRun> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("bind")?;
    socket.connect(target).context("connect")?;
    socket.set_read_timeout(Some(QUERY_TIMEOUT))?;
    let mut query = query_a(NAME);
    let mut buf = [0u8; 1500];
    let mut run = ClientRun {
        latencies: Vec::with_capacity(usize::try_from(max.min(1 << 20)).unwrap_or(1 << 20)),
        errors: 0,
    };
    let mut id = index << 12;
    let mut sent = 0;
    let mut checked = expect.is_none();
    while sent < max && Instant::now() < deadline {
        id = id.wrapping_add(1);
        query[..2].copy_from_slice(&id.to_be_bytes());
        sent += 1;
        let start = Instant::now();
        if socket.send(&query).is_err() {
            run.errors += 1;
            continue;
        }
        let reply = loop {
            match socket.recv(&mut buf) {
                // A late answer to an earlier query: not this one.
                Ok(n) if n >= 2 && buf[..2] != id.to_be_bytes() => {}
                Ok(n) => break Some(n),
                Err(_) => break None,
            }
        };
        let took = start.elapsed();
        let Some((0, ips)) = reply.and_then(|n| parse_reply(&buf[..n])) else {
            run.errors += 1;
            continue;
        };
        if ips.is_empty() {
            run.errors += 1;
            continue;
        }
        if !checked {
            ensure!(
                ips == expect.into_iter().collect::<Vec<_>>(),
                "{target} answered {NAME} with {ips:?}, not {expect:?}"
            );
            checked = true;
        }
        run.latencies
            .push(u32::try_from(took.as_nanos()).unwrap_or(u32::MAX));
    }
    Ok(run)
}

/// `--load`: `clients` threads query `target` until the deadline or `max` queries; prints
/// `ok=<n> errors=<n> secs=<s> p50_us=<us> p99_us=<us>`.
fn load(args: &Args, target: SocketAddr) -> Result<()> {
    let clients = args.load_clients.max(1);
    let per_client = args.max_queries.div_ceil(clients as u64).max(1);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let expect = args.expect;
            let index = u16::try_from(i % 16).unwrap_or(0);
            std::thread::spawn(move || client(target, index, deadline, per_client, expect))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for thread in threads {
        let run = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        latencies.extend(run.latencies);
        errors += run.errors;
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    println!(
        "ok={} errors={errors} secs={secs:.6} p50_us={:.2} p99_us={:.2}",
        latencies.len(),
        percentile(&latencies, 0.50) / 1e3,
        percentile(&latencies, 0.99) / 1e3,
    );
    Ok(())
}

/// The `p` percentile of sorted `values` (nearest rank), as f64; NaN when empty.
fn percentile<T: Copy + Into<f64>>(values: &[T], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a percentile's index: non-negative and below the sample count"
    )]
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[i.min(values.len() - 1)].into()
}

// ---- the variants --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    /// dnsmasq in the bench's namespace, routed through the host (the base of the ratios).
    DnsmasqRouted,
    /// dnsmasq on the pod's loopback.
    DnsmasqLoopback,
    /// The kube-dns VIP: the node agent.
    Sluice,
}

impl Variant {
    const ALL: [Self; 3] = [Self::DnsmasqRouted, Self::DnsmasqLoopback, Self::Sluice];

    fn label(self) -> &'static str {
        match self {
            Self::DnsmasqRouted => "dnsmasq, bench netns (routed via the host)",
            Self::DnsmasqLoopback => "dnsmasq, pod loopback",
            Self::Sluice => "sluice node agent (kube-dns VIP)",
        }
    }

    fn pid_file(self) -> Option<PathBuf> {
        match self {
            Self::DnsmasqRouted => Some(work_dir().join("dnsmasq-routed.pid")),
            Self::DnsmasqLoopback => Some(work_dir().join("dnsmasq-loopback.pid")),
            Self::Sluice => None,
        }
    }
}

/// One measured run.
#[derive(Clone, Copy, Debug)]
struct Run {
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Runs the load in `pid`'s network namespace against `target`.
fn measure(
    args: &Args,
    pid: u32,
    target: SocketAddr,
    clients: usize,
    secs: u64,
    expect: Ipv4Addr,
) -> Result<Run> {
    let me = std::env::current_exe().context("own path")?;
    let out = run(Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(me)
        .args(["--load", &target.to_string()])
        .args(["--load-clients", &clients.to_string()])
        .args(["--duration", &secs.to_string()])
        .args(["--max-queries", &args.max_queries.to_string()])
        .args(["--expect", &expect.to_string()]))?;
    let field = |key: &str| -> Result<f64> {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {key} in the load's output {out:?}"))
    };
    let ok = field("ok")?;
    ensure!(ok > 0.0, "{target}: no query answered: {out}");
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a count the load printed as an integer"
    )]
    let errors = field("errors")? as u64;
    Ok(Run {
        qps: ok / field("secs")?,
        p50_ms: field("p50_us")? / 1e3,
        p99_ms: field("p99_us")? / 1e3,
        errors,
    })
}

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

/// Medians over the rounds of one variant and client count.
#[derive(Clone, Copy)]
struct Summary {
    qps: f64,
    /// (max - min) / median of queries/s, in percent.
    spread: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn summarize(runs: &[Run]) -> Summary {
    let qps: Vec<f64> = runs.iter().map(|r| r.qps).collect();
    let median_qps = median(qps.clone());
    let max = qps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = qps.iter().copied().fold(f64::INFINITY, f64::min);
    Summary {
        qps: median_qps,
        spread: (max - min) / median_qps.max(1.0) * 100.0,
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

fn row(name: &str, s: Summary, base: Summary) {
    println!(
        "{name:<44} {:>9.0} {:>6.1}% {:>8.3} {:>8.3}   x{:<5.2} x{:<5.2} x{:<5.2} {:>6}",
        s.qps,
        s.spread,
        s.p50_ms,
        s.p99_ms,
        s.qps / base.qps.max(1.0),
        s.p50_ms / base.p50_ms.max(1e-6),
        s.p99_ms / base.p99_ms.max(1e-6),
        s.errors
    );
}

// ---- the cluster ---------------------------------------------------------------------------

/// The Service every variant answers for, and the pod whose network the queries come from.
const MANIFEST: &str = r"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: dns-client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: client, image: localhost/sluice/test:1}
";

/// The host pid of `pod`'s first container.
fn pod_pid(cluster: &Cluster, pod: &str) -> Result<u32> {
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
        .arg(cluster.containerd_socket())
        .args(["-n", "k8s.io", "tasks", "ls"]))?;
    tasks
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(id)).then(|| words.next()?.parse().ok())?
        })
        .with_context(|| format!("no task {id} in `ctr tasks ls`:\n{tasks}"))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(target) = args.load {
        return load(&args, target);
    }
    ensure!(
        args.rounds >= 1 && args.duration >= 1 && args.clients >= 1 && args.changes >= 1,
        "--rounds, --duration, --clients and --changes must be at least 1"
    );
    for tool in ["dnsmasq", "nsenter", "ctr", "ip", "kill"] {
        ensure!(
            sluice_test_util::has_tool(tool),
            "{tool} is missing (`cargo xtask setup` installs dnsmasq-base)"
        );
    }
    // Leftovers of a killed run go first; from here on, every way out cleans up.
    cleanup();
    let _cleanup = Cleanup;
    sluice_tests::cleanup_on_signal(cleanup)?;
    let dir = work_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    create_namespace()?;

    let upstream = format!("{REF_IP}:53");
    let cluster =
        Cluster::start_with_env(args.dev, &[("SLUICE_DNS_UPSTREAM", Path::new(&upstream))]);
    let result = bench(&args, &cluster);
    if result.is_err() {
        eprintln!("{}", cluster.logs());
    }
    drop(cluster);
    result
}

/// Everything after the cluster is up: the variants' rounds, then the propagation.
fn bench(args: &Args, cluster: &Cluster) -> Result<()> {
    let dir = work_dir();
    cluster.apply(MANIFEST);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/dns-client",
        "--timeout=180s",
    ]);
    let vip: Ipv4Addr = cluster
        .kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .trim()
        .parse()
        .context("the web Service's ClusterIP")?;
    let dns_vip: Ipv4Addr = cluster
        .kubectl_ok(&[
            "get",
            "svc",
            "kube-dns",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .trim()
        .parse()
        .context("the kube-dns ClusterIP")?;
    let pid = pod_pid(cluster, "dns-client")?;

    let hosts = dir.join("hosts");
    std::fs::write(&hosts, format!("{vip} {NAME}\n")).context("write the hosts file")?;
    let in_ns = ["ip", "netns", "exec", NS].map(String::from);
    let in_pod = ["nsenter".to_owned(), format!("--net=/proc/{pid}/ns/net")];
    let pid_file = |v: Variant| v.pid_file().unwrap_or_default();
    let _routed = Dnsmasq::start(&in_ns, REF_IP, &hosts, &pid_file(Variant::DnsmasqRouted))?;
    let _loopback = Dnsmasq::start(
        &in_pod,
        Ipv4Addr::LOCALHOST,
        &hosts,
        &pid_file(Variant::DnsmasqLoopback),
    )?;
    let target = |v: Variant| -> SocketAddr {
        match v {
            Variant::DnsmasqRouted => (REF_IP, 53).into(),
            Variant::DnsmasqLoopback => (Ipv4Addr::LOCALHOST, 53).into(),
            Variant::Sluice => (dns_vip, 53).into(),
        }
    };

    // Every variant answers the Service's address (dnsmasq needs a moment to bind, the agent
    // to see the Service), then a warm-up run of each, not recorded.
    for v in Variant::ALL {
        let started = Instant::now();
        loop {
            match measure(args, pid, target(v), 1, 1, vip) {
                Ok(_) => break,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    eprintln!("[bench] {} not answering yet: {e:#}", v.label());
                }
                Err(e) => return Err(e.context(format!("{} never answered", v.label()))),
            }
        }
        measure(args, pid, target(v), args.clients, 1, vip)?;
    }

    let modes = [1, args.clients];
    println!(
        "dns benchmark: A {NAME} from pod dns-client's network namespace over UDP, closed loop \
         (each client one query in flight), {} interleaved rounds of {} s per variant and client \
         count; {} binaries; every variant answers {vip}",
        args.rounds,
        args.duration,
        if args.dev { "debug" } else { "release" },
    );
    let mut results: BTreeMap<(usize, Variant), Vec<Run>> = BTreeMap::new();
    for round in 0..args.rounds {
        eprintln!("[bench] round {}/{}", round + 1, args.rounds);
        for (m, clients) in modes.iter().enumerate() {
            let mut order = Variant::ALL;
            order.rotate_left(round % Variant::ALL.len());
            for v in order {
                let r = measure(args, pid, target(v), *clients, args.duration, vip)
                    .with_context(|| format!("{} with {clients} clients", v.label()))?;
                results.entry((m, v)).or_default().push(r);
            }
        }
    }
    println!(
        "medians over {} rounds; spread = (max - min) / median of queries/s; ratios to the routed dnsmasq",
        args.rounds
    );
    println!(
        "{:<44} {:>9} {:>7} {:>8} {:>8}   {:<6} {:<6} {:<6} {:>6}",
        "variant", "q/s", "spread", "p50 ms", "p99 ms", "q/s", "p50", "p99", "errors"
    );
    for (m, clients) in modes.iter().enumerate() {
        println!(
            "-- {clients} client{}",
            if *clients == 1 { "" } else { "s" }
        );
        let base = summarize(&results[&(m, Variant::DnsmasqRouted)]);
        for v in Variant::ALL {
            row(v.label(), summarize(&results[&(m, v)]), base);
        }
        let lo = summarize(&results[&(m, Variant::DnsmasqLoopback)]);
        let sluice = summarize(&results[&(m, Variant::Sluice)]);
        println!(
            "   sluice / dnsmasq on the pod's loopback: q/s x{:.2}, p50 x{:.2}, p99 x{:.2}",
            sluice.qps / lo.qps.max(1.0),
            sluice.p50_ms / lo.p50_ms.max(1e-6),
            sluice.p99_ms / lo.p99_ms.max(1e-6),
        );
    }

    let rt = tokio::runtime::Runtime::new().context("runtime")?;
    rt.block_on(propagation(args, cluster, (dns_vip, 53).into()))
}

// ---- propagation ---------------------------------------------------------------------------

/// One A query to `server` from the host: the response code and addresses, `None` when no
/// answer came within 200 ms.
async fn ask(server: SocketAddr, name: &str) -> Result<Option<(u8, Vec<Ipv4Addr>)>> {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.connect(server).await?;
    let mut query = query_a(name);
    let id: u16 = rand::random();
    query[..2].copy_from_slice(&id.to_be_bytes());
    socket.send(&query).await?;
    let mut buf = [0u8; 1500];
    let wait = async {
        loop {
            let n = socket.recv(&mut buf).await?;
            if n >= 2 && buf[..2] == id.to_be_bytes() {
                return std::io::Result::Ok(parse_reply(&buf[..n]));
            }
        }
    };
    match tokio::time::timeout(Duration::from_millis(200), wait).await {
        Ok(reply) => Ok(reply?),
        Err(_) => Ok(None),
    }
}

/// Polls `name` every millisecond from `start` until `done` holds for its addresses; the
/// time since `start`.
async fn until_answered(
    server: SocketAddr,
    name: &str,
    start: Instant,
    done: impl Fn(&[Ipv4Addr]) -> bool,
) -> Result<Duration> {
    loop {
        if let Some((0, ips)) = ask(server, name).await?
            && done(&ips)
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("{name} did not change within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn print_latencies(what: &str, mut lat: Vec<Duration>) {
    lat.sort();
    let ms: Vec<f64> = lat.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    println!(
        "  {what:<18} n={:<4} p50={:>6.1}ms p99={:>6.1}ms max={:>6.1}ms",
        ms.len(),
        percentile(&ms, 0.50),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN),
    );
}

/// API write -> first answer showing it, for Service creations and endpoint changes.
async fn propagation(args: &Args, cluster: &Cluster, dns: SocketAddr) -> Result<()> {
    let client = cluster.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");

    let mut created = Vec::new();
    for i in 0..args.changes {
        let name = format!("prop-{i}");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }))?;
        let start = Instant::now();
        let svc = services.create(&PostParams::default(), &svc).await?;
        let want: Ipv4Addr = svc
            .spec
            .and_then(|s| s.cluster_ip)
            .and_then(|ip| ip.parse().ok())
            .context("no ClusterIP allocated")?;
        let fqdn = format!("{name}.default.svc.cluster.local");
        created.push(until_answered(dns, &fqdn, start, |ips| ips == [want]).await?);
    }

    // A headless Service without a selector, its slice written here: one endpoint always
    // there, one added and removed per change.
    let base = Ipv4Addr::new(10, 250, 0, 1);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "prop-hl"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]},
    }))?;
    services.create(&PostParams::default(), &svc).await?;
    let endpoint =
        |ip: Ipv4Addr| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}});
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "prop-hl-1", "labels": {"kubernetes.io/service-name": "prop-hl"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [endpoint(base)],
    }))?;
    slices.create(&PostParams::default(), &slice).await?;
    let fqdn = "prop-hl.default.svc.cluster.local";
    until_answered(dns, fqdn, Instant::now(), |ips| ips == [base]).await?;
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for i in 0..args.changes {
        let extra = Ipv4Addr::new(10, 250, 1, u8::try_from(i % 250 + 1).unwrap_or(1));
        let patch = |eps: Vec<serde_json::Value>| Patch::Merge(json!({"endpoints": eps}));
        let start = Instant::now();
        slices
            .patch(
                "prop-hl-1",
                &PatchParams::default(),
                &patch(vec![endpoint(base), endpoint(extra)]),
            )
            .await?;
        added.push(until_answered(dns, fqdn, start, |ips| ips.contains(&extra)).await?);
        let start = Instant::now();
        slices
            .patch(
                "prop-hl-1",
                &PatchParams::default(),
                &patch(vec![endpoint(base)]),
            )
            .await?;
        removed.push(until_answered(dns, fqdn, start, |ips| !ips.contains(&extra)).await?);
    }
    println!(
        "propagation: API write (from before the request) -> first answer showing it, queried \
         from the host every 1 ms through the kube-dns VIP"
    );
    print_latencies("Service created", created);
    print_latencies("endpoint added", added);
    print_latencies("endpoint removed", removed);
    Ok(())
}
