//! `sluice-node-agent`: the kubelet and the eBPF service proxy (cluster IPs at the socket
//! layer; `NodePort`, `externalIPs` and `LoadBalancer` IPs at tc/XDP) for one node.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sluice_node_agent::datapath::{
    self, Datapath, NodePortKind, NodePortMaps, NodePortObject, ObjectSource,
};
use sluice_node_agent::kubelet::{self, Config};
use sluice_node_agent::{dns, healthcheck, lbaddr, proxy, routes};

/// sluice node agent: registers this node and runs its pods on containerd over CRI.
// Without a subcommand it runs the agent (exactly as before subcommands existed); `lb list`
// inspects this node's load-balancer maps.
#[derive(Debug, Parser)]
#[command(version, subcommand_negates_reqs = true)]
struct Cli {
    /// Inspection commands (the agent runs when none is given).
    #[command(subcommand)]
    command: Option<Command>,
    /// Node name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Node `InternalIP` (default: the first global IPv4 address).
    #[arg(long)]
    node_ip: Option<String>,
    /// kubeconfig for the API server.
    #[arg(long, env = "KUBECONFIG", required = true)]
    kubeconfig: Option<PathBuf>,
    /// containerd's CRI socket.
    #[arg(long, default_value = sluice_proto::CONTAINERD_SOCKET)]
    cri_socket: PathBuf,
    /// Where to write the CNI conflist (containerd's CNI `conf_dir`).
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// Where containerd finds CNI plugins (informational; containerd's config decides).
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// The CNI plugin's IPAM state directory (default: <state-dir>/cni).
    #[arg(long)]
    cni_data_dir: Option<PathBuf>,
    /// Kubelet state: pod logs and more.
    #[arg(long, default_value = "/var/lib/sluice/node")]
    state_dir: PathBuf,
    /// The eBPF object built by `cargo xtask build-ebpf` (the socket load balancer).
    #[arg(long, env = "SLUICE_BPF_OBJ", default_value = "target/bpf/sluice-sock")]
    bpf_object: PathBuf,
    /// Where the maps and links are pinned (default: /sys/fs/bpf/sluice/<node>).
    #[arg(long)]
    bpf_pin_dir: Option<PathBuf>,
    /// The cgroup2 directory whose sockets (and all below it) get the Service hooks.
    #[arg(long, default_value = datapath::DEFAULT_CGROUP_ROOT)]
    cgroup_root: PathBuf,
    /// The cgroup (a path from the hierarchy's root) under which this node's pods are
    /// created, as `<pods-cgroup>/kubepods/...` (upstream's `--cgroup-root`). Nodes sharing
    /// a machine each get their own, with `--cgroup-root` pointing at it in cgroup2.
    #[arg(long, default_value = "")]
    pods_cgroup: String,
    /// The cluster's Service range (routed nowhere on the node, so untranslated `ClusterIPs` fail fast).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// The kubelet HTTP server's port (container logs, pods), served on the node IP.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Rotate a container's log file when it reaches this size (upstream's
    /// `containerLogMaxSize`; a quantity such as `10Mi`).
    #[arg(long, default_value = "10Mi", value_parser = sluice_node_agent::kubelet::rotation::parse_size)]
    container_log_max_size: u64,
    /// Log files kept per container, the current one included (upstream's
    /// `containerLogMaxFiles`).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..))]
    container_log_max_files: u16,
    /// The cluster DNS Service address pods resolve through (`none`: pods get the host's
    /// resolv.conf). This agent answers it itself, on the node IP.
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: String,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Where cluster DNS forwards names outside the cluster (`ip` or `ip:port`, port 53 by
    /// default; repeat the flag, comma-separate in the env). Default: the node's
    /// /etc/resolv.conf nameservers.
    #[arg(long, env = "SLUICE_DNS_UPSTREAM", value_delimiter = ',', value_parser = dns::parse_upstream)]
    dns_upstream: Vec<std::net::SocketAddr>,
    /// How pod traffic reaches other nodes: `none` (native routing: their podCIDRs via their
    /// `InternalIP`s) or `vxlan` (an overlay; pods get the uplink's MTU less 50).
    #[arg(long, value_enum, default_value_t = routes::Tunnel::None)]
    tunnel: routes::Tunnel,
    /// Run without the eBPF service proxy.
    #[arg(long)]
    no_service_proxy: bool,
    /// The interface where `NodePort`, `externalIPs` and `LoadBalancer` traffic arrives:
    /// the north-south programs attach there (tc ingress and egress). `auto`: the one
    /// holding the node IP; `none`: no north-south service handling.
    #[arg(long, default_value = "auto")]
    external_iface: String,
    /// Also attach the XDP fast path to the external interface (native mode where the
    /// driver allows it, generic otherwise); tc stays attached for what XDP passes.
    #[arg(long)]
    xdp: bool,
    /// The ports source-NATed north-south flows to backends on other nodes get on the
    /// node IP (`min-max`).
    #[arg(long, default_value = "32768-65535", value_parser = parse_port_range)]
    snat_ports: (u16, u16),
    /// Choose north-south backends by consistent (Maglev) hashing, so every node sends a
    /// flow to the same backend and removing one of N backends moves about 1/N of flows;
    /// `false`: the flow hash modulo the backend count.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    maglev: bool,
}

fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (min, max) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not min-max"))?;
    let min: u16 = min.parse().map_err(|e| format!("{min:?}: {e}"))?;
    let max: u16 = max.parse().map_err(|e| format!("{max:?}: {e}"))?;
    if min == 0 || max < min {
        return Err(format!("{text:?}: need 1 <= min <= max"));
    }
    Ok((min, max))
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The eBPF load balancer's maps.
    Lb {
        #[command(subcommand)]
        command: LbCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum LbCommand {
    /// Print every frontend with its backends, the reverse-NAT entries and the socket
    /// reverse-NAT entries, from the pinned maps (like `cilium bpf lb list`).
    List {
        /// Node name, for the default pin directory (default: the host name).
        #[arg(long)]
        node_name: Option<String>,
        /// Where the maps are pinned (default: /sys/fs/bpf/sluice/<node>).
        #[arg(long)]
        bpf_pin_dir: Option<PathBuf>,
    },
}

fn host_name() -> anyhow::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("reading the host name")?
        .trim()
        .to_lowercase())
}

/// `lb list`: reads the pinned maps and prints them.
fn lb_list(node_name: Option<String>, bpf_pin_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let pin_dir = match bpf_pin_dir {
        Some(dir) => dir,
        None => datapath::default_pin_dir(&match node_name {
            Some(n) => n,
            None => host_name()?,
        }),
    };
    let maps = sluice_node_agent::lbctl::read(&pin_dir)?;
    print!("{}", sluice_node_agent::lbctl::render(&maps));
    Ok(())
}

/// Loads and attaches the north-south programs on `iface`, and starts what follows the
/// proxy's north-south state: the announced `LoadBalancer` IPs and the health checks.
/// The north-south flags.
struct NorthSouth<'a> {
    bpf_object: &'a std::path::Path,
    xdp: bool,
    snat_ports: (u16, u16),
    maglev: bool,
}

fn north_south(
    cli: &NorthSouth<'_>,
    pin_dir: &std::path::Path,
    iface: &str,
    node_name: &str,
    node_addr: std::net::Ipv4Addr,
) -> anyhow::Result<(
    proxy::External,
    Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
)> {
    use sluice_ebpf_common::nodeport::{
        NODEPORT_TC_OBJECT, NODEPORT_XDP_OBJECT, NP_CFG_FIB_REDIRECT, NodePortConfig,
    };
    let dir = cli
        .bpf_object
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    let links_dir = datapath::links_dir(pin_dir);
    let mut kinds = vec![(NodePortKind::Tc, NODEPORT_TC_OBJECT)];
    if cli.xdp {
        kinds.push((NodePortKind::Xdp, NODEPORT_XDP_OBJECT));
    } else {
        // A previous run's XDP hook goes when XDP is no longer asked for.
        datapath::detach_nodeport_program(
            &links_dir,
            iface,
            sluice_ebpf_common::nodeport::NP_XDP_PROGRAM,
        )
        .context("detaching a previous XDP hook")?;
    }
    for (kind, name) in kinds {
        let path = dir.join(name);
        let mut object = NodePortObject::load(ObjectSource::Path(&path), kind, pin_dir)
            .with_context(|| {
                format!(
                    "loading {} (build it with `cargo xtask build-ebpf`)",
                    path.display()
                )
            })?;
        let hooks = object
            .attach(iface, &links_dir)
            .with_context(|| format!("attaching {name} to {iface}"))?;
        for hook in hooks {
            tracing::info!(program = hook.program, iface, mode = ?hook.mode, "north-south program attached");
        }
    }
    let maps = NodePortMaps::open(pin_dir).context("opening the north-south maps")?;
    let config = NodePortConfig {
        snat_addr: sluice_ebpf_common::Be32::from_ipv4(node_addr),
        snat_port_min: cli.snat_ports.0,
        snat_port_max: cli.snat_ports.1,
        flags: NP_CFG_FIB_REDIRECT,
    };
    let (announce, announced) = tokio::sync::watch::channel(None);
    let (health, checks) = tokio::sync::watch::channel(None);
    let external = proxy::External {
        node_name: node_name.to_owned(),
        maps: Box::new(maps),
        reconciler: proxy::ExtReconciler::new(vec![node_addr], config, cli.maglev),
        announce,
        health,
    };
    let garp_iface = Some(iface.to_owned());
    let tasks = vec![
        tokio::spawn(async move {
            lbaddr::run(announced, garp_iface)
                .await
                .context("announcing LoadBalancer IPs")
        }),
        tokio::spawn(async move {
            healthcheck::run(std::net::Ipv4Addr::UNSPECIFIED, checks).await;
            Ok(())
        }),
    ];
    Ok((external, tasks))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_runtime=warn,kube_client=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if let Some(Command::Lb {
        command: LbCommand::List {
            node_name,
            bpf_pin_dir,
        },
    }) = cli.command
    {
        return lb_list(node_name, bpf_pin_dir);
    }
    let node_name = match cli.node_name {
        Some(n) => n,
        None => host_name()?,
    };
    let kubeconfig_path = cli
        .kubeconfig
        .context("--kubeconfig (or KUBECONFIG) is required")?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_path)
        .with_context(|| format!("reading {}", kubeconfig_path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    // The kubelet server answers only the API server (and this host).
    let api_server_ips: Vec<std::net::IpAddr> = {
        let host = config
            .cluster_url
            .host()
            .unwrap_or("127.0.0.1")
            .trim_matches(['[', ']']);
        let port = config.cluster_url.port_u16().unwrap_or(443);
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default()
    };
    let client = kube::Client::try_from(config)?;
    let node_ip = cli
        .node_ip
        .clone()
        .unwrap_or_else(kubelet::node::default_node_ip);
    let node_addr: std::net::Ipv4Addr = node_ip
        .parse()
        .with_context(|| format!("node IP {node_ip:?} is not an IPv4 address"))?;
    let cluster_dns = (cli.cluster_dns != "none").then(|| kubelet::spec::ClusterDns {
        server: cli.cluster_dns.clone(),
        domain: cli.cluster_domain.clone(),
    });
    // Node-local cluster DNS: answered here on the node IP; the proxy sends the kube-dns VIP
    // to it, so a lookup never leaves the node.
    let dns_task = match &cluster_dns {
        Some(c) if !cli.no_service_proxy => {
            let upstream = if cli.dns_upstream.is_empty() {
                dns::read_resolv_conf(std::path::Path::new("/etc/resolv.conf")).unwrap_or_default()
            } else {
                cli.dns_upstream.clone()
            };
            let mut config = dns::Config::new(
                vec![std::net::SocketAddr::new(node_addr.into(), 53)],
                upstream,
            );
            config.cluster_domain.clone_from(&c.domain);
            Some(tokio::spawn(dns::run(client.clone(), config)))
        }
        _ => None,
    };
    // The service proxy: load (reusing pinned maps and links), attach, then reconcile.
    let mut north_south_tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = Vec::new();
    let proxy_task = if cli.no_service_proxy {
        None
    } else {
        let pin_dir = cli
            .bpf_pin_dir
            .clone()
            .unwrap_or_else(|| datapath::default_pin_dir(&node_name));
        let mut dp =
            Datapath::load(ObjectSource::Path(&cli.bpf_object), &pin_dir).with_context(|| {
                format!(
                    "loading {} (build it with `cargo xtask build-ebpf`)",
                    cli.bpf_object.display()
                )
            })?;
        // A node's own cgroup subtree may not exist before its first pod.
        std::fs::create_dir_all(&cli.cgroup_root)
            .with_context(|| format!("creating {}", cli.cgroup_root.display()))?;
        dp.attach_cgroup(&cli.cgroup_root)
            .with_context(|| format!("attaching to {}", cli.cgroup_root.display()))?;
        tracing::info!(pin_dir = %pin_dir.display(), cgroup = %cli.cgroup_root.display(), "eBPF service proxy attached");
        let mut options = proxy::Options::default();
        options.node_name = Some(node_name.clone());
        if cli.external_iface != "none" {
            let iface = if cli.external_iface == "auto" {
                routes::uplink_name(node_addr)
                    .await
                    .context("finding the interface of the node IP")?
            } else {
                cli.external_iface.clone()
            };
            let (external, tasks) = north_south(
                &NorthSouth {
                    bpf_object: &cli.bpf_object,
                    xdp: cli.xdp,
                    snat_ports: cli.snat_ports,
                    maglev: cli.maglev,
                },
                &pin_dir,
                &iface,
                &node_name,
                node_addr,
            )?;
            options.external = Some(external);
            north_south_tasks = tasks;
        }
        // This node's pods: `<pods-cgroup>/kubepods` (every kubelet cgroup parent lies below).
        options.pods_cgroup = Some(kubelet::spec::nest_cgroup(&cli.pods_cgroup, "/kubepods"));
        if dns_task.is_some() {
            options
                .node_local
                .push(("kube-system".into(), "kube-dns".into(), node_addr));
        }
        Some(tokio::spawn(proxy::run(client.clone(), dp, options)))
    };
    // Pods fit the overlay without fragmenting; natively they keep the plugin's default.
    let overlay_mtu = match cli.tunnel {
        routes::Tunnel::None => None,
        routes::Tunnel::Vxlan => Some(
            routes::pod_mtu(cli.tunnel, node_addr)
                .await
                .context("reading the uplink's MTU")?,
        ),
    };
    let cfg = Config {
        node_ip,
        node_name,
        cri_socket: cli.cri_socket,
        cni_conf_dir: cli.cni_conf_dir,
        cni_data_dir: cli
            .cni_data_dir
            .unwrap_or_else(|| cli.state_dir.join("cni")),
        state_dir: cli.state_dir,
        dns: kubelet::host_dns(),
        cluster_dns,
        service_cidr: Some(cli.service_cidr.clone()),
        kubelet_port: cli.kubelet_port,
        api_server_ips,
        cgroup_root: cli.pods_cgroup.clone(),
        pod_mtu: overlay_mtu,
        log_rotation: sluice_node_agent::kubelet::rotation::Policy {
            max_size: cli.container_log_max_size,
            max_files: usize::from(cli.container_log_max_files),
        },
    };
    tracing::info!(bin_dir = %cli.cni_bin_dir.display(), "starting node agent");
    let proxy = async {
        match proxy_task {
            Some(t) => match t.await {
                Ok(r) => r.context("service proxy stopped"),
                Err(e) => Err(anyhow::anyhow!("service proxy task failed: {e}")),
            },
            None => std::future::pending().await,
        }
    };
    let dns = async {
        match dns_task {
            Some(t) => match t.await {
                Ok(r) => r.context("cluster DNS stopped"),
                Err(e) => Err(anyhow::anyhow!("cluster DNS task failed: {e}")),
            },
            None => std::future::pending().await,
        }
    };
    // Routes to the other nodes' pod ranges (native routing).
    let routes = {
        let options = routes::Options {
            node_ip: node_addr,
            tunnel: cli.tunnel,
            mtu: overlay_mtu.unwrap_or(1500),
        };
        let task = tokio::spawn(routes::run(client.clone(), cfg.node_name.clone(), options));
        async move {
            match task.await {
                Ok(r) => r.context("pod routes stopped"),
                Err(e) => Err(anyhow::anyhow!("pod routes task failed: {e}")),
            }
        }
    };
    let north_south = async {
        if north_south_tasks.is_empty() {
            return std::future::pending().await;
        }
        let (r, _, _) = futures::future::select_all(north_south_tasks).await;
        match r {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("north-south task failed: {e}")),
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // On exit the eBPF hooks and maps stay pinned: Services keep working until the next agent
    // takes over (`xtask up` removes them on a full teardown).
    tokio::select! {
        r = kubelet::run(cfg, client) => r.context("kubelet stopped")?,
        r = proxy => r?,
        r = dns => r?,
        r = routes => r?,
        r = north_south => r?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
        _ = term.recv() => tracing::info!("terminated; shutting down"),
    }
    Ok(())
}
