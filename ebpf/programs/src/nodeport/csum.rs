//! Incremental Internet checksum updates (RFC 1624), for the XDP path
//! (tc uses the kernel's `bpf_l3_csum_replace`/`bpf_l4_csum_replace`).
//!
//! Values are the raw network-order bits as they sit in the packet: the
//! one's-complement sum is byte-order independent, so no swapping is needed.

/// Folds a 32-bit one's-complement accumulator to 16 bits.
#[inline(always)]
#[must_use]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits above")]
    let folded = sum as u16;
    folded
}

/// The checksum `check` after a 32-bit field changed from `old` to `new`:
/// `HC' = ~(~HC + ~m + m')`.
#[inline(always)]
#[must_use]
pub const fn replace4(check: u16, old: u32, new: u32) -> u16 {
    let sum = (!check) as u32 + (!old & 0xffff) + ((!old) >> 16) + (new & 0xffff) + (new >> 16);
    !fold(sum)
}

/// The checksum `check` after a 16-bit field changed from `old` to `new`.
#[inline(always)]
#[must_use]
pub const fn replace2(check: u16, old: u16, new: u16) -> u16 {
    let sum = (!check) as u32 + (!old) as u32 + new as u32;
    !fold(sum)
}

/// As [`replace4`] for a UDP checksum: 0 means "no checksum" and stays 0,
/// and a computed 0 is sent as `0xffff` (RFC 768).
#[inline(always)]
#[must_use]
pub const fn udp_replace4(check: u16, old: u32, new: u32) -> u16 {
    if check == 0 {
        return 0;
    }
    match replace4(check, old, new) {
        0 => 0xffff,
        sum => sum,
    }
}

/// As [`replace2`] for a UDP checksum (see [`udp_replace4`]).
#[inline(always)]
#[must_use]
pub const fn udp_replace2(check: u16, old: u16, new: u16) -> u16 {
    if check == 0 {
        return 0;
    }
    match replace2(check, old, new) {
        0 => 0xffff,
        sum => sum,
    }
}
