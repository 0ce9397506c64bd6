//! Node IPAM: gives each Node without `spec.podCIDR` the next free range of the cluster CIDR.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use sluice_k8s_values::{Ipv4Net, cidr};

use crate::common::{self, Backoffs};

/// Why a node could not get a range.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Every range of the cluster CIDR is in use.
    #[error("no free /{mask} left in {cluster}")]
    Exhausted {
        /// The cluster CIDR.
        cluster: Ipv4Net,
        /// The per-node prefix length.
        mask: u8,
    },
    /// The per-node prefix is shorter than the cluster prefix (or above 32).
    #[error("node mask /{mask} does not fit in {cluster}")]
    BadMask {
        /// The cluster CIDR.
        cluster: Ipv4Net,
        /// The per-node prefix length.
        mask: u8,
    },
    /// An API call failed.
    #[error("set podCIDR of node {node}: {source}")]
    Api {
        /// The node.
        node: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// The first `/mask` range of `cluster` that overlaps none of `used`.
///
/// # Errors
/// [`IpamError::Exhausted`] when all are taken, [`IpamError::BadMask`] for an impossible mask.
pub fn allocate(cluster: Ipv4Net, mask: u8, used: &[Ipv4Net]) -> Result<Ipv4Net, IpamError> {
    // `subnets` refuses a mask shorter than the cluster prefix or above 32.
    let mut candidates = cluster
        .subnets(mask)
        .map_err(|_| IpamError::BadMask { cluster, mask })?;
    candidates
        .find(|candidate| !used.iter().any(|u| cidr::overlaps(*u, *candidate)))
        .ok_or(IpamError::Exhausted { cluster, mask })
}

fn node_cidrs(node: &Node) -> Vec<Ipv4Net> {
    let spec = node.spec.as_ref();
    spec.and_then(|s| {
        s.pod_cidr
            .iter()
            .chain(s.pod_cidrs.iter().flatten())
            .map(|c| cidr::parse(c).ok())
            .collect::<Option<Vec<_>>>()
    })
    .unwrap_or_default()
}

struct Ctx {
    client: Client,
    nodes: Store<Node>,
    cluster: Ipv4Net,
    mask: u8,
    /// Ranges handed out by us that the cache may not show yet: node name -> range.
    pending: Mutex<HashMap<String, Ipv4Net>>,
    backoffs: Backoffs,
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, IpamError> {
    let name = node.name_any();
    let has = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .is_some_and(|c| !c.is_empty());
    if has {
        return Ok(Action::await_change());
    }
    let mut used: Vec<Ipv4Net> = ctx
        .nodes
        .state()
        .iter()
        .flat_map(|n| node_cidrs(n))
        .collect();
    {
        let mut pending = ctx
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let names: std::collections::HashSet<String> = ctx
            .nodes
            .state()
            .iter()
            .filter(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_none())
            .map(|n| n.name_any())
            .collect();
        pending.retain(|n, _| names.contains(n));
        if pending.contains_key(&name) {
            // Already assigned; the cache has not caught up yet.
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        used.extend(pending.values().copied());
    }
    let cidr = allocate(ctx.cluster, ctx.mask, &used)?;
    let patch = serde_json::json!({ "spec": { "podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()] } });
    let api: Api<Node> = Api::all(ctx.client.clone());
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(e) if common::is_not_found(&e) => return Ok(Action::await_change()),
        Err(source) => return Err(IpamError::Api { node: name, source }),
    }
    tracing::info!(node = %name, %cidr, "assigned pod CIDR");
    ctx.pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(name.clone(), cidr);
    ctx.backoffs.reset(&name);
    Ok(Action::await_change())
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "kube's Controller::run passes the object and the context by value"
)]
fn error_policy(node: Arc<Node>, err: &IpamError, ctx: Arc<Ctx>) -> Action {
    common::error_policy(node.as_ref(), err, &ctx.backoffs, "node-ipam")
}

/// Runs node IPAM until dropped.
pub async fn run(client: Client, config: crate::Config) {
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(1));
    let nodes = controller.store();
    let ctx = Arc::new(Ctx {
        client,
        nodes,
        cluster: config.cluster_cidr,
        mask: config.node_cidr_mask_size,
        pending: Mutex::new(HashMap::new()),
        backoffs: Backoffs::default(),
    });
    common::drain("node-ipam", controller.run(reconcile, error_policy, ctx)).await;
}

#[cfg(test)]
mod tests;
