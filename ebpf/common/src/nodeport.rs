//! North-south maps: `NodePort`, `externalIPs` and `LoadBalancer` ingress
//! addresses handled at tc (and XDP) on a node's external interface.
//!
//! # Why a map of its own for the frontends
//!
//! The north-south frontends live in [`EXT_SERVICES_MAP`], not in
//! [`SERVICES_MAP`](crate::SERVICES_MAP), although the key type is the same
//! [`ServiceKey`]:
//!
//! - the service proxy's reconciler owns `sluice_svc_v1` and
//!   `sluice_be_v1`: it rebuilds ids from the live maps and prunes every entry
//!   its desired state lacks, so entries another writer put there would be
//!   deleted on its next start;
//! - the cgroup `connect4` hook reads `sluice_svc_v1`: a wildcard `NodePort`
//!   frontend (address `0.0.0.0`) there would translate a local
//!   `connect(0.0.0.0:port)` too;
//! - the tc/XDP path needs per-backend facts the socket LB does not (is the
//!   backend on this node?), so its slots carry the backend inline
//!   ([`ExtServiceValue`]) instead of an id into `sluice_be_v1`: one lookup
//!   less per new flow, and no cross-map id to keep alive.
//!
//! # Frontend lookup
//!
//! A packet to `dst:dport/proto` first looks up
//! `ServiceKey::frontend(dst, dport, proto)` (an `externalIP` or a
//! `LoadBalancer` ingress IP, or a `NodePort` on one specific address). On a
//! miss, if `dst` is in [`NODE_IPS_MAP`], it looks up the wildcard
//! `ServiceKey::frontend(0.0.0.0, dport, proto)`: a `NodePort` answers on every
//! node address. Slot 0's [`ExtServiceValue::count`] is the number of
//! backends; slots `1..=count` each carry one backend.
//!
//! # Connection tracking and SNAT
//!
//! [`CT_MAP`] (LRU) holds two entries per flow, keyed by the tuple as it is
//! seen on the wire: the original direction `client -> frontend` (value: the
//! backend, and the SNAT source when there is one) and the reply direction
//! `backend -> client` or `backend -> snat address:port` (value: the frontend
//! to show as the source, and the client to restore as the destination when
//! the flow was source-NATed, flag [`CT_FLAG_REPLY`]).
//!
//! [`SNAT_MAP`] (LRU) is the SNAT port allocator of
//! `externalTrafficPolicy: Cluster` flows to a backend on another node:
//! `{node address, port, proto}` -> the client and backend of the flow that
//! holds the port. A port is taken with an insert that fails when the key
//! exists (`BPF_NOEXIST`), so one port belongs to one flow.
//!
//! `externalTrafficPolicy: Local` is [`EXT_FLAG_LOCAL`] on the frontend:
//! userspace writes only this node's backends into its slots, the programs
//! never SNAT it (the client address is preserved), and a frontend with no
//! local backend drops.

#![allow(
    clippy::inline_always,
    reason = "the hash helpers run per packet in the BPF programs, where a call costs verifier state; they are tiny"
)]

use core::mem::{offset_of, size_of};

use crate::{Be16, Be32};

pub use crate::ServiceKey;

/// Pinned name of the north-south frontends map
/// (`HashMap<ServiceKey, ExtServiceValue>`), filled by userspace.
/// The kernel shows it truncated (`sluice_extsvc_v`).
pub const EXT_SERVICES_MAP: &str = "sluice_extsvc_v1";
/// Pinned name of the node addresses map (`HashMap<NodeIpKey, NodeIpValue>`):
/// the addresses a wildcard `NodePort` frontend answers on.
pub const NODE_IPS_MAP: &str = "sluice_nodeip_v1";
/// Pinned name of the north-south configuration (`Array<NodePortConfig>`, one entry).
pub const NODEPORT_CONFIG_MAP: &str = "sluice_npcfg_v1";
/// Pinned name of the connection-tracking map (`LruHashMap<CtKey, CtValue>`),
/// written by the programs.
pub const CT_MAP: &str = "sluice_ct_v1";
/// Pinned name of the SNAT port map (`LruHashMap<SnatKey, SnatValue>`),
/// written by the programs.
pub const SNAT_MAP: &str = "sluice_snat_v1";
/// Pinned name of the per-CPU counters (`PerCpuArray<u64>`, [`NP_STATS_LEN`]
/// entries indexed by `NP_STAT_*`).
pub const NODEPORT_STATS_MAP: &str = "sluice_npstat_v1";
/// Pinned name of the Maglev tables (`HashMap<MaglevKey, MaglevValue>`),
/// filled by userspace.
pub const MAGLEV_MAP: &str = "sluice_maglev_v1";

/// Pinned name of the source ranges (`LpmTrie<SourceRangeKey, u32>`),
/// filled by userspace: key prefix length `SOURCE_RANGE_SVC_BITS + prefix`.
pub const SOURCE_RANGES_MAP: &str = "sluice_srcrange_v1";
/// Pinned name of the session-affinity map
/// (`LruHashMap<AffinityKey, AffinityValue>`), written by the programs.
pub const AFFINITY_MAP: &str = "sluice_affinity_v1";
/// Bits of a [`SourceRangeKey`] before the address (service id and
/// padding): always matched in full.
pub const SOURCE_RANGE_SVC_BITS: u32 = 32;

/// Capacity of [`EXT_SERVICES_MAP`] (frontends plus backend slots).
pub const EXT_SERVICES_MAX_ENTRIES: u32 = 65_536;
/// Capacity of [`NODE_IPS_MAP`].
pub const NODE_IPS_MAX_ENTRIES: u32 = 256;
/// Capacity of [`CT_MAP`] (two entries per flow).
pub const CT_MAX_ENTRIES: u32 = 524_288;
/// Capacity of [`SNAT_MAP`].
pub const SNAT_MAX_ENTRIES: u32 = 262_144;
/// Capacity of [`MAGLEV_MAP`] (services with a Maglev table).
pub const MAGLEV_MAX_ENTRIES: u32 = 1_024;
/// Capacity of [`SOURCE_RANGES_MAP`].
pub const SOURCE_RANGES_MAX_ENTRIES: u32 = 16_384;
/// Capacity of [`AFFINITY_MAP`].
pub const AFFINITY_MAX_ENTRIES: u32 = 65_536;

/// Object (ELF) holding the tc programs.
pub const NODEPORT_TC_OBJECT: &str = "sluice-nodeport";
/// Object (ELF) holding the XDP program.
pub const NODEPORT_XDP_OBJECT: &str = "sluice-nodeport-xdp";
/// tc ingress program of the external interface: frontends forward, replies
/// of source-NATed flows back.
pub const NP_TC_INGRESS_PROGRAM: &str = "sluice_np_tc_in";
/// tc egress program of the external interface: replies of local backends
/// back to the frontend address.
pub const NP_TC_EGRESS_PROGRAM: &str = "sluice_np_tc_eg";
/// XDP program of the external interface (the ingress fast path).
pub const NP_XDP_PROGRAM: &str = "sluice_np_xdp";

/// Frontend flag: a `NodePort` (the key's address is `0.0.0.0` for "every
/// node address" or one node address).
pub const EXT_FLAG_NODEPORT: u16 = 1 << 0;
/// Frontend flag: an `externalIPs` address.
pub const EXT_FLAG_EXTERNAL_IP: u16 = 1 << 1;
/// Frontend flag: a `LoadBalancer` ingress address.
pub const EXT_FLAG_LOADBALANCER: u16 = 1 << 2;
/// Frontend flag: `externalTrafficPolicy: Local` (slots hold only local
/// backends; never SNAT).
pub const EXT_FLAG_LOCAL: u16 = 1 << 3;
/// Frontend flag: choose backends through the service's Maglev table
/// ([`MAGLEV_MAP`]) instead of the flow hash modulo `count`.
pub const EXT_FLAG_MAGLEV: u16 = 1 << 4;

/// Frontend flag: `loadBalancerSourceRanges` are set: a new flow whose
/// client matches no `{svc_id, prefix}` of [`SOURCE_RANGES_MAP`] is dropped.
pub const EXT_FLAG_SOURCE_RANGES: u16 = 1 << 5;
/// Frontend flag: `sessionAffinity: ClientIP`: a client's new flows go to
/// the backend in [`AFFINITY_MAP`] while that entry is younger than
/// [`ExtServiceValue::affinity_timeout_s`].
pub const EXT_FLAG_AFFINITY: u16 = 1 << 6;

/// Backend flag (slot entries): the backend runs on this node, so a packet
/// to it is passed to the stack and never source-NATed.
pub const EXT_BACKEND_LOCAL: u8 = 1 << 0;

/// Conntrack flag: the entry is the reply direction (`backend -> client`).
pub const CT_FLAG_REPLY: u16 = 1 << 0;
/// Conntrack flag: the flow is source-NATed to a node address.
pub const CT_FLAG_SNAT: u16 = 1 << 1;
/// Conntrack flag: the backend is on this node.
pub const CT_FLAG_LOCAL: u16 = 1 << 2;
/// Conntrack flag: a TCP FIN or RST was seen on the flow (either direction):
/// the entry times out after [`CT_TIMEOUT_TCP_CLOSING_NS`] instead of
/// [`CT_TIMEOUT_TCP_NS`], so closed flows free their SNAT ports.
pub const CT_FLAG_CLOSING: u16 = 1 << 3;

/// Counter: packets to a frontend with no (usable) backend, dropped.
pub const NP_STAT_DROP_NO_BACKEND: u32 = 0;
/// Counter: new flows dropped because no SNAT port was free.
pub const NP_STAT_DROP_SNAT_EXHAUSTED: u32 = 1;
/// Counter: new flows dropped because the conntrack insert failed.
pub const NP_STAT_DROP_CT: u32 = 2;
/// Counter: packets dropped because a rewrite (store, checksum) failed.
pub const NP_STAT_DROP_REWRITE: u32 = 3;
/// Counter: packets translated towards a backend (DNAT, maybe SNAT).
pub const NP_STAT_FORWARD: u32 = 4;
/// Counter: reply packets translated back to the frontend.
pub const NP_STAT_REPLY: u32 = 5;
/// Counter: packets to a frontend passed untranslated because their shape
/// is not handled (IP options, fragments).
pub const NP_STAT_PASS_UNSUPPORTED: u32 = 6;
/// Counter: new conntrack entries (flows) created.
pub const NP_STAT_CT_CREATE: u32 = 7;
/// Counter: new flows dropped by `loadBalancerSourceRanges`.
pub const NP_STAT_DROP_SOURCE_RANGE: u32 = 8;
/// Counter: new flows sent to their client's affinity backend.
pub const NP_STAT_AFFINITY_HIT: u32 = 9;
/// Number of counters in [`NODEPORT_STATS_MAP`].
pub const NP_STATS_LEN: u32 = 10;

/// Conntrack idle timeout of TCP flows, in nanoseconds (6 hours).
pub const CT_TIMEOUT_TCP_NS: u64 = 6 * 3_600 * 1_000_000_000;
/// Conntrack idle timeout of a TCP flow after a FIN or RST, in nanoseconds
/// (10 seconds: the last ACKs and retransmissions still pass).
pub const CT_TIMEOUT_TCP_CLOSING_NS: u64 = 10 * 1_000_000_000;
/// Conntrack idle timeout of UDP flows, in nanoseconds (60 seconds).
pub const CT_TIMEOUT_UDP_NS: u64 = 60 * 1_000_000_000;
/// How stale `last_seen` may get before a packet refreshes it, in
/// nanoseconds (1 second): most packets of a busy flow write nothing.
pub const CT_REFRESH_NS: u64 = 1_000_000_000;

/// Number of entries of every Maglev table in [`MAGLEV_MAP`] (a prime;
/// userspace may build other prime sizes for itself, the map takes this one).
pub const MAGLEV_TABLE_SIZE: usize = 1_021;

/// Value of [`EXT_SERVICES_MAP`] (the key is a [`ServiceKey`]).
///
/// Slot 0 (frontend): `count` backends, `flags` (`EXT_FLAG_*`), `svc_id`;
/// the backend fields are 0. Slot `n >= 1`: the backend `backend_addr:backend_port`
/// with `backend_flags` (`EXT_BACKEND_*`), and the frontend's `svc_id` again.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExtServiceValue {
    /// Number of backend slots (frontend only); 0 means "drop".
    pub count: u16,
    /// `EXT_FLAG_*` bits (frontend only).
    pub flags: u16,
    /// Service id (1-based): keys [`MAGLEV_MAP`] and is recorded in conntrack.
    pub svc_id: u16,
    /// Backend port (slots only).
    pub backend_port: Be16,
    /// Backend address (slots only).
    pub backend_addr: Be32,
    /// `EXT_BACKEND_*` bits (slots only).
    pub backend_flags: u8,
    /// Explicit padding; always 0.
    pub pad0: u8,
    /// Explicit padding; always 0.
    pub pad1: u16,
    /// `sessionAffinity` timeout in seconds (frontend with
    /// [`EXT_FLAG_AFFINITY`] only).
    pub affinity_timeout_s: u32,
}

impl ExtServiceValue {
    /// A frontend (slot 0) value.
    #[must_use]
    pub const fn frontend(count: u16, flags: u16, svc_id: u16) -> Self {
        Self {
            count,
            flags,
            svc_id,
            backend_port: Be16::from_raw(0),
            backend_addr: Be32::from_raw(0),
            backend_flags: 0,
            pad0: 0,
            pad1: 0,
            affinity_timeout_s: 0,
        }
    }

    /// The same frontend with a `sessionAffinity` timeout (seconds).
    #[must_use]
    pub const fn with_affinity_timeout(self, affinity_timeout_s: u32) -> Self {
        Self {
            affinity_timeout_s,
            ..self
        }
    }

    /// A backend slot value.
    #[must_use]
    pub const fn backend(svc_id: u16, addr: Be32, port: Be16, backend_flags: u8) -> Self {
        Self {
            count: 0,
            flags: 0,
            svc_id,
            backend_port: port,
            backend_addr: addr,
            backend_flags,
            pad0: 0,
            pad1: 0,
            affinity_timeout_s: 0,
        }
    }
}

/// Key of [`NODE_IPS_MAP`]: one address of this node.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIpKey {
    /// The address.
    pub addr: Be32,
}

/// Value of [`NODE_IPS_MAP`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeIpValue {
    /// Reserved flags; 0.
    pub flags: u32,
}

/// The one entry of [`NODEPORT_CONFIG_MAP`].
///
/// `snat_addr == 0` disables SNAT: a flow that would need it (policy
/// `Cluster`, backend on another node) is forwarded with the client address.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodePortConfig {
    /// The node address remote backends see as the source of source-NATed flows.
    pub snat_addr: Be32,
    /// First SNAT port (host order, inclusive).
    pub snat_port_min: u16,
    /// Last SNAT port (host order, inclusive); `>= snat_port_min`.
    pub snat_port_max: u16,
    /// `NP_CFG_*` bits.
    pub flags: u32,
}

/// Config flag: after translating towards a remote backend, look the route
/// up (`bpf_fib_lookup`) and redirect out of the egress device; without it
/// (or when the lookup fails) the packet goes to the stack.
pub const NP_CFG_FIB_REDIRECT: u32 = 1 << 0;

/// Key of [`CT_MAP`]: a flow's tuple as seen on the wire at the hook.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CtKey {
    /// Source address.
    pub src: Be32,
    /// Destination address.
    pub dst: Be32,
    /// Source port.
    pub sport: Be16,
    /// Destination port.
    pub dport: Be16,
    /// IP protocol ([`PROTO_TCP`](crate::PROTO_TCP), [`PROTO_UDP`](crate::PROTO_UDP)).
    pub proto: u8,
    /// Explicit padding; always 0.
    pub pad0: u8,
    /// Explicit padding; always 0.
    pub pad1: u16,
}

impl CtKey {
    /// The key of `src:sport -> dst:dport/proto`.
    #[must_use]
    pub const fn new(src: Be32, sport: Be16, dst: Be32, dport: Be16, proto: u8) -> Self {
        Self {
            src,
            dst,
            sport,
            dport,
            proto,
            pad0: 0,
            pad1: 0,
        }
    }
}

/// Value of [`CT_MAP`].
///
/// Original direction (no [`CT_FLAG_REPLY`]): rewrite the destination to
/// `addr:port` (the backend) and, with [`CT_FLAG_SNAT`], the source to
/// `nat_addr:nat_port`. Reply direction ([`CT_FLAG_REPLY`]): rewrite the
/// source to `addr:port` (the frontend) and, with [`CT_FLAG_SNAT`], the
/// destination to `nat_addr:nat_port` (the client).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtValue {
    /// Backend (original) or frontend (reply) address.
    pub addr: Be32,
    /// SNAT source (original) or client (reply) address; 0 without SNAT.
    pub nat_addr: Be32,
    /// Backend (original) or frontend (reply) port.
    pub port: Be16,
    /// SNAT source port (original) or client port (reply); 0 without SNAT.
    pub nat_port: Be16,
    /// `CT_FLAG_*` bits.
    pub flags: u16,
    /// The frontend's service id.
    pub svc_id: u16,
    /// `bpf_ktime_get_ns` when a packet last refreshed the entry.
    pub last_seen: u64,
}

/// Key of [`SNAT_MAP`]: one SNAT port of a node address.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnatKey {
    /// The node address ([`NodePortConfig::snat_addr`]).
    pub addr: Be32,
    /// The allocated port.
    pub port: Be16,
    /// IP protocol.
    pub proto: u8,
    /// Explicit padding; always 0.
    pub pad: u8,
}

/// Value of [`SNAT_MAP`]: the flow holding the port.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnatValue {
    /// Original client address.
    pub client_addr: Be32,
    /// Backend address.
    pub backend_addr: Be32,
    /// Original client port.
    pub client_port: Be16,
    /// Backend port.
    pub backend_port: Be16,
    /// Explicit padding; always 0.
    pub pad: u32,
}

/// Key data of [`SOURCE_RANGES_MAP`] (the LPM key's prefix length is
/// [`SOURCE_RANGE_SVC_BITS`] + the CIDR's prefix length, so the service id
/// always matches exactly).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRangeKey {
    /// The frontend's service id.
    pub svc_id: u16,
    /// Explicit padding; always 0.
    pub pad: u16,
    /// The range's network address.
    pub addr: Be32,
}

/// Key of [`AFFINITY_MAP`]: one client of one service.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AffinityKey {
    /// The client address.
    pub client: Be32,
    /// The frontend's service id.
    pub svc_id: u16,
    /// Explicit padding; always 0.
    pub pad: u16,
}

/// Value of [`AFFINITY_MAP`]: the backend a client's flows go to.
///
/// Used only while the slot still holds the same backend (slots may be
/// renumbered when endpoints change).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityValue {
    /// Backend address.
    pub backend_addr: Be32,
    /// Backend port.
    pub backend_port: Be16,
    /// The frontend slot the backend was in.
    pub slot: u16,
    /// `bpf_ktime_get_ns` of the client's last new flow.
    pub last_seen: u64,
}

// Padding is made of integer fields, not byte arrays: zeroing a `[u8; N]`
// can become a call to `memset`, which bpf-linker emits as a BPF
// subprogram; calls like that have cost verifier rejections here.

/// Key of [`MAGLEV_MAP`]: a service id.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaglevKey {
    /// The frontend's [`ExtServiceValue::svc_id`].
    pub svc_id: u16,
    /// Explicit padding; always 0.
    pub pad: u16,
}

/// Value of [`MAGLEV_MAP`]: a Maglev lookup table of backend slots
/// (`1..=count` of the frontend), indexed by
/// `reduce(flow_hash, MAGLEV_TABLE_SIZE)`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct MaglevValue {
    /// Backend slot per table entry.
    pub slots: [u16; MAGLEV_TABLE_SIZE],
    /// Explicit padding (to a multiple of 4 bytes); always 0.
    pub pad: [u8; 2],
}

/// The flow hash both the programs and userspace use to pick a backend
/// slot and the first SNAT port to try (through [`reduce`]).
///
/// Inputs are the raw network-order bits of the tuple; murmur3's finaliser
/// mixes each word in. Deterministic, so every node picks the same backend
/// for a flow (what Maglev relies on) and the golden tests can predict it.
#[must_use]
#[inline(always)]
pub const fn flow_hash(src: Be32, sport: Be16, dst: Be32, dport: Be16, proto: u8) -> u32 {
    let mut hash = 0x9e37_79b9_u32;
    hash = fmix32(hash ^ src.raw());
    hash = fmix32(hash ^ dst.raw());
    hash = fmix32(hash ^ (((sport.raw() as u32) << 16) | dport.raw() as u32));
    fmix32(hash ^ proto as u32)
}

/// Maps a hash onto `0..n` without a division (Lemire's multiply-shift):
/// `(hash * n) >> 32`. The verifier can bound the result from the bounds of
/// `n` alone, which it cannot do for a `%` the compiler turned into a
/// multiplication. Backend slot = `reduce(hash, count) + 1`; Maglev entry =
/// `reduce(hash, MAGLEV_TABLE_SIZE)`; first SNAT port = `min + reduce(hash, range)`.
#[must_use]
#[inline(always)]
pub const fn reduce(hash: u32, n: u32) -> u32 {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "(u32 * u32) >> 32 fits u32"
    )]
    let reduced = ((hash as u64 * n as u64) >> 32) as u32;
    reduced
}

/// murmur3's 32-bit finaliser.
#[inline(always)]
const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

const _: () = {
    assert!(size_of::<ExtServiceValue>() == 20);
    assert!(offset_of!(ExtServiceValue, affinity_timeout_s) == 16);
    assert!(size_of::<SourceRangeKey>() == 8);
    assert!(offset_of!(SourceRangeKey, addr) == 4);
    assert!(size_of::<AffinityKey>() == 8);
    assert!(size_of::<AffinityValue>() == 16);
    assert!(offset_of!(AffinityValue, slot) == 6);
    assert!(offset_of!(AffinityValue, last_seen) == 8);
    assert!(offset_of!(ExtServiceValue, count) == 0);
    assert!(offset_of!(ExtServiceValue, flags) == 2);
    assert!(offset_of!(ExtServiceValue, svc_id) == 4);
    assert!(offset_of!(ExtServiceValue, backend_port) == 6);
    assert!(offset_of!(ExtServiceValue, backend_addr) == 8);
    assert!(offset_of!(ExtServiceValue, backend_flags) == 12);
    assert!(offset_of!(ExtServiceValue, pad0) == 13);
    assert!(offset_of!(ExtServiceValue, pad1) == 14);

    assert!(size_of::<NodeIpKey>() == 4);
    assert!(size_of::<NodeIpValue>() == 4);

    assert!(size_of::<NodePortConfig>() == 12);
    assert!(offset_of!(NodePortConfig, snat_addr) == 0);
    assert!(offset_of!(NodePortConfig, snat_port_min) == 4);
    assert!(offset_of!(NodePortConfig, snat_port_max) == 6);
    assert!(offset_of!(NodePortConfig, flags) == 8);

    assert!(size_of::<CtKey>() == 16);
    assert!(offset_of!(CtKey, src) == 0);
    assert!(offset_of!(CtKey, dst) == 4);
    assert!(offset_of!(CtKey, sport) == 8);
    assert!(offset_of!(CtKey, dport) == 10);
    assert!(offset_of!(CtKey, proto) == 12);
    assert!(offset_of!(CtKey, pad0) == 13);
    assert!(offset_of!(CtKey, pad1) == 14);

    assert!(size_of::<CtValue>() == 24);
    assert!(offset_of!(CtValue, addr) == 0);
    assert!(offset_of!(CtValue, nat_addr) == 4);
    assert!(offset_of!(CtValue, port) == 8);
    assert!(offset_of!(CtValue, nat_port) == 10);
    assert!(offset_of!(CtValue, flags) == 12);
    assert!(offset_of!(CtValue, svc_id) == 14);
    assert!(offset_of!(CtValue, last_seen) == 16);

    assert!(size_of::<SnatKey>() == 8);
    assert!(offset_of!(SnatKey, port) == 4);
    assert!(offset_of!(SnatKey, proto) == 6);
    assert!(size_of::<SnatValue>() == 16);
    assert!(offset_of!(SnatValue, backend_addr) == 4);
    assert!(offset_of!(SnatValue, client_port) == 8);
    assert!(offset_of!(SnatValue, backend_port) == 10);

    assert!(size_of::<MaglevKey>() == 4);
    assert!(size_of::<MaglevValue>() == 2 * MAGLEV_TABLE_SIZE + 2);

    assert!(NODEPORT_CONFIG_MAP.len() <= 15);
    assert!(CT_MAP.len() <= 15);
    assert!(SNAT_MAP.len() <= 15);
    // EXT_SERVICES_MAP, NODE_IPS_MAP, NODEPORT_STATS_MAP and MAGLEV_MAP are
    // 16 bytes: the kernel shows them truncated; pins keep the full names.
    assert!(NP_TC_INGRESS_PROGRAM.len() <= 15);
    assert!(NP_TC_EGRESS_PROGRAM.len() <= 15);
    assert!(NP_XDP_PROGRAM.len() <= 15);
};

#[cfg(feature = "user")]
mod pod {
    use super::{
        AffinityKey, AffinityValue, CtKey, CtValue, ExtServiceValue, MaglevKey, MaglevValue,
        NodeIpKey, NodeIpValue, NodePortConfig, SnatKey, SnatValue, SourceRangeKey,
    };

    // SAFETY: see below.
    unsafe impl aya::Pod for SourceRangeKey {}
    // SAFETY: see below.
    unsafe impl aya::Pod for AffinityKey {}
    // SAFETY: see below; the `u64` sits at offset 8, 8-aligned, no hole.
    unsafe impl aya::Pod for AffinityValue {}

    // SAFETY (all impls here): each type is `#[repr(C)]`, `Copy`, made only
    // of integers and integer arrays (`Be32`/`Be16` are `repr(transparent)`
    // integers), with every padding byte an explicit field (sizes and
    // offsets asserted above), so any bit pattern is valid and no byte is
    // uninitialised.
    // SAFETY: see above.
    unsafe impl aya::Pod for ExtServiceValue {}
    // SAFETY: see above.
    unsafe impl aya::Pod for NodeIpKey {}
    // SAFETY: see above.
    unsafe impl aya::Pod for NodeIpValue {}
    // SAFETY: see above.
    unsafe impl aya::Pod for NodePortConfig {}
    // SAFETY: see above.
    unsafe impl aya::Pod for CtKey {}
    // SAFETY: see above; the `u64` sits at offset 16, 8-aligned, no hole.
    unsafe impl aya::Pod for CtValue {}
    // SAFETY: see above.
    unsafe impl aya::Pod for SnatKey {}
    // SAFETY: see above.
    unsafe impl aya::Pod for SnatValue {}
    // SAFETY: see above.
    unsafe impl aya::Pod for MaglevKey {}
    // SAFETY: see above; 2 * 1021 + 2 bytes of `u16`s and `u8`s.
    unsafe impl aya::Pod for MaglevValue {}
}
