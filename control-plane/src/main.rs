//! `sluice-control-plane`: API server, scheduler and controllers in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use sluice_control_plane::apiserver;
use sluice_control_plane::server::{self, Options};

/// sluice control plane: a Kubernetes API server that kubectl drives, with the scheduler
/// and controllers built in.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Directory of the embedded store (created if missing).
    #[arg(long, default_value = ".state/cluster/store")]
    data_dir: PathBuf,
    /// Address to serve the API on (HTTP; keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Write a kubeconfig for kubectl here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// `ClusterIP` range.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// `NodePort` range, `lo-hi`.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Pod network, carved into per-node podCIDRs.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Prefix length of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Addresses for `type: LoadBalancer` Services, written to their
    /// `status.loadBalancer.ingress` (unset: such Services stay pending).
    #[arg(long)]
    lb_pool: Option<String>,
    /// Compact the store's history every this many seconds.
    #[arg(long, default_value_t = 300)]
    compaction_interval_seconds: u64,
    /// Watches last between this and twice this many seconds.
    #[arg(long, default_value_t = 1800)]
    min_request_timeout_seconds: u64,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 60)]
    bookmark_interval_seconds: u64,
    /// Address of the cluster DNS Service (`kube-system/kube-dns`, answered by every node
    /// agent); default: the 10th address of the Service range; `none` for no such Service.
    #[arg(long)]
    cluster_dns: Option<String>,
    /// Do not run the scheduler and controllers in this process.
    #[arg(long)]
    no_controllers: bool,
}

fn parse_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let (lo, hi) = s.split_once('-').context("node port range must be lo-hi")?;
    let (lo, hi): (u16, u16) = (lo.trim().parse()?, hi.trim().parse()?);
    if lo > hi || lo == 0 {
        bail!("node port range {s:?} is empty");
    }
    Ok((lo, hi))
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
    let service_cidr =
        apiserver::alloc::parse_service_cidr(&cli.service_cidr).context("--service-cidr")?;
    let cluster_dns = match cli.cluster_dns.as_deref() {
        Some("none") => None,
        Some(ip) => {
            let ip: std::net::Ipv4Addr = ip.parse().context("--cluster-dns")?;
            if !service_cidr.contains(&ip) {
                bail!("--cluster-dns {ip} is outside --service-cidr {service_cidr}");
            }
            Some(ip)
        }
        None => sluice_k8s_values::cidr::nth(service_cidr, 10),
    };
    let api = apiserver::Config {
        service_cidr,
        node_port_range: parse_range(&cli.service_node_port_range)?,
        advertise: cli.listen,
        min_request_timeout: Duration::from_secs(cli.min_request_timeout_seconds.max(1)),
        bookmark_interval: Duration::from_secs(cli.bookmark_interval_seconds.max(1)),
        cluster_dns,
        proxy_loopback: false,
    };
    let controllers = (!cli.no_controllers)
        .then(|| -> anyhow::Result<_> {
            Ok(sluice_controllers::Config {
                cluster_cidr: sluice_k8s_values::cidr::parse(&cli.cluster_cidr)
                    .context("--cluster-cidr")?,
                node_cidr_mask_size: cli.node_cidr_mask_size,
                lb_pool: cli
                    .lb_pool
                    .as_deref()
                    .map(sluice_k8s_values::cidr::parse)
                    .transpose()
                    .context("--lb-pool")?,
                ..sluice_controllers::Config::default()
            })
        })
        .transpose()?;
    let running = server::start(Options {
        data_dir: cli.data_dir,
        listen: cli.listen,
        kubeconfig_out: cli.kubeconfig_out.clone(),
        api,
        compaction_interval: Duration::from_secs(cli.compaction_interval_seconds.max(1)),
        controllers,
    })
    .await?;
    if let Some(k) = &cli.kubeconfig_out {
        eprintln!(
            "sluice control plane serving on http://{}; export KUBECONFIG={}",
            running.addr,
            std::path::absolute(k)?.display()
        );
    }
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.shutdown();
    Ok(())
}
