//! Map keys, values and names shared by the eBPF programs and userspace.
//!
//! This crate is the single source of every map layout used by sluice's
//! datapath. Rules, after aya's template and Cilium's `lib/lb.h`:
//!
//! - every type is `#[repr(C)]` with explicit padding fields and no `bool`,
//!   so the bytes the kernel hashes are exactly the bytes we wrote;
//! - byte order lives in the type: [`Be32`] and [`Be16`] hold values in
//!   network byte order, exactly as the kernel hands them to the programs
//!   (`bpf_sock_addr::user_ip4`, `user_port`);
//! - sizes and offsets are checked at compile time;
//! - a layout change gets a new map name (`_v2`) rather than an in-place edit,
//!   so an agent upgrade never reinterprets a pinned map.
//!
//! # Service maps (socket load balancing)
//!
//! [`SERVICES_MAP`] is keyed by [`ServiceKey`] `{vip, port, proto, slot}`.
//! Slot 0 is the frontend: its [`ServiceValue::count`] is the number of
//! backends, [`ServiceValue::rev_nat_id`] the service id. Slots `1..=count`
//! each name one backend id, looked up in [`BACKENDS_MAP`].
//!
//! # Session affinity (`sessionAffinity: ClientIP`)
//!
//! A frontend with [`SERVICE_FLAG_AFFINITY`] carries its timeout in seconds
//! in slot 0's [`ServiceValue::backend_id`] (unused there otherwise, as
//! Cilium's `affinity_timeout` shares its master entry). The client is the
//! connecting socket's network namespace (`bpf_get_netns_cookie`: one pod,
//! or the host), the only client identity a socket hook has before the
//! packet exists. [`SOCK_AFFINITY_MAP`] (LRU) maps `{netns cookie, service
//! id}` to the slot and backend last chosen and when: a connect within the
//! timeout reuses it while that slot still names that backend (the
//! reconciler keeps backends in their slots across changes), and refreshes
//! the time, as kube-proxy's `recent` match does.
//!
//! # Reverse translation (UDP replies, `getpeername`)
//!
//! [`REV_NAT_MAP`] maps a service's [`ServiceValue::rev_nat_id`] to the
//! frontend `{vip, port}` the application asked for; userspace fills it.
//! [`SOCK_REV_NAT_MAP`] (LRU) is written by `connect4`/`sendmsg4` each time
//! they translate: key `{socket cookie, backend address, backend port}`,
//! value `{vip, port, rev_nat_id}`. `recvmsg4` (source of a datagram) and
//! `getpeername4` (peer of a connected socket) look up
//! `{cookie, address, port}` and, when the entry's `rev_nat_id` still maps to
//! the same `{vip, port}` in [`REV_NAT_MAP`], show the application the VIP.
//! Keying by backend as well as cookie (as Cilium's `ipv4_revnat_tuple`
//! does) lets one unconnected UDP socket talk to several services, and only
//! datagrams from the chosen backend are translated.
//!
//! # North-south maps (tc/XDP on the external interface)
//!
//! [`nodeport`] holds the `NodePort` / `externalIPs` / `LoadBalancer`
//! frontends, the node addresses, conntrack, SNAT, counters and Maglev
//! tables of the `sluice-nodeport` objects; see its docs.
#![no_std]
#![deny(missing_docs)]

pub mod nodeport;

use core::mem::{offset_of, size_of};
use core::net::Ipv4Addr;

/// Pinned name of the services map (`HashMap<ServiceKey, ServiceValue>`).
pub const SERVICES_MAP: &str = "sluice_svc_v1";
/// Pinned name of the backends map (`HashMap<BackendKey, BackendValue>`).
pub const BACKENDS_MAP: &str = "sluice_be_v1";
/// Pinned name of the reverse-NAT map (`HashMap<RevNatKey, RevNatValue>`),
/// filled by userspace.
///
/// Longer than the kernel's 15-byte object names: the kernel shows it
/// truncated (`sluice_revnat_v`); the pin file and ELF symbol keep it whole.
pub const REV_NAT_MAP: &str = "sluice_revnat_v1";
/// Pinned name of the socket reverse-NAT map
/// (`LruHashMap<SockRevNatKey, SockRevNatValue>`), written by the programs.
///
/// The kernel shows it truncated (`sluice_sock_rev`), as for [`REV_NAT_MAP`].
pub const SOCK_REV_NAT_MAP: &str = "sluice_sock_revnat_v1";
/// Pinned name of the session-affinity map
/// (`LruHashMap<SockAffinityKey, SockAffinityValue>`), written by the programs.
///
/// The kernel shows it truncated (`sluice_sock_aff`), as for [`REV_NAT_MAP`].
pub const SOCK_AFFINITY_MAP: &str = "sluice_sock_aff_v1";
/// Capacity of [`SOCK_AFFINITY_MAP`]; least recently used entries are evicted.
pub const SOCK_AFFINITY_MAX_ENTRIES: u32 = 65_536;
/// Capacity of [`SERVICES_MAP`] (frontends plus backend slots).
pub const SERVICES_MAX_ENTRIES: u32 = 65_536;
/// Capacity of [`BACKENDS_MAP`].
pub const BACKENDS_MAX_ENTRIES: u32 = 65_536;
/// Capacity of [`REV_NAT_MAP`] (one entry per service id; ids are `u16`).
pub const REV_NAT_MAX_ENTRIES: u32 = 65_536;
/// Capacity of [`SOCK_REV_NAT_MAP`]; least recently used entries are evicted.
pub const SOCK_REV_NAT_MAX_ENTRIES: u32 = 262_144;

/// Name of the `cgroup/connect4` program (the function name in the object).
pub const CONNECT4_PROGRAM: &str = "sluice_connect4";
/// Name of the `cgroup/sendmsg4` program (unconnected UDP `sendto`).
pub const SENDMSG4_PROGRAM: &str = "sluice_sendmsg4";
/// Name of the `cgroup/recvmsg4` program (UDP reply source back to the VIP).
pub const RECVMSG4_PROGRAM: &str = "sluice_recvmsg4";
/// Name of the `cgroup/getpeername4` program (peer address back to the VIP).
pub const GETPEERNAME4_PROGRAM: &str = "sluice_getpeer4";
/// Every program of the socket-LB object, in attach order.
pub const SOCK_PROGRAMS: [&str; 4] = [
    CONNECT4_PROGRAM,
    SENDMSG4_PROGRAM,
    RECVMSG4_PROGRAM,
    GETPEERNAME4_PROGRAM,
];

/// IP protocol number of TCP, as used in [`ServiceKey::proto`].
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP, as used in [`ServiceKey::proto`].
pub const PROTO_UDP: u8 = 17;

/// Frontend flag: none set.
pub const SERVICE_FLAG_NONE: u16 = 0;
/// Frontend flag: `sessionAffinity: ClientIP`; slot 0's `backend_id` holds
/// the timeout in seconds.
pub const SERVICE_FLAG_AFFINITY: u16 = 1;

/// Backend flag: active (the default; terminating/quarantined come later).
pub const BACKEND_FLAG_ACTIVE: u8 = 0;

/// A 32-bit value in network byte order, stored with the exact bits the kernel
/// uses (for example `bpf_sock_addr::user_ip4`).
#[repr(transparent)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Be32(u32);

impl Be32 {
    /// Wraps raw network-order bits as read from a kernel struct.
    #[must_use]
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// The raw network-order bits, to write into a kernel struct.
    #[must_use]
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// From address octets (`[10, 96, 0, 10]` for 10.96.0.10).
    #[must_use]
    pub const fn from_octets(octets: [u8; 4]) -> Self {
        Self(u32::from_ne_bytes(octets))
    }

    /// The address octets.
    #[must_use]
    pub const fn octets(self) -> [u8; 4] {
        self.0.to_ne_bytes()
    }

    /// From an IPv4 address.
    #[must_use]
    pub const fn from_ipv4(addr: Ipv4Addr) -> Self {
        Self::from_octets(addr.octets())
    }

    /// As an IPv4 address.
    #[must_use]
    pub const fn to_ipv4(self) -> Ipv4Addr {
        let [a, b, c, d] = self.octets();
        Ipv4Addr::new(a, b, c, d)
    }
}

/// A 16-bit value in network byte order (a port), stored with the exact bits
/// the kernel uses (the low 16 bits of `bpf_sock_addr::user_port`).
#[repr(transparent)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Be16(u16);

impl Be16 {
    /// Wraps raw network-order bits as read from a kernel struct.
    #[must_use]
    pub const fn from_raw(raw: u16) -> Self {
        Self(raw)
    }

    /// The raw network-order bits, to write into a kernel struct.
    #[must_use]
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// From a host-order number (a port as people write it).
    #[must_use]
    pub const fn from_host(value: u16) -> Self {
        Self(value.to_be())
    }

    /// The host-order number.
    #[must_use]
    pub const fn to_host(self) -> u16 {
        u16::from_be(self.0)
    }
}

/// Key of [`SERVICES_MAP`]: one frontend (`slot == 0`) or one backend slot of it.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Service virtual IP (`ClusterIP`).
    pub vip: Be32,
    /// Service port.
    pub port: Be16,
    /// IP protocol ([`PROTO_TCP`], [`PROTO_UDP`]).
    pub proto: u8,
    /// Explicit padding; always 0.
    pub pad0: u8,
    /// 0 for the frontend, `1..=count` for backend slots.
    pub slot: u16,
    /// Explicit padding; always 0.
    pub pad1: [u8; 2],
}

impl ServiceKey {
    /// The key of one slot of a service.
    #[must_use]
    pub const fn new(vip: Be32, port: Be16, proto: u8, slot: u16) -> Self {
        Self {
            vip,
            port,
            proto,
            pad0: 0,
            slot,
            pad1: [0; 2],
        }
    }

    /// The frontend key (slot 0) of a service.
    #[must_use]
    pub const fn frontend(vip: Be32, port: Be16, proto: u8) -> Self {
        Self::new(vip, port, proto, 0)
    }

    /// The same service, another slot.
    #[must_use]
    pub const fn with_slot(self, slot: u16) -> Self {
        Self { slot, ..self }
    }
}

/// Value of [`SERVICES_MAP`].
///
/// For slot 0 (frontend): `count` backends, `flags`, `rev_nat_id` (the
/// service id) and `backend_id` 0, or with [`SERVICE_FLAG_AFFINITY`] the
/// affinity timeout in seconds. For slot `n >= 1`: `backend_id` names
/// the backend, the other fields repeat the frontend's for inspection.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceValue {
    /// Number of backend slots (frontend only); 0 means "reject".
    pub count: u16,
    /// `SERVICE_FLAG_*` bits.
    pub flags: u16,
    /// Backend id (backend slots only).
    pub backend_id: u32,
    /// Service id, used for reverse translation (UDP, getpeername).
    pub rev_nat_id: u16,
    /// Explicit padding; always 0.
    pub pad: [u8; 2],
}

impl ServiceValue {
    /// A frontend (slot 0) value.
    #[must_use]
    pub const fn frontend(count: u16, flags: u16, rev_nat_id: u16) -> Self {
        Self {
            count,
            flags,
            backend_id: 0,
            rev_nat_id,
            pad: [0; 2],
        }
    }

    /// A frontend (slot 0) value with `sessionAffinity: ClientIP` for
    /// `timeout_s` seconds.
    #[must_use]
    pub const fn frontend_with_affinity(count: u16, rev_nat_id: u16, timeout_s: u32) -> Self {
        Self {
            count,
            flags: SERVICE_FLAG_AFFINITY,
            backend_id: timeout_s,
            rev_nat_id,
            pad: [0; 2],
        }
    }

    /// The affinity timeout in seconds of a frontend value; `None` without
    /// [`SERVICE_FLAG_AFFINITY`].
    #[must_use]
    pub const fn affinity_timeout_s(&self) -> Option<u32> {
        if self.flags & SERVICE_FLAG_AFFINITY != 0 {
            Some(self.backend_id)
        } else {
            None
        }
    }

    /// A backend slot value.
    #[must_use]
    pub const fn backend_slot(backend_id: u32, rev_nat_id: u16) -> Self {
        Self {
            count: 0,
            flags: SERVICE_FLAG_NONE,
            backend_id,
            rev_nat_id,
            pad: [0; 2],
        }
    }
}

/// Key of [`BACKENDS_MAP`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    /// Backend id, allocated by userspace; never 0.
    pub id: u32,
}

/// Value of [`BACKENDS_MAP`]: where to send a connection.
///
/// Exactly 8 bytes with no implicit padding, so no padding field is needed.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BackendValue {
    /// Backend IPv4 address.
    pub addr: Be32,
    /// Backend port.
    pub port: Be16,
    /// IP protocol ([`PROTO_TCP`], [`PROTO_UDP`]).
    pub proto: u8,
    /// `BACKEND_FLAG_*` bits.
    pub flags: u8,
}

impl BackendValue {
    /// An active backend.
    #[must_use]
    pub const fn new(addr: Be32, port: Be16, proto: u8) -> Self {
        Self {
            addr,
            port,
            proto,
            flags: BACKEND_FLAG_ACTIVE,
        }
    }
}

/// Key of [`REV_NAT_MAP`]: a service id.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevNatKey {
    /// The service's [`ServiceValue::rev_nat_id`]; 1-based (0 is never used).
    pub id: u16,
    /// Explicit padding; always 0.
    pub pad: [u8; 2],
}

impl RevNatKey {
    /// The key of service id `id`.
    #[must_use]
    pub const fn new(id: u16) -> Self {
        Self { id, pad: [0; 2] }
    }
}

/// Value of [`REV_NAT_MAP`]: the frontend to show the application.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RevNatValue {
    /// Service virtual IP (`ClusterIP`).
    pub vip: Be32,
    /// Service port.
    pub port: Be16,
    /// Explicit padding; always 0.
    pub pad: [u8; 2],
}

impl RevNatValue {
    /// The frontend `vip:port`.
    #[must_use]
    pub const fn new(vip: Be32, port: Be16) -> Self {
        Self {
            vip,
            port,
            pad: [0; 2],
        }
    }
}

/// Key of [`SOCK_REV_NAT_MAP`]: one socket and the backend it was sent to.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockRevNatKey {
    /// Socket cookie (`bpf_get_socket_cookie`).
    pub cookie: u64,
    /// Backend address the destination was rewritten to.
    pub addr: Be32,
    /// Backend port the destination was rewritten to.
    pub port: Be16,
    /// Explicit padding; always 0.
    pub pad: [u8; 2],
}

impl SockRevNatKey {
    /// The key of `cookie` talking to backend `addr:port`.
    #[must_use]
    pub const fn new(cookie: u64, addr: Be32, port: Be16) -> Self {
        Self {
            cookie,
            addr,
            port,
            pad: [0; 2],
        }
    }
}

/// Value of [`SOCK_REV_NAT_MAP`]: the frontend the socket asked for.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SockRevNatValue {
    /// Service virtual IP the application addressed.
    pub vip: Be32,
    /// Service port the application addressed.
    pub port: Be16,
    /// The service id; checked against [`REV_NAT_MAP`] before translating.
    pub rev_nat_id: u16,
}

/// Key of [`SOCK_AFFINITY_MAP`]: one client (network namespace) of one
/// service.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockAffinityKey {
    /// `bpf_get_netns_cookie` of the connecting socket.
    pub netns_cookie: u64,
    /// The service's [`ServiceValue::rev_nat_id`].
    pub rev_nat_id: u16,
    /// Explicit padding; always 0.
    pub pad: [u8; 6],
}

impl SockAffinityKey {
    /// The key of client `netns_cookie` of service `rev_nat_id`.
    #[must_use]
    pub const fn new(netns_cookie: u64, rev_nat_id: u16) -> Self {
        Self {
            netns_cookie,
            rev_nat_id,
            pad: [0; 6],
        }
    }
}

/// Value of [`SOCK_AFFINITY_MAP`]: the backend a client was last sent to.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SockAffinityValue {
    /// `bpf_ktime_get_ns` of the last connect that used it.
    pub last_used_ns: u64,
    /// The backend id.
    pub backend_id: u32,
    /// The slot of the frontend that named the backend.
    pub slot: u16,
    /// Explicit padding; always 0.
    pub pad: [u8; 2],
}

// Layouts are ABI shared with the kernel objects: pin them down.
const _: () = {
    assert!(size_of::<Be32>() == 4);
    assert!(size_of::<Be16>() == 2);

    assert!(size_of::<ServiceKey>() == 12);
    assert!(offset_of!(ServiceKey, vip) == 0);
    assert!(offset_of!(ServiceKey, port) == 4);
    assert!(offset_of!(ServiceKey, proto) == 6);
    assert!(offset_of!(ServiceKey, pad0) == 7);
    assert!(offset_of!(ServiceKey, slot) == 8);
    assert!(offset_of!(ServiceKey, pad1) == 10);

    assert!(size_of::<ServiceValue>() == 12);
    assert!(offset_of!(ServiceValue, count) == 0);
    assert!(offset_of!(ServiceValue, flags) == 2);
    assert!(offset_of!(ServiceValue, backend_id) == 4);
    assert!(offset_of!(ServiceValue, rev_nat_id) == 8);
    assert!(offset_of!(ServiceValue, pad) == 10);

    assert!(size_of::<BackendKey>() == 4);

    assert!(size_of::<BackendValue>() == 8);
    assert!(offset_of!(BackendValue, addr) == 0);
    assert!(offset_of!(BackendValue, port) == 4);
    assert!(offset_of!(BackendValue, proto) == 6);
    assert!(offset_of!(BackendValue, flags) == 7);

    assert!(size_of::<RevNatKey>() == 4);
    assert!(offset_of!(RevNatKey, id) == 0);
    assert!(offset_of!(RevNatKey, pad) == 2);

    assert!(size_of::<RevNatValue>() == 8);
    assert!(offset_of!(RevNatValue, vip) == 0);
    assert!(offset_of!(RevNatValue, port) == 4);
    assert!(offset_of!(RevNatValue, pad) == 6);

    assert!(size_of::<SockRevNatKey>() == 16);
    assert!(offset_of!(SockRevNatKey, cookie) == 0);
    assert!(offset_of!(SockRevNatKey, addr) == 8);
    assert!(offset_of!(SockRevNatKey, port) == 12);
    assert!(offset_of!(SockRevNatKey, pad) == 14);

    assert!(size_of::<SockAffinityKey>() == 16);
    assert!(offset_of!(SockAffinityKey, netns_cookie) == 0);
    assert!(offset_of!(SockAffinityKey, rev_nat_id) == 8);
    assert!(offset_of!(SockAffinityKey, pad) == 10);

    assert!(size_of::<SockAffinityValue>() == 16);
    assert!(offset_of!(SockAffinityValue, last_used_ns) == 0);
    assert!(offset_of!(SockAffinityValue, backend_id) == 8);
    assert!(offset_of!(SockAffinityValue, slot) == 12);
    assert!(offset_of!(SockAffinityValue, pad) == 14);

    assert!(size_of::<SockRevNatValue>() == 8);
    assert!(offset_of!(SockRevNatValue, vip) == 0);
    assert!(offset_of!(SockRevNatValue, port) == 4);
    assert!(offset_of!(SockRevNatValue, rev_nat_id) == 6);

    // Kernel object names are at most 15 bytes (BPF_OBJ_NAME_LEN - 1).
    assert!(SERVICES_MAP.len() <= 15);
    assert!(BACKENDS_MAP.len() <= 15);
    assert!(CONNECT4_PROGRAM.len() <= 15);
    assert!(SENDMSG4_PROGRAM.len() <= 15);
    assert!(RECVMSG4_PROGRAM.len() <= 15);
    assert!(GETPEERNAME4_PROGRAM.len() <= 15);
    // REV_NAT_MAP, SOCK_REV_NAT_MAP and SOCK_AFFINITY_MAP are longer (names fixed by the API):
    // the kernel truncates them; pins and ELF symbols use the full names.
};

#[cfg(feature = "user")]
mod pod {
    use super::{
        BackendKey, BackendValue, RevNatKey, RevNatValue, ServiceKey, ServiceValue,
        SockAffinityKey, SockAffinityValue, SockRevNatKey, SockRevNatValue,
    };

    // SAFETY: `ServiceKey` is `#[repr(C)]`, `Copy`, made only of integers
    // (`Be32`/`Be16` are `repr(transparent)` integers) with every padding byte
    // an explicit field (size and offsets asserted above), so any bit pattern
    // is valid and no byte is uninitialised.
    unsafe impl aya::Pod for ServiceKey {}
    // SAFETY: as for `ServiceKey`: `repr(C)`, integers only, explicit padding,
    // layout asserted above.
    unsafe impl aya::Pod for ServiceValue {}
    // SAFETY: `repr(C)` wrapper of one `u32`; any bit pattern is valid.
    unsafe impl aya::Pod for BackendKey {}
    // SAFETY: `repr(C)`, integers only, 8 bytes with no implicit padding
    // (asserted above); any bit pattern is valid.
    unsafe impl aya::Pod for BackendValue {}
    // SAFETY: `repr(C)`, a `u16` and an explicit 2-byte padding field (size
    // asserted above); any bit pattern is valid.
    unsafe impl aya::Pod for RevNatKey {}
    // SAFETY: `repr(C)`, integers only, explicit padding, layout asserted
    // above; any bit pattern is valid.
    unsafe impl aya::Pod for RevNatValue {}
    // SAFETY: `repr(C)`, integers only, explicit padding, 16 bytes with the
    // `u64` first so there is no implicit padding (asserted above).
    unsafe impl aya::Pod for SockRevNatKey {}
    // SAFETY: `repr(C)`, integers only, 8 bytes with no implicit padding
    // (asserted above); any bit pattern is valid.
    unsafe impl aya::Pod for SockRevNatValue {}
    // SAFETY: `repr(C)`, integers only, explicit padding, 16 bytes with the
    // `u64` first so there is no implicit padding (asserted above).
    unsafe impl aya::Pod for SockAffinityKey {}
    // SAFETY: `repr(C)`, integers only, explicit padding, 16 bytes with the
    // `u64` first so there is no implicit padding (asserted above).
    unsafe impl aya::Pod for SockAffinityValue {}
}

#[cfg(test)]
mod tests {
    use super::{Be16, Be32, ServiceKey};
    use core::net::Ipv4Addr;

    #[test]
    fn byte_order_round_trips() {
        let vip = Be32::from_ipv4(Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(vip.octets(), [10, 96, 0, 10]);
        assert_eq!(vip.to_ipv4(), Ipv4Addr::new(10, 96, 0, 10));
        let port = Be16::from_host(80);
        assert_eq!(port.raw().to_ne_bytes(), [0, 80]);
        assert_eq!(port.to_host(), 80);
    }

    #[test]
    fn frontend_key_is_slot_zero() {
        let key = ServiceKey::frontend(Be32::from_octets([10, 96, 0, 1]), Be16::from_host(443), 6);
        assert_eq!(key.slot, 0);
        assert_eq!(key.with_slot(3).slot, 3);
        assert_eq!(key.with_slot(3).vip, key.vip);
    }
}
