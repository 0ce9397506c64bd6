//! `cargo xtask bench service`: requests/s and p50/p99 latency to HTTP backends in a test
//! network namespace, keep-alive and short-connection (a new TCP connection per request),
//! for:
//!   (a) the pod IPs directly,
//!   (b) a `ClusterIP` answered by sluice's eBPF socket load balancer, with 1 and 10,000
//!       Services in the maps,
//!   (c) a `ClusterIP` answered by kube-proxy-shaped iptables rules (`SERVICES` -> `SVC-*` with
//!       `statistic` probabilities -> `SEP-*` DNAT), with 10 and 10,000 Services.
//!
//! Like with like: every variant reaches the same two backends (two pod IPs in one namespace,
//! both served by one nginx whose workers match the machine's CPUs, so the backend is not the
//! bottleneck and how a variant splits connections between the two cannot favour it), with the
//! same wrk shape (`-t2`). The variants run in interleaved rounds (a, b, c, ... then again), so
//! drift on a shared machine hits all of them alike; the report gives per-variant medians over
//! the rounds and ratios to (a)'s medians.
//!
//! sluice's maps are programmed as the node agent programs them: Service and `EndpointSlice`
//! objects -> `proxy::desired()` -> `proxy::Reconciler::apply`. Also printed: the time to
//! program 10,000 Services (that apply, against `iptables-restore` of the same Services), and
//! the time from a Service + `EndpointSlice` write in the API to its entry in the eBPF map
//! (p50/p99), with the real control plane and the proxy.
//!
//! Traffic only goes to the namespace this benchmark creates; everything it creates (netns,
//! veth, addresses, routes, iptables chains, pins, cgroups, nginx, temp files) is removed on
//! exit, on error and on SIGINT/SIGTERM, and leftovers of a killed run are removed at start.
//! Numbers, not assertions (beyond checking that each variant reaches both backends).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice_ebpf_common::{Be16, Be32, PROTO_TCP, ServiceKey};
use sluice_node_agent::datapath::{self, Datapath, DatapathOps, ObjectSource, PinnedMaps};
use sluice_node_agent::proxy::{self, Desired, Reconciler};
use sluice_tests::iptables_rules::{self, Layout, Protocol as IptProtocol, Service as IptService};

/// A part of the benchmark (`--only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Traffic,
    Programming,
    Resync,
}

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 5)]
    duration: u32,
    /// Interleaved rounds: each runs every variant once per mode; medians are over rounds.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// wrk connections (split over wrk's two threads).
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Services installed for the "many services" variants (the measured one included).
    #[arg(long, default_value_t = 10_000)]
    many: u32,
    /// Which parts to run (comma-separated; default: all): `traffic` (wrk through the
    /// variants), `programming` (API write -> map entry latency at each of
    /// `--programming-scales`), `resync` (full passes over `--resync-services`).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Samples per round for the API-write-to-map latency.
    #[arg(long, default_value_t = 100)]
    programming_samples: usize,
    /// Rounds of samples per scale; p50 and p99 are medians over the rounds.
    #[arg(long, default_value_t = 5)]
    programming_rounds: usize,
    /// Existing Services (in the API and in the maps) while measuring the latency.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
    programming_scales: Vec<usize>,
    /// Services in the maps for the full resync passes.
    #[arg(long, default_value_t = 10_000)]
    resync_services: u32,
    /// Rounds of each full pass; medians are over the rounds.
    #[arg(long, default_value_t = 5)]
    resync_rounds: usize,
    /// Internal: make short HTTP requests to this address and print each response body (run
    /// inside a variant's cgroup to check which backends it reaches).
    #[arg(long, hide = true)]
    probe: Option<SocketAddr>,
}

/// The backend namespace (the "pods").
const NS: &str = "sluice-bench-be";
/// The host side of the veth into [`NS`].
const VETH: &str = "sbench0";
const HOST_IP: &str = "10.201.0.1";
/// The two backends: two pod IPs in [`NS`], same port. Equal length, so the body naming the
/// backend has one size.
const POD_IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 201, 0, 2), Ipv4Addr::new(10, 201, 0, 3)];
const POD_PORT: u16 = 8080;
const SLUICE_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 100, 1);
const IPT_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 200, 1);
const VIP_PORT: u16 = 80;
/// wrk threads: one per backend in the direct variant.
const WRK_THREADS: usize = POD_IPS.len();
/// Where the eBPF maps and links of this benchmark are pinned.
const PIN_ROOT: &str = "/sys/fs/bpf/sluice-bench";
/// Prefix of every iptables chain this benchmark makes, and the comment on its OUTPUT jump.
const IPT_PREFIX: &str = "SLB-";
/// The services chain of [`IPT_LAYOUT`] (`Layout::services_chain`).
const IPT_TOP: &str = "SLB-SERVICES";
const IPT_COMMENT: &str = "sluice-bench";
/// Requests the probe makes per variant (all on one backend: odds 2^-31).
const PROBES: usize = 32;

/// The benchmark's working directory (nginx config and logs, the wrk script).
fn work_dir() -> PathBuf {
    std::env::temp_dir().join("sluice-bench-service")
}

fn pin_dir(name: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(name)
}

// ---- processes -----------------------------------------------------------------------------

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

/// `program args...` inside the cgroup `cg` (the shell moves itself there, then execs).
fn in_cgroup(cg: &Cgroup, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"echo $$ > "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(cg.0.join("cgroup.procs"))
        .arg(program);
    cmd
}

// ---- cleanup -------------------------------------------------------------------------------

/// Removes everything this benchmark creates, by its fixed names, so it also removes what a
/// killed earlier run left. Missing pieces are fine; failures to remove are reported. Calls
/// run one at a time (a signal may arrive while an error path cleans up).
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
    report("iptables", iptables_remove());
    report("backend namespace", remove_namespace());
    for name in ["traffic", "api", "resync"] {
        let dir = pin_dir(name);
        if dir.exists() {
            report("pins", datapath::unpin(&dir).map_err(Into::into));
        }
    }
    if Path::new(PIN_ROOT).exists() {
        report(
            "pin root",
            std::fs::remove_dir(PIN_ROOT).with_context(|| format!("rmdir {PIN_ROOT}")),
        );
    }
    if let Ok(root) = datapath::cgroup2_mount() {
        for name in Cgroup::NAMES {
            let dir = root.join(name);
            if dir.exists() {
                report("cgroup", remove_cgroup(&dir));
            }
        }
    }
    let dir = work_dir();
    if dir.exists() {
        report(
            "work dir",
            std::fs::remove_dir_all(&dir).with_context(|| format!("rm -r {}", dir.display())),
        );
    }
}

/// Kills whatever still runs in [`NS`] (a killed run's nginx), then deletes it (which
/// deletes the veth pair, its addresses and routes).
fn remove_namespace() -> Result<()> {
    if !Path::new("/run/netns").join(NS).exists() {
        if Path::new("/sys/class/net").join(VETH).exists() {
            ip(&["link", "del", VETH])?;
        }
        return Ok(());
    }
    let pids = ip(&["netns", "pids", NS])?;
    let pids: Vec<&str> = pids.split_whitespace().collect();
    if !pids.is_empty() {
        run(Command::new("kill").arg("-KILL").args(&pids))?;
    }
    ip(&["netns", "del", NS])?;
    Ok(())
}

/// Kills what still runs in the cgroup `dir` (a wrk of an interrupted run), then removes it.
fn remove_cgroup(dir: &Path) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids =
            std::fs::read_to_string(&procs).with_context(|| format!("read {}", procs.display()))?;
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if pids.is_empty() {
            break;
        }
        // Some may exit meanwhile: kill's status does not matter, the next read does.
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
        ensure!(
            Instant::now() < deadline,
            "processes {pids:?} stay in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir(dir).with_context(|| format!("rmdir {}", dir.display()))
}

/// Runs [`cleanup`] when dropped: on return, on error and while unwinding from a panic.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup();
    }
}

// ---- the backends --------------------------------------------------------------------------

/// nginx's config: one server on both pod IPs, a tiny fixed-size body naming the backend
/// (`$server_addr` is known without a syscall on an address-bound listener), keep-alive with
/// no request limit (so keep-alive runs never reconnect), no access log.
fn nginx_config(dir: &Path, workers: usize) -> String {
    let d = dir.display();
    let mut listen = String::new();
    for ip in POD_IPS {
        let _ = writeln!(listen, "        listen {ip}:{POD_PORT} reuseport;");
    }
    format!(
        "daemon off;\nworker_processes {workers};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{\n    worker_connections 4096;\n}}\n\
         http {{\n    access_log off;\n    server_tokens off;\n    keepalive_timeout 75s;\n    \
         keepalive_requests 1000000000;\n    client_body_temp_path {d}/body;\n    \
         proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
         uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    server {{\n{listen}        \
         location / {{\n            return 200 \"$server_addr\\n\";\n        }}\n    }}\n}}\n"
    )
}

/// The backend namespace, its veth and nginx. Removal is [`cleanup`]'s job (see [`Cleanup`]);
/// dropping this stops nginx gracefully first.
struct Backends {
    nginx: Child,
    workers: usize,
}

impl Backends {
    fn start(dir: &Path) -> Result<Self> {
        remove_namespace()?;
        ip(&["netns", "add", NS])?;
        ip(&[
            "link", "add", VETH, "type", "veth", "peer", "name", "eth0", "netns", NS,
        ])?;
        ip(&["addr", "add", &format!("{HOST_IP}/16"), "dev", VETH])?;
        ip(&["link", "set", VETH, "up"])?;
        for pod in POD_IPS {
            ip(&["-n", NS, "addr", "add", &format!("{pod}/16"), "dev", "eth0"])?;
        }
        ip(&["-n", NS, "link", "set", "eth0", "up"])?;
        ip(&["-n", NS, "link", "set", "lo", "up"])?;
        // Both VIPs lead into the namespace, which does not forward: if a translation were
        // missing, the packet would die there, never leave the machine.
        for vip in [SLUICE_VIP, IPT_VIP] {
            ip(&["route", "replace", &format!("{vip}/32"), "dev", VETH])?;
        }

        let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let config = dir.join("nginx.conf");
        std::fs::write(&config, nginx_config(dir, workers))
            .with_context(|| format!("write {}", config.display()))?;
        let nginx = Command::new("ip")
            .args(["netns", "exec", NS, "nginx", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .context("start nginx")?;
        let mut backends = Self { nginx, workers };
        let started = Instant::now();
        for pod in POD_IPS {
            let addr = SocketAddr::from((pod, POD_PORT));
            while http_get(addr).is_err() {
                if let Some(status) = backends.nginx.try_wait()? {
                    bail!(
                        "nginx exited ({status}): {}",
                        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                    );
                }
                ensure!(
                    started.elapsed() < Duration::from_secs(10),
                    "nginx does not answer on {addr}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(backends)
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful shutdown, workers included.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.nginx.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.nginx.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
    }
}

/// One `GET /` with `Connection: close`; the response body.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP response: {response:?}")))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("not 200: {head}")));
    }
    Ok(body.trim().to_owned())
}

/// `--probe`: [`PROBES`] requests, one body per line on stdout.
fn probe(addr: SocketAddr) -> Result<()> {
    for _ in 0..PROBES {
        println!(
            "{}",
            http_get(addr).with_context(|| format!("GET http://{addr}/"))?
        );
    }
    Ok(())
}

/// Checks from inside `cg` that `addr` reaches both backends (and only them).
fn check_reaches_both(cg: &Cgroup, addr: SocketAddr, what: &str) -> Result<()> {
    let me = std::env::current_exe().context("own path")?;
    let out = run(in_cgroup(cg, me).args(["--probe", &addr.to_string()]))
        .with_context(|| format!("probing {what}"))?;
    let seen: BTreeSet<&str> = out.lines().collect();
    let wanted: Vec<String> = POD_IPS.iter().map(ToString::to_string).collect();
    let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
    ensure!(
        seen == wanted,
        "{what} reached {seen:?} in {PROBES} connections, not the backends {wanted:?}"
    );
    Ok(())
}

// ---- cgroups -------------------------------------------------------------------------------

/// A child cgroup2 directory the load generator runs in; only the sluice one has the eBPF
/// hooks. Removed by [`cleanup`].
struct Cgroup(PathBuf);

impl Cgroup {
    const NAMES: [&str; 2] = ["sluice-bench-plain", "sluice-bench-sluice"];

    fn new(name: &str) -> Result<Self> {
        let path = datapath::cgroup2_mount()
            .context("find the cgroup2 mount")?
            .join(name);
        if !path.exists() {
            std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        }
        Ok(Self(path))
    }
}

// ---- wrk -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Socket errors plus non-2xx responses.
    errors: u64,
}

fn parse_latency(v: &str) -> f64 {
    let v = v.trim();
    let (num, mult) = if let Some(x) = v.strip_suffix("us") {
        (x, 0.001)
    } else if let Some(x) = v.strip_suffix("ms") {
        (x, 1.0)
    } else if let Some(x) = v.strip_suffix('s') {
        (x, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mult
}

fn parse_wrk(out: &str) -> Result<Run> {
    let mut r = Run {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(f64::NAN);
        } else if let Some(v) = l.strip_prefix("50%") {
            r.p50_ms = parse_latency(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            r.p99_ms = parse_latency(v);
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.errors += v
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    ensure!(
        r.rps.is_finite() && r.p50_ms.is_finite() && r.p99_ms.is_finite(),
        "cannot read wrk's output:\n{out}"
    );
    Ok(r)
}

/// What the load generator does for one variant.
struct Target<'a> {
    cg: &'a Cgroup,
    url: String,
    /// The wrk script that picks each thread's destination (see [`thread_script`]).
    script: &'a Path,
}

fn wrk(target: &Target<'_>, args: &Args, close: bool) -> Result<Run> {
    let mut cmd = in_cgroup(target.cg, "wrk");
    cmd.arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.duration))
        .arg("--latency");
    cmd.arg("-s").arg(target.script);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(&target.url);
    let out = run(&mut cmd)?;
    let r = parse_wrk(&out)?;
    if r.errors > 0 {
        eprintln!("[bench] wrk reported errors for {}:\n{out}", target.url);
    }
    Ok(r)
}

/// The wrk script every variant runs: thread `i` sends every request (and, with short
/// connections, every connect) to `destinations[i mod n]`. Direct traffic names the two
/// backends, so it spreads over the same two pods as the `ClusterIP` variants, evenly, from
/// one wrk process with the same threads and connections as theirs (two wrk processes would
/// change the client side; one backend would compare one pod with two). The `ClusterIP`
/// variants name their VIP for every thread: all variants run the same wrk code path.
fn thread_script(destinations: &[(Ipv4Addr, u16)]) -> String {
    let mut list = String::new();
    for (ip, port) in destinations {
        let _ = write!(list, "{{\"{ip}\", \"{port}\"}}, ");
    }
    format!(
        "local destinations = {{ {list}}}\nlocal threads = 0\n\
         function setup(thread)\n  \
         local d = destinations[threads % #destinations + 1]\n  \
         threads = threads + 1\n  \
         thread.addr = wrk.lookup(d[1], d[2])[1]\n\
         end\n"
    )
}

// ---- Services ------------------------------------------------------------------------------

/// The i-th filler Service's `ClusterIP` (outside 10.96/16, where the measured VIPs are).
fn filler_vip(i: u32) -> Ipv4Addr {
    let [_, a, b, c] = (i + (98 << 16)).to_be_bytes();
    Ipv4Addr::new(10, a, b, c)
}

/// The i-th filler Service's one endpoint (never reached).
fn filler_endpoint(i: u32) -> Ipv4Addr {
    let [_, _, b, c] = i.to_be_bytes();
    Ipv4Addr::new(10, 202, b, c)
}

fn api_service(name: &str, vip: Ipv4Addr) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("bench".into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(vip.to_string()),
            cluster_ips: Some(vec![vip.to_string()]),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(VIP_PORT),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn api_slice(service: &str, addresses: &[Ipv4Addr], port: u16) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("bench".into()),
            name: Some(format!("{service}-1")),
            labels: Some(BTreeMap::from([(
                proxy::desired::SERVICE_NAME_LABEL.to_owned(),
                service.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: addresses
            .iter()
            .map(|addr| Endpoint {
                addresses: vec![addr.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(i32::from(port)),
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }]),
    }
}

/// `n` Services as the API would hold them: the measured one (`SLUICE_VIP` to both pods)
/// and `n - 1` fillers with one endpoint each; the desired state the agent computes from
/// them, and how long that took.
fn sluice_services(n: u32) -> (Desired, Duration) {
    let mut services = vec![api_service("measured", SLUICE_VIP)];
    let mut slices = vec![api_slice("measured", &POD_IPS, POD_PORT)];
    for i in 1..n {
        let name = format!("svc-{i}");
        services.push(api_service(&name, filler_vip(i)));
        slices.push(api_slice(&name, &[filler_endpoint(i)], 80));
    }
    let started = Instant::now();
    let desired = proxy::desired(&services, &slices);
    (desired, started.elapsed())
}

/// Applies `desired` with the benchmark's (the "agent's") reconciler and checks the maps
/// then hold exactly its frontends.
fn program(reconciler: &mut Reconciler, dp: &mut Datapath, desired: &Desired) -> Result<Duration> {
    let started = Instant::now();
    reconciler.apply(desired, dp).context("reconciler apply")?;
    let took = started.elapsed();
    let frontends = dp
        .services()?
        .iter()
        .filter(|(key, _)| key.slot == 0)
        .count();
    ensure!(
        frontends == desired.frontends.len(),
        "{frontends} frontends in the maps, {} desired",
        desired.frontends.len()
    );
    Ok(took)
}

// ---- iptables ------------------------------------------------------------------------------

/// The rule layout of this benchmark: kube-proxy's chains under [`IPT_PREFIX`], no
/// masquerading (the client is on the host), hooked into OUTPUT by [`iptables_install`].
const IPT_LAYOUT: Layout<'static> = Layout {
    prefix: IPT_PREFIX,
    masquerade: false,
    hook: false,
};

/// kube-proxy's rule layout for `n` services; the measured one sits in the middle of the
/// services chain, with the two pods as endpoints.
fn iptables_rules(n: u32) -> String {
    let measured_at = n / 2;
    let services: Vec<IptService> = (0..n)
        .map(|i| {
            let (cluster_ip, endpoints) = if i == measured_at {
                (
                    IPT_VIP,
                    POD_IPS
                        .iter()
                        .map(|p| SocketAddrV4::new(*p, POD_PORT))
                        .collect(),
                )
            } else {
                (
                    filler_vip(i),
                    vec![SocketAddrV4::new(filler_endpoint(i), 80)],
                )
            };
            IptService {
                name: format!("bench/svc-{i}:http"),
                cluster_ip,
                port: VIP_PORT,
                protocol: IptProtocol::Tcp,
                node_port: None,
                endpoints,
            }
        })
        .collect();
    IPT_LAYOUT.script(&services)
}

fn iptables_restore(script: &str) -> Result<()> {
    iptables_rules::restore(Command::new("iptables-restore").arg("--noflush"), script)
}

fn output_jump() -> [&'static str; 9] {
    [
        "-t",
        "nat",
        "OUTPUT",
        "-m",
        "comment",
        "--comment",
        IPT_COMMENT,
        "-j",
        IPT_TOP,
    ]
}

/// Installs the rules of `n` services (replacing any), returns how long `iptables-restore`
/// took, then hooks them into OUTPUT.
fn iptables_install(n: u32) -> Result<Duration> {
    iptables_remove()?;
    let rules = iptables_rules(n);
    let started = Instant::now();
    iptables_restore(&rules)?;
    let took = started.elapsed();
    let jump = output_jump();
    run(Command::new("iptables")
        .args(&jump[..2])
        .arg("-I")
        .args(&jump[2..]))?;
    Ok(took)
}

/// Removes the OUTPUT jump and every chain this benchmark made.
fn iptables_remove() -> Result<()> {
    let jump = output_jump();
    let present = Command::new("iptables")
        .args(&jump[..2])
        .arg("-C")
        .args(&jump[2..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("iptables -C")?
        .success();
    if present {
        run(Command::new("iptables")
            .args(&jump[..2])
            .arg("-D")
            .args(&jump[2..]))?;
    }
    let listing = run(Command::new("iptables").args(["-t", "nat", "-S"]))?;
    let chains: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| c.starts_with(IPT_PREFIX))
        .collect();
    if chains.is_empty() {
        return Ok(());
    }
    let mut script = String::from("*nat\n");
    for c in &chains {
        let _ = writeln!(script, "-F {c}");
    }
    for c in &chains {
        let _ = writeln!(script, "-X {c}");
    }
    script.push_str("COMMIT\n");
    iptables_restore(&script)
}

/// A fresh client address for the next iptables run: the DNAT'd connections' reply tuples
/// must not collide with conntrack entries (`TIME_WAIT`, 120 s) that earlier runs left for
/// the same backend ports, or new SYNs are dropped and retried after 1 s, which would measure
/// the benchmark, not the datapath. Routes the iptables VIP from it.
fn next_client_address(runs: &mut u32) -> Result<()> {
    let k = *runs;
    *runs += 1;
    // 10.201.1.1 onwards (10.201.0.0/24 holds the host side and the pods).
    let (Ok(hi @ 1..=254), Ok(lo)) = (u8::try_from(1 + k / 250), u8::try_from(1 + k % 250)) else {
        bail!("too many iptables runs ({k}) for the client address range");
    };
    let src = Ipv4Addr::new(10, 201, hi, lo);
    ip(&["addr", "replace", &format!("{src}/32"), "dev", VETH])?;
    ip(&[
        "route",
        "replace",
        &format!("{IPT_VIP}/32"),
        "dev",
        VETH,
        "src",
        &src.to_string(),
    ])?;
    Ok(())
}

// ---- report --------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Direct,
    Sluice(u32),
    Iptables(u32),
}

impl Variant {
    fn label(self) -> String {
        match self {
            Self::Direct => "(a) direct pod IPs".into(),
            Self::Sluice(n) => format!("(b) sluice eBPF ClusterIP, {}", services(n)),
            Self::Iptables(n) => format!("(c) iptables kube-proxy layout, {}", services(n)),
        }
    }
}

fn services(n: u32) -> String {
    if n == 1 {
        "1 Service".into()
    } else {
        format!("{n} Services")
    }
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

fn median_ms(values: &[Duration]) -> f64 {
    median(values.iter().map(|d| d.as_secs_f64() * 1e3).collect())
}

/// Medians over the rounds of one variant and mode.
#[derive(Clone, Copy)]
struct Summary {
    rps: f64,
    /// (max - min) / median of req/s, in percent.
    spread: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn summarize(runs: &[Run]) -> Summary {
    let rps: Vec<f64> = runs.iter().map(|r| r.rps).collect();
    let median_rps = median(rps.clone());
    let max = rps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = rps.iter().copied().fold(f64::INFINITY, f64::min);
    Summary {
        rps: median_rps,
        spread: (max - min) / median_rps.max(1.0) * 100.0,
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

fn row(name: &str, s: Summary, base: Summary) {
    println!(
        "{name:<46} {:>9.0} {:>6.1}% {:>8.3} {:>8.3}   x{:<5.2} x{:<5.2} x{:<5.2} {:>6}",
        s.rps,
        s.spread,
        s.p50_ms,
        s.p99_ms,
        s.rps / base.rps.max(1.0),
        s.p50_ms / base.p50_ms.max(1e-6),
        s.p99_ms / base.p99_ms.max(1e-6),
        s.errors
    );
}

fn object_path() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_BPF_OBJ") {
        return p.into();
    }
    let dir = sluice_tests::bin_dir();
    dir.parent().map_or_else(
        || PathBuf::from("target/bpf/sluice-sock"),
        |t| t.join("bpf").join("sluice-sock"),
    )
}

// ---- main ----------------------------------------------------------------------------------

const MODES: [(&str, bool); 2] = [("keep-alive", false), ("short connections", true)];

impl Args {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(addr) = args.probe {
        return probe(addr);
    }
    ensure!(
        args.rounds >= 1 && args.duration >= 1,
        "--rounds and --duration must be at least 1"
    );
    ensure!(args.many >= 2, "--many must be at least 2");
    ensure!(
        args.connections as usize >= WRK_THREADS,
        "--connections must be at least {WRK_THREADS} (one per wrk thread)"
    );
    let obj = object_path();
    ensure!(
        obj.exists(),
        "{} is missing: run `cargo xtask build-ebpf`",
        obj.display()
    );
    // Leftovers of a killed run go first; from here on, every way out cleans up.
    cleanup();
    let _cleanup = Cleanup;
    sluice_tests::cleanup_on_signal(cleanup)?;

    if args.runs(Part::Traffic) {
        traffic(&args, &obj)?;
    }
    if args.runs(Part::Programming) {
        programming_latency(&args, &obj)?;
    }
    if args.runs(Part::Resync) {
        resync(&args, &obj)?;
    }
    Ok(())
}

/// Part `traffic`: requests/s and latency of (a), (b) and (c), and the time to program
/// `--many` Services from empty maps (eBPF vs iptables-restore).
fn traffic(args: &Args, obj: &Path) -> Result<()> {
    let dir = work_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let script = |name: &str, destinations: &[(Ipv4Addr, u16)]| -> Result<PathBuf> {
        let path = dir.join(format!("{name}.lua"));
        std::fs::write(&path, thread_script(destinations))
            .with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    };
    let direct_script = script("direct", &POD_IPS.map(|ip| (ip, POD_PORT)))?;
    let sluice_script = script("sluice", &[(SLUICE_VIP, VIP_PORT)])?;
    let iptables_script = script("iptables", &[(IPT_VIP, VIP_PORT)])?;
    let backends = Backends::start(&dir)?;

    // One cgroup per kind of client: the eBPF hooks attach only to the sluice one.
    let plain = Cgroup::new(Cgroup::NAMES[0])?;
    let hooked = Cgroup::new(Cgroup::NAMES[1])?;
    let mut dp = Datapath::load(ObjectSource::Path(obj), &pin_dir("traffic"))
        .context("load the datapath")?;
    dp.attach_cgroup(&hooked.0).context("attach")?;
    let mut reconciler = Reconciler::new();
    let (one, _) = sluice_services(1);
    let (many, desired_took) = sluice_services(args.many);

    let variants = [
        Variant::Direct,
        Variant::Sluice(1),
        Variant::Sluice(args.many),
        Variant::Iptables(10),
        Variant::Iptables(args.many),
    ];
    let direct = Target {
        cg: &plain,
        url: format!("http://{}:{POD_PORT}/", POD_IPS[0]),
        script: &direct_script,
    };
    let sluice = Target {
        cg: &hooked,
        url: format!("http://{SLUICE_VIP}:{VIP_PORT}/"),
        script: &sluice_script,
    };
    let iptables = Target {
        cg: &plain,
        url: format!("http://{IPT_VIP}:{VIP_PORT}/"),
        script: &iptables_script,
    };

    println!(
        "service benchmark: {} interleaved rounds; per round, variant and mode one wrk -t{WRK_THREADS} -c{} -d{}s \
         from the host; one nginx ({} workers) serving both backends {} and {} (port {POD_PORT}) in netns {NS}",
        args.rounds, args.connections, args.duration, backends.workers, POD_IPS[0], POD_IPS[1],
    );
    println!(
        "every variant runs the same wrk script and reaches both backends: (a) one wrk thread per backend, \
         (b) and (c) through their load balancer (checked each round)"
    );

    // Warm-up, not recorded: the first run after nginx starts would otherwise be (a)'s.
    wrk(
        &direct,
        &Args {
            duration: 1,
            ..args.clone()
        },
        false,
    )
    .context("warm-up")?;

    let mut results: BTreeMap<(usize, usize), Vec<Run>> = BTreeMap::new();
    let mut ebpf_many = Vec::new();
    let mut ipt_many = Vec::new();
    let mut ipt_runs = 0u32;
    for round in 1..=args.rounds {
        eprintln!("[bench] round {round}/{}", args.rounds);
        for (v, variant) in variants.iter().enumerate() {
            let target = match *variant {
                Variant::Direct => {
                    for pod in POD_IPS {
                        let addr = SocketAddr::from((pod, POD_PORT));
                        check_reaches_one(&plain, addr)?;
                    }
                    &direct
                }
                Variant::Sluice(n) => {
                    if n == 1 {
                        program(&mut reconciler, &mut dp, &one)?;
                    } else {
                        // From empty maps, as iptables-restore below starts from no rules.
                        program(&mut reconciler, &mut dp, &Desired::default())?;
                        ebpf_many.push(program(&mut reconciler, &mut dp, &many)?);
                    }
                    check_reaches_both(
                        &hooked,
                        SocketAddr::from((SLUICE_VIP, VIP_PORT)),
                        &variant.label(),
                    )?;
                    &sluice
                }
                Variant::Iptables(n) => {
                    let took = iptables_install(n)?;
                    if n == args.many {
                        ipt_many.push(took);
                    }
                    next_client_address(&mut ipt_runs)?;
                    check_reaches_both(
                        &plain,
                        SocketAddr::from((IPT_VIP, VIP_PORT)),
                        &variant.label(),
                    )?;
                    &iptables
                }
            };
            for (m, (_, close)) in MODES.iter().enumerate() {
                if matches!(variant, Variant::Iptables(_)) {
                    next_client_address(&mut ipt_runs)?;
                }
                let r = wrk(target, args, *close)
                    .with_context(|| format!("{} ({})", variant.label(), MODES[m].0))?;
                results.entry((v, m)).or_default().push(r);
            }
        }
        iptables_remove()?;
    }

    println!(
        "medians over {} rounds; spread = (max - min) / median of req/s; ratios to (a)'s medians",
        args.rounds
    );
    println!(
        "{:<46} {:>9} {:>7} {:>8} {:>8}   {:<6} {:<6} {:<6} {:>6}",
        "variant", "req/s", "spread", "p50 ms", "p99 ms", "req/s", "p50", "p99", "errors"
    );
    for (m, (mode, _)) in MODES.iter().enumerate() {
        println!("-- {mode}");
        let base = summarize(&results[&(0, m)]);
        for (v, variant) in variants.iter().enumerate() {
            row(&variant.label(), summarize(&results[&(v, m)]), base);
        }
    }
    println!(
        "programming {} Services (median of {} rounds): eBPF maps via the Reconciler {:.0} ms \
         (desired() from the Service and EndpointSlice objects: {:.0} ms more); iptables-restore {:.0} ms",
        args.many,
        args.rounds,
        median_ms(&ebpf_many),
        desired_took.as_secs_f64() * 1e3,
        median_ms(&ipt_many),
    );

    dp.detach_all().context("detach")?;
    drop(dp);
    drop(backends);
    Ok(())
}

/// Checks from inside `cg` that `addr` answers as itself (the direct variant's backends).
fn check_reaches_one(cg: &Cgroup, addr: SocketAddr) -> Result<()> {
    let me = std::env::current_exe().context("own path")?;
    let out = run(in_cgroup(cg, me).args(["--probe", &addr.to_string()]))
        .with_context(|| format!("probing {addr}"))?;
    let want = addr.ip().to_string();
    ensure!(out.lines().all(|l| l == want), "{addr} answered as {out:?}");
    Ok(())
}

/// The value at quantile `p` of sorted `values`, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a percentile's index: non-negative and below the sample count"
    )]
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// A Service `name` in `default` (`ClusterIP` allocated by the API server) with one
/// `EndpointSlice` of one ready endpoint `endpoint:port`.
fn api_pair(name: &str, endpoint: Ipv4Addr, port: u16) -> (Service, EndpointSlice) {
    let mut svc = api_service(name, Ipv4Addr::UNSPECIFIED);
    svc.metadata.namespace = None;
    if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        spec.selector = Some(BTreeMap::from([("app".to_owned(), name.to_owned())]));
    }
    let mut slice = api_slice(name, &[endpoint], port);
    slice.metadata.namespace = None;
    (svc, slice)
}

/// Waits until the proxy's published state has `frontends` frontends and `backends`
/// backends (it publishes after each apply, map writes done).
async fn wait_frontends(
    progress: &mut tokio::sync::watch::Receiver<proxy::Progress>,
    frontends: usize,
    backends: usize,
    within: Duration,
) -> Result<()> {
    let reached = tokio::time::timeout(
        within,
        progress.wait_for(|p| p.frontends == frontends && p.backends == backends),
    )
    .await
    .map(|r| r.map(|_| ()));
    match reached {
        Ok(r) => r.context("the proxy stopped")?,
        Err(_) => bail!(
            "the proxy did not reach {frontends} frontends and {backends} backends in \
             {within:?} (at {} and {})",
            progress.borrow().frontends,
            progress.borrow().backends
        ),
    }
    Ok(())
}

/// Part `programming`: Service + `EndpointSlice` written through the API -> entry with one
/// backend visible in the pinned map, with `--programming-scales` Services already in the
/// API and the maps, through the real control plane and the agent's proxy (`proxy::run`).
fn programming_latency(args: &Args, obj: &Path) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    ensure!(
        args.programming_samples >= 1 && args.programming_rounds >= 1,
        "--programming-samples and --programming-rounds must be at least 1"
    );
    let mut scales = args.programming_scales.clone();
    scales.sort_unstable();
    let rt = tokio::runtime::Runtime::new().context("runtime")?;
    rt.block_on(async {
        let cp = sluice_tests::controlplane::ControlPlane::start(&["--no-controllers"]).await;
        let client = cp.client().await;
        let pin = pin_dir("api");
        let dp = Datapath::load(ObjectSource::Path(obj), &pin).context("load")?;
        let reader = PinnedMaps::open(&pin).context("open the pinned maps read-only")?;
        let opts = proxy::Options::default();
        let mut progress = opts.subscribe();
        let proxy = tokio::spawn(proxy::run(client.clone(), dp, opts));
        let svcs: kube::Api<Service> = kube::Api::namespaced(client.clone(), "default");
        let slices: kube::Api<EndpointSlice> = kube::Api::namespaced(client.clone(), "default");
        let post = kube::api::PostParams::default();
        // What the cluster has before the benchmark adds anything (the `kubernetes` Service).
        tokio::time::timeout(
            Duration::from_secs(30),
            progress.wait_for(|p| p.generation >= 1),
        )
        .await
        .context("the proxy's first apply")??;
        let baseline = progress.borrow().frontends;
        let baseline_backends = progress.borrow().backends;
        println!(
            "programming latency: API write (Service + EndpointSlice) -> its frontend with one \
             backend in the eBPF map; {} rounds x {} samples per scale, medians over rounds \
             (control plane + proxy::run on pinned maps, no debounce)",
            args.programming_rounds, args.programming_samples
        );
        println!(
            "(\"ack->map\": from the EndpointSlice write's response to the entry, i.e. without \
             the two API writes themselves; 0 when the watch event beat the response. \
             \"event->map\": inside the proxy, from the first watch event of the apply that wrote \
             the entry reaching it to that apply's end)"
        );
        println!(
            "{:>10} {:>9} {:>9} {:>9} {:>9} {:>13} {:>13} {:>15} {:>15}   per-round p50/p99",
            "existing",
            "p50 ms",
            "p99 ms",
            "min p50",
            "max p99",
            "ack->map p50",
            "ack->map p99",
            "event->map p50",
            "event->map p99",
        );
        let mut existing = 0usize;
        for scale in scales {
            // Fill up to `scale` Services (each with one endpoint), many writes in flight.
            let filled = Instant::now();
            futures::stream::iter(existing..scale)
                .map(|i| {
                    let (svcs, slices, post) = (svcs.clone(), slices.clone(), post.clone());
                    async move {
                        let n = u32::try_from(i).context("filler index")?;
                        let (svc, slice) = api_pair(&format!("fill-{i}"), filler_endpoint(n), 80);
                        svcs.create(&post, &svc)
                            .await
                            .context("create filler svc")?;
                        slices
                            .create(&post, &slice)
                            .await
                            .context("create filler slice")?;
                        anyhow::Ok(())
                    }
                })
                .buffer_unordered(32)
                .try_collect::<Vec<()>>()
                .await?;
            existing = existing.max(scale);
            wait_frontends(
                &mut progress,
                baseline + existing,
                baseline_backends + existing,
                Duration::from_mins(2),
            )
            .await?;
            let in_maps = reader
                .services()?
                .iter()
                .filter(|(k, v)| k.slot == 0 && v.count == 1)
                .count();
            ensure!(
                in_maps >= existing,
                "{in_maps} programmed frontends in the map, {existing} expected"
            );
            eprintln!(
                "[bench] {existing} Services in the API and the maps ({:.1} s to create)",
                filled.elapsed().as_secs_f64()
            );

            let mut p50s = Vec::new();
            let mut p99s = Vec::new();
            let mut ack_p50s = Vec::new();
            let mut ack_p99s = Vec::new();
            let mut proxy_p50s = Vec::new();
            let mut proxy_p99s = Vec::new();
            let mut detail = String::new();
            for round in 0..args.programming_rounds {
                let mut lat = Vec::with_capacity(args.programming_samples);
                let mut after_ack = Vec::with_capacity(args.programming_samples);
                let mut in_proxy = Vec::with_capacity(args.programming_samples);
                let mut names = Vec::new();
                for i in 0..args.programming_samples {
                    let name = format!("prog-{scale}-{round}-{i}");
                    let (svc, slice) = api_pair(&name, Ipv4Addr::new(10, 244, 9, 9), 8080);
                    let _ = progress.borrow_and_update();
                    let t = Instant::now();
                    let created = svcs.create(&post, &svc).await.context("create svc")?;
                    slices.create(&post, &slice).await.context("create slice")?;
                    let acked = Instant::now();
                    let vip: Ipv4Addr = created
                        .spec
                        .and_then(|s| s.cluster_ip)
                        .and_then(|ip| ip.parse().ok())
                        .context("cluster ip")?;
                    let key = ServiceKey::frontend(
                        Be32::from_ipv4(vip),
                        Be16::from_host(VIP_PORT),
                        PROTO_TCP,
                    );
                    // Woken by each apply the proxy publishes; the map is the judge.
                    while reader.service(&key)?.is_none_or(|v| v.count != 1) {
                        ensure!(
                            t.elapsed() < Duration::from_secs(30),
                            "service {name} never reached the map"
                        );
                        let _ = tokio::time::timeout(Duration::from_millis(50), progress.changed())
                            .await;
                    }
                    lat.push(t.elapsed());
                    after_ack.push(acked.elapsed());
                    // The apply that wrote it: from its first watch event to its end.
                    if let Some(d) = progress.borrow().event_to_applied {
                        in_proxy.push(d);
                    }
                    names.push(name);
                }
                // Back to `existing` Services before the next round.
                futures::stream::iter(names)
                    .map(|name| {
                        let (svcs, slices) = (svcs.clone(), slices.clone());
                        async move {
                            let dp = kube::api::DeleteParams::default();
                            slices
                                .delete(&format!("{name}-1"), &dp)
                                .await
                                .context("delete slice")?;
                            svcs.delete(&name, &dp).await.context("delete svc")?;
                            anyhow::Ok(())
                        }
                    })
                    .buffer_unordered(32)
                    .try_collect::<Vec<()>>()
                    .await?;
                wait_frontends(
                    &mut progress,
                    baseline + existing,
                    baseline_backends + existing,
                    Duration::from_mins(1),
                )
                .await?;
                lat.sort();
                after_ack.sort();
                in_proxy.sort();
                let (p50, p99) = (percentile_ms(&lat, 0.5), percentile_ms(&lat, 0.99));
                let _ = write!(detail, " {p50:.1}/{p99:.1}");
                p50s.push(p50);
                p99s.push(p99);
                ack_p50s.push(percentile_ms(&after_ack, 0.5));
                ack_p99s.push(percentile_ms(&after_ack, 0.99));
                proxy_p50s.push(percentile_ms(&in_proxy, 0.5));
                proxy_p99s.push(percentile_ms(&in_proxy, 0.99));
            }
            println!(
                "{:>10} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>13.2} {:>13.2} {:>15.3} {:>15.3}  {}",
                existing,
                median(p50s.clone()),
                median(p99s.clone()),
                p50s.iter().copied().fold(f64::INFINITY, f64::min),
                p99s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                median(ack_p50s),
                median(ack_p99s),
                median(proxy_p50s),
                median(proxy_p99s),
                detail
            );
        }
        proxy.abort();
        let _ = proxy.await;
        drop(reader);
        datapath::unpin(&pin)?;
        drop(cp);
        Ok(())
    })
}

/// Part `resync`: the full passes over `--resync-services` Services in the kernel maps, with
/// the agent's `Reconciler`: the periodic verify-and-repair pass (re-read every map, diff,
/// nothing to repair), a cold start (a new reconciler adopts every entry and prunes 1% of
/// stale ones a previous run left), and one incremental change for comparison.
fn resync(args: &Args, obj: &Path) -> Result<()> {
    ensure!(
        args.resync_services >= 2,
        "--resync-services must be at least 2"
    );
    ensure!(
        args.resync_rounds >= 1,
        "--resync-rounds must be at least 1"
    );
    let n = args.resync_services;
    let pin = pin_dir("resync");
    let mut dp = Datapath::load(ObjectSource::Path(obj), &pin).context("load")?;
    let (desired, _) = sluice_services(n);
    // Stale Services of a "previous run": 1% more, pruned by each cold start.
    let (with_stale, _) = sluice_services(n + n / 100);
    let mut reconciler = Reconciler::new();
    let started = Instant::now();
    reconciler.apply(&desired, &mut dp).context("program")?;
    let initial = started.elapsed();

    let mut verify = Vec::new();
    let mut cold = Vec::new();
    let mut incremental = Vec::new();
    let mut pruned = 0;
    for _ in 0..args.resync_rounds {
        let t = Instant::now();
        let stats = reconciler.apply(&desired, &mut dp).context("verify")?;
        verify.push(t.elapsed());
        ensure!(stats.is_empty(), "the verify pass repaired {stats}");

        // A previous run's leftovers, then a restart.
        let mut previous = Reconciler::new();
        previous.apply(&with_stale, &mut dp).context("stale")?;
        let mut restarted = Reconciler::new();
        let t = Instant::now();
        let stats = restarted.apply(&desired, &mut dp).context("cold start")?;
        cold.push(t.elapsed());
        pruned = stats.frontends_removed;

        // One Service changes (its backend moves), incrementally.
        let mut changed_state = desired.clone();
        let (frontend, spec) = changed_state
            .frontends
            .iter_mut()
            .next()
            .context("a frontend")?;
        let frontend = *frontend;
        spec.backends = vec![proxy::Backend {
            addr: Ipv4Addr::new(10, 203, 0, 1),
            port: 80,
        }];
        let changed = BTreeSet::from([frontend]);
        let t = Instant::now();
        restarted
            .apply_changes(&changed_state, &changed, &mut dp)
            .context("incremental")?;
        incremental.push(t.elapsed());
        restarted
            .apply_changes(&desired, &changed, &mut dp)
            .context("incremental back")?;
        reconciler = restarted;
    }
    println!(
        "full resync of {n} Services in the kernel maps (Reconciler, median of {} rounds): \
         verify-and-repair pass {:.1} ms (re-reads every map; nothing to repair), cold start \
         adopt/prune {:.1} ms (adopts {n}, prunes {pruned} stale); first programming {:.0} ms; \
         one changed Service, incremental: {:.3} ms",
        args.resync_rounds,
        median_ms(&verify),
        median_ms(&cold),
        initial.as_secs_f64() * 1e3,
        median_ms(&incremental),
    );
    drop(dp);
    datapath::unpin(&pin)?;
    Ok(())
}
