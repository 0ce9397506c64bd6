//! Golden-packet tests of the north-south programs (root, real kernel,
//! `BPF_PROG_RUN`): `sluice-nodeport` (tc ingress `sluice_np_tc_in`, tc
//! egress `sluice_np_tc_eg`) and `sluice-nodeport-xdp` (`sluice_np_xdp`).
//!
//! Each test loads the objects into a fresh pin directory (fresh maps),
//! programs frontends through `NodePortMaps`, builds input packets byte by
//! byte, runs the program on them and compares the output with a packet
//! built from scratch with the translated addresses (so the expected
//! checksums are computed in full, independently of the programs'
//! incremental updates), and checks every output's IPv4 and L4 checksums
//! with an independent one's-complement sum.
//!
//! The objects come from the directory of `SLUICE_BPF_OBJ` (set by `cargo
//! xtask test`), else `$SLUICE_BPF_DIR`, else `target/bpf/` (written by
//! `cargo xtask build-ebpf`). A test that lacks root or the objects is
//! skipped, or fails under CI (see `sluice_test_util`).

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use sluice_ebpf_common::{
    Be16, Be32, PROTO_TCP, PROTO_UDP,
    nodeport::{
        AffinityKey, AffinityValue, CT_FLAG_CLOSING, CT_FLAG_LOCAL, CT_FLAG_REPLY, CT_FLAG_SNAT,
        CtKey, CtValue, EXT_BACKEND_LOCAL, EXT_FLAG_AFFINITY, EXT_FLAG_EXTERNAL_IP,
        EXT_FLAG_LOADBALANCER, EXT_FLAG_LOCAL, EXT_FLAG_MAGLEV, EXT_FLAG_NODEPORT,
        EXT_FLAG_SOURCE_RANGES, ExtServiceValue, MAGLEV_TABLE_SIZE, MaglevKey, MaglevValue,
        NODEPORT_TC_OBJECT, NODEPORT_XDP_OBJECT, NP_STAT_AFFINITY_HIT, NP_STAT_CT_CREATE,
        NP_STAT_DROP_NO_BACKEND, NP_STAT_DROP_SNAT_EXHAUSTED, NP_STAT_DROP_SOURCE_RANGE,
        NP_STAT_FORWARD, NP_STAT_PASS_UNSUPPORTED, NP_STAT_REPLY, NP_TC_EGRESS_PROGRAM,
        NP_TC_INGRESS_PROGRAM, NP_XDP_PROGRAM, NodeIpKey, NodePortConfig, ServiceKey, SnatKey,
        flow_hash, reduce,
    },
};
use sluice_node_agent::datapath::{
    NodePortKind, NodePortMaps, NodePortObject, ObjectSource, maglev, unpin, unpin_nodeport,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const CLIENT_PORT: u16 = 40_000;
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OTHER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const EXT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const EXT_PORT: u16 = 80;
const NODE_PORT: u16 = 30_080;
const LOCAL_BE: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
const REMOTE_BE: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 9);
const REMOTE_BE2: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 10);
const BE_PORT: u16 = 8_080;
/// The one SNAT port of the test configuration (a one-port range makes the
/// allocation deterministic and lets a second flow find it taken).
const SNAT_PORT: u16 = 61_000;

const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

// ---------------------------------------------------------------- packets

/// One's-complement sum of `bytes` (big-endian 16-bit words), unfolded.
fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum()
}

/// Folds and complements a sum: the Internet checksum.
fn finish(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits")]
    let folded = sum as u16;
    !folded
}

/// The pseudo-header sum of an IPv4 L4 segment.
fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    sum16(&src.octets())
        + sum16(&dst.octets())
        + u32::from(proto)
        + u32::try_from(len).expect("small packet")
}

/// Options of a test packet beyond its tuple.
#[derive(Clone, Copy)]
struct Shape {
    /// TCP flags (ignored for UDP).
    tcp_flags: u8,
    /// Write a UDP checksum (false: 0, "none").
    udp_checksum: bool,
    /// Four bytes of IPv4 options (IHL 6).
    ip_options: bool,
}

const SYN: Shape = Shape {
    tcp_flags: 0x02,
    udp_checksum: true,
    ip_options: false,
};
const SYN_ACK: Shape = Shape {
    tcp_flags: 0x12,
    ..SYN
};

/// An Ethernet + IPv4 + TCP/UDP packet, every checksum computed in full.
fn packet(
    proto: u8,
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    shape: Shape,
) -> Vec<u8> {
    let payload = b"sluice golden packet";
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    if proto == PROTO_TCP {
        l4.extend_from_slice(&1_000_u32.to_be_bytes()); // seq
        l4.extend_from_slice(&0_u32.to_be_bytes()); // ack
        l4.push(5 << 4); // data offset
        l4.push(shape.tcp_flags);
        l4.extend_from_slice(&64_240_u16.to_be_bytes()); // window
        l4.extend_from_slice(&[0, 0]); // checksum
        l4.extend_from_slice(&[0, 0]); // urgent
    } else {
        let len = u16::try_from(8 + payload.len()).expect("small");
        l4.extend_from_slice(&len.to_be_bytes());
        l4.extend_from_slice(&[0, 0]); // checksum
    }
    l4.extend_from_slice(payload);
    let check = finish(pseudo(src, dst, proto, l4.len()) + sum16(&l4));
    let check = if proto == PROTO_UDP && check == 0 {
        0xffff
    } else {
        check
    };
    let csum_off = if proto == PROTO_TCP { 16 } else { 6 };
    if proto == PROTO_TCP || shape.udp_checksum {
        l4[csum_off..csum_off + 2].copy_from_slice(&check.to_be_bytes());
    }

    let options: &[u8] = if shape.ip_options { &[1, 1, 1, 0] } else { &[] };
    let ihl = 5 + options.len() / 4;
    let mut ip = vec![
        0x40 | u8::try_from(ihl).expect("ihl"),
        0,
        0,
        0,
        0x12,
        0x34,
        0x40, // DF
        0,
        64,
        proto,
        0,
        0,
    ];
    let total = u16::try_from(ihl * 4 + l4.len()).expect("small");
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(options);
    let ip_check = finish(sum16(&ip));
    ip[10..12].copy_from_slice(&ip_check.to_be_bytes());

    let mut frame = Vec::new();
    frame.extend_from_slice(&MAC_DST);
    frame.extend_from_slice(&MAC_SRC);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&l4);
    frame
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Vec<u8> {
    packet(PROTO_TCP, src, dst, SYN)
}

/// Asserts the IPv4 header and L4 checksums of an Ethernet frame are
/// right, by summing them in full (a valid checksum sums to `0xffff`).
fn assert_checksums(frame: &[u8]) {
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert_eq!(finish(sum16(&ip[..ihl])), 0, "IPv4 header checksum");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let l4 = &ip[ihl..total];
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let proto = ip[9];
    if proto == PROTO_UDP && l4[6..8] == [0, 0] {
        return; // no checksum
    }
    assert_eq!(
        finish(pseudo(src, dst, proto, l4.len()) + sum16(l4)),
        0,
        "L4 checksum (proto {proto})"
    );
}

// ---------------------------------------------------------------- harness

fn unique(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pin directory under bpffs, unpinned on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(error) = unpin_nodeport(&self.0) {
            eprintln!("cleanup: {error}");
        }
        if let Err(error) = unpin(&self.0) {
            eprintln!("cleanup: {error}");
        }
    }
}

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

/// Both objects loaded on one fresh set of maps.
struct Env {
    tc: NodePortObject,
    xdp: NodePortObject,
    maps: NodePortMaps,
    _pins: PinDir,
}

/// The loaded objects, when `test` can run here (root and the objects);
/// `None`: skipped (and the test must return), or a failure under CI.
fn env(test: &str) -> Option<Env> {
    if !sluice_test_util::require_root(test) {
        return None;
    }
    let dir = object_dir();
    let tc_path = dir.join(NODEPORT_TC_OBJECT);
    let xdp_path = dir.join(NODEPORT_XDP_OBJECT);
    if !sluice_test_util::require(
        test,
        tc_path.is_file() && xdp_path.is_file(),
        "the north-south eBPF objects (target/bpf/sluice-nodeport{,-xdp} from `cargo xtask build-ebpf`)",
    ) {
        return None;
    }
    let pins = PinDir(Path::new("/sys/fs/bpf/sluice-test").join(unique(test)));
    let tc = NodePortObject::load(ObjectSource::Path(&tc_path), NodePortKind::Tc, &pins.0)
        .unwrap_or_else(|e| panic!("load {}: {e:?}", tc_path.display()));
    let xdp = NodePortObject::load(ObjectSource::Path(&xdp_path), NodePortKind::Xdp, &pins.0)
        .unwrap_or_else(|e| panic!("load {}: {e:?}", xdp_path.display()));
    let mut maps = NodePortMaps::open(&pins.0).expect("open maps");
    maps.add_node_ip(NodeIpKey {
        addr: Be32::from_ipv4(NODE_IP),
    })
    .expect("node ip");
    maps.set_config(NodePortConfig {
        snat_addr: Be32::from_ipv4(NODE_IP),
        snat_port_min: SNAT_PORT,
        snat_port_max: SNAT_PORT,
        flags: 0,
    })
    .expect("config");
    Some(Env {
        tc,
        xdp,
        maps,
        _pins: pins,
    })
}

/// A backend of a test frontend: address, port, on this node?
type Be = (Ipv4Addr, u16, bool);

impl Env {
    /// Writes a frontend and its slots (backends first, then slot 0).
    fn frontend(
        &mut self,
        (addr, port, proto): (Ipv4Addr, u16, u8),
        flags: u16,
        svc_id: u16,
        backends: &[Be],
    ) {
        let key = ServiceKey::frontend(Be32::from_ipv4(addr), Be16::from_host(port), proto);
        for (slot, (be_addr, be_port, local)) in (1..).zip(backends) {
            let be_flags = if *local { EXT_BACKEND_LOCAL } else { 0 };
            self.maps
                .upsert_service(
                    key.with_slot(slot),
                    ExtServiceValue::backend(
                        svc_id,
                        Be32::from_ipv4(*be_addr),
                        Be16::from_host(*be_port),
                        be_flags,
                    ),
                )
                .expect("slot");
        }
        let count = u16::try_from(backends.len()).expect("few backends");
        self.maps
            .upsert_service(key, ExtServiceValue::frontend(count, flags, svc_id))
            .expect("frontend");
    }

    fn run(&self, program: &'static str, input: &[u8]) -> (u32, Vec<u8>) {
        let object = if program == NP_XDP_PROGRAM {
            &self.xdp
        } else {
            &self.tc
        };
        let out = object
            .run(program, input, 1)
            .unwrap_or_else(|e| panic!("run {program}: {e:?}"));
        (out.retval, out.packet)
    }

    fn stat(&self, index: u32) -> u64 {
        self.maps.stats().expect("stats")[usize::try_from(index).unwrap()]
    }
}

/// The externalIP frontend (TCP 80) of most tests.
fn ext_frontend() -> (Ipv4Addr, u16, u8) {
    (EXT_IP, EXT_PORT, PROTO_TCP)
}

/// The wildcard `NodePort` frontend (TCP 30080).
fn nodeport_frontend() -> (Ipv4Addr, u16, u8) {
    (Ipv4Addr::UNSPECIFIED, NODE_PORT, PROTO_TCP)
}

fn ct_key(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), proto: u8) -> CtKey {
    CtKey::new(
        Be32::from_ipv4(src.0),
        Be16::from_host(src.1),
        Be32::from_ipv4(dst.0),
        Be16::from_host(dst.1),
        proto,
    )
}

/// Asserts `out` is exactly `expected` (hex dumps on failure) and has
/// valid checksums.
fn assert_golden(out: &[u8], expected: &[u8]) {
    assert_checksums(expected);
    assert_eq!(
        hex(out),
        hex(expected),
        "output packet differs from the golden one"
    );
    assert_checksums(out);
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- tc tests

/// A SYN to an externalIP whose backend is on this node: DNAT only (the
/// client address is kept), passed to the stack, both conntrack entries
/// written.
#[test]
fn tc_dnat_to_local_backend() {
    let Some(mut env) = env("tc_dnat_to_local_backend") else {
        return;
    };
    env.frontend(
        ext_frontend(),
        EXT_FLAG_EXTERNAL_IP,
        1,
        &[(LOCAL_BE, BE_PORT, true)],
    );
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(&out, &tcp((CLIENT, CLIENT_PORT), (LOCAL_BE, BE_PORT)));

    let fwd = env
        .maps
        .ct(&ct_key(
            (CLIENT, CLIENT_PORT),
            (EXT_IP, EXT_PORT),
            PROTO_TCP,
        ))
        .unwrap()
        .expect("forward conntrack entry");
    assert_eq!(fwd.addr, Be32::from_ipv4(LOCAL_BE));
    assert_eq!(fwd.port, Be16::from_host(BE_PORT));
    assert_eq!(fwd.flags, CT_FLAG_LOCAL);
    assert_eq!(fwd.svc_id, 1);
    let rev = env
        .maps
        .ct(&ct_key(
            (LOCAL_BE, BE_PORT),
            (CLIENT, CLIENT_PORT),
            PROTO_TCP,
        ))
        .unwrap()
        .expect("reply conntrack entry");
    assert_eq!(rev.addr, Be32::from_ipv4(EXT_IP));
    assert_eq!(rev.port, Be16::from_host(EXT_PORT));
    assert_eq!(rev.flags, CT_FLAG_LOCAL | CT_FLAG_REPLY);
    assert!(env.maps.snat_entries().unwrap().is_empty(), "no SNAT");
    assert_eq!(env.stat(NP_STAT_FORWARD), 1);
    assert_eq!(env.stat(NP_STAT_CT_CREATE), 1);
}

/// The local backend's SYN-ACK leaving through tc egress gets the
/// externalIP back as its source; unrelated egress traffic is untouched.
#[test]
fn tc_egress_reverses_local_reply() {
    let Some(mut env) = env("tc_egress_reverses_local_reply") else {
        return;
    };
    env.frontend(
        ext_frontend(),
        EXT_FLAG_EXTERNAL_IP,
        1,
        &[(LOCAL_BE, BE_PORT, true)],
    );
    let (rc, _) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);

    let reply = packet(
        PROTO_TCP,
        (LOCAL_BE, BE_PORT),
        (CLIENT, CLIENT_PORT),
        SYN_ACK,
    );
    let (rc, out) = env.run(NP_TC_EGRESS_PROGRAM, &reply);
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(
        &out,
        &packet(
            PROTO_TCP,
            (EXT_IP, EXT_PORT),
            (CLIENT, CLIENT_PORT),
            SYN_ACK,
        ),
    );
    assert_eq!(env.stat(NP_STAT_REPLY), 1);

    // Another flow of the same backend, never seen at ingress: untouched.
    let other = packet(PROTO_TCP, (LOCAL_BE, BE_PORT), (CLIENT, 40_001), SYN_ACK);
    let (rc, out) = env.run(NP_TC_EGRESS_PROGRAM, &other);
    assert_eq!(rc, TC_ACT_OK);
    assert_eq!(out, other);
    // The forward packet itself is no reply: egress leaves it alone.
    let forward = tcp((CLIENT, CLIENT_PORT), (EXT_IP, EXT_PORT));
    let (rc, out) = env.run(NP_TC_EGRESS_PROGRAM, &forward);
    assert_eq!(rc, TC_ACT_OK);
    assert_eq!(out, forward);
    assert_eq!(env.stat(NP_STAT_REPLY), 1);
}

/// A SYN to a `NodePort` (wildcard frontend, addressed to a node IP) whose
/// backend is on another node, policy Cluster: DNAT to the backend and SNAT
/// to the node address and the allocated port; the SNAT map names the flow.
#[test]
fn tc_snat_dnat_to_remote_backend() {
    let Some(mut env) = env("tc_snat_dnat_to_remote_backend") else {
        return;
    };
    env.frontend(
        nodeport_frontend(),
        EXT_FLAG_NODEPORT,
        2,
        &[(REMOTE_BE, BE_PORT, false)],
    );
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (NODE_IP, NODE_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK, "no FIB redirect configured: to the stack");
    assert_golden(&out, &tcp((NODE_IP, SNAT_PORT), (REMOTE_BE, BE_PORT)));

    let snat = env.maps.snat_entries().unwrap();
    assert_eq!(snat.len(), 1);
    let (key, value) = snat[0];
    assert_eq!(
        key,
        SnatKey {
            addr: Be32::from_ipv4(NODE_IP),
            port: Be16::from_host(SNAT_PORT),
            proto: PROTO_TCP,
            pad: 0
        }
    );
    assert_eq!(value.client_addr, Be32::from_ipv4(CLIENT));
    assert_eq!(value.client_port, Be16::from_host(CLIENT_PORT));
    assert_eq!(value.backend_addr, Be32::from_ipv4(REMOTE_BE));

    let fwd = env
        .maps
        .ct(&ct_key(
            (CLIENT, CLIENT_PORT),
            (NODE_IP, NODE_PORT),
            PROTO_TCP,
        ))
        .unwrap()
        .expect("forward entry");
    assert_eq!(fwd.flags, CT_FLAG_SNAT);
    assert_eq!(fwd.nat_addr, Be32::from_ipv4(NODE_IP));
    assert_eq!(fwd.nat_port, Be16::from_host(SNAT_PORT));
    let rev = env
        .maps
        .ct(&ct_key(
            (REMOTE_BE, BE_PORT),
            (NODE_IP, SNAT_PORT),
            PROTO_TCP,
        ))
        .unwrap()
        .expect("reply entry, keyed by the SNATed tuple");
    assert_eq!(rev.flags, CT_FLAG_SNAT | CT_FLAG_REPLY);
    assert_eq!(rev.addr, Be32::from_ipv4(NODE_IP));
    assert_eq!(rev.port, Be16::from_host(NODE_PORT));
    assert_eq!(rev.nat_addr, Be32::from_ipv4(CLIENT));
    assert_eq!(rev.nat_port, Be16::from_host(CLIENT_PORT));
}

/// The remote backend's reply to the SNAT address arrives at tc ingress
/// and leaves as `node IP:NodePort -> client` (rev-SNAT + rev-DNAT).
#[test]
fn tc_ingress_reverses_snat_reply() {
    let Some(mut env) = env("tc_ingress_reverses_snat_reply") else {
        return;
    };
    env.frontend(
        nodeport_frontend(),
        EXT_FLAG_NODEPORT,
        2,
        &[(REMOTE_BE, BE_PORT, false)],
    );
    let (rc, _) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (NODE_IP, NODE_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    let reply = packet(
        PROTO_TCP,
        (REMOTE_BE, BE_PORT),
        (NODE_IP, SNAT_PORT),
        SYN_ACK,
    );
    let (rc, out) = env.run(NP_TC_INGRESS_PROGRAM, &reply);
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(
        &out,
        &packet(
            PROTO_TCP,
            (NODE_IP, NODE_PORT),
            (CLIENT, CLIENT_PORT),
            SYN_ACK,
        ),
    );
    assert_eq!(env.stat(NP_STAT_REPLY), 1);
    assert_eq!(env.stat(NP_STAT_FORWARD), 1);
}

/// Conntrack pins a flow to its backend: after the frontend's only slot is
/// rewritten to another backend, the flow's second packet still goes to
/// the first; a new flow goes to the new one.
#[test]
fn tc_conntrack_keeps_backend() {
    let Some(mut env) = env("tc_conntrack_keeps_backend") else {
        return;
    };
    env.frontend(
        ext_frontend(),
        EXT_FLAG_EXTERNAL_IP,
        1,
        &[(LOCAL_BE, BE_PORT, true)],
    );
    let input = tcp((CLIENT, CLIENT_PORT), (EXT_IP, EXT_PORT));
    let (rc, out) = env.run(NP_TC_INGRESS_PROGRAM, &input);
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(&out, &tcp((CLIENT, CLIENT_PORT), (LOCAL_BE, BE_PORT)));

    env.frontend(
        ext_frontend(),
        EXT_FLAG_EXTERNAL_IP,
        1,
        &[(REMOTE_BE2, BE_PORT, true)],
    );
    let (rc, out) = env.run(NP_TC_INGRESS_PROGRAM, &input);
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(&out, &tcp((CLIENT, CLIENT_PORT), (LOCAL_BE, BE_PORT)));
    assert_eq!(env.stat(NP_STAT_CT_CREATE), 1, "second packet: a hit");

    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT + 1), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(&out, &tcp((CLIENT, CLIENT_PORT + 1), (REMOTE_BE2, BE_PORT)));
    assert_eq!(env.stat(NP_STAT_CT_CREATE), 2);
    assert_eq!(env.stat(NP_STAT_FORWARD), 3);
}

/// Drops: a frontend without backends, a Local-policy frontend without a
/// local backend, a new flow when the only SNAT port is taken. Passes
/// untouched: no frontend, a `NodePort` port on an address that is not the
/// node's, truncated packets, IP options, non-IPv4.
#[test]
fn tc_drops_and_passes() {
    let Some(mut env) = env("tc_drops_and_passes") else {
        return;
    };
    env.frontend(ext_frontend(), EXT_FLAG_EXTERNAL_IP, 1, &[]);
    env.frontend(
        nodeport_frontend(),
        EXT_FLAG_NODEPORT,
        2,
        &[(REMOTE_BE, BE_PORT, false)],
    );
    env.frontend(
        (EXT_IP, 443, PROTO_TCP),
        EXT_FLAG_EXTERNAL_IP | EXT_FLAG_LOCAL,
        3,
        &[],
    );

    let (rc, _) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_SHOT, "frontend without backends");
    let (rc, _) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (EXT_IP, 443)),
    );
    assert_eq!(rc, TC_ACT_SHOT, "Local policy without a local backend");
    assert_eq!(env.stat(NP_STAT_DROP_NO_BACKEND), 2);

    let (rc, _) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (NODE_IP, NODE_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK, "first SNAT flow");
    let (rc, _) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT + 1), (NODE_IP, NODE_PORT)),
    );
    assert_eq!(rc, TC_ACT_SHOT, "the only SNAT port is taken");
    assert_eq!(env.stat(NP_STAT_DROP_SNAT_EXHAUSTED), 1);

    let untouched = |env: &Env, input: Vec<u8>, what: &str| {
        let (rc, out) = env.run(NP_TC_INGRESS_PROGRAM, &input);
        assert_eq!(rc, TC_ACT_OK, "{what}");
        assert_eq!(out, input, "{what}: packet changed");
    };
    untouched(
        &env,
        tcp((CLIENT, CLIENT_PORT), (EXT_IP, 8_443)),
        "no such frontend",
    );
    untouched(
        &env,
        tcp((CLIENT, CLIENT_PORT), (OTHER_IP, NODE_PORT)),
        "NodePort port on a non-node address",
    );
    let full = tcp((CLIENT, CLIENT_PORT), (NODE_IP, NODE_PORT + 1));
    untouched(&env, full[..14 + 20 + 10].to_vec(), "TCP header cut short");
    untouched(&env, full[..14 + 20].to_vec(), "no L4 header");
    // A frame whose IPv4 header itself is cut short cannot be fed to a tc
    // program: BPF_PROG_RUN refuses it (EINVAL) before the program runs.
    // The XDP test covers those.
    let mut arp = full.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    untouched(&env, arp, "not IPv4");
    let options = packet(
        PROTO_TCP,
        (CLIENT, 50_000),
        (NODE_IP, NODE_PORT),
        Shape {
            ip_options: true,
            ..SYN
        },
    );
    assert_checksums(&options);
    untouched(&env, options, "IPv4 options");
    assert_eq!(env.stat(NP_STAT_PASS_UNSUPPORTED), 1);
}

/// UDP: DNAT with the checksum updated, and a datagram without a checksum
/// (0) keeps 0.
#[test]
fn tc_udp_checksums() {
    let Some(mut env) = env("tc_udp_checksums") else {
        return;
    };
    env.frontend(
        (EXT_IP, 53, PROTO_UDP),
        EXT_FLAG_EXTERNAL_IP,
        4,
        &[(LOCAL_BE, 5_353, true)],
    );
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &packet(PROTO_UDP, (CLIENT, CLIENT_PORT), (EXT_IP, 53), SYN),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(
        &out,
        &packet(PROTO_UDP, (CLIENT, CLIENT_PORT), (LOCAL_BE, 5_353), SYN),
    );

    let no_sum = Shape {
        udp_checksum: false,
        ..SYN
    };
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &packet(PROTO_UDP, (CLIENT, 40_002), (EXT_IP, 53), no_sum),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(
        &out,
        &packet(PROTO_UDP, (CLIENT, 40_002), (LOCAL_BE, 5_353), no_sum),
    );
}

// ---------------------------------------------------------------- XDP tests

/// XDP: the same DNAT to a local backend (`XDP_PASS`), the same golden bytes.
#[test]
fn xdp_dnat_to_local_backend() {
    let Some(mut env) = env("xdp_dnat_to_local_backend") else {
        return;
    };
    env.frontend(
        ext_frontend(),
        EXT_FLAG_EXTERNAL_IP,
        1,
        &[(LOCAL_BE, BE_PORT, true)],
    );
    let (rc, out) = env.run(
        NP_XDP_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, XDP_PASS);
    assert_golden(&out, &tcp((CLIENT, CLIENT_PORT), (LOCAL_BE, BE_PORT)));
    // The flow XDP created is the one tc egress reverses.
    let (rc, out) = env.run(
        NP_TC_EGRESS_PROGRAM,
        &packet(
            PROTO_TCP,
            (LOCAL_BE, BE_PORT),
            (CLIENT, CLIENT_PORT),
            SYN_ACK,
        ),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(
        &out,
        &packet(
            PROTO_TCP,
            (EXT_IP, EXT_PORT),
            (CLIENT, CLIENT_PORT),
            SYN_ACK,
        ),
    );
}

/// XDP: SNAT + DNAT to a remote backend, the conntrack hit of the second
/// packet, and the reverse translation of the backend's reply, with UDP
/// checksums too.
#[test]
fn xdp_snat_dnat_and_reply() {
    let Some(mut env) = env("xdp_snat_dnat_and_reply") else {
        return;
    };
    env.frontend(
        (Ipv4Addr::UNSPECIFIED, NODE_PORT, PROTO_UDP),
        EXT_FLAG_NODEPORT,
        2,
        &[(REMOTE_BE, BE_PORT, false)],
    );
    let input = packet(PROTO_UDP, (CLIENT, CLIENT_PORT), (NODE_IP, NODE_PORT), SYN);
    let expected = packet(PROTO_UDP, (NODE_IP, SNAT_PORT), (REMOTE_BE, BE_PORT), SYN);
    for _ in 0..2 {
        let (rc, out) = env.run(NP_XDP_PROGRAM, &input);
        assert_eq!(rc, XDP_PASS);
        assert_golden(&out, &expected);
    }
    assert_eq!(env.stat(NP_STAT_CT_CREATE), 1);
    let (rc, out) = env.run(
        NP_XDP_PROGRAM,
        &packet(PROTO_UDP, (REMOTE_BE, BE_PORT), (NODE_IP, SNAT_PORT), SYN),
    );
    assert_eq!(rc, XDP_PASS);
    assert_golden(
        &out,
        &packet(PROTO_UDP, (NODE_IP, NODE_PORT), (CLIENT, CLIENT_PORT), SYN),
    );
}

/// XDP drops a frontend without backends (`XDP_DROP`) and passes
/// non-matching and truncated packets untouched.
#[test]
fn xdp_drops_and_passes() {
    let Some(mut env) = env("xdp_drops_and_passes") else {
        return;
    };
    env.frontend(ext_frontend(), EXT_FLAG_EXTERNAL_IP, 1, &[]);
    let (rc, _) = env.run(
        NP_XDP_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, XDP_DROP);
    assert_eq!(env.stat(NP_STAT_DROP_NO_BACKEND), 1);
    let full = tcp((CLIENT, CLIENT_PORT), (EXT_IP, 8_443));
    let mut arp = full.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    for input in [
        full.clone(),
        full[..14 + 20 + 4].to_vec(),
        full[..14 + 20].to_vec(),
        full[..20].to_vec(),
        full[..14].to_vec(),
        arp,
    ] {
        let (rc, out) = env.run(NP_XDP_PROGRAM, &input);
        assert_eq!(rc, XDP_PASS);
        assert_eq!(out, input);
    }
}

// ---------------------------------------------------------------- Maglev

/// With `EXT_FLAG_MAGLEV` the backend comes from the service's table entry
/// `flow_hash % MAGLEV_TABLE_SIZE`: a table that maps every entry to slot 2
/// except the flow's own entry (slot 3) sends the flow to backend 3.
#[test]
fn tc_maglev_choice() {
    let Some(mut env) = env("tc_maglev_choice") else {
        return;
    };
    let backends = [
        (LOCAL_BE, 1_001, true),
        (LOCAL_BE, 1_002, true),
        (LOCAL_BE, 1_003, true),
    ];
    env.frontend(
        ext_frontend(),
        EXT_FLAG_EXTERNAL_IP | EXT_FLAG_MAGLEV,
        9,
        &backends,
    );
    let hash = flow_hash(
        Be32::from_ipv4(CLIENT),
        Be16::from_host(CLIENT_PORT),
        Be32::from_ipv4(EXT_IP),
        Be16::from_host(EXT_PORT),
        PROTO_TCP,
    );
    let index = usize::try_from(reduce(hash, u32::try_from(MAGLEV_TABLE_SIZE).unwrap())).unwrap();
    let mut table = MaglevValue {
        slots: [2; MAGLEV_TABLE_SIZE],
        pad: [0; 2],
    };
    table.slots[index] = 3;
    env.maps
        .upsert_maglev(MaglevKey { svc_id: 9, pad: 0 }, &table)
        .unwrap();
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(&out, &tcp((CLIENT, CLIENT_PORT), (LOCAL_BE, 1_003)));
    // Without the flag the same flow takes slot `reduce(hash, count) + 1`.
    let plain_port = 1_001 + u16::try_from(reduce(hash, 3)).unwrap();
    env.frontend(ext_frontend(), EXT_FLAG_EXTERNAL_IP, 9, &backends);
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT + 1), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    let plain_hash = flow_hash(
        Be32::from_ipv4(CLIENT),
        Be16::from_host(CLIENT_PORT + 1),
        Be32::from_ipv4(EXT_IP),
        Be16::from_host(EXT_PORT),
        PROTO_TCP,
    );
    let plain_port_2 = 1_001 + u16::try_from(reduce(plain_hash, 3)).unwrap();
    let _ = plain_port;
    assert_golden(
        &out,
        &tcp((CLIENT, CLIENT_PORT + 1), (LOCAL_BE, plain_port_2)),
    );
}

/// The table the userspace builder makes, in the map, decides the backend
/// of each new flow, at tc and at XDP alike: flow `f` goes to
/// `backends[table[reduce(flow_hash(f), MAGLEV_TABLE_SIZE)]]`.
#[test]
fn maglev_table_from_builder_decides_backends() {
    let Some(mut env) = env("maglev_table_from_builder_decides_backends") else {
        return;
    };
    let backends: Vec<Be> = (0..5).map(|i| (LOCAL_BE, 2_000 + i, true)).collect();
    env.frontend(
        ext_frontend(),
        EXT_FLAG_EXTERNAL_IP | EXT_FLAG_MAGLEV,
        11,
        &backends,
    );
    let names: Vec<String> = backends
        .iter()
        .map(|(addr, port, _)| format!("{addr}:{port}"))
        .collect();
    let table = maglev::build(&names, MAGLEV_TABLE_SIZE).expect("maglev table");
    env.maps
        .upsert_maglev(
            MaglevKey { svc_id: 11, pad: 0 },
            &maglev::to_map_value(&table).expect("map value"),
        )
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for client_port in 41_000..41_040 {
        let hash = flow_hash(
            Be32::from_ipv4(CLIENT),
            Be16::from_host(client_port),
            Be32::from_ipv4(EXT_IP),
            Be16::from_host(EXT_PORT),
            PROTO_TCP,
        );
        let index =
            usize::try_from(reduce(hash, u32::try_from(MAGLEV_TABLE_SIZE).unwrap())).unwrap();
        let (_, port, _) = backends[usize::from(table[index])];
        seen.insert(port);
        let input = tcp((CLIENT, client_port), (EXT_IP, EXT_PORT));
        let expected = tcp((CLIENT, client_port), (LOCAL_BE, port));
        let (program, pass) = if client_port % 2 == 0 {
            (NP_TC_INGRESS_PROGRAM, TC_ACT_OK)
        } else {
            (NP_XDP_PROGRAM, XDP_PASS)
        };
        let (rc, out) = env.run(program, &input);
        assert_eq!(rc, pass, "{program}");
        assert_golden(&out, &expected);
    }
    assert!(seen.len() > 1, "40 flows all on one backend: {seen:?}");
}

// ------------------------------------------------- source ranges, affinity

const LB_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const OUTSIDER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 77);

/// `loadBalancerSourceRanges`: with the flag set, a client inside one of
/// the service's prefixes gets through (tc and XDP); one outside, or inside
/// only another service's prefix, is dropped and counted.
#[test]
fn source_ranges_filter_new_flows() {
    let Some(mut env) = env("source_ranges_filter_new_flows") else {
        return;
    };
    env.frontend(
        (LB_IP, 443, PROTO_TCP),
        EXT_FLAG_LOADBALANCER | EXT_FLAG_SOURCE_RANGES,
        5,
        &[(LOCAL_BE, BE_PORT, true)],
    );
    env.maps
        .add_source_range(5, Be32::from_octets([198, 51, 100, 0]), 24)
        .unwrap();
    env.maps
        .add_source_range(6, Be32::from_octets([203, 0, 113, 0]), 24)
        .unwrap();

    for (program, pass, drop) in [
        (NP_TC_INGRESS_PROGRAM, TC_ACT_OK, TC_ACT_SHOT),
        (NP_XDP_PROGRAM, XDP_PASS, XDP_DROP),
    ] {
        let port = if program == NP_XDP_PROGRAM {
            40_100
        } else {
            40_200
        };
        let (rc, out) = env.run(program, &tcp((CLIENT, port), (LB_IP, 443)));
        assert_eq!(rc, pass, "{program}: inside the range");
        assert_golden(&out, &tcp((CLIENT, port), (LOCAL_BE, BE_PORT)));
        let (rc, _) = env.run(program, &tcp((OUTSIDER, port), (LB_IP, 443)));
        assert_eq!(rc, drop, "{program}: outside the range");
    }
    assert_eq!(env.stat(NP_STAT_DROP_SOURCE_RANGE), 2);

    // Removing the range drops the client too.
    env.maps
        .remove_source_range(5, Be32::from_octets([198, 51, 100, 0]), 24)
        .unwrap();
    let (rc, _) = env.run(NP_TC_INGRESS_PROGRAM, &tcp((CLIENT, 40_300), (LB_IP, 443)));
    assert_eq!(rc, TC_ACT_SHOT);
}

/// The slot the flow hash alone picks for `client:port -> EXT_IP:80`.
fn hashed_slot(client: Ipv4Addr, port: u16, count: u32) -> u16 {
    let hash = flow_hash(
        Be32::from_ipv4(client),
        Be16::from_host(port),
        Be32::from_ipv4(EXT_IP),
        Be16::from_host(EXT_PORT),
        PROTO_TCP,
    );
    u16::try_from(reduce(hash, count)).unwrap() + 1
}

/// `sessionAffinity: ClientIP`: every new flow of a client goes to the
/// backend its first flow got, whatever the flow hash says; another client
/// is independent. A stale entry (older than the timeout) or one whose slot
/// now holds another backend is ignored; a live one is obeyed.
#[test]
fn session_affinity_pins_client_to_backend() {
    let Some(mut env) = env("session_affinity_pins_client_to_backend") else {
        return;
    };
    let backends: Vec<Be> = (0..4).map(|i| (LOCAL_BE, 3_000 + i, true)).collect();
    let key = ServiceKey::frontend(
        Be32::from_ipv4(EXT_IP),
        Be16::from_host(EXT_PORT),
        PROTO_TCP,
    );
    env.frontend(
        ext_frontend(),
        EXT_FLAG_EXTERNAL_IP | EXT_FLAG_AFFINITY,
        7,
        &backends,
    );
    let with_timeout = |env: &mut Env, seconds: u32| {
        env.maps
            .upsert_service(
                key,
                ExtServiceValue::frontend(4, EXT_FLAG_EXTERNAL_IP | EXT_FLAG_AFFINITY, 7)
                    .with_affinity_timeout(seconds),
            )
            .unwrap();
    };
    with_timeout(&mut env, 10_800);
    let be_port = |slot: u16| backends[usize::from(slot - 1)].1;

    let first = hashed_slot(CLIENT, 42_000, 4);
    let mut spread = std::collections::BTreeSet::new();
    for port in 42_000..42_020 {
        spread.insert(hashed_slot(CLIENT, port, 4));
        let (rc, out) = env.run(
            NP_TC_INGRESS_PROGRAM,
            &tcp((CLIENT, port), (EXT_IP, EXT_PORT)),
        );
        assert_eq!(rc, TC_ACT_OK);
        assert_golden(&out, &tcp((CLIENT, port), (LOCAL_BE, be_port(first))));
    }
    assert!(
        spread.len() > 1,
        "the hash alone would have spread these flows"
    );
    assert_eq!(env.stat(NP_STAT_AFFINITY_HIT), 19);
    let aff_key = |client: Ipv4Addr| AffinityKey {
        client: Be32::from_ipv4(client),
        svc_id: 7,
        pad: 0,
    };
    let entry = env
        .maps
        .affinity(&aff_key(CLIENT))
        .unwrap()
        .expect("affinity entry");
    assert_eq!(entry.slot, first);
    assert_eq!(entry.backend_port, Be16::from_host(be_port(first)));

    // Another client: its own hash choice (through XDP this time).
    let other = Ipv4Addr::new(198, 51, 100, 8);
    let slot = hashed_slot(other, 42_000, 4);
    let (rc, out) = env.run(NP_XDP_PROGRAM, &tcp((other, 42_000), (EXT_IP, EXT_PORT)));
    assert_eq!(rc, XDP_PASS);
    assert_golden(&out, &tcp((other, 42_000), (LOCAL_BE, be_port(slot))));

    // A third client with planted entries pointing away from its hash choice.
    let third = Ipv4Addr::new(198, 51, 100, 9);
    let hashed = hashed_slot(third, 43_000, 4);
    let planted = hashed % 4 + 1;
    let plant = |env: &mut Env, slot: u16, port: u16, last_seen: u64| {
        env.maps
            .set_affinity(
                aff_key(third),
                AffinityValue {
                    backend_addr: Be32::from_ipv4(LOCAL_BE),
                    backend_port: Be16::from_host(port),
                    slot,
                    last_seen,
                },
            )
            .unwrap();
    };
    // Stale: last seen at boot, timeout 1 s.
    with_timeout(&mut env, 1);
    plant(&mut env, planted, be_port(planted), 0);
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((third, 43_000), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(&out, &tcp((third, 43_000), (LOCAL_BE, be_port(hashed))));
    // Live (last seen "now or later") but the slot holds another backend.
    with_timeout(&mut env, 10_800);
    plant(&mut env, planted, 9_999, u64::MAX);
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((third, 43_001), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    let hashed_1 = hashed_slot(third, 43_001, 4);
    assert_golden(&out, &tcp((third, 43_001), (LOCAL_BE, be_port(hashed_1))));
    // Live and valid: obeyed.
    let planted = hashed_slot(third, 43_002, 4) % 4 + 1;
    plant(&mut env, planted, be_port(planted), u64::MAX);
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((third, 43_002), (EXT_IP, EXT_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(&out, &tcp((third, 43_002), (LOCAL_BE, be_port(planted))));
}

/// A conntrack entry idle longer than its protocol's timeout (UDP: 60 s;
/// this one was last seen at boot) is ignored: the packet is a new flow,
/// which gets the frontend's current backend and a fresh entry.
#[test]
fn expired_conntrack_entry_is_replaced() {
    let Some(mut env) = env("expired_conntrack_entry_is_replaced") else {
        return;
    };
    env.frontend(
        (EXT_IP, 53, PROTO_UDP),
        EXT_FLAG_EXTERNAL_IP,
        4,
        &[(LOCAL_BE, 5_353, true)],
    );
    let key = ct_key((CLIENT, CLIENT_PORT), (EXT_IP, 53), PROTO_UDP);
    env.maps
        .ct_insert(
            key,
            CtValue {
                addr: Be32::from_ipv4(REMOTE_BE2),
                nat_addr: Be32::from_raw(0),
                port: Be16::from_host(9_999),
                nat_port: Be16::from_raw(0),
                flags: CT_FLAG_LOCAL,
                svc_id: 4,
                last_seen: 0,
            },
        )
        .unwrap();
    let (rc, out) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &packet(PROTO_UDP, (CLIENT, CLIENT_PORT), (EXT_IP, 53), SYN),
    );
    assert_eq!(rc, TC_ACT_OK);
    assert_golden(
        &out,
        &packet(PROTO_UDP, (CLIENT, CLIENT_PORT), (LOCAL_BE, 5_353), SYN),
    );
    let entry = env.maps.ct(&key).unwrap().expect("fresh entry");
    assert_eq!(entry.addr, Be32::from_ipv4(LOCAL_BE));
    assert!(entry.last_seen > 0);
    assert_eq!(env.stat(NP_STAT_CT_CREATE), 1);
}

/// A TCP FIN marks both conntrack entries of its flow closing (10 s instead of
/// 6 h); once they have timed out, the flow's SNAT port is free for a new flow,
/// while it was taken before (one SNAT port here).
#[test]
fn tcp_close_frees_the_snat_port() {
    let Some(mut env) = env("tcp_close_frees_the_snat_port") else {
        return;
    };
    env.frontend(
        nodeport_frontend(),
        EXT_FLAG_NODEPORT,
        2,
        &[(REMOTE_BE, BE_PORT, false)],
    );
    let (rc, _) = env.run(
        NP_TC_INGRESS_PROGRAM,
        &tcp((CLIENT, CLIENT_PORT), (NODE_IP, NODE_PORT)),
    );
    assert_eq!(rc, TC_ACT_OK);
    // A second client finds the only port taken.
    let second = tcp((CLIENT, CLIENT_PORT + 1), (NODE_IP, NODE_PORT));
    let (rc, _) = env.run(NP_TC_INGRESS_PROGRAM, &second);
    assert_eq!(rc, TC_ACT_SHOT, "no free SNAT port");
    assert_eq!(env.stat(NP_STAT_DROP_SNAT_EXHAUSTED), 1);

    // The backend closes (FIN|ACK from its side, as it arrives at the node).
    let fin = packet(
        PROTO_TCP,
        (REMOTE_BE, BE_PORT),
        (NODE_IP, SNAT_PORT),
        Shape {
            tcp_flags: 0x11,
            ..SYN
        },
    );
    let (rc, _) = env.run(NP_TC_INGRESS_PROGRAM, &fin);
    assert_eq!(rc, TC_ACT_OK);
    let fwd_key = ct_key((CLIENT, CLIENT_PORT), (NODE_IP, NODE_PORT), PROTO_TCP);
    let rev_key = ct_key((REMOTE_BE, BE_PORT), (NODE_IP, SNAT_PORT), PROTO_TCP);
    for key in [fwd_key, rev_key] {
        let entry = env.maps.ct(&key).unwrap().expect("entry");
        assert_ne!(entry.flags & CT_FLAG_CLOSING, 0, "{key:?} not closing");
    }
    // Still within the closing timeout: the port stays taken.
    let (rc, _) = env.run(NP_TC_INGRESS_PROGRAM, &second);
    assert_eq!(rc, TC_ACT_SHOT, "the closing flow still holds its port");

    // 11 s later (aged by hand): the port goes to the new flow.
    for key in [fwd_key, rev_key] {
        let mut entry = env.maps.ct(&key).unwrap().expect("entry");
        entry.last_seen = entry.last_seen.saturating_sub(11_000_000_000);
        env.maps.ct_insert(key, entry).unwrap();
    }
    let (rc, out) = env.run(NP_TC_INGRESS_PROGRAM, &second);
    assert_eq!(rc, TC_ACT_OK, "the timed-out flow's port is taken again");
    assert_golden(&out, &tcp((NODE_IP, SNAT_PORT), (REMOTE_BE, BE_PORT)));
    let snat = env.maps.snat_entries().unwrap();
    assert_eq!(snat.len(), 1);
    assert_eq!(snat[0].1.client_port, Be16::from_host(CLIENT_PORT + 1));
}
