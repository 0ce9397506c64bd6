//! Announcing `LoadBalancer` IPs on the node's network (layer 2, as
//! `MetalLB`'s L2 mode does, and as kube-proxy's IPVS mode binds addresses to
//! a dummy device): each IP this node announces (see
//! [`crate::proxy::external`] for who announces what) is a `/32` on the
//! loopback device of the node's network namespace, labelled [`LABEL`], so
//! the kernel answers ARP for it on the node's external interface
//! (`arp_ignore` 0, the default: any local address). Loopback rather than a
//! dummy device: this kernel has no `dummy` driver. Packets to it are
//! translated by the north-south programs at tc/XDP ingress before the
//! stack sees them.
//!
//! [`run`] follows the proxy's set: it adds the missing addresses and
//! removes the other addresses with its label (never loopback's own),
//! reading the device back each time, so an agent restart adopts what the
//! previous run left and nothing flaps.
//!
//! When an address is newly announced here (a new IP, or one that moved from
//! another node), [`run`] broadcasts a gratuitous ARP for it on the external
//! interface ([`garp_frame`], sent by [`send_garp`]), as `MetalLB` and
//! keepalived do: neighbours that still map the IP to the previous node's
//! MAC update their entry at once (Linux updates existing entries from
//! unsolicited ARP even with `arp_accept` 0) instead of sending to a node
//! that no longer announces it until the entry goes stale.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::AddressAttribute;
use tokio::sync::watch;

/// The device holding the announced addresses.
pub const DEVICE: &str = "lo";
/// The label of the announced addresses (a label must start with the device name).
pub const LABEL: &str = "lo:sluice-lb";

/// Errors announcing addresses.
#[derive(Debug, thiserror::Error)]
pub enum LbAddrError {
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket")]
    Connect(#[source] std::io::Error),
    /// A netlink request failed.
    #[error("{what}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: rtnetlink::Error,
    },
    /// The device is missing.
    #[error("no {DEVICE} device")]
    NoDevice,
    /// The external interface is missing or has no Ethernet address.
    #[error("interface {0:?} not found or without an Ethernet address")]
    NoInterface(String),
    /// A gratuitous ARP could not be sent.
    #[error("sending a gratuitous ARP for {addr} on {iface}")]
    Garp {
        /// The announced address.
        addr: Ipv4Addr,
        /// The interface.
        iface: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LbAddrError {
    let what = what.into();
    move |source| LbAddrError::Netlink { what, source }
}

async fn device_index(handle: &Handle) -> Result<Option<u32>, LbAddrError> {
    let mut links = handle.link().get().match_name(DEVICE.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(source) => Err(LbAddrError::Netlink {
            what: format!("reading {DEVICE}"),
            source,
        }),
    }
}

/// The device's index.
async fn ensure_device(handle: &Handle) -> Result<u32, LbAddrError> {
    device_index(handle).await?.ok_or(LbAddrError::NoDevice)
}

/// Makes the device's IPv4 addresses labelled [`LABEL`] exactly `wanted` (each a /32).
/// Returns the addresses it added.
///
/// # Errors
/// The first failing request.
pub async fn sync(
    handle: &Handle,
    wanted: &BTreeSet<Ipv4Addr>,
) -> Result<BTreeSet<Ipv4Addr>, LbAddrError> {
    let index = ensure_device(handle).await?;
    let present: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(netlink(format!("dumping addresses of {DEVICE}")))?;
    let mut have = BTreeSet::new();
    for message in present {
        let addr = message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(v)) | AddressAttribute::Address(IpAddr::V4(v)) => {
                Some(*v)
            }
            _ => None,
        });
        let ours = message
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Label(l) if l == LABEL));
        let Some(addr) = addr else { continue };
        if !ours {
            continue;
        }
        if wanted.contains(&addr) {
            have.insert(addr);
        } else {
            handle
                .address()
                .del(message)
                .execute()
                .await
                .map_err(netlink(format!("removing {addr} from {DEVICE}")))?;
            tracing::info!(%addr, "no longer announcing LoadBalancer IP");
        }
    }
    let added: BTreeSet<Ipv4Addr> = wanted.difference(&have).copied().collect();
    for addr in &added {
        let mut request = handle.address().add(index, IpAddr::V4(*addr), 32).replace();
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Label(LABEL.to_owned()));
        request
            .execute()
            .await
            .map_err(netlink(format!("adding {addr} to {DEVICE}")))?;
        tracing::info!(%addr, "announcing LoadBalancer IP");
    }
    Ok(added)
}

/// The Ethernet frame of a gratuitous ARP for `addr` from `mac`: a broadcast
/// ARP request whose sender and target address are both `addr` (RFC 5227's
/// ARP announcement), padded to Ethernet's 60-byte minimum.
#[must_use]
pub fn garp_frame(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 60] {
    let mut frame = [0u8; 60];
    let ip = addr.octets();
    // Ethernet: broadcast destination, our source, EtherType ARP.
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // ARP: Ethernet/IPv4, 6- and 4-byte addresses, request.
    frame[14..16].copy_from_slice(&1u16.to_be_bytes());
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&1u16.to_be_bytes());
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip);
    // Target hardware address unknown (zero), target protocol address ours.
    frame[38..42].copy_from_slice(&ip);
    frame
}

/// The index and Ethernet address of interface `iface`.
///
/// # Errors
/// [`LbAddrError::NoInterface`] when it is missing or has no 6-byte address.
pub async fn interface(handle: &Handle, iface: &str) -> Result<(u32, [u8; 6]), LbAddrError> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut links = handle.link().get().match_name(iface.to_owned()).execute();
    let link = match links.try_next().await {
        Ok(Some(link)) => link,
        Ok(None) => return Err(LbAddrError::NoInterface(iface.to_owned())),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            return Err(LbAddrError::NoInterface(iface.to_owned()));
        }
        Err(source) => {
            return Err(LbAddrError::Netlink {
                what: format!("reading {iface}"),
                source,
            });
        }
    };
    let mac = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
        _ => None,
    });
    mac.map(|mac| (link.header.index, mac))
        .ok_or_else(|| LbAddrError::NoInterface(iface.to_owned()))
}

/// Broadcasts a gratuitous ARP for `addr` from `mac` out of interface
/// `ifindex` (a raw `AF_PACKET` socket in the caller's network namespace;
/// needs `CAP_NET_RAW`).
///
/// # Errors
/// The socket or send error.
pub fn send_garp(ifindex: u32, mac: [u8; 6], addr: Ipv4Addr) -> std::io::Result<()> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let protocol = u16::to_be(libc::ETH_P_ARP as u16);
    // SAFETY: socket(2) takes plain integers; the returned descriptor is
    // checked before use and owned by `fd` from then on.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let frame = garp_frame(mac, addr);
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = protocol;
    to.sll_ifindex = i32::try_from(ifindex).map_err(std::io::Error::other)?;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: `frame` is valid for `frame.len()` bytes and `to` is a valid
    // sockaddr_ll of the size passed; both outlive the call.
    let sent = unsafe {
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            std::ptr::from_ref(&to).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Gratuitous ARPs for `added` on `iface` (when there is one), logged; a
/// failure is a warning, never an error: the kernel still answers ARP for
/// the addresses, neighbours just learn the move more slowly.
async fn announce_moves(handle: &Handle, iface: Option<&str>, added: &BTreeSet<Ipv4Addr>) {
    let Some(iface) = iface else { return };
    if added.is_empty() {
        return;
    }
    let (index, mac) = match interface(handle, iface).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "no gratuitous ARP for newly announced LoadBalancer IPs");
            return;
        }
    };
    for addr in added {
        match send_garp(index, mac, *addr) {
            Ok(()) => tracing::debug!(%addr, iface, "gratuitous ARP sent"),
            Err(source) => {
                let e = LbAddrError::Garp {
                    addr: *addr,
                    iface: iface.to_owned(),
                    source,
                };
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "gratuitous ARP failed");
            }
        }
    }
}

/// Follows the announced set (`None` until the proxy's first apply, when
/// nothing is touched) and keeps [`DEVICE`] in line with it, sending a
/// gratuitous ARP on `iface` (the external interface, when given) for each
/// address it adds; a failed sync is retried every second until it
/// succeeds or the set changes.
///
/// # Errors
/// [`LbAddrError::Connect`] when no netlink socket can be opened.
pub async fn run(
    mut announced: watch::Receiver<Option<BTreeSet<Ipv4Addr>>>,
    iface: Option<String>,
) -> Result<(), LbAddrError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(LbAddrError::Connect)?;
    tokio::spawn(connection);
    loop {
        let wanted = announced.borrow_and_update().clone();
        if let Some(wanted) = wanted {
            match sync(&handle, &wanted).await {
                Ok(added) => announce_moves(&handle, iface.as_deref(), &added).await,
                Err(e) => {
                    tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "announcing LoadBalancer IPs failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                        r = announced.changed() => if r.is_err() { return Ok(()) } else { continue },
                    }
                }
            }
        }
        if announced.changed().await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::garp_frame;

    #[test]
    fn gratuitous_arp_is_a_broadcast_request_for_the_address_itself() {
        let mac = [0x02, 0x42, 0xac, 0x1e, 0x00, 0x0b];
        let frame = garp_frame(mac, Ipv4Addr::new(172, 30, 0, 200));
        let want: [u8; 42] = [
            // Ethernet: broadcast <- mac, ARP.
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x1e, 0x00, 0x0b, 0x08, 0x06,
            // htype 1, ptype IPv4, hlen 6, plen 4, op request.
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // sender mac, sender ip.
            0x02, 0x42, 0xac, 0x1e, 0x00, 0x0b, 172, 30, 0, 200,
            // target mac zero, target ip = sender ip.
            0, 0, 0, 0, 0, 0, 172, 30, 0, 200,
        ];
        assert_eq!(frame[..42], want);
        assert!(frame[42..].iter().all(|b| *b == 0), "padding to 60 bytes");
    }
}
