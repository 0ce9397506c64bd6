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
///
/// # Errors
/// The first failing request.
pub async fn sync(handle: &Handle, wanted: &BTreeSet<Ipv4Addr>) -> Result<(), LbAddrError> {
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
    for addr in wanted.difference(&have) {
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
    Ok(())
}

/// Follows the announced set (`None` until the proxy's first apply, when
/// nothing is touched) and keeps [`DEVICE`] in line with it; a failed sync
/// is retried every second until it succeeds or the set changes.
///
/// # Errors
/// [`LbAddrError::Connect`] when no netlink socket can be opened.
pub async fn run(
    mut announced: watch::Receiver<Option<BTreeSet<Ipv4Addr>>>,
) -> Result<(), LbAddrError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(LbAddrError::Connect)?;
    tokio::spawn(connection);
    loop {
        let wanted = announced.borrow_and_update().clone();
        if let Some(wanted) = wanted
            && let Err(e) = sync(&handle, &wanted).await
        {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "announcing LoadBalancer IPs failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                r = announced.changed() => if r.is_err() { return Ok(()) } else { continue },
            }
        }
        if announced.changed().await.is_err() {
            return Ok(());
        }
    }
}
