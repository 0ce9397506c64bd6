//! The live part's network namespaces, in one of two shapes ([`Kind`]):
//!
//! ```text
//! routed (the node routes between two links; the backend is on "another node"):
//!   npb-client                 npb-node                                  npb-backend
//!   npb-c0 10.77.0.2/24 <-> npb-ext 10.77.0.1/24 | npb-int 10.78.0.1/24 <-> npb-b0 10.78.0.2/24
//!   default via 10.77.0.1      ip_forward=1                               default via 10.78.0.1
//!
//! one-nic (one L2 segment, a bridge in npb-wire; the node has one interface, as a
//! one-NIC node of a cluster, and traffic to the backend leaves the way it came in):
//!   npb-client npb-c0 10.77.0.2/24 --+
//!   npb-node   npb-ext 10.77.0.1/24 --+-- npb-br (npb-wire)
//!   npb-backend npb-b0 10.77.0.3/24 --+
//! ```
//!
//! `npb-ext` is the node's external interface (the `NodePort` address 10.77.0.1).
//! Everything has a fixed `npb-` name, so [`cleanup`] also removes what a killed run left.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use sluice_node_agent::datapath::{detach_nodeport, unpin, unpin_nodeport};

pub const CLIENT_NS: &str = "npb-client";
pub const NODE_NS: &str = "npb-node";
pub const BACKEND_NS: &str = "npb-backend";
/// The bridge's namespace ([`Kind::OneNic`]).
pub const WIRE_NS: &str = "npb-wire";
const NAMESPACES: [&str; 4] = [CLIENT_NS, NODE_NS, BACKEND_NS, WIRE_NS];
/// The client's veth (in [`CLIENT_NS`]).
pub const CLIENT_IF: &str = "npb-c0";
/// The node's external interface (in [`NODE_NS`]).
pub const EXT_IF: &str = "npb-ext";
/// The node's interface towards the backend (in [`NODE_NS`], [`Kind::Routed`]).
pub const INT_IF: &str = "npb-int";
/// The backend's veth (in [`BACKEND_NS`]).
pub const BACKEND_IF: &str = "npb-b0";
const BRIDGE: &str = "npb-br";
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The node address the `NodePort`s answer on.
pub const NODE_EXT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The node's address on the backend link ([`Kind::Routed`]).
const NODE_INT_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
/// Where the eBPF variants pin their maps (and, under `links`, their hooks).
pub const PIN_DIR: &str = "/sys/fs/bpf/npb-nodeport";

/// The shape of the namespaces (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Kind {
    /// Client and backend on two links of the node.
    Routed,
    /// Client, node and backend on one bridged segment.
    OneNic,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Routed => "routed",
            Self::OneNic => "one-nic",
        }
    }

    pub fn backend_ip(self) -> Ipv4Addr {
        match self {
            Self::Routed => Ipv4Addr::new(10, 78, 0, 2),
            Self::OneNic => Ipv4Addr::new(10, 77, 0, 3),
        }
    }

    /// The node's address towards the backend: the source of the translated flows
    /// (`MASQUERADE` picks it; the programs get it as `snat_addr`).
    pub fn snat_ip(self) -> Ipv4Addr {
        match self {
            Self::Routed => NODE_INT_IP,
            Self::OneNic => NODE_EXT_IP,
        }
    }

    /// The node's interfaces the eBPF variants attach to: every one a packet of the flow
    /// arrives on (the backend's replies arrive on `npb-int` when routed).
    pub fn node_ifaces(self) -> &'static [&'static str] {
        match self {
            Self::Routed => &[EXT_IF, INT_IF],
            Self::OneNic => &[EXT_IF],
        }
    }
}

/// Runs `cmd`; its stdout, or an error naming the command, its status and stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let shown = sluice_test_util::describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    ensure!(
        out.status.success(),
        "`{shown}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n <ns> <args>`.
pub fn ip(ns: &str, args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(["-n", ns]).args(args))
}

/// A command run inside `ns` (`ip netns exec <ns> <program>`).
pub fn ns_command(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

fn sysctl(ns: &str, setting: &str) -> Result<()> {
    run(ns_command(ns, "sysctl").args(["-qw", setting])).map(drop)
}

/// The far end of a link (not the node's): NAPI (GRO) on, so it takes `XDP_REDIRECT`ed
/// frames (a veth's `ndo_xdp_xmit` needs its peer to poll with NAPI), and no checksum
/// offload: a veth hands a `CHECKSUM_PARTIAL` skb on with only the pseudo-header sum in
/// the L4 checksum, which native XDP cannot tell and an `XDP_REDIRECT`ed frame does not
/// carry (the receiver would drop it); full checksums are what a real wire delivers. Set
/// in every variant, so all see the same path.
fn far_end(ns: &str, iface: &str) -> Result<()> {
    run(ns_command(ns, "ethtool").args(["-K", iface, "gro", "on", "tx", "off"])).map(drop)
}

/// Builds the namespaces, links, addresses and routes of `kind` (after removing
/// leftovers).
fn create(kind: Kind) -> Result<()> {
    cleanup();
    let cidr = |addr: Ipv4Addr| format!("{addr}/24");
    let mut namespaces = vec![CLIENT_NS, NODE_NS, BACKEND_NS];
    if kind == Kind::OneNic {
        namespaces.push(WIRE_NS);
    }
    for ns in namespaces {
        run(Command::new("ip").args(["netns", "add", ns]))?;
        ip(ns, &["link", "set", "lo", "up"])?;
    }
    let backend_ip = kind.backend_ip();
    match kind {
        Kind::Routed => {
            for (node_if, peer_if, peer_ns, node_ip, peer_ip) in [
                (EXT_IF, CLIENT_IF, CLIENT_NS, NODE_EXT_IP, CLIENT_IP),
                (INT_IF, BACKEND_IF, BACKEND_NS, NODE_INT_IP, backend_ip),
            ] {
                ip(
                    NODE_NS,
                    &[
                        "link", "add", node_if, "type", "veth", "peer", "name", peer_if, "netns",
                        peer_ns,
                    ],
                )?;
                ip(NODE_NS, &["addr", "add", &cidr(node_ip), "dev", node_if])?;
                ip(NODE_NS, &["link", "set", node_if, "up"])?;
                ip(peer_ns, &["addr", "add", &cidr(peer_ip), "dev", peer_if])?;
                ip(peer_ns, &["link", "set", peer_if, "up"])?;
                ip(
                    peer_ns,
                    &["route", "add", "default", "via", &node_ip.to_string()],
                )?;
                far_end(peer_ns, peer_if)?;
            }
        }
        Kind::OneNic => {
            ip(WIRE_NS, &["link", "add", BRIDGE, "type", "bridge"])?;
            ip(WIRE_NS, &["link", "set", BRIDGE, "up"])?;
            for (port, peer_if, peer_ns, peer_ip) in [
                ("npb-wc", CLIENT_IF, CLIENT_NS, CLIENT_IP),
                ("npb-wn", EXT_IF, NODE_NS, NODE_EXT_IP),
                ("npb-wb", BACKEND_IF, BACKEND_NS, backend_ip),
            ] {
                ip(
                    WIRE_NS,
                    &[
                        "link", "add", port, "type", "veth", "peer", "name", peer_if, "netns",
                        peer_ns,
                    ],
                )?;
                ip(WIRE_NS, &["link", "set", port, "master", BRIDGE, "up"])?;
                far_end(WIRE_NS, port)?;
                ip(peer_ns, &["addr", "add", &cidr(peer_ip), "dev", peer_if])?;
                ip(peer_ns, &["link", "set", peer_if, "up"])?;
                if peer_ns != NODE_NS {
                    far_end(peer_ns, peer_if)?;
                    ip(
                        peer_ns,
                        &["route", "add", "default", "via", &NODE_EXT_IP.to_string()],
                    )?;
                }
            }
            // Forwarding back out of the interface a packet came in on would send ICMP
            // redirects to the client.
            sysctl(NODE_NS, "net.ipv4.conf.all.send_redirects=0")?;
            sysctl(NODE_NS, &format!("net.ipv4.conf.{EXT_IF}.send_redirects=0"))?;
        }
    }
    sysctl(NODE_NS, "net.ipv4.ip_forward=1")?;
    Ok(())
}

/// Removes everything the live part creates, by its fixed names: the eBPF hooks and pins,
/// then the namespaces (with them the veths, bridge, addresses, routes and iptables
/// rules). Missing pieces are fine; failures are reported. Calls run one at a time.
pub fn cleanup() {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let report = |what: &str, result: Result<()>| {
        if let Err(error) = result {
            eprintln!("[bench] cleanup: {what}: {error:#}");
        }
    };
    report("eBPF", remove_ebpf());
    for ns in NAMESPACES {
        if Path::new("/run/netns").join(ns).exists() {
            report(
                ns,
                run(Command::new("ip").args(["netns", "del", ns])).map(drop),
            );
        }
    }
}

/// Detaches the eBPF variants' hooks and removes their pins (none is fine).
pub fn remove_ebpf() -> Result<()> {
    let pins = Path::new(PIN_DIR);
    if !pins.exists() {
        return Ok(());
    }
    let links = sluice_node_agent::datapath::links_dir(pins);
    for iface in [EXT_IF, INT_IF] {
        detach_nodeport(&links, iface).with_context(|| format!("detach from {iface}"))?;
    }
    unpin_nodeport(pins).context("unpin the north-south maps")?;
    unpin(pins).context("remove the pin directory")?;
    Ok(())
}

/// The namespaces of one [`Kind`], removed when dropped: on return, on error and while
/// unwinding.
pub struct Topology;

impl Topology {
    /// Builds them (see [`create`]).
    pub fn new(kind: Kind) -> Result<Self> {
        // From here on, every way out cleans up, also a failure half-way through.
        let topology = Self;
        create(kind)?;
        Ok(topology)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        cleanup();
    }
}

/// Moves the calling thread (only it) into network namespace `ns`.
pub fn enter(ns: &str) -> Result<()> {
    let path = Path::new("/run/netns").join(ns);
    let file = File::open(&path).with_context(|| format!("open {}", path.display()))?;
    // SAFETY: setns(2) with a namespace fd we own, open for the whole call, and
    // CLONE_NEWNET: it only changes the calling thread's network namespace, which
    // no other thread observes.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    ensure!(
        rc == 0,
        "setns into {ns}: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Runs `f` on a thread inside `ns` and returns its result (the caller's thread stays
/// where it is).
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(ns)?;
                f()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("a thread in {ns} panicked"))?
    })
}
