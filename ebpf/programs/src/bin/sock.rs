//! Cgroup socket hooks of the socket load balancer (after Cilium's
//! `bpf_sock.c`): a connect to a ClusterIP is rewritten to a backend at
//! connect time, so the connection pays no per-packet NAT.
// no_std/no_main only for the BPF target: on the host (workspace-wide
// `cargo check`/`clippy`) this builds as an ordinary binary with a stub main.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use aya_log_ebpf::debug;
use sluice_ebpf::lb::{Verdict, select_backend};
use sluice_ebpf_common::{Be16, Be32, ServiceKey};

/// Return value letting the syscall go on.
const ALLOW: i32 = 1;
/// Return value failing the syscall with EPERM.
const REJECT: i32 = 0;

/// `cgroup/connect4`: rewrites a connect to a service VIP to a backend.
#[cgroup_sock_addr(connect4)]
pub fn sluice_connect4(ctx: SockAddrContext) -> i32 {
    try_connect4(&ctx).unwrap_or_else(|ret| ret)
}

#[inline(always)]
fn try_connect4(ctx: &SockAddrContext) -> Result<i32, i32> {
    let sa = ctx.sock_addr;
    // SAFETY: the kernel hands the program a valid `bpf_sock_addr` for the
    // whole run; the verifier checks that each field read is allowed for
    // connect4 (user_ip4, user_port and protocol are).
    let (ip, port, proto) = unsafe { ((*sa).user_ip4, (*sa).user_port, (*sa).protocol) };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "user_port holds a 16-bit port in its low bits; protocol fits u8"
    )]
    let key = ServiceKey::frontend(Be32::from_raw(ip), Be16::from_raw(port as u16), proto as u8);
    match select_backend(&key) {
        Verdict::Pass => Ok(ALLOW),
        Verdict::NoBackends => {
            // TODO: refuse with ECONNREFUSED instead of EPERM (Cilium returns
            // -ECONNREFUSED via bpf_sock_addr ret codes / sock_destroy); for
            // now the connect fails at once with EPERM rather than hanging.
            debug!(ctx, "connect4: service without backends, rejecting");
            Ok(REJECT)
        }
        Verdict::Backend(backend) => {
            // SAFETY: as above; the verifier allows 4-byte writes of
            // user_ip4 and user_port in connect4.
            unsafe {
                (*sa).user_ip4 = backend.addr.raw();
                (*sa).user_port = u32::from(backend.port.raw());
            }
            Ok(ALLOW)
        }
    }
}

/// Host builds only type-check the programs; they never run.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Kernel license string; a GPL-compatible one allows GPL-only helpers later.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
