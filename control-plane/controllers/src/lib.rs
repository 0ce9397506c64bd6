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
use std::str::FromStr;
use std::time::Duration;

pub mod common;
pub mod deployment;
pub mod endpoints;
#[cfg(test)]
mod fake;
pub mod garbage_collector;
pub mod kinds;
pub mod namespace;
pub mod node_ipam;
pub mod quantity;
pub mod replicaset;
pub mod scheduler;
pub mod serviceaccount;

/// An IPv4 network in CIDR notation, e.g. `10.244.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The network address (host bits are zero).
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

/// Why a CIDR string did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid IPv4 CIDR {input:?}: {reason}")]
pub struct CidrParseError {
    /// The rejected text.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Ipv4Cidr {
    /// Builds a CIDR, clearing host bits.
    #[must_use]
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.min(32);
        Self {
            addr: Ipv4Addr::from(u32::from(addr) & Self::mask(prefix)),
            prefix,
        }
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    /// First address as an integer.
    #[must_use]
    pub fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    /// Last address as an integer.
    #[must_use]
    pub fn last(&self) -> u32 {
        self.first() | !Self::mask(self.prefix)
    }

    /// Whether the two networks share at least one address.
    #[must_use]
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| CidrParseError {
            input: s.to_string(),
            reason,
        };
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(|| err("missing '/'"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err("bad address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| err("bad prefix length"))?;
        if prefix > 32 {
            return Err(err("prefix length above 32"));
        }
        Ok(Self::new(addr, prefix))
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Settings shared by the scheduler and the controllers.
#[derive(Debug, Clone)]
pub struct Config {
    /// The pod network, carved into one range per node by node IPAM.
    pub cluster_cidr: Ipv4Cidr,
    /// Prefix length of each node's pod range (24 gives 254 pods per node).
    pub node_cidr_mask_size: u8,
    /// Pods whose `spec.schedulerName` equals this (or is empty) are scheduled by us.
    pub scheduler_name: String,
    /// Periodic resync of every reconciled object, on top of watch events.
    pub resync: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16),
            node_cidr_mask_size: 24,
            scheduler_name: "default-scheduler".to_string(),
            resync: Duration::from_secs(300),
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
    if config.node_cidr_mask_size < config.cluster_cidr.prefix || config.node_cidr_mask_size > 32 {
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
        endpoints::run(client.clone(), config.clone()),
        serviceaccount::run(client.clone(), config.clone()),
        garbage_collector::run(client.clone(), kinds.clone()),
        node_ipam::run(client.clone(), config.clone()),
        namespace::run(client.clone(), config.clone(), kinds),
    );
    Ok(())
}
