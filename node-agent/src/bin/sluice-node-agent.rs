//! `sluice-node-agent`: the kubelet (and, soon, the eBPF service proxy) for one node.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sluice_node_agent::kubelet::{self, Config};

/// sluice node agent: registers this node and runs its pods on containerd over CRI.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Node name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Node InternalIP (default: the first global IPv4 address).
    #[arg(long)]
    node_ip: Option<String>,
    /// kubeconfig for the API server.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// containerd's CRI socket.
    #[arg(long, default_value = sluice_proto::CONTAINERD_SOCKET)]
    cri_socket: PathBuf,
    /// Where to write the CNI conflist (containerd's CNI conf_dir).
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_runtime=warn,kube_client=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let node_name = match cli.node_name {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the host name")?
            .trim()
            .to_lowercase(),
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&cli.kubeconfig)
        .with_context(|| format!("reading {}", cli.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let cfg = Config {
        node_ip: cli.node_ip.unwrap_or_else(kubelet::node::default_node_ip),
        node_name,
        cri_socket: cli.cri_socket,
        cni_conf_dir: cli.cni_conf_dir,
        cni_data_dir: cli
            .cni_data_dir
            .unwrap_or_else(|| cli.state_dir.join("cni")),
        state_dir: cli.state_dir,
        dns: kubelet::host_dns(),
    };
    tracing::info!(bin_dir = %cli.cni_bin_dir.display(), "starting node agent");
    tokio::select! {
        r = kubelet::run(cfg, client) => r.context("kubelet stopped")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}
