//! Packet parsing shared by tc and XDP: Ethernet + IPv4 + TCP/UDP, read with
//! direct packet access and a bounds check before every read.
//!
//! Only the common shape is parsed: an untagged Ethernet frame, an IPv4
//! header without options (IHL 5), not a fragment. Constant offsets keep the
//! verifier's job trivial; anything else is passed to the stack untouched.

use sluice_ebpf_common::{Be16, Be32, PROTO_TCP, PROTO_UDP};

/// Length of an Ethernet header.
pub const ETH_LEN: usize = 14;
/// Offset of the `EtherType`.
pub const ETH_TYPE_OFF: usize = 12;
/// Offset of the IPv4 header.
pub const IP_OFF: usize = ETH_LEN;
/// Length of an IPv4 header without options.
pub const IP_LEN: usize = 20;
/// Offset of the IPv4 header checksum.
pub const IP_CSUM_OFF: usize = IP_OFF + 10;
/// Offset of the IPv4 source address.
pub const IP_SRC_OFF: usize = IP_OFF + 12;
/// Offset of the IPv4 destination address.
pub const IP_DST_OFF: usize = IP_OFF + 16;
/// Offset of the L4 header.
pub const L4_OFF: usize = IP_OFF + IP_LEN;
/// Offset of the L4 source port.
pub const SPORT_OFF: usize = L4_OFF;
/// Offset of the L4 destination port.
pub const DPORT_OFF: usize = L4_OFF + 2;
/// Offset of the TCP checksum.
pub const TCP_CSUM_OFF: usize = L4_OFF + 16;
/// Offset of the UDP checksum.
pub const UDP_CSUM_OFF: usize = L4_OFF + 6;
/// Length of a TCP header without options.
const TCP_LEN: usize = 20;
/// Length of a UDP header.
const UDP_LEN: usize = 8;

/// `EtherType` of IPv4, in network order bits.
const ETH_P_IP_BE: u16 = 0x0800_u16.to_be();

/// A parsed IPv4 TCP/UDP packet: its tuple and where its L4 checksum is.
///
/// No implicit padding (explicit zeroed fields instead): LLVM may copy a
/// padding byte as an undefined register, which the verifier rejects
/// (`R7 !read_ok`).
#[derive(Copy, Clone)]
#[repr(C)]
pub struct Tuple {
    /// Source address.
    pub src: Be32,
    /// Destination address.
    pub dst: Be32,
    /// Source port.
    pub sport: Be16,
    /// Destination port.
    pub dport: Be16,
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// The TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// Explicit padding; 0.
    pub pad1: u16,
}

impl Tuple {
    /// An all-zero tuple, for [`parse`] to fill.
    pub const ZERO: Self = Self {
        src: Be32::from_raw(0),
        dst: Be32::from_raw(0),
        sport: Be16::from_raw(0),
        dport: Be16::from_raw(0),
        proto: 0,
        tcp_flags: 0,
        pad1: 0,
    };

    /// Offset of this packet's L4 checksum.
    #[inline(always)]
    #[must_use]
    pub fn l4_csum_off(&self) -> usize {
        if self.proto == PROTO_TCP {
            TCP_CSUM_OFF
        } else {
            UDP_CSUM_OFF
        }
    }

    /// Whether the L4 checksum is UDP's (0 = none).
    #[inline(always)]
    #[must_use]
    pub fn is_udp(&self) -> bool {
        self.proto == PROTO_UDP
    }
}

/// What the parser found (fieldless, for the same reason as [`Tuple`]'s
/// padding: an enum payload left undefined in some variants).
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// IPv4 TCP/UDP in the handled shape; the tuple was written.
    Tuple,
    /// IPv4 with options or a fragment: not handled, passed untouched.
    Unsupported,
    /// Anything else (not IPv4, not TCP/UDP, truncated): passed untouched.
    Other,
}

/// Reads a `T` at `off` from the packet `[data, data_end)`, if it fits.
#[inline(always)]
fn read<T: Copy>(data: usize, data_end: usize, off: usize) -> Option<T> {
    let start = data + off;
    if start + core::mem::size_of::<T>() > data_end {
        return None;
    }
    // SAFETY: `[start, start + size_of::<T>())` lies inside the packet
    // (checked just above, which is also what the verifier requires); `T`
    // is a plain integer, read unaligned because packet data has no
    // alignment guarantee.
    Some(unsafe { core::ptr::read_unaligned(start as *const T) })
}

/// Reads a `T` at `off` of the packet starting at `data`.
///
/// # Safety
/// `[data + off, data + off + size_of::<T>())` must be inside the packet,
/// checked against `data_end` in a way the verifier sees.
#[inline(always)]
unsafe fn read_at<T: Copy>(data: usize, off: usize) -> T {
    // SAFETY: in bounds per this function's contract; unaligned because
    // packet data has no alignment guarantee.
    unsafe { core::ptr::read_unaligned((data + off) as *const T) }
}

/// Parses the packet `[data, data_end)`, writing its tuple to `out` when
/// the result is [`Parsed::Tuple`].
#[inline(always)]
pub fn parse(data: usize, data_end: usize, out: &mut Tuple) -> Parsed {
    let Some(ethertype) = read::<u16>(data, data_end, ETH_TYPE_OFF) else {
        return Parsed::Other;
    };
    if ethertype != ETH_P_IP_BE {
        return Parsed::Other;
    }
    let Some(version_ihl) = read::<u8>(data, data_end, IP_OFF) else {
        return Parsed::Other;
    };
    let Some(frag) = read::<u16>(data, data_end, IP_OFF + 6) else {
        return Parsed::Other;
    };
    let Some(proto) = read::<u8>(data, data_end, IP_OFF + 9) else {
        return Parsed::Other;
    };
    if version_ihl >> 4 != 4 || (proto != PROTO_TCP && proto != PROTO_UDP) {
        return Parsed::Other;
    }
    // MF flag or a non-zero fragment offset (network order: 0x3fff masks
    // both once swapped).
    if version_ihl & 0x0f != 5 || u16::from_be(frag) & 0x3fff != 0 {
        return Parsed::Unsupported;
    }
    let l4_len = if proto == PROTO_TCP { TCP_LEN } else { UDP_LEN };
    if data + L4_OFF + l4_len > data_end {
        return Parsed::Other;
    }
    // One check covers every read below; re-checking each read would let
    // LLVM leave values undefined on the (impossible) failure paths, which
    // the verifier then rejects as uninitialised registers.
    // SAFETY: `[data, data + L4_OFF + l4_len)` is inside the packet
    // (checked just above), and every read below ends at or before
    // `DPORT_OFF + 2 <= L4_OFF + l4_len`.
    let (src, dst, sport, dport) = unsafe {
        (
            read_at::<u32>(data, IP_SRC_OFF),
            read_at::<u32>(data, IP_DST_OFF),
            read_at::<u16>(data, SPORT_OFF),
            read_at::<u16>(data, DPORT_OFF),
        )
    };
    out.src = Be32::from_raw(src);
    out.dst = Be32::from_raw(dst);
    out.sport = Be16::from_raw(sport);
    out.dport = Be16::from_raw(dport);
    out.proto = proto;
    out.tcp_flags = if proto == PROTO_TCP {
        read::<u8>(data, data_end, L4_OFF + TCP_FLAGS_OFF).unwrap_or(0)
    } else {
        0
    };
    Parsed::Tuple
}

/// Offset of the flags byte in the TCP header.
const TCP_FLAGS_OFF: usize = 13;
