//! The live part: requests/s and packets/s from the client namespace to the `NodePort`
//! `10.77.0.1:30080` of the node namespace, answered by
//!
//! - `iptables`: kube-proxy's rules (`sluice_tests::iptables_rules`, `KUBE-` chains, node
//!   ports matched last from `KUBE-SERVICES`, masqueraded) in the node namespace;
//! - `tc`: `sluice-nodeport` (tc ingress + egress) on both node interfaces, the maps
//!   programmed by the agent's `ExtReconciler`;
//! - `xdp`: the same plus `sluice-nodeport-xdp` on both node interfaces.
//!
//! with N Services each (the measured one and N - 1 fillers whose endpoints are never
//! reached). The backend is on another "node" (`npb-backend`), so the flows are source-NATed
//! (`externalTrafficPolicy: Cluster`): by `MASQUERADE` to the node's address there, or by the
//! programs to the same address (`NodePortConfig::snat_addr` = 10.78.0.1) and forwarded
//! through the FIB (`NP_CFG_FIB_REDIRECT`). The backend's replies arrive on `npb-int`, not on
//! the external interface: that is why the eBPF variants attach to both interfaces (the
//! ingress program reverses the translation from its conntrack entry); on a one-NIC node,
//! both directions cross the one external interface.
//!
//! One variant is active at a time; rounds rotate the variants' order; medians over rounds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use sluice_ebpf_common::nodeport::{
    EXT_FLAG_NODEPORT, NODEPORT_TC_OBJECT, NODEPORT_XDP_OBJECT, NP_CFG_FIB_REDIRECT,
    NP_STAT_CT_CREATE, NP_STAT_DROP_CT, NP_STAT_DROP_NO_BACKEND, NP_STAT_DROP_REWRITE,
    NP_STAT_DROP_SNAT_EXHAUSTED, NP_STAT_FORWARD, NP_STAT_REPLY, NodePortConfig,
};
use sluice_ebpf_common::{Be32, PROTO_UDP};
use sluice_node_agent::datapath::{
    AttachMode, NodePortKind, NodePortMaps, NodePortObject, ObjectSource, links_dir,
};
use sluice_node_agent::proxy::{
    Backend, ExtBackend, ExtReconciler, ExtSpec, Frontend, Protocol, ServicePortName,
};
use sluice_tests::iptables_rules::{self, Layout, Protocol as IptProtocol, Service as IptService};

use super::topology::{self, Kind, NODE_EXT_IP, NODE_NS, PIN_DIR, Topology};
use super::traffic::{self, BACKEND_PORT, TcpRun, UdpRun};
use super::{Args, median_f64};

/// The measured service's node port (TCP and UDP).
const NODE_PORT: u16 = 30_080;
/// The i-th filler's node port: 20000 + i (below [`NODE_PORT`] for i < 10,080).
const FILLER_NODE_PORT_BASE: u16 = 20_000;
/// kube-proxy's layout in the node namespace of its own: its real chain names and hooks.
const LAYOUT: Layout<'static> = Layout {
    prefix: "KUBE-",
    masquerade: true,
    hook: true,
};

/// A way of answering the `NodePort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Variant {
    Iptables,
    Tc,
    Xdp,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Tc => "tc",
            Self::Xdp => "xdp",
        }
    }
}

/// The Services of one N, in both forms.
struct Services {
    n: u32,
    iptables: String,
    desired: BTreeMap<Frontend, ExtSpec>,
    /// Service ports (N TCP, plus the measured service's UDP port).
    ports: usize,
}

fn filler_cluster_ip(i: u32) -> Ipv4Addr {
    let [_, _, b, c] = (i + 1).to_be_bytes();
    Ipv4Addr::new(10, 96, b, c)
}

fn filler_endpoint(i: u32) -> SocketAddrV4 {
    let [_, _, b, c] = i.to_be_bytes();
    SocketAddrV4::new(Ipv4Addr::new(10, 79, b, c), BACKEND_PORT)
}

impl Services {
    /// N Services; the measured one (in the middle of the rule order) has a TCP and a UDP
    /// port on [`NODE_PORT`] with the backend as its endpoint, the others one TCP port each.
    fn new(n: u32, kind: Kind) -> Result<Self> {
        ensure!(
            (1..=10_000).contains(&n),
            "--services: 1 to 10000 per set (node ports {FILLER_NODE_PORT_BASE}..)"
        );
        let measured = n / 2;
        let backend = SocketAddrV4::new(kind.backend_ip(), BACKEND_PORT);
        let mut ports = Vec::new();
        for i in 0..n {
            let name = format!("bench/svc-{i}");
            if i == measured {
                for protocol in [IptProtocol::Tcp, IptProtocol::Udp] {
                    ports.push(IptService {
                        name: format!("{name}:{}", protocol.name()),
                        cluster_ip: filler_cluster_ip(i),
                        port: 80,
                        protocol,
                        node_port: Some(NODE_PORT),
                        endpoints: vec![backend],
                    });
                }
            } else {
                ports.push(IptService {
                    name: format!("{name}:tcp"),
                    cluster_ip: filler_cluster_ip(i),
                    port: 80,
                    protocol: IptProtocol::Tcp,
                    node_port: Some(FILLER_NODE_PORT_BASE + u16::try_from(i)?),
                    endpoints: vec![filler_endpoint(i)],
                });
            }
        }
        let desired = ports
            .iter()
            .map(|svc| {
                let protocol = match svc.protocol {
                    IptProtocol::Tcp => Protocol::Tcp,
                    IptProtocol::Udp => Protocol::Udp,
                };
                let (name, port) = svc.name.split_once(':').unwrap_or((&svc.name, ""));
                let (namespace, name) = name.split_once('/').unwrap_or(("bench", name));
                let frontend = Frontend {
                    vip: Ipv4Addr::UNSPECIFIED,
                    port: svc.node_port.unwrap_or_default(),
                    protocol,
                };
                let spec = ExtSpec {
                    service: ServicePortName {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        port: port.to_owned(),
                    },
                    flags: EXT_FLAG_NODEPORT,
                    affinity_timeout_s: 0,
                    source_ranges: Vec::new(),
                    // On another node: the programs source-NAT and route.
                    backends: svc
                        .endpoints
                        .iter()
                        .map(|ep| ExtBackend {
                            backend: Backend {
                                addr: *ep.ip(),
                                port: ep.port(),
                            },
                            local: false,
                        })
                        .collect(),
                    draining: Vec::new(),
                };
                (frontend, spec)
            })
            .collect();
        Ok(Self {
            n,
            iptables: LAYOUT.script(&ports),
            desired,
            ports: ports.len(),
        })
    }
}

/// What an activation set up and verified, for the report.
struct Active {
    /// How long programming the N Services took.
    programmed: Duration,
    /// What was verified to be installed.
    verified: String,
    /// The eBPF maps (tc, xdp), to read counters after the runs.
    maps: Option<NodePortMaps>,
    /// Native-XDP counters of the node's interfaces before the runs.
    xdp_before: Option<Vec<(u64, u64)>>,
}

fn object_dir() -> std::path::PathBuf {
    super::object_dir()
}

/// Installs `variant` with `services` and checks what is installed.
fn activate(kind: Kind, variant: Variant, services: &Services, maglev: bool) -> Result<Active> {
    match variant {
        Variant::Iptables => {
            let started = Instant::now();
            iptables_rules::restore(
                &mut topology::ns_command(NODE_NS, "iptables-restore"),
                &services.iptables,
            )?;
            let programmed = started.elapsed();
            let listing =
                topology::run(topology::ns_command(NODE_NS, "iptables").args(["-t", "nat", "-S"]))?;
            let chains = listing
                .lines()
                .filter(|l| l.starts_with("-N KUBE-SVC-"))
                .count();
            let nodeports = listing
                .lines()
                .filter(|l| l.starts_with("-A KUBE-NODEPORTS "))
                .count();
            ensure!(
                chains == services.ports && nodeports == services.ports,
                "iptables holds {chains} KUBE-SVC chains and {nodeports} KUBE-NODEPORTS rules, \
                 not {}",
                services.ports
            );
            Ok(Active {
                programmed,
                verified: format!("{chains} KUBE-SVC-* chains, {nodeports} KUBE-NODEPORTS rules"),
                maps: None,
                xdp_before: None,
            })
        }
        Variant::Tc | Variant::Xdp => {
            let pins = Path::new(PIN_DIR);
            let dir = object_dir();
            let mut objects = vec![(NodePortKind::Tc, NODEPORT_TC_OBJECT)];
            if variant == Variant::Xdp {
                objects.push((NodePortKind::Xdp, NODEPORT_XDP_OBJECT));
            }
            // Attaching resolves interface names in the calling thread's namespace.
            let modes = topology::in_ns(NODE_NS, || {
                let mut modes = Vec::new();
                for (object_kind, name) in &objects {
                    let path = dir.join(name);
                    let mut object =
                        NodePortObject::load(ObjectSource::Path(&path), *object_kind, pins)
                            .with_context(|| format!("loading {}", path.display()))?;
                    for iface in kind.node_ifaces() {
                        for hook in object
                            .attach(iface, &links_dir(pins))
                            .with_context(|| format!("attaching {name} to {iface}"))?
                        {
                            modes.push((hook.program, *iface, hook.mode));
                        }
                    }
                }
                Ok(modes)
            })?;
            let mut maps = NodePortMaps::open(pins).context("open the north-south maps")?;
            let config = NodePortConfig {
                snat_addr: Be32::from_ipv4(kind.snat_ip()),
                snat_port_min: 32_768,
                snat_port_max: 65_535,
                flags: NP_CFG_FIB_REDIRECT,
            };
            let mut reconciler = ExtReconciler::new(vec![NODE_EXT_IP], config, maglev);
            let started = Instant::now();
            reconciler
                .apply(&services.desired, &mut maps)
                .context("program the north-south maps (ExtReconciler::apply)")?;
            let programmed = started.elapsed();
            let entries = maps.services()?;
            let frontends = entries
                .iter()
                .filter(|(k, v)| k.slot == 0 && k.vip.raw() == 0 && v.count > 0)
                .count();
            let udp = entries
                .iter()
                .filter(|(k, _)| k.slot == 0 && k.proto == PROTO_UDP)
                .count();
            let node_ips = maps.node_ips()?;
            ensure!(
                frontends == services.ports,
                "the maps hold {frontends} NodePort frontends, not {}",
                services.ports
            );
            ensure!(
                node_ips
                    .iter()
                    .any(|k| k.addr == Be32::from_ipv4(NODE_EXT_IP)),
                "{NODE_EXT_IP} is not in the node-ips map"
            );
            let mut verified = format!(
                "{frontends} NodePort frontends in the maps ({} TCP, {udp} UDP), node IPs {:?}; hooks:",
                frontends - udp,
                node_ips
                    .iter()
                    .map(|k| k.addr.to_ipv4())
                    .collect::<Vec<_>>()
            );
            for (program, iface, mode) in &modes {
                let _ = write!(verified, " {program}@{iface} {mode:?}");
            }
            let xdp_native = modes.iter().any(|m| m.2 == AttachMode::XdpNative);
            Ok(Active {
                programmed,
                verified,
                maps: Some(maps),
                xdp_before: if xdp_native {
                    xdp_counters(kind).ok()
                } else {
                    None
                },
            })
        }
    }
}

/// Removes whatever variant is active.
fn deactivate() -> Result<()> {
    topology::remove_ebpf()?;
    for flag in ["-F", "-X"] {
        topology::run(topology::ns_command(NODE_NS, "iptables").args(["-t", "nat", flag]))?;
    }
    Ok(())
}

/// The veth driver's native-XDP counters of the node's interfaces: frames the programs
/// saw and frames they redirected (`rx_queue_*_xdp_packets`, `rx_queue_*_xdp_redirect`).
fn xdp_counters(kind: Kind) -> Result<Vec<(u64, u64)>> {
    let count = |iface: &str| -> Result<(u64, u64)> {
        let stats = topology::run(topology::ns_command(NODE_NS, "ethtool").args(["-S", iface]))?;
        let sum = |suffix: &str| -> u64 {
            stats
                .lines()
                .filter_map(|l| l.trim().split_once(':'))
                .filter(|(k, _)| k.starts_with("rx_queue_") && k.ends_with(suffix))
                .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
                .sum()
        };
        Ok((sum("_xdp_packets"), sum("_xdp_redirect")))
    };
    kind.node_ifaces().iter().map(|i| count(i)).collect()
}

/// One measurement of one variant at one N.
struct Sample {
    tcp: TcpRun,
    udp: UdpRun,
}

#[derive(Default)]
struct Cell {
    samples: Vec<Sample>,
    programmed: Vec<Duration>,
    /// Why the variant could not be measured, when it could not.
    broken: Option<String>,
    notes: Vec<String>,
}

pub fn run(args: &Args) -> Result<()> {
    ensure!(
        args.rounds >= 1 && args.seconds >= 1,
        "--rounds and --seconds must be at least 1"
    );
    let kinds: Vec<Kind> = if args.topology.is_empty() {
        vec![Kind::Routed, Kind::OneNic]
    } else {
        args.topology.clone()
    };
    sluice_tests::cleanup_on_signal(topology::cleanup)?;
    for kind in kinds {
        run_topology(args, kind)?;
    }
    Ok(())
}

fn run_topology(args: &Args, kind: Kind) -> Result<()> {
    let variants: Vec<Variant> = if args.variants.is_empty() {
        vec![Variant::Iptables, Variant::Tc, Variant::Xdp]
    } else {
        args.variants.clone()
    };
    let sets: Vec<Services> = args
        .services
        .iter()
        .map(|n| Services::new(*n, kind))
        .collect::<Result<_>>()?;
    let target = SocketAddr::from((NODE_EXT_IP, NODE_PORT));
    let duration = Duration::from_secs(args.seconds);
    let backend_ip = kind.backend_ip();

    let _topology = Topology::new(kind).context("build the namespaces")?;
    let _backend = traffic::Backend::start()?;
    // The backend itself, from the node namespace (no variant involved).
    topology::in_ns(NODE_NS, || {
        traffic::tcp_request(SocketAddr::from((backend_ip, BACKEND_PORT)))
            .context("the backend does not answer from the node namespace")
    })?;

    println!(
        "\nbench nodeport (live, {} topology): {} rounds x {} s per run; {} -> NodePort {target} in {NODE_NS} -> \
         backend {backend_ip}:{BACKEND_PORT} in {} (another node: source-NATed to {}); \
         TCP: {} client threads, a new connection per request; UDP: {} flows x {} in flight (echo)",
        kind.name(),
        args.rounds,
        args.seconds,
        topology::CLIENT_NS,
        topology::BACKEND_NS,
        kind.snat_ip(),
        args.tcp_clients,
        args.udp_flows,
        args.udp_window,
    );
    let mut cells: BTreeMap<(u32, Variant), Cell> = BTreeMap::new();
    for round in 0..args.rounds {
        for set in &sets {
            let k = variants.len();
            for i in 0..k {
                let variant = variants[(i + round) % k];
                let cell = cells.entry((set.n, variant)).or_default();
                if cell.broken.is_some() {
                    continue;
                }
                let result = measure(kind, variant, set, args, target, duration, round == 0, cell);
                deactivate().context("remove the variant")?;
                if let Err(e) = result {
                    eprintln!(
                        "[bench] {} with {} services does not work: {e:#}",
                        variant.name(),
                        set.n
                    );
                    cell.broken = Some(format!("{e:#}"));
                }
            }
        }
        println!("[bench] round {} of {} done", round + 1, args.rounds);
    }
    report(kind, &cells, &sets, &variants, args);
    Ok(())
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site, all of them plain inputs"
)]
fn measure(
    kind: Kind,
    variant: Variant,
    set: &Services,
    args: &Args,
    target: SocketAddr,
    duration: Duration,
    first: bool,
    cell: &mut Cell,
) -> Result<()> {
    let active = activate(kind, variant, set, args.maglev)?;
    if first {
        println!(
            "[bench] {} with {} services: programmed in {:.0} ms; verified {}",
            variant.name(),
            set.n,
            active.programmed.as_secs_f64() * 1e3,
            active.verified
        );
    }
    cell.programmed.push(active.programmed);
    traffic::probe(target, Duration::from_secs(3)).context("single request before measuring")?;
    // Warm-up, not recorded.
    traffic::tcp_load(target, args.tcp_clients, Duration::from_millis(500))?;
    let stats_before = match &active.maps {
        Some(maps) => Some(maps.stats()?),
        None => None,
    };
    let tcp = traffic::tcp_load(target, args.tcp_clients, duration)?;
    let udp = traffic::udp_load(target, args.udp_flows, args.udp_window, duration)?;
    if let (Some(maps), Some(before)) = (&active.maps, stats_before) {
        let after = maps.stats()?;
        let d = |i: u32| after[i as usize].saturating_sub(before[i as usize]);
        let drops = [
            ("no backend", NP_STAT_DROP_NO_BACKEND),
            ("SNAT exhausted", NP_STAT_DROP_SNAT_EXHAUSTED),
            ("conntrack", NP_STAT_DROP_CT),
            ("rewrite", NP_STAT_DROP_REWRITE),
        ]
        .into_iter()
        .filter(|(_, i)| d(*i) > 0)
        .map(|(what, i)| format!("{what} {}", d(i)))
        .collect::<Vec<_>>();
        let mut note = format!(
            "round {}: forwarded {}, replies {}, new flows {}",
            cell.samples.len() + 1,
            d(NP_STAT_FORWARD),
            d(NP_STAT_REPLY),
            d(NP_STAT_CT_CREATE)
        );
        if !drops.is_empty() {
            let _ = write!(note, ", drops: {}", drops.join(", "));
        }
        if let Some(before) = active.xdp_before
            && let Ok(after) = xdp_counters(kind)
        {
            for (iface, (b, a)) in kind.node_ifaces().iter().zip(before.iter().zip(after)) {
                let _ = write!(
                    note,
                    "; native XDP on {iface}: {} frames, {} redirected",
                    a.0 - b.0,
                    a.1 - b.1
                );
            }
        }
        cell.notes.push(note);
    }
    cell.samples.push(Sample { tcp, udp });
    Ok(())
}

fn report(
    kind: Kind,
    cells: &BTreeMap<(u32, Variant), Cell>,
    sets: &[Services],
    variants: &[Variant],
    args: &Args,
) {
    println!(
        "\n{} topology: medians over {} rounds of {} s; ratio = variant / iptables at the same N (same run); \
         failed = failed TCP requests, lost = UDP datagrams given up, both summed over rounds; \
         pkt/s = UDP packets through the node (request + echo)",
        kind.name(),
        args.rounds,
        args.seconds
    );
    println!(
        "{:<9} {:>8} {:>10} {:>7} {:>7} {:>11} {:>7} {:>7} {:>9}",
        "variant", "services", "req/s", "ratio", "failed", "pkt/s", "ratio", "lost", "prog ms"
    );
    for set in sets {
        let base = cells
            .get(&(set.n, Variant::Iptables))
            .and_then(|c| (!c.samples.is_empty()).then(|| medians(c)));
        for variant in variants {
            let Some(cell) = cells.get(&(set.n, *variant)) else {
                continue;
            };
            if cell.samples.is_empty() {
                println!(
                    "{:<9} {:>8} did not work: {}",
                    variant.name(),
                    set.n,
                    cell.broken.as_deref().unwrap_or("no samples")
                );
                continue;
            }
            let (rps, pps) = medians(cell);
            let ratio =
                |v: f64, b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.2}", v / b));
            let failed: u64 = cell.samples.iter().map(|s| s.tcp.failed).sum();
            let lost: u64 = cell.samples.iter().map(|s| s.udp.lost).sum();
            let prog = median_f64(
                cell.programmed
                    .iter()
                    .map(|d| d.as_secs_f64() * 1e3)
                    .collect(),
            );
            println!(
                "{:<9} {:>8} {:>10.0} {:>7} {:>7} {:>11.0} {:>7} {:>7} {:>9.0}",
                variant.name(),
                set.n,
                rps,
                ratio(rps, base.map(|b| b.0)),
                failed,
                pps,
                ratio(pps, base.map(|b| b.1)),
                lost,
                prog
            );
            if let Some(broken) = &cell.broken {
                println!("          (stopped after a failure: {broken})");
            }
        }
    }
    let mut first_errors = Vec::new();
    for ((n, variant), cell) in cells {
        if let Some(e) = cell.samples.iter().find_map(|s| s.tcp.first_error.clone()) {
            first_errors.push(format!("  {} N={n}: {e}", variant.name()));
        }
    }
    if !first_errors.is_empty() {
        println!("first TCP failure per cell:\n{}", first_errors.join("\n"));
    }
    println!("eBPF counters per run (deltas over the TCP + UDP runs):");
    for ((n, variant), cell) in cells {
        for note in &cell.notes {
            println!("  {} N={n} {note}", variant.name());
        }
    }
}

fn medians(cell: &Cell) -> (f64, f64) {
    (
        median_f64(cell.samples.iter().map(|s| s.tcp.rps()).collect()),
        median_f64(cell.samples.iter().map(|s| s.udp.pps()).collect()),
    )
}
