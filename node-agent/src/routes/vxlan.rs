//! The VXLAN overlay (`--tunnel vxlan`): pod traffic to another node is
//! encapsulated in UDP between the nodes' addresses, for networks that do not
//! carry pod addresses natively.
//!
//! Everything is derived from the Node objects, with no state of its own
//! (after flannel's `vxlan` backend, without its annotations): every node's
//! device [`DEVICE`] has the MAC [`mac_of`] its `InternalIP`; for each other
//! node the agent installs
//! - a route `podCIDR via <podCIDR's network address> dev sluice_vxlan onlink`,
//! - a permanent neighbour entry: that gateway is at the other node's MAC,
//! - a forwarding entry: that MAC is reached at the other node's address.
//!
//! The device's MTU (and so the pods', through the CNI config) is the uplink's
//! minus [`OVERHEAD`], so no pod packet needs fragmenting.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
};
use rtnetlink::{Handle, LinkMessageBuilder, LinkVxlan};

use super::{PodRoute, RoutesError};

/// The overlay device.
pub const DEVICE: &str = "sluice_vxlan";
/// The VXLAN network identifier.
pub const VNI: u32 = 1;
/// The UDP port (Linux's historical VXLAN port, as flannel uses).
pub const PORT: u16 = 8472;
/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
pub const OVERHEAD: u32 = 50;

/// The device MAC of the node at `ip`: locally administered, unicast, the
/// address's four bytes after `0a:58`.
#[must_use]
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x0a, 0x58, a, b, c, d]
}

/// The gateway address of a node's range on the overlay (its network address,
/// which no pod gets).
#[must_use]
pub fn gateway(route: &PodRoute) -> Ipv4Addr {
    route.cidr.network()
}

fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> RoutesError {
    let what = what.into();
    move |source| RoutesError::Netlink { what, source }
}

/// The MTU of the link that holds `address`.
///
/// # Errors
/// When the dumps fail or no link holds the address.
pub async fn uplink_mtu(handle: &Handle, address: Ipv4Addr) -> Result<u32, RoutesError> {
    let index = uplink_index(handle, address).await?;
    let links: Vec<_> = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_collect()
        .await
        .map_err(netlink(format!("reading link {index}")))?;
    links
        .iter()
        .flat_map(|l| l.attributes.iter())
        .find_map(|a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        })
        .ok_or(RoutesError::NoUplink { address })
}

/// The name of the link that holds `address`.
///
/// # Errors
/// When the dumps fail or no link holds the address.
pub async fn uplink_name(handle: &Handle, address: Ipv4Addr) -> Result<String, RoutesError> {
    let index = uplink_index(handle, address).await?;
    let links: Vec<_> = handle
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_collect()
        .await
        .map_err(netlink(format!("reading link {index}")))?;
    links
        .iter()
        .flat_map(|l| l.attributes.iter())
        .find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
        .ok_or(RoutesError::NoUplink { address })
}

/// The index of the link that holds `address`.
async fn uplink_index(handle: &Handle, address: Ipv4Addr) -> Result<u32, RoutesError> {
    let addresses: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(netlink("dumping addresses"))?;
    addresses
        .iter()
        .find(|a| {
            a.attributes.iter().any(|attr| {
                matches!(attr, AddressAttribute::Address(IpAddr::V4(v))
                    | AddressAttribute::Local(IpAddr::V4(v)) if *v == address)
            })
        })
        .map(|a| a.header.index)
        .ok_or(RoutesError::NoUplink { address })
}

/// The overlay device's index, created (and set up) when missing.
///
/// # Errors
/// When the device cannot be read or created.
pub async fn ensure_device(handle: &Handle, local: Ipv4Addr, mtu: u32) -> Result<u32, RoutesError> {
    if let Some(index) = device_index(handle).await? {
        return Ok(index);
    }
    let message = LinkMessageBuilder::<LinkVxlan>::new(DEVICE)
        .id(VNI)
        .port(PORT)
        .local(local)
        .learning(false)
        .mtu(mtu)
        .address(mac_of(local).to_vec())
        .up()
        .build();
    handle
        .link()
        .add(message)
        .execute()
        .await
        .map_err(netlink(format!("creating {DEVICE}")))?;
    device_index(handle).await?.ok_or(RoutesError::NoDevice)
}

async fn device_index(handle: &Handle) -> Result<Option<u32>, RoutesError> {
    let mut links = handle.link().get().match_name(DEVICE.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        // ENODEV: not there yet.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(source) => Err(RoutesError::Netlink {
            what: format!("reading {DEVICE}"),
            source,
        }),
    }
}

/// One other node on the overlay: its gateway address and its VTEP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// The gateway of its range ([`gateway`]).
    pub gateway: Ipv4Addr,
    /// Its `InternalIP` (the outer destination).
    pub node: Ipv4Addr,
}

/// Installs the neighbour and forwarding entries of `peers` on the device and
/// removes those of nodes no longer in it.
///
/// # Errors
/// The first failing request.
pub async fn program_peers(
    handle: &Handle,
    index: u32,
    peers: &BTreeSet<Peer>,
) -> Result<(), RoutesError> {
    for peer in peers {
        let mac = mac_of(peer.node);
        handle
            .neighbours()
            .add(index, IpAddr::V4(peer.gateway))
            .link_layer_address(&mac)
            .replace()
            .execute()
            .await
            .map_err(netlink(format!("neighbour {} on {DEVICE}", peer.gateway)))?;
        handle
            .neighbours()
            .add_bridge(index, &mac)
            .destination(IpAddr::V4(peer.node))
            .flags(NeighbourFlags::Own)
            .replace()
            .execute()
            .await
            .map_err(netlink(format!("forwarding entry for {}", peer.node)))?;
    }
    let wanted_gateways: BTreeSet<Ipv4Addr> = peers.iter().map(|p| p.gateway).collect();
    let wanted_macs: BTreeSet<[u8; 6]> = peers.iter().map(|p| mac_of(p.node)).collect();
    let entries: Vec<NeighbourMessage> = handle
        .neighbours()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(netlink("dumping neighbours"))?;
    for entry in entries.into_iter().filter(|e| e.header.ifindex == index) {
        let stale = match entry.header.family {
            AddressFamily::Inet => {
                destination(&entry).is_some_and(|g| !wanted_gateways.contains(&g))
            }
            AddressFamily::Bridge => {
                link_address(&entry).is_some_and(|m| !wanted_macs.contains(&m))
            }
            _ => false,
        };
        if stale {
            handle
                .neighbours()
                .del(entry)
                .execute()
                .await
                .map_err(netlink(format!("removing a stale entry on {DEVICE}")))?;
        }
    }
    Ok(())
}

fn destination(entry: &NeighbourMessage) -> Option<Ipv4Addr> {
    entry.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => Some(*v),
        _ => None,
    })
}

fn link_address(entry: &NeighbourMessage) -> Option<[u8; 6]> {
    entry.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(mac) => <[u8; 6]>::try_from(mac.as_slice()).ok(),
        _ => None,
    })
}
