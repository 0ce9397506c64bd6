//! tc programs of a node's external interface (north-south traffic, after
//! Cilium's `bpf_host.c` + `lib/nodeport.h`): `NodePort`, `externalIPs` and
//! `LoadBalancer` addresses.
//!
//! - `sluice_np_tc_in` (tc ingress): packets to a frontend are destination-NATed to a
//!   backend (and source-NATed to the node address when the backend is on another
//!   node and the policy is `Cluster`) with conntrack; replies of source-NATed
//!   flows are translated back to frontend -> client.
//! - `sluice_np_tc_eg` (tc egress): replies of local backends get the
//!   frontend address back as their source.
//!
//! The logic lives in `sluice_ebpf::nat`; these entry points only map its
//! action to a tc return code.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "aya's #[classifier] fixes the entry points' signature: the context comes by value"
)]

use aya_ebpf::{macros::classifier, programs::TcContext};
#[path = "../nodeport.rs"]
mod nodeport;

use nodeport::{nat, packet::tc_action};

/// tc ingress of the external interface.
#[classifier]
pub fn sluice_np_tc_in(mut ctx: TcContext) -> i32 {
    tc_action(nat::ingress(&mut ctx))
}

/// tc egress of the external interface.
#[classifier]
pub fn sluice_np_tc_eg(mut ctx: TcContext) -> i32 {
    tc_action(nat::egress(&mut ctx))
}

/// Host builds only type-check the programs; they never run.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Kernel license string; GPL-compatible, for the GPL-only helpers
/// (`bpf_fib_lookup`, the checksum helpers).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
