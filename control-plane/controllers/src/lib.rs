//! The scheduler and the controllers that turn desired state into real state, each an API client.
//!
//! Every controller is an ordinary `kube::Client` user: it watches the objects it cares about,
//! computes the desired state with a pure function (unit-tested in `<controller>/tests.rs`),
//! diffs against what the API server holds and writes only the difference. Reconcilers are
//! level-triggered and idempotent; `Action::requeue` is the norm, so a missed event only delays
//! convergence. [`run`] starts all of them and keeps them running until the future is dropped.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::Ipv4Addr;
use std::time::Duration;

pub use sluice_k8s_values::Ipv4Net;

pub mod common;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod garbage_collector;
pub mod kinds;
pub mod loadbalancer;
pub mod namespace;
pub mod node_ipam;
pub mod replicaset;
pub mod scheduler;
pub mod serviceaccount;

/// Settings shared by the scheduler and the controllers.
#[derive(Debug, Clone)]
pub struct Config {
    /// The pod network, carved into one range per node by node IPAM (parse it with
    /// [`sluice_k8s_values::cidr::parse`], which clears host bits).
    pub cluster_cidr: Ipv4Net,
    /// Prefix length of each node's pod range (24 gives 254 pods per node).
    pub node_cidr_mask_size: u8,
    /// Pods whose `spec.schedulerName` equals this (or is empty) are scheduled by us.
    pub scheduler_name: String,
    /// Periodic resync of every reconciled object, on top of watch events.
    pub resync: Duration,
    /// Addresses for `type: LoadBalancer` Services (`None`: they stay pending).
    pub lb_pool: Option<Ipv4Net>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16).expect("16 <= 32"),
            node_cidr_mask_size: 24,
            scheduler_name: "default-scheduler".to_string(),
            resync: Duration::from_mins(5),
            lb_pool: None,
        }
    }
}

/// Why [`run`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work.
    #[error("invalid config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
}

/// Runs the scheduler and every controller until the future is dropped.
///
/// Watches restart on errors with backoff; reconcile errors requeue the object with backoff.
/// Nothing here exits on a transient API failure.
///
/// # Errors
/// Only an invalid [`Config`] (node mask shorter than the cluster prefix, or above 32).
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    if config.node_cidr_mask_size < config.cluster_cidr.prefix_len()
        || config.node_cidr_mask_size > 32
    {
        return Err(Error::InvalidConfig {
            reason: format!(
                "node_cidr_mask_size {} does not fit cluster_cidr {}",
                config.node_cidr_mask_size, config.cluster_cidr
            ),
        });
    }
    let kinds = kinds::namespaced_kinds(&client).await;
    tracing::info!(kinds = kinds.len(), "starting scheduler and controllers");
    futures::join!(
        scheduler::run(client.clone(), config.clone()),
        replicaset::run(client.clone(), config.clone()),
        deployment::run(client.clone(), config.clone()),
        disruption::run(client.clone(), config.clone()),
        endpoints::run(client.clone(), config.clone()),
        serviceaccount::run(client.clone(), config.clone()),
        garbage_collector::run(client.clone(), kinds.clone()),
        node_ipam::run(client.clone(), config.clone()),
        loadbalancer::run(client.clone(), config.clone()),
        namespace::run(client.clone(), config.clone(), kinds),
    );
    Ok(())
}
