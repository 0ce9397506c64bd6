//! Kernel test (root) of the gratuitous ARP the node agent sends when it starts announcing
//! a `LoadBalancer` IP: two network namespaces joined by a veth pair stand for the node and
//! a neighbour on its network. The neighbour holds a stale entry mapping the IP to another
//! MAC (the node that announced it before); one gratuitous ARP from the node's interface,
//! built and sent by `lbaddr`, moves the entry to the node's MAC without any traffic.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_node_agent::lbaddr;

const IP: &str = "172.31.250.200";
const OLD_MAC: &str = "02:00:00:00:00:99";

struct Pair {
    node: String,
    peer: String,
}

impl Pair {
    fn new() -> Self {
        let node = format!("sluice-garp-n-{}", std::process::id());
        let peer = format!("sluice-garp-p-{}", std::process::id());
        for ns in [&node, &peer] {
            sluice_test_util::run(Command::new("ip").args(["netns", "add", ns]));
        }
        let pair = Self { node, peer };
        ip(&[
            "link", "add", "garp0", "netns", &pair.node, "type", "veth", "peer", "name", "garp1",
            "netns", &pair.peer,
        ]);
        ip(&[
            "-n",
            &pair.node,
            "addr",
            "add",
            "172.31.250.11/24",
            "dev",
            "garp0",
        ]);
        ip(&[
            "-n",
            &pair.peer,
            "addr",
            "add",
            "172.31.250.1/24",
            "dev",
            "garp1",
        ]);
        ip(&["-n", &pair.node, "link", "set", "garp0", "up"]);
        ip(&["-n", &pair.peer, "link", "set", "garp1", "up"]);
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.node, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    sluice_test_util::run(Command::new("ip").args(args));
}

/// The neighbour entry for [`IP`] in the peer namespace (`ip neigh` line).
fn neighbour(pair: &Pair) -> String {
    sluice_test_util::stdout(Command::new("ip").args(["-n", &pair.peer, "neigh", "show", IP]))
        .trim()
        .to_owned()
}

#[test]
fn a_gratuitous_arp_moves_a_neighbours_stale_entry_to_this_node() {
    if !sluice_test_util::require_root_and_tools(
        "a_gratuitous_arp_moves_a_neighbours_stale_entry_to_this_node",
        &["ip"],
    ) {
        return;
    }
    let pair = Pair::new();
    // The neighbour still maps the IP to the node that announced it before.
    ip(&[
        "-n", &pair.peer, "neigh", "replace", IP, "lladdr", OLD_MAC, "dev", "garp1", "nud", "stale",
    ]);
    assert!(neighbour(&pair).contains(OLD_MAC), "{}", neighbour(&pair));

    // From the node's namespace: look the interface up over rtnetlink, send the ARP.
    let path = PathBuf::from("/run/netns").join(&pair.node);
    let mac = std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("open the node netns");
        // SAFETY: setns(2) on a valid descriptor; it moves only this thread, which then
        // makes its netlink and packet sockets in the node's namespace.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(connection);
            let (index, mac) = lbaddr::interface(&handle, "garp0").await.unwrap();
            assert!(matches!(
                lbaddr::interface(&handle, "no-such-if").await,
                Err(lbaddr::LbAddrError::NoInterface(_))
            ));
            lbaddr::send_garp(index, mac, IP.parse().unwrap()).expect("send the ARP");
            mac
        })
    })
    .join()
    .expect("the node thread");
    let want = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let entry = neighbour(&pair);
        if entry.contains(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the neighbour entry did not move to {want}: {entry}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
