//! Pod routes between nodes (native routing): every other Node's podCIDR is
//! routed via that Node's `InternalIP`, so a pod on one node reaches a pod on
//! another by its own address, source IP preserved.
//!
//! ```text
//! watch Nodes ──> reflector store ──> desired() (pure) ──> apply(): diff vs the
//!                                                          routes we own ──> rtnetlink
//! ```
//!
//! Level-triggered like the service proxy: on every change of the Node store
//! (and every [`RESYNC`]) the whole set of wanted routes is recomputed and
//! compared with the routes in the main table that carry our protocol number
//! ([`ROUTE_PROTOCOL`]); only those are ever replaced or deleted, so routes
//! of the host, of the CNI plugin (pod /32s) and of the kubelet
//! (`unreachable` ranges) are never touched. A route whose node went away is
//! removed on the next pass, also after an agent restart.
//!
//! With [`Tunnel::Vxlan`] the same routes go through the overlay device
//! instead (`vxlan.rs`): for networks that do not carry pod addresses.

pub mod vxlan;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::pin::pin;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use sluice_k8s_values::Ipv4Net;

/// The routing protocol number on the routes this module owns (`ip route
/// show proto 213`): not one of the kernel's or iproute2's well-known ones.
pub const ROUTE_PROTOCOL: u8 = 213;
/// How often the routes are compared with the Nodes even without a change.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Errors of the route controller.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket")]
    Connect(#[source] std::io::Error),
    /// A netlink request failed.
    #[error("netlink: {what}")]
    Netlink {
        /// What was asked.
        what: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// The Node watch ended.
    #[error("the Node watch ended")]
    WatchEnded,
    /// No link holds the node's address (so there is no uplink MTU to derive from).
    #[error("no interface holds the node address {address}")]
    NoUplink {
        /// The node's `InternalIP`.
        address: Ipv4Addr,
    },
    /// The overlay device was created but cannot be found.
    #[error("{} vanished after its creation", vxlan::DEVICE)]
    NoDevice,
}

/// How pod traffic crosses to other nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Tunnel {
    /// Native routing: the other node's podCIDR via its `InternalIP` (one L2 network).
    #[default]
    None,
    /// VXLAN encapsulation between the nodes' addresses.
    Vxlan,
}

/// Settings of [`run`].
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// This node's `InternalIP` (the overlay's outer source).
    pub node_ip: Ipv4Addr,
    /// Native routing or VXLAN.
    pub tunnel: Tunnel,
    /// The overlay device's MTU ([`pod_mtu`]).
    pub mtu: u32,
}

/// The MTU pods get: the uplink's for native routing, less the VXLAN headers
/// with the overlay (so pod packets fit the device unfragmented).
///
/// # Errors
/// When the uplink cannot be read.
pub async fn pod_mtu(tunnel: Tunnel, node_ip: Ipv4Addr) -> Result<u32, RoutesError> {
    let handle = connect()?;
    let uplink = vxlan::uplink_mtu(&handle, node_ip).await?;
    Ok(match tunnel {
        Tunnel::None => uplink,
        Tunnel::Vxlan => uplink.saturating_sub(vxlan::OVERHEAD),
    })
}

/// The name of the interface that holds `node_ip` (the node's external
/// interface, where the north-south programs attach).
///
/// # Errors
/// When the dumps fail or no interface holds the address.
pub async fn uplink_name(node_ip: Ipv4Addr) -> Result<String, RoutesError> {
    let handle = connect()?;
    vxlan::uplink_name(&handle, node_ip).await
}

/// One route: `cidr` via `via` (a next hop on a directly connected network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRoute {
    /// The other node's pod range.
    pub cidr: Ipv4Net,
    /// The other node's `InternalIP`.
    pub via: Ipv4Addr,
}

impl std::fmt::Display for PodRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", self.cidr, self.via)
    }
}

/// The routes this node wants: for every other Node with an IPv4 podCIDR and
/// an IPv4 `InternalIP`, that range via that address. Nodes without either
/// are skipped (the node IPAM controller has not reached them yet), as is
/// a range that overlaps this node's own (a misconfiguration that must not
/// take this node's pods away from it).
#[must_use]
pub fn desired<'a>(nodes: impl IntoIterator<Item = &'a Node>, me: &str) -> BTreeSet<PodRoute> {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    let own: Vec<Ipv4Net> = nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() == Some(me))
        .flat_map(|n| pod_cidrs(n))
        .collect();
    let mut routes = BTreeSet::new();
    for node in nodes {
        if node.metadata.name.as_deref() == Some(me) {
            continue;
        }
        let Some(via) = internal_ip(node) else {
            continue;
        };
        for cidr in pod_cidrs(node) {
            if own
                .iter()
                .any(|mine| sluice_k8s_values::cidr::overlaps(*mine, cidr))
            {
                tracing::warn!(node = ?node.metadata.name, %cidr, "podCIDR overlaps this node's own; not routed");
                continue;
            }
            routes.insert(PodRoute { cidr, via });
        }
    }
    routes
}

/// A Node's IPv4 pod ranges (`spec.podCIDRs`, else `spec.podCIDR`).
fn pod_cidrs(node: &Node) -> Vec<Ipv4Net> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    let listed = spec.pod_cidrs.clone().unwrap_or_default();
    let all = if listed.is_empty() {
        spec.pod_cidr.iter().cloned().collect()
    } else {
        listed
    };
    all.iter()
        .filter_map(|c| sluice_k8s_values::cidr::parse_network(c).ok())
        .collect()
}

/// A Node's first IPv4 `InternalIP`.
fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// What [`apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Routes added or replaced.
    pub added: Vec<PodRoute>,
    /// Routes of ours removed.
    pub removed: Vec<PodRoute>,
}

/// The two steps from `current` (ours in the kernel) to `wanted`.
#[must_use]
pub fn diff(current: &BTreeSet<PodRoute>, wanted: &BTreeSet<PodRoute>) -> Changes {
    Changes {
        added: wanted.difference(current).copied().collect(),
        removed: current.difference(wanted).copied().collect(),
    }
}

/// The routes of ours in the main table.
///
/// # Errors
/// When the route dump fails.
pub async fn current(handle: &Handle) -> Result<BTreeSet<PodRoute>, RoutesError> {
    let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let messages: Vec<RouteMessage> = handle
        .route()
        .get(query)
        .execute()
        .try_collect()
        .await
        .map_err(|source| RoutesError::Netlink {
            what: "dumping IPv4 routes".into(),
            source,
        })?;
    Ok(messages.iter().filter_map(ours).collect())
}

/// A dumped route as a [`PodRoute`] when it carries our protocol number.
fn ours(message: &RouteMessage) -> Option<PodRoute> {
    if message.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL)
        || message.header.table != rtnetlink::packet_route::route::RouteHeader::RT_TABLE_MAIN
        || message.header.kind != RouteType::Unicast
    {
        return None;
    }
    let mut dst = None;
    let mut via = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(*a),
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => via = Some(*a),
            _ => {}
        }
    }
    let cidr = Ipv4Net::new(dst?, message.header.destination_prefix_length).ok()?;
    Some(PodRoute { cidr, via: via? })
}

fn message(route: PodRoute, overlay: Option<u32>) -> RouteMessage {
    let builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.cidr.network(), route.cidr.prefix_len())
        .gateway(route.via)
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL));
    match overlay {
        Some(index) => builder.output_interface(index).onlink().build(),
        None => builder.build(),
    }
}

/// The kernel's form of `route`: via the other node natively, via its range's
/// gateway on the overlay device.
#[must_use]
pub fn kernel_route(route: PodRoute, overlay: bool) -> PodRoute {
    if overlay {
        PodRoute {
            cidr: route.cidr,
            via: vxlan::gateway(&route),
        }
    } else {
        route
    }
}

/// Makes the kernel's routes of ours equal to `wanted`: replaces what is
/// missing or different, then deletes what is no longer wanted. With
/// `overlay` (the VXLAN device's index) the routes go through it.
///
/// # Errors
/// The first failing netlink request (the next pass retries).
pub async fn apply(
    handle: &Handle,
    wanted: &BTreeSet<PodRoute>,
    overlay: Option<u32>,
) -> Result<Changes, RoutesError> {
    let wanted: BTreeSet<PodRoute> = wanted
        .iter()
        .map(|r| kernel_route(*r, overlay.is_some()))
        .collect();
    let wanted = &wanted;
    let changes = diff(&current(handle).await?, wanted);
    for route in &changes.added {
        // `replace`: a route for the same range via another node (the range moved) is
        // swapped in place, with no moment without a route.
        handle
            .route()
            .add(message(*route, overlay))
            .replace()
            .execute()
            .await
            .map_err(|source| RoutesError::Netlink {
                what: format!("adding {route}"),
                source,
            })?;
    }
    for route in &changes.removed {
        if wanted.iter().any(|w| w.cidr == route.cidr) {
            // Replaced above.
            continue;
        }
        handle
            .route()
            .del(message(*route, None))
            .execute()
            .await
            .map_err(|source| RoutesError::Netlink {
                what: format!("removing {route}"),
                source,
            })?;
    }
    Ok(changes)
}

/// Opens a netlink connection (its task spawned on the current runtime).
///
/// # Errors
/// When the socket cannot be opened.
pub fn connect() -> Result<Handle, RoutesError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(RoutesError::Connect)?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Runs the route controller for node `me` until the Node watch ends.
///
/// # Errors
/// [`RoutesError::Connect`] when netlink cannot be opened,
/// [`RoutesError::WatchEnded`] when the watch stream ends. Failed applies are
/// logged and retried.
pub async fn run(client: kube::Client, me: String, opts: Options) -> Result<(), RoutesError> {
    let handle = connect()?;
    let overlay = match opts.tunnel {
        Tunnel::None => None,
        Tunnel::Vxlan => {
            let index = vxlan::ensure_device(&handle, opts.node_ip, opts.mtu).await?;
            tracing::info!(device = vxlan::DEVICE, mtu = opts.mtu, "VXLAN overlay");
            Some(index)
        }
    };
    let (store, writer) = reflector::store::<Node>();
    let mut events = pin!(
        reflector::reflector(
            writer,
            watcher(Api::<Node>::all(client), watcher::Config::default())
        )
        .default_backoff()
    );
    let mut listed = false;
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = tokio::select! {
            event = events.next() => match event.ok_or(RoutesError::WatchEnded)? {
                Ok(watcher::Event::InitDone) => { listed = true; true }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => true,
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "Node watch failed; retrying");
                    false
                }
            },
            _ = resync.tick() => true,
        };
        if changed && listed {
            sync(&handle, &store, &me, overlay).await;
        }
    }
}

async fn sync(handle: &Handle, store: &Store<Node>, me: &str, overlay: Option<u32>) {
    let nodes = store.state();
    let wanted = desired(nodes.iter().map(AsRef::as_ref), me);
    if let Some(index) = overlay {
        let peers = wanted
            .iter()
            .map(|r| vxlan::Peer {
                gateway: vxlan::gateway(r),
                node: r.via,
            })
            .collect();
        if let Err(e) = vxlan::program_peers(handle, index, &peers).await {
            tracing::warn!(error = %e, "programming the VXLAN peers; retrying on the next change");
            return;
        }
    }
    match apply(handle, &wanted, overlay).await {
        Ok(changes) => {
            for route in &changes.added {
                tracing::info!(%route, "pod route to another node");
            }
            for route in &changes.removed {
                tracing::info!(%route, "pod route removed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "programming pod routes; retrying on the next change"),
    }
}

#[cfg(test)]
mod tests;
