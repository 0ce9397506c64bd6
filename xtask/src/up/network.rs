//! The test network of a multi-node `up`: a host bridge, `sluice0`, holding
//! the network's first address (the host, which is no node: a client on the
//! host is an outside client), and one network namespace per node joined to
//! it by a veth pair (`eth0` inside, `sl-<node>` on the bridge).
//!
//! Made with iproute2 (`ip`), whose output is never parsed: each step either
//! succeeds or fails with the command and its stderr. The host also gets a route to
//! each node's podCIDR through that node once it is Ready ([`route_via_node`]). [`TestNetwork::remove`]
//! (also run before a start, for what a killed run left) deletes the
//! namespaces, which takes their veths and everything in them along, then
//! the bridge.

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// The bridge's name.
pub const BRIDGE: &str = "sluice0";
/// The host's address on the bridge (the API server listens here).
pub const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
/// The test network's prefix length.
pub const PREFIX: u8 = 24;
/// Node `i` (from 1) gets `172.30.0.<10 + i>`.
const FIRST_NODE_HOST: u8 = 10;
/// The `LoadBalancer` address pool on the test network (above the nodes' addresses).
pub const LB_POOL: &str = "172.30.0.240/28";
/// At most this many nodes fit the addressing and the name scheme.
pub const MAX_NODES: usize = 32;

/// One node's place on the test network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNet {
    /// The network namespace (`/run/netns/<netns>`).
    pub netns: String,
    /// The node's address on `eth0` (its `InternalIP`).
    pub address: Ipv4Addr,
    /// The host side of its veth pair, on the bridge.
    pub host_link: String,
}

impl NodeNet {
    /// The place of node `index` (from 1) called `name`.
    #[must_use]
    pub fn of(index: usize, name: &str) -> Self {
        let host = u8::try_from(index)
            .ok()
            .and_then(|i| FIRST_NODE_HOST.checked_add(i))
            .unwrap_or(u8::MAX);
        Self {
            netns: format!("sluice-{name}"),
            address: Ipv4Addr::new(172, 30, 0, host),
            host_link: format!("sl-{name}"),
        }
    }

    /// The namespace's bind mount, which `setns` opens.
    #[must_use]
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.netns)
    }
}

/// The bridge and the nodes' namespaces, removed again on drop.
pub struct TestNetwork {
    nodes: Vec<NodeNet>,
}

impl TestNetwork {
    /// Creates the bridge and one namespace per node (removing leftovers of
    /// an earlier run first). With `xdp` (the nodes run the north-south XDP
    /// program), the node links carry full checksums: a veth hands on a
    /// locally made or forwarded packet with its checksum left to "offload"
    /// (`CHECKSUM_PARTIAL`), which XDP cannot see and a frame sent with `XDP_TX` loses,
    /// so the next hop would get a wrong checksum. Physical NICs deliver full
    /// checksums; only this veth test network needs it.
    ///
    /// # Errors
    /// The first `ip` command that fails.
    pub fn create(nodes: &[NodeNet], xdp: bool) -> Result<Self> {
        if nodes.len() > MAX_NODES {
            bail!("at most {MAX_NODES} nodes");
        }
        Self::remove_leftovers(nodes);
        let network = Self {
            nodes: nodes.to_vec(),
        };
        let host = format!("{HOST_ADDRESS}/{PREFIX}");
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["addr", "add", &host, "dev", BRIDGE])?;
        ip(&["link", "set", BRIDGE, "up"])?;
        for node in nodes {
            let address = format!("{}/{PREFIX}", node.address);
            let gateway = HOST_ADDRESS.to_string();
            ip(&["netns", "add", &node.netns])?;
            ip(&[
                "link",
                "add",
                &node.host_link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &node.netns,
            ])?;
            ip(&["link", "set", &node.host_link, "master", BRIDGE, "up"])?;
            // A frame a node's XDP program sends back out of its eth0 (XDP_TX or a
            // redirect to it) is received by this end in NAPI, which a veth only runs
            // with GRO on (or an XDP program of its own); without it such frames drop.
            ethtool(None, &node.host_link, &["gro", "on"])?;
            ip(&["-n", &node.netns, "addr", "add", &address, "dev", "eth0"])?;
            ip(&["-n", &node.netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &node.netns, "link", "set", "lo", "up"])?;
            if xdp {
                ethtool(None, &node.host_link, &["tx", "off"])?;
                ethtool(Some(&node.netns), "eth0", &["tx", "off"])?;
            }
            ip(&[
                "-n",
                &node.netns,
                "route",
                "add",
                "default",
                "via",
                &gateway,
            ])?;
        }
        Ok(network)
    }

    /// Deletes what a run with these nodes may have left.
    fn remove_leftovers(nodes: &[NodeNet]) {
        for node in nodes {
            let _ = quiet_ip(&["netns", "del", &node.netns]);
            let _ = quiet_ip(&["link", "del", &node.host_link]);
        }
        let _ = quiet_ip(&["link", "del", BRIDGE]);
    }

    /// Deletes the namespaces (their veths go with them) and the bridge.
    ///
    /// # Errors
    /// When something could not be deleted.
    pub fn remove(mut self) -> Result<()> {
        self.remove_all()
    }

    fn remove_all(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        for node in std::mem::take(&mut self.nodes) {
            if let Err(err) = ip(&["netns", "del", &node.netns]) {
                problems.push(format!("{err:#}"));
            }
        }
        if let Err(err) = ip(&["link", "del", BRIDGE]) {
            problems.push(format!("{err:#}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("removing the test network: {}", problems.join("; "))
        }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        if !self.nodes.is_empty()
            && let Err(err) = self.remove_all()
        {
            eprintln!("[up] {err:#}");
        }
    }
}

/// Routes `cidr` from the host through `node` on the bridge (replacing an earlier
/// route); it goes with the bridge.
///
/// # Errors
/// When `ip` fails.
pub fn route_via_node(cidr: &str, node: &NodeNet) -> Result<()> {
    ip(&[
        "route",
        "replace",
        cidr,
        "via",
        &node.address.to_string(),
        "dev",
        BRIDGE,
    ])
}

/// `ethtool -K <link> <settings>`, in `netns` when given.
fn ethtool(netns: Option<&str>, link: &str, settings: &[&str]) -> Result<()> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, "ethtool"]);
            cmd
        }
        None => Command::new("ethtool"),
    };
    let out = cmd
        .args(["-K", link])
        .args(settings)
        .output()
        .context("running ethtool (Debian's ethtool)")?;
    if !out.status.success() {
        bail!(
            "ethtool -K {link} {}: {}",
            settings.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ip args...`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn quiet_ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_their_own_namespace_address_and_link() {
        let one = NodeNet::of(1, "node-1");
        assert_eq!(one.netns, "sluice-node-1");
        assert_eq!(one.address, Ipv4Addr::new(172, 30, 0, 11));
        assert_eq!(one.host_link, "sl-node-1");
        assert_eq!(one.netns_path(), PathBuf::from("/run/netns/sluice-node-1"));
        assert_eq!(
            NodeNet::of(3, "node-3").address,
            Ipv4Addr::new(172, 30, 0, 13)
        );
        // Interface names hold 15 bytes.
        assert!(NodeNet::of(MAX_NODES, "node-32").host_link.len() <= 15);
    }
}
