//! Kernel test of attaching the north-south programs (root, real kernel):
//! tc ingress/egress through TCX and XDP (native, else generic) on a veth
//! in a network namespace the test creates, each with a pinned link that
//! outlives the loaded object, swapped atomically by the next load, and
//! gone after `detach_nodeport`.
//!
//! Objects as in `nodeport_prog_run.rs` (`target/bpf/sluice-nodeport{,-xdp}`
//! or the directory of `SLUICE_BPF_OBJ`). Needs root, `ip` and `bpftool`;
//! otherwise skipped, or failed under CI (see `sluice_test_util`).

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
};

use aya::programs::{SchedClassifier, TcAttachType};
use sluice_ebpf_common::nodeport::{
    NODEPORT_TC_OBJECT, NODEPORT_XDP_OBJECT, NP_TC_EGRESS_PROGRAM, NP_TC_INGRESS_PROGRAM,
    NP_XDP_PROGRAM,
};
use sluice_ebpf_common::{
    Be16, Be32, PROTO_TCP,
    nodeport::{
        CtKey, EXT_FLAG_NODEPORT, ExtServiceValue, NP_CFG_FIB_REDIRECT, NodeIpKey, NodePortConfig,
        ServiceKey,
    },
};
use sluice_node_agent::datapath::NodePortMaps;
use sluice_node_agent::datapath::{
    AttachMode, NodePortKind, NodePortObject, ObjectSource, detach_nodeport, hook_pin, unpin,
    unpin_nodeport,
};

fn object_dir() -> PathBuf {
    if let Some(obj) = std::env::var_os("SLUICE_BPF_OBJ")
        && let Some(dir) = Path::new(&obj).parent()
    {
        return dir.to_owned();
    }
    if let Some(dir) = std::env::var_os("SLUICE_BPF_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bpf")
}

/// A network namespace with a veth pair (`npa` <-> `npb`, both up),
/// deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("sluice-np{tag}-{}", std::process::id());
        sluice_test_util::run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self(name);
        ns.ip(&["link", "add", "npa", "type", "veth", "peer", "name", "npb"]);
        ns.ip(&["link", "set", "npa", "up"]);
        ns.ip(&["link", "set", "npb", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        sluice_test_util::stdout(Command::new("ip").args(["-n", &self.0]).args(args))
    }

    /// The names of the programs attached to `npa`: TCX ingress, TCX
    /// egress (queried from the kernel with `BPF_PROG_QUERY`; this
    /// bpftool predates TCX) and XDP (from `ip link`, then `bpftool prog`).
    fn hooks(&self) -> (Vec<String>, Vec<String>, Option<String>) {
        let tcx = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter();
                    [TcAttachType::Ingress, TcAttachType::Egress].map(|attach| {
                        let (_, programs) =
                            SchedClassifier::query_tcx("npa", attach).expect("query tcx");
                        programs
                            .iter()
                            .map(|info| info.name_as_str().unwrap_or("?").to_owned())
                            .collect::<Vec<_>>()
                    })
                })
                .join()
                .expect("query thread")
        });
        let [ingress, egress] = tcx;
        let link = self.ip(&["-d", "link", "show", "npa"]);
        let xdp = link
            .split_whitespace()
            .skip_while(|word| *word != "prog/xdp")
            .nth(2)
            .map(|id| {
                sluice_test_util::stdout(Command::new("bpftool").args(["prog", "show", "id", id]))
            });
        (ingress, egress, xdp)
    }

    /// Moves the calling thread into this namespace (only this thread).
    fn enter(&self) {
        let file = File::open(format!("/run/netns/{}", self.0)).expect("open netns");
        // SAFETY: setns(2) with a valid namespace fd and CLONE_NEWNET only
        // changes the calling thread's network namespace; `file` stays open
        // for the call.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A pin directory under bpffs, unpinned on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = detach_nodeport(&self.0.join("links"), "npa");
        let _ = std::fs::remove_dir(self.0.join("links"));
        let _ = unpin_nodeport(&self.0);
        let _ = unpin(&self.0);
    }
}

fn load(dir: &Path, pins: &Path) -> (NodePortObject, NodePortObject) {
    let tc = NodePortObject::load(
        ObjectSource::Path(&dir.join(NODEPORT_TC_OBJECT)),
        NodePortKind::Tc,
        pins,
    )
    .expect("load tc");
    let xdp = NodePortObject::load(
        ObjectSource::Path(&dir.join(NODEPORT_XDP_OBJECT)),
        NodePortKind::Xdp,
        pins,
    )
    .expect("load xdp");
    (tc, xdp)
}

#[test]
fn attach_tcx_and_xdp_to_veth_with_pinned_links() {
    let test = "attach_tcx_and_xdp_to_veth_with_pinned_links";
    if !sluice_test_util::require_root_and_tools(test, &["ip", "bpftool"]) {
        return;
    }
    let dir = object_dir();
    if !sluice_test_util::require(
        test,
        dir.join(NODEPORT_TC_OBJECT).is_file() && dir.join(NODEPORT_XDP_OBJECT).is_file(),
        "the north-south eBPF objects (`cargo xtask build-ebpf`)",
    ) {
        return;
    }
    let ns = Netns::new("a");
    let pins = PinDir(
        Path::new("/sys/fs/bpf/sluice-test").join(format!("np-attach-{}", std::process::id())),
    );
    let links_dir = pins.0.join("links");

    // The attaching thread lives in the test namespace; the test thread
    // keeps the root one (so `ip netns` commands behave as usual).
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter();
                let (mut tc, mut xdp) = load(&dir, &pins.0);
                let hooks = tc.attach("npa", &links_dir).expect("attach tc");
                assert_eq!(
                    hooks
                        .iter()
                        .map(|h| (h.program, h.mode))
                        .collect::<Vec<_>>(),
                    [
                        (NP_TC_INGRESS_PROGRAM, AttachMode::Tcx),
                        (NP_TC_EGRESS_PROGRAM, AttachMode::Tcx)
                    ]
                );
                let hooks = xdp.attach("npa", &links_dir).expect("attach xdp");
                assert_eq!(hooks.len(), 1);
                assert!(
                    matches!(
                        hooks[0].mode,
                        AttachMode::XdpNative | AttachMode::XdpGeneric
                    ),
                    "{hooks:?}"
                );
                eprintln!("xdp attached as {:?}", hooks[0].mode);
            })
            .join()
            .expect("attach thread");
    });
    // The objects are dropped: the pins alone keep the hooks.
    for program in [NP_TC_INGRESS_PROGRAM, NP_TC_EGRESS_PROGRAM, NP_XDP_PROGRAM] {
        assert!(
            hook_pin(&links_dir, program, "npa").exists(),
            "{program} pin"
        );
    }
    let (ingress, egress, xdp) = ns.hooks();
    assert_eq!(ingress, [NP_TC_INGRESS_PROGRAM]);
    assert_eq!(egress, [NP_TC_EGRESS_PROGRAM]);
    let xdp = xdp.expect("ip link shows no XDP program on npa");
    assert!(xdp.contains(NP_XDP_PROGRAM), "{xdp}");

    // A restart: the pinned links stay and get the new programs.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter();
                let (mut tc, mut xdp) = load(&dir, &pins.0);
                let modes: Vec<_> = tc
                    .attach("npa", &links_dir)
                    .expect("re-attach tc")
                    .into_iter()
                    .chain(xdp.attach("npa", &links_dir).expect("re-attach xdp"))
                    .map(|hook| hook.mode)
                    .collect();
                assert_eq!(modes, [AttachMode::Reused; 3]);
            })
            .join()
            .expect("re-attach thread");
    });
    let (ingress, egress, xdp) = ns.hooks();
    assert_eq!(ingress, [NP_TC_INGRESS_PROGRAM], "one program, not two");
    assert_eq!(egress, [NP_TC_EGRESS_PROGRAM]);
    assert!(xdp.is_some_and(|xdp| xdp.contains(NP_XDP_PROGRAM)));

    detach_nodeport(&links_dir, "npa").expect("detach");
    let (ingress, egress, xdp) = ns.hooks();
    assert!(
        ingress.is_empty() && egress.is_empty(),
        "{ingress:?} {egress:?}"
    );
    assert_eq!(xdp, None, "XDP left after detach");
}

/// With `NP_CFG_FIB_REDIRECT`, a packet translated towards a remote backend
/// leaves through the FIB: `bpf_fib_lookup` in the namespace of the XDP
/// context's ingress device finds the route and the (permanent) neighbour,
/// the program writes the next hop's MACs and returns `XDP_REDIRECT`.
#[test]
fn xdp_fib_redirect_to_remote_backend() {
    fib_redirect(
        "xdp_fib_redirect_to_remote_backend",
        NodePortKind::Xdp,
        true,
    );
}

/// At tc, a route whose neighbour is not resolved yet still leaves through
/// `bpf_redirect_neigh` (`TC_ACT_REDIRECT`, MACs left for the kernel); at
/// XDP it goes on untouched (`XDP_PASS`) for tc to translate.
#[test]
fn fib_without_neighbour_redirects_neigh_at_tc() {
    fib_redirect(
        "fib_without_neighbour_redirects_neigh_at_tc",
        NodePortKind::Tc,
        false,
    );
    fib_redirect(
        "fib_without_neighbour_redirects_neigh_at_tc",
        NodePortKind::Xdp,
        false,
    );
}

/// The same at tc ingress: `TC_ACT_REDIRECT`, the context an `__sk_buff`
/// whose `ifindex`/`ingress_ifindex` name the veth.
#[test]
fn tc_fib_redirect_to_remote_backend() {
    fib_redirect("tc_fib_redirect_to_remote_backend", NodePortKind::Tc, true);
}

fn fib_redirect(test: &str, kind: NodePortKind, neighbour: bool) {
    if !sluice_test_util::require_root_and_tools(test, &["ip"]) {
        return;
    }
    let dir = object_dir();
    if !sluice_test_util::require(
        test,
        dir.join(NODEPORT_XDP_OBJECT).is_file() && dir.join(NODEPORT_TC_OBJECT).is_file(),
        "the north-south eBPF objects (`cargo xtask build-ebpf`)",
    ) {
        return;
    }
    let ns = Netns::new(&format!(
        "{}{}",
        if kind == NodePortKind::Xdp { "x" } else { "t" },
        if neighbour { "n" } else { "" }
    ));
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "npa"]);
    ns.ip(&[
        "route",
        "add",
        "10.244.2.0/24",
        "via",
        "192.0.2.254",
        "dev",
        "npa",
    ]);
    if neighbour {
        ns.ip(&[
            "neigh",
            "add",
            "192.0.2.254",
            "lladdr",
            "02:aa:bb:cc:dd:ee",
            "dev",
            "npa",
            "nud",
            "permanent",
        ]);
    }
    sluice_test_util::run(Command::new("ip").args([
        "netns",
        "exec",
        &ns.0,
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.forwarding=1",
    ]));
    let link = ns.ip(&["-o", "link", "show", "npa"]);
    let ifindex: u32 = link
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("ifindex");
    let mac: Vec<u8> = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("mac")
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();

    let pins = PinDir(
        Path::new("/sys/fs/bpf/sluice-test")
            .join(format!("np-fib-{kind:?}-{}", std::process::id())),
    );
    // XDP_REDIRECT, XDP_PASS (no neighbour: untouched, to tc), TC_ACT_REDIRECT
    // (with or without a neighbour).
    let (object, program, redirect) = match (kind, neighbour) {
        (NodePortKind::Xdp, true) => (NODEPORT_XDP_OBJECT, NP_XDP_PROGRAM, 4),
        (NodePortKind::Xdp, false) => (NODEPORT_XDP_OBJECT, NP_XDP_PROGRAM, 2),
        (NodePortKind::Tc, _) => (NODEPORT_TC_OBJECT, NP_TC_INGRESS_PROGRAM, 7),
    };
    let loaded =
        NodePortObject::load(ObjectSource::Path(&dir.join(object)), kind, &pins.0).expect("load");
    let mut maps = NodePortMaps::open(&pins.0).expect("maps");
    let node = Be32::from_octets([192, 0, 2, 1]);
    maps.add_node_ip(NodeIpKey { addr: node }).unwrap();
    maps.set_config(NodePortConfig {
        snat_addr: node,
        snat_port_min: 61_000,
        snat_port_max: 61_000,
        flags: NP_CFG_FIB_REDIRECT,
    })
    .unwrap();
    let fe = ServiceKey::frontend(Be32::from_raw(0), Be16::from_host(30_080), PROTO_TCP);
    maps.upsert_service(
        fe.with_slot(1),
        ExtServiceValue::backend(
            1,
            Be32::from_octets([10, 244, 2, 9]),
            Be16::from_host(8_080),
            0,
        ),
    )
    .unwrap();
    maps.upsert_service(fe, ExtServiceValue::frontend(1, EXT_FLAG_NODEPORT, 1))
        .unwrap();

    // client 198.51.100.7:40000 -> 192.0.2.1:30080, TCP SYN (checksums are
    // not what this test checks).
    let mut packet = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    packet.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, PROTO_TCP, 0, 0]);
    packet.extend_from_slice(&[198, 51, 100, 7, 192, 0, 2, 1]);
    packet.extend_from_slice(&40_000_u16.to_be_bytes());
    packet.extend_from_slice(&30_080_u16.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    let ctx = if kind == NodePortKind::Xdp {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let mut ctx = Vec::new();
        for field in [0, u32::try_from(packet.len()).unwrap(), 0, ifindex, 0, 0] {
            ctx.extend_from_slice(&field.to_ne_bytes());
        }
        ctx
    } else {
        // struct __sk_buff (192 bytes): ingress_ifindex at 36, ifindex at 40.
        let mut ctx = vec![0u8; 192];
        ctx[36..40].copy_from_slice(&ifindex.to_ne_bytes());
        ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
        ctx
    };
    let out = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter();
                loaded
                    .run_with_ctx(program, &packet, Some(&ctx), 1)
                    .expect("run")
            })
            .join()
            .expect("run thread")
    });
    assert_eq!(out.retval, redirect, "verdict");
    if neighbour {
        assert_eq!(
            out.packet[..6],
            [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee],
            "next hop MAC"
        );
        assert_eq!(out.packet[6..12], mac[..], "npa's MAC as the source");
    } else {
        assert_eq!(out.packet[..12], packet[..12], "MACs left to the kernel");
    }
    if kind == NodePortKind::Xdp && !neighbour {
        // XDP cannot resolve the neighbour: the packet goes on untouched, and tc
        // translates it from the conntrack entry XDP made.
        assert_eq!(out.packet, packet, "left untouched for tc");
        let tracked = maps
            .ct(&CtKey::new(
                Be32::from_octets([198, 51, 100, 7]),
                Be16::from_host(40_000),
                node,
                Be16::from_host(30_080),
                PROTO_TCP,
            ))
            .expect("ct lookup")
            .expect("the flow is tracked for tc");
        assert_eq!(tracked.addr, Be32::from_octets([10, 244, 2, 9]));
        return;
    }
    assert_eq!(
        out.packet[26..34],
        [192, 0, 2, 1, 10, 244, 2, 9],
        "SNAT + DNAT"
    );
    assert_eq!(
        out.packet[34..38],
        [0xee, 0x48, 0x1f, 0x90],
        "ports 61000 -> 8080"
    );
}
