//! XDP fast path of a node's external interface (after Cilium's
//! `bpf_xdp.c`): the ingress half of `sluice-nodeport` (`sluice_np_tc_in`)
//! run before an skb exists, on the same maps and the same logic
//! (`sluice_ebpf::nat::ingress`), with checksums updated by hand.
//! Replies of local backends still need the tc egress program.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "aya's #[xdp] fixes the entry point's signature: the context comes by value"
)]

use aya_ebpf::{macros::xdp, programs::XdpContext};
#[path = "../nodeport.rs"]
mod nodeport;

use nodeport::{nat, packet::xdp_code};

/// XDP on the external interface.
#[xdp]
pub fn sluice_np_xdp(mut ctx: XdpContext) -> u32 {
    xdp_code(nat::ingress(&mut ctx))
}

/// Host builds only type-check the programs; they never run.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Kernel license string; GPL-compatible, for the GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
