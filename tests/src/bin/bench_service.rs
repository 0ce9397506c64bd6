//! `cargo xtask bench service`: requests/s and p50/p99 latency to an HTTP backend in a test
//! network namespace, short-connection (a new TCP connection per request) and keep-alive,
//! measured in one run for:
//!   (a) the pod IP directly,
//!   (b) a ClusterIP answered by sluice's eBPF socket load balancer (1 and 10,000 services in
//!       the maps),
//!   (c) a ClusterIP answered by kube-proxy-shaped iptables rules (KUBE-SERVICES -> KUBE-SVC-*
//!       with `statistic` probabilities -> KUBE-SEP-* DNAT) with 10 and 10,000 services.
//! Each is printed as a ratio to (a). Then the time from a Service + EndpointSlice write in the
//! API to its entry in the eBPF map (p50/p99), with the real control plane and the proxy.
//! Traffic only goes to the namespace this benchmark creates. Numbers, not assertions.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use sluice_ebpf_common::{
    BackendKey, BackendValue, Be16, Be32, PROTO_TCP, RevNatKey, RevNatValue, ServiceKey,
};
use sluice_node_agent::datapath::{self, Datapath, DatapathOps, ObjectSource};

#[derive(Parser, Debug)]
struct Args {
    /// Serve HTTP on this address and exit when killed (used inside the backend namespace).
    #[arg(long)]
    serve: Option<String>,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 5)]
    duration: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Services installed for the "many services" variants.
    #[arg(long, default_value_t = 10_000)]
    many: u32,
    /// Samples for the API-write-to-map latency.
    #[arg(long, default_value_t = 100)]
    programming_samples: usize,
}

const NS: &str = "sluice-bench-be";
const HOST_IP: &str = "10.201.0.1";
const POD_IP: &str = "10.201.0.2";
const PORTS: [u16; 2] = [8080, 8081];
const SLUICE_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 100, 1);
const IPT_VIP: &str = "10.96.200.1";

/// A tiny HTTP/1.1 server: keep-alive unless the client says `Connection: close`.
fn serve(addr: &str) -> ! {
    let listener = TcpListener::bind(addr).expect("bind backend");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut s = stream;
            let _ = s.set_nodelay(true);
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = s.read(&mut chunk) else { return };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    buf.drain(..end + 4);
                    let close = head.contains("connection: close");
                    let resp: &[u8] = if close {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    };
                    if s.write_all(resp).is_err() || close {
                        return;
                    }
                }
            }
        });
    }
    std::process::exit(0)
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn sh_ok(cmd: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The backend namespace, its veth and two servers; removed on drop.
struct Backend {
    servers: Vec<std::process::Child>,
}

impl Backend {
    fn start() -> Self {
        sh_ok(&format!("ip netns del {NS}; ip link del sbench0"));
        sh(&format!(
            "ip netns add {NS} && ip link add sbench0 type veth peer name eth0 netns {NS} && \
             ip addr add {HOST_IP}/29 dev sbench0 && ip link set sbench0 up && \
             for a in 3 4 5 6; do ip addr add 10.201.0.$a/29 dev sbench0; done && \
             ip -n {NS} addr add {POD_IP}/29 dev eth0 && ip -n {NS} link set eth0 up && ip -n {NS} link set lo up"
        ));
        let me = std::env::current_exe().expect("self");
        let servers = PORTS
            .iter()
            .map(|p| {
                Command::new("ip")
                    .args(["netns", "exec", NS])
                    .arg(&me)
                    .args(["--serve", &format!("0.0.0.0:{p}")])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("backend server")
            })
            .collect();
        let b = Self { servers };
        let start = Instant::now();
        while std::net::TcpStream::connect((POD_IP, PORTS[1])).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "backend did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        sh_ok(&format!("ip netns del {NS}; ip link del sbench0"));
    }
}

/// A cgroup2 child the load generator runs in (the eBPF hooks attach here only).
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Self {
        let p = PathBuf::from(format!(
            "/sys/fs/cgroup/unified/sluice-bench-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("cgroup");
        Self(p)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
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
    num.parse::<f64>().unwrap_or(0.0) * mult
}

/// Run wrk inside `cg` against `url`.
fn wrk(cg: &Cgroup, url: &str, args: &Args, close: bool) -> Run {
    let header = if close { "-H 'Connection: close'" } else { "" };
    let cmd = format!(
        "echo $$ > {}/cgroup.procs && exec wrk -t2 -c{} -d{}s --latency {header} {url}",
        cg.0.display(),
        args.connections,
        args.duration
    );
    let out = sh(&cmd);
    let mut r = Run::default();
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("50%") {
            r.p50_ms = parse_latency(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            r.p99_ms = parse_latency(v);
        }
    }
    if out.contains("Socket errors") || out.contains("Non-2xx") {
        eprintln!("wrk reported errors for {url}:\n{out}");
    }
    r
}

/// kube-proxy's rule layout for `n` services; the measured one sits in the middle of KUBE-SERVICES.
fn iptables_rules(n: u32) -> String {
    let mut r = String::from("*nat\n:KUBE-SERVICES - [0:0]\n");
    let measured_at = n / 2;
    let mut chains = String::new();
    let mut rules = String::new();
    for i in 0..n {
        let (vip, eps): (String, Vec<String>) = if i == measured_at {
            (
                IPT_VIP.to_string(),
                PORTS.iter().map(|p| format!("{POD_IP}:{p}")).collect(),
            )
        } else {
            (
                format!("10.{}.{}.{}", 98 + i / 65_536, (i / 256) % 256, i % 256),
                vec![format!("10.202.{}.{}:80", (i / 256) % 256, i % 256)],
            )
        };
        let svc = format!("KUBE-SVC-{i:012}");
        chains.push_str(&format!(":{svc} - [0:0]\n"));
        rules.push_str(&format!("-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment \"bench/svc-{i}:http cluster IP\" -m tcp --dport 80 -j {svc}\n"));
        let k = eps.len();
        for (j, ep) in eps.iter().enumerate() {
            let sep = format!("KUBE-SEP-{i:010}{j:02}");
            chains.push_str(&format!(":{sep} - [0:0]\n"));
            if j + 1 < k {
                let prob = 1.0 / (k - j) as f64;
                rules.push_str(&format!("-A {svc} -m comment --comment \"bench/svc-{i}:http -> {ep}\" -m statistic --mode random --probability {prob:.11} -j {sep}\n"));
            } else {
                rules.push_str(&format!(
                    "-A {svc} -m comment --comment \"bench/svc-{i}:http -> {ep}\" -j {sep}\n"
                ));
            }
            rules.push_str(&format!("-A {sep} -p tcp -m comment --comment \"bench/svc-{i}:http\" -m tcp -j DNAT --to-destination {ep}\n"));
        }
    }
    r.push_str(&chains);
    r.push_str(&rules);
    r.push_str("COMMIT\n");
    r
}

fn iptables_install(n: u32) -> Duration {
    iptables_remove();
    let rules = iptables_rules(n);
    let t = Instant::now();
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .spawn()
        .expect("iptables-restore");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rules.as_bytes())
        .expect("rules");
    assert!(
        child.wait().expect("iptables-restore").success(),
        "iptables-restore failed"
    );
    sh("iptables -t nat -I OUTPUT -m comment --comment sluice-bench -j KUBE-SERVICES");
    t.elapsed()
}

fn iptables_remove() {
    sh_ok("iptables -t nat -D OUTPUT -m comment --comment sluice-bench -j KUBE-SERVICES");
    // Flush and delete every chain this benchmark made (nft backend: one table listing).
    let chains: Vec<String> = Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("-N ").map(String::from))
                .filter(|c| c.starts_with("KUBE-"))
                .collect()
        })
        .unwrap_or_default();
    if chains.is_empty() {
        return;
    }
    let mut script = String::from("*nat\n");
    for c in &chains {
        script.push_str(&format!("-F {c}\n"));
    }
    for c in &chains {
        script.push_str(&format!("-X {c}\n"));
    }
    script.push_str("COMMIT\n");
    if let Ok(mut child) = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .spawn()
    {
        let _ = child
            .stdin
            .take()
            .map(|mut s| s.write_all(script.as_bytes()));
        let _ = child.wait();
    }
}

/// Removes the benchmark's iptables rules however the benchmark ends.
struct IptablesGuard;

impl Drop for IptablesGuard {
    fn drop(&mut self) {
        iptables_remove();
    }
}

fn program_sluice<D: DatapathOps + ?Sized>(dp: &mut D, many: u32) -> Duration {
    let t = Instant::now();
    for (i, p) in PORTS.iter().enumerate() {
        let id = u32::try_from(i).unwrap_or(0) + 1;
        dp.upsert_backend(
            BackendKey { id },
            BackendValue::new(
                Be32::from_ipv4(POD_IP.parse().expect("ip")),
                Be16::from_host(*p),
                PROTO_TCP,
            ),
        )
        .expect("backend");
    }
    dp.upsert_rev_nat(
        RevNatKey { id: 1, pad: [0; 2] },
        RevNatValue {
            vip: Be32::from_ipv4(SLUICE_VIP),
            port: Be16::from_host(80),
            pad: [0; 2],
        },
    )
    .expect("revnat");
    datapath::program_service(
        dp,
        ServiceKey::frontend(Be32::from_ipv4(SLUICE_VIP), Be16::from_host(80), PROTO_TCP),
        0,
        1,
        &[1, 2],
    )
    .expect("service");
    // The other services: one backend each, distinct VIPs (written directly: frontend + one slot).
    for i in 1..many {
        let vip = Be32::from_ipv4(Ipv4Addr::new(
            10,
            99,
            u8::try_from((i / 256) % 256).unwrap_or(0),
            u8::try_from(i % 256).unwrap_or(0),
        ));
        let rev = u16::try_from(i % 60_000 + 2).unwrap_or(2);
        let key = ServiceKey::frontend(vip, Be16::from_host(80), PROTO_TCP);
        dp.upsert_service(
            key.with_slot(1),
            sluice_ebpf_common::ServiceValue::backend_slot(1, rev),
        )
        .expect("slot");
        dp.upsert_service(key, sluice_ebpf_common::ServiceValue::frontend(1, 0, rev))
            .expect("frontend");
    }
    t.elapsed()
}

fn row(name: &str, r: Run, base: Run) {
    println!(
        "{name:<44} {:>10.0} {:>8.3} {:>8.3}   x{:<5.2} x{:<5.2} x{:<5.2}",
        r.rps,
        r.p50_ms,
        r.p99_ms,
        r.rps / base.rps.max(1.0),
        r.p50_ms / base.p50_ms.max(1e-6),
        r.p99_ms / base.p99_ms.max(1e-6)
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

fn main() {
    let args = Args::parse();
    if let Some(addr) = &args.serve {
        serve(addr);
    }
    let obj = object_path();
    assert!(
        obj.exists(),
        "{} is missing: run `cargo xtask build-ebpf`",
        obj.display()
    );
    let backend = Backend::start();
    // One cgroup per variant: the eBPF hooks attach only to the sluice one.
    let plain = Cgroup::new("plain");
    let cg = Cgroup::new("sluice");
    let direct_url = format!("http://{POD_IP}:{}/", PORTS[0]);
    let sluice_url = format!("http://{SLUICE_VIP}:80/");
    let ipt_url = format!("http://{IPT_VIP}:80/");

    println!(
        "service benchmark: wrk -t2 -c{} -d{}s, backend HTTP server in netns {NS}; ratios are to (a) direct",
        args.connections, args.duration
    );
    println!(
        "{:<44} {:>10} {:>8} {:>8}   {:<6} {:<6} {:<6}",
        "variant", "req/s", "p50 ms", "p99 ms", "req/s", "p50", "p99"
    );
    for (mode, close) in [("keep-alive", false), ("short connections", true)] {
        println!("-- {mode}");
        let base = wrk(&plain, &direct_url, &args, close);
        row("(a) direct pod IP", base, base);

        let pin = PathBuf::from(format!("/sys/fs/bpf/sluice/bench-{}", std::process::id()));
        let mut dp = Datapath::load(ObjectSource::Path(&obj), &pin).expect("load datapath");
        dp.attach_cgroup(&cg.0).expect("attach");
        program_sluice(&mut dp, 1);
        row(
            "(b) sluice eBPF ClusterIP, 1 service",
            wrk(&cg, &sluice_url, &args, close),
            base,
        );
        let took = program_sluice(&mut dp, args.many);
        row(
            &format!("(b) sluice eBPF ClusterIP, {} services", args.many),
            wrk(&cg, &sluice_url, &args, close),
            base,
        );
        if !close {
            println!(
                "   (programming {} services into the maps took {:.0} ms)",
                args.many,
                took.as_secs_f64() * 1e3
            );
        }
        dp.detach_cgroup(&cg.0).expect("detach");
        drop(dp);
        let _ = datapath::unpin(&pin);

        // The iptables VIP is routed into the backend veth, so the host picks the veth's
        // source address (the backend can answer) and nothing for it ever leaves the machine.
        let _rules = IptablesGuard;
        for (k, n) in [10, args.many].into_iter().enumerate() {
            // Each iptables run gets its own client address: the DNAT'd connections' reply
            // tuples must not collide with conntrack entries (TIME_WAIT, 120 s) that the direct
            // and sluice runs left for the same backend ports, or new SYNs are dropped and
            // retried after 1 s, which would measure the benchmark, not the datapath.
            let src = format!("10.201.0.{}", 3 + k + if close { 2 } else { 0 });
            sh(&format!(
                "ip route replace {IPT_VIP}/32 dev sbench0 src {src}"
            ));
            let took = iptables_install(n);
            row(
                &format!("(c) iptables kube-proxy layout, {n} services"),
                wrk(&cg, &ipt_url, &args, close),
                base,
            );
            if !close {
                println!(
                    "   (iptables-restore of {n} services took {:.0} ms)",
                    took.as_secs_f64() * 1e3
                );
            }
        }
        iptables_remove();
        // The baseline again, last: the spread between the two (a) rows is this machine's noise.
        row(
            "(a) direct pod IP, again",
            wrk(&plain, &direct_url, &args, close),
            base,
        );
    }
    drop(backend);
    programming_latency(&args, &obj);
}

/// Service + EndpointSlice written through the API -> entry visible in the pinned map.
fn programming_latency(args: &Args, obj: &Path) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let cp = sluice_tests::controlplane::ControlPlane::start(&["--no-controllers"]).await;
        let client = cp.client().await;
        let pin = PathBuf::from(format!("/sys/fs/bpf/sluice/bench-prog-{}", std::process::id()));
        let dp = Datapath::load(ObjectSource::Path(obj), &pin).expect("load");
        let reader = Datapath::load(ObjectSource::Path(obj), &pin).expect("second handle on the pinned maps");
        let proxy = tokio::spawn(sluice_node_agent::proxy::run(client.clone(), dp, sluice_node_agent::proxy::Options::default()));
        let svcs: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::namespaced(client.clone(), "default");
        let slices: kube::Api<k8s_openapi::api::discovery::v1::EndpointSlice> = kube::Api::namespaced(client.clone(), "default");
        let mut lat = Vec::new();
        for i in 0..args.programming_samples {
            let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("prog-{i}")}, "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": format!("prog-{i}")}}}))
            .expect("svc");
            let t = Instant::now();
            let created = svcs.create(&Default::default(), &svc).await.expect("create svc");
            let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("prog-{i}-x"), "labels": {"kubernetes.io/service-name": format!("prog-{i}")}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.9.9"], "conditions": {"ready": true}}]}))
            .expect("slice");
            slices.create(&Default::default(), &slice).await.expect("create slice");
            let vip: Ipv4Addr = created.spec.and_then(|s| s.cluster_ip).and_then(|ip| ip.parse().ok()).expect("cluster ip");
            let key = ServiceKey::frontend(Be32::from_ipv4(vip), Be16::from_host(80), PROTO_TCP);
            loop {
                let found = reader.services().expect("dump").into_iter().any(|(k, v)| k == key && v.count == 1);
                if found {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(30), "service {i} never reached the map");
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            lat.push(t.elapsed());
        }
        proxy.abort();
        drop(reader);
        let _ = datapath::unpin(&pin);
        lat.sort();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let at = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
        println!("API write (Service + EndpointSlice) -> eBPF map entry: n={} p50={:.1}ms p99={:.1}ms", lat.len(), at(0.5), at(0.99));
    });
}
