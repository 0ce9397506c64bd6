//! The small context abstraction that lets one NAT implementation run at tc
//! and at XDP (after Cilium's `ctx/skb.h` / `ctx/xdp.h`): reads go through
//! [`parse`](super::parse) with direct packet access on both; writes go
//! through the kernel's store and checksum helpers at tc and through
//! bounds-checked pointers with incremental checksums ([`super::csum`]) at XDP.

use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, BPF_FIB_LKUP_RET_NO_NEIGH,
        BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup, xdp_action,
    },
    helpers::{bpf_fib_lookup as fib_lookup_helper, bpf_redirect, bpf_redirect_neigh},
    programs::{TcContext, XdpContext},
};

use super::{
    csum,
    parse::{ETH_LEN, IP_CSUM_OFF, IP_DST_OFF, IP_OFF, IP_SRC_OFF, Tuple},
};

/// `AF_INET`.
const AF_INET: u8 = 2;
/// Length of an IPv4 header without options (for the FIB lookup's `tot_len`).
const IP_TOT_LEN_OFF: usize = IP_OFF + 2;

/// A rewrite failed (packet too short, or a helper refused).
pub struct RewriteError;

/// What a program does with a packet once the NAT logic is done: a plain
/// struct rather than an enum with a payload (see [`Tuple`]'s docs on
/// undefined bytes).
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Action {
    kind: u32,
    ifindex: u32,
}

const KIND_PASS: u32 = 0;
const KIND_DROP: u32 = 1;
const KIND_REDIRECT: u32 = 2;
const KIND_REDIRECT_NEIGH: u32 = 3;

impl Action {
    /// Hand it to the stack (translated or not).
    pub const PASS: Self = Self {
        kind: KIND_PASS,
        ifindex: 0,
    };
    /// Drop it.
    pub const DROP: Self = Self {
        kind: KIND_DROP,
        ifindex: 0,
    };

    /// Send it out of the device `ifindex` (after a FIB lookup).
    #[inline(always)]
    #[must_use]
    pub const fn redirect(ifindex: u32) -> Self {
        Self {
            kind: KIND_REDIRECT,
            ifindex,
        }
    }

    /// Send it out of `ifindex` letting the kernel resolve the next hop's
    /// MAC (`bpf_redirect_neigh`, tc only): the route is known, the
    /// neighbour not yet.
    #[inline(always)]
    #[must_use]
    pub const fn redirect_neigh(ifindex: u32) -> Self {
        Self {
            kind: KIND_REDIRECT_NEIGH,
            ifindex,
        }
    }
}

/// A packet the NAT logic can rewrite.
pub trait Packet {
    /// Start of the packet data.
    fn data(&self) -> usize;
    /// End of the packet data.
    fn data_end(&self) -> usize;

    /// Rewrites the 4-byte address at `off` (`IP_SRC_OFF` or `IP_DST_OFF`)
    /// from `old` to `new`, updating the IPv4 header checksum and the L4
    /// checksum of `tuple` (the address is part of its pseudo-header).
    ///
    /// # Errors
    /// [`RewriteError`] when the packet is too short or a helper fails.
    fn rewrite_addr(
        &mut self,
        tuple: &Tuple,
        off: usize,
        old: u32,
        new: u32,
    ) -> Result<(), RewriteError>;

    /// Rewrites the 2-byte port at `off` from `old` to `new`, updating the
    /// L4 checksum of `tuple`.
    ///
    /// # Errors
    /// [`RewriteError`] when the packet is too short or a helper fails.
    fn rewrite_port(
        &mut self,
        tuple: &Tuple,
        off: usize,
        old: u16,
        new: u16,
    ) -> Result<(), RewriteError>;

    /// Looks the (already rewritten) destination up in the FIB and, on
    /// success, rewrites the Ethernet addresses for the next hop and
    /// returns a redirect to the egress device; at tc, a known route with
    /// an unresolved neighbour becomes [`Action::redirect_neigh`].
    /// [`Action::PASS`]: let the stack route it.
    fn fib_forward(&mut self, src: u32, dst: u32) -> Action;

    /// Whether [`Packet::fib_forward`] could send a packet from `src` to
    /// `dst` out by itself, asked before the packet is rewritten. XDP asks
    /// the FIB and says yes only for a resolved neighbour out of the ingress
    /// interface (anything else it leaves untouched for tc, which can resolve
    /// neighbours and send to any device); tc always can.
    fn routable(&mut self, src: u32, dst: u32) -> bool;
}

/// Size of the FIB lookup parameters, as the helper takes it.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "64 bytes"
)]
const FIB_PARAMS_LEN: i32 = core::mem::size_of::<bpf_fib_lookup>() as i32;

/// Fills the IPv4 part of a FIB lookup.
#[inline(always)]
fn fib_params(src: u32, dst: u32, tot_len: u16, ifindex: u32) -> bpf_fib_lookup {
    // SAFETY: `bpf_fib_lookup` is a plain C struct of integers and unions of
    // integers, for which all-zero is a valid value.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.ifindex = ifindex;
    params.__bindgen_anon_1.tot_len = tot_len;
    params.__bindgen_anon_3.ipv4_src = src;
    params.__bindgen_anon_4.ipv4_dst = dst;
    params
}

impl Packet for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }

    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }

    #[inline(always)]
    fn rewrite_addr(
        &mut self,
        tuple: &Tuple,
        off: usize,
        old: u32,
        new: u32,
    ) -> Result<(), RewriteError> {
        let mangled = if tuple.is_udp() {
            u64::from(BPF_F_MARK_MANGLED_0)
        } else {
            0
        };
        self.l4_csum_replace(
            tuple.l4_csum_off(),
            u64::from(old),
            u64::from(new),
            u64::from(BPF_F_PSEUDO_HDR) | mangled | 4,
        )
        .map_err(|_| RewriteError)?;
        self.l3_csum_replace(IP_CSUM_OFF, u64::from(old), u64::from(new), 4)
            .map_err(|_| RewriteError)?;
        self.store(off, &new, 0).map_err(|_| RewriteError)
    }

    #[inline(always)]
    fn rewrite_port(
        &mut self,
        tuple: &Tuple,
        off: usize,
        old: u16,
        new: u16,
    ) -> Result<(), RewriteError> {
        let mangled = if tuple.is_udp() {
            u64::from(BPF_F_MARK_MANGLED_0)
        } else {
            0
        };
        self.l4_csum_replace(
            tuple.l4_csum_off(),
            u64::from(old),
            u64::from(new),
            mangled | 2,
        )
        .map_err(|_| RewriteError)?;
        self.store(off, &new, 0).map_err(|_| RewriteError)
    }

    #[inline(always)]
    fn fib_forward(&mut self, src: u32, dst: u32) -> Action {
        let Ok(tot_len) = self.load::<u16>(IP_TOT_LEN_OFF) else {
            return Action::PASS;
        };
        let tot_len = u16::from_be(tot_len);
        // SAFETY: the context is a valid `__sk_buff` for the whole run.
        let ifindex = unsafe { (*self.skb.skb).ingress_ifindex };
        let mut params = fib_params(src, dst, tot_len, ifindex);
        // SAFETY: `params` is a valid, initialised `bpf_fib_lookup` the
        // helper may write; its size is passed along; the context pointer is
        // the program's own skb.
        let rc = unsafe { fib_lookup_helper(self.as_ptr(), &raw mut params, FIB_PARAMS_LEN, 0) };
        if rc == i64::from(BPF_FIB_LKUP_RET_NO_NEIGH) {
            return Action::redirect_neigh(params.ifindex);
        }
        if rc != i64::from(BPF_FIB_LKUP_RET_SUCCESS)
            || self.store(0, &params.dmac, 0).is_err()
            || self.store(6, &params.smac, 0).is_err()
        {
            return Action::PASS;
        }
        Action::redirect(params.ifindex)
    }

    #[inline(always)]
    fn routable(&mut self, _src: u32, _dst: u32) -> bool {
        true
    }
}

/// A pointer to `len` bytes at `off` of an XDP packet, if they are inside it.
#[inline(always)]
fn xdp_ptr(ctx: &XdpContext, off: usize, len: usize) -> Option<*mut u8> {
    let start = ctx.data() + off;
    if start + len > ctx.data_end() {
        return None;
    }
    Some(start as *mut u8)
}

/// Reads a `u16` at `off` of an XDP packet.
#[inline(always)]
fn xdp_read16(ctx: &XdpContext, off: usize) -> Option<u16> {
    let ptr = xdp_ptr(ctx, off, 2)?;
    // SAFETY: `xdp_ptr` checked that 2 bytes at `ptr` are inside the packet.
    Some(unsafe { core::ptr::read_unaligned(ptr.cast::<u16>()) })
}

/// Writes a `u16` at `off` of an XDP packet.
#[inline(always)]
fn xdp_write16(ctx: &XdpContext, off: usize, value: u16) -> Result<(), RewriteError> {
    let ptr = xdp_ptr(ctx, off, 2).ok_or(RewriteError)?;
    // SAFETY: `xdp_ptr` checked that 2 bytes at `ptr` are inside the
    // packet, which XDP programs may write.
    unsafe { core::ptr::write_unaligned(ptr.cast::<u16>(), value) };
    Ok(())
}

impl Packet for XdpContext {
    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }

    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }

    #[inline(always)]
    fn rewrite_addr(
        &mut self,
        tuple: &Tuple,
        off: usize,
        old: u32,
        new: u32,
    ) -> Result<(), RewriteError> {
        let l4 = tuple.l4_csum_off();
        let l4_check = xdp_read16(self, l4).ok_or(RewriteError)?;
        let l4_new = if tuple.is_udp() {
            csum::udp_replace4(l4_check, old, new)
        } else {
            csum::replace4(l4_check, old, new)
        };
        xdp_write16(self, l4, l4_new)?;
        let ip_check = xdp_read16(self, IP_CSUM_OFF).ok_or(RewriteError)?;
        xdp_write16(self, IP_CSUM_OFF, csum::replace4(ip_check, old, new))?;
        let ptr = xdp_ptr(self, off, 4).ok_or(RewriteError)?;
        // SAFETY: `xdp_ptr` checked that 4 bytes at `ptr` are in the packet.
        unsafe { core::ptr::write_unaligned(ptr.cast::<u32>(), new) };
        Ok(())
    }

    #[inline(always)]
    fn rewrite_port(
        &mut self,
        tuple: &Tuple,
        off: usize,
        old: u16,
        new: u16,
    ) -> Result<(), RewriteError> {
        let l4 = tuple.l4_csum_off();
        let l4_check = xdp_read16(self, l4).ok_or(RewriteError)?;
        let l4_new = if tuple.is_udp() {
            csum::udp_replace2(l4_check, old, new)
        } else {
            csum::replace2(l4_check, old, new)
        };
        xdp_write16(self, l4, l4_new)?;
        xdp_write16(self, off, new)
    }

    #[inline(always)]
    fn fib_forward(&mut self, src: u32, dst: u32) -> Action {
        let Some(tot_len) = xdp_read16(self, IP_TOT_LEN_OFF) else {
            return Action::PASS;
        };
        let tot_len = u16::from_be(tot_len);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "ifindex is a u32 in xdp_md"
        )]
        let ifindex = self.ingress_ifindex() as u32;
        let mut params = fib_params(src, dst, tot_len, ifindex);
        // SAFETY: as for tc: a valid struct of the passed size, the
        // program's own context.
        let rc = unsafe { fib_lookup_helper(self.as_ptr(), &raw mut params, FIB_PARAMS_LEN, 0) };
        // XDP has no redirect_neigh: an unresolved neighbour goes to the stack.
        if rc != i64::from(BPF_FIB_LKUP_RET_SUCCESS) {
            return Action::PASS;
        }
        let Some(ptr) = xdp_ptr(self, 0, ETH_LEN) else {
            return Action::PASS;
        };
        // SAFETY: `xdp_ptr` checked that the 14-byte Ethernet header is in
        // the packet; we write its first 12 bytes (destination, source).
        unsafe {
            core::ptr::write_unaligned(ptr.cast::<[u8; 6]>(), params.dmac);
            core::ptr::write_unaligned(ptr.add(6).cast::<[u8; 6]>(), params.smac);
        }
        Action::redirect(params.ifindex)
    }

    #[inline(always)]
    fn routable(&mut self, src: u32, dst: u32) -> bool {
        let Some(tot_len) = xdp_read16(self, IP_TOT_LEN_OFF) else {
            return false;
        };
        #[expect(
            clippy::cast_possible_truncation,
            reason = "ifindex is a u32 in xdp_md"
        )]
        let ifindex = self.ingress_ifindex() as u32;
        let mut params = fib_params(src, dst, u16::from_be(tot_len), ifindex);
        // SAFETY: as in `fib_forward`.
        let rc = unsafe { fib_lookup_helper(self.as_ptr(), &raw mut params, FIB_PARAMS_LEN, 0) };
        // Only back out of the interface it came in on: a redirect to another device
        // needs that device's driver to take XDP frames (a VXLAN or bridge device does
        // not, and the frame would be lost); tc can send it anywhere.
        rc == i64::from(BPF_FIB_LKUP_RET_SUCCESS) && params.ifindex == ifindex
    }
}

/// `TC_ACT_OK` (the bindings' type differs between the BPF and host builds).
const TC_ACT_OK: i32 = 0;
/// `TC_ACT_SHOT`.
const TC_ACT_SHOT: i32 = 2;

/// The tc return code for `action`.
#[inline(always)]
#[must_use]
pub fn tc_action(action: Action) -> i32 {
    match action.kind {
        KIND_PASS => TC_ACT_OK,
        #[expect(clippy::cast_possible_truncation, reason = "TC_ACT_REDIRECT fits i32")]
        KIND_REDIRECT => {
            // SAFETY: bpf_redirect takes plain integers and has no preconditions.
            unsafe { bpf_redirect(action.ifindex, 0) as i32 }
        }
        #[expect(clippy::cast_possible_truncation, reason = "TC_ACT_REDIRECT fits i32")]
        KIND_REDIRECT_NEIGH => {
            // SAFETY: a null `params` with length 0 is the documented way to
            // let the kernel look the neighbour up from the route.
            unsafe { bpf_redirect_neigh(action.ifindex, core::ptr::null_mut(), 0, 0) as i32 }
        }
        _ => TC_ACT_SHOT,
    }
}

/// The XDP return code for `action`.
#[inline(always)]
#[must_use]
pub fn xdp_code(action: Action) -> u32 {
    match action.kind {
        // KIND_REDIRECT_NEIGH is never produced at XDP (no redirect_neigh
        // there); were it, the stack would route the packet.
        KIND_PASS | KIND_REDIRECT_NEIGH => xdp_action::XDP_PASS,
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "XDP_REDIRECT fits u32"
        )]
        KIND_REDIRECT => {
            // SAFETY: bpf_redirect takes plain integers and has no preconditions.
            unsafe { bpf_redirect(action.ifindex, 0) as u32 }
        }
        _ => xdp_action::XDP_DROP,
    }
}

/// Offsets of the addresses, for callers naming which one they rewrite.
pub const SRC: usize = IP_SRC_OFF;
/// See [`SRC`].
pub const DST: usize = IP_DST_OFF;
