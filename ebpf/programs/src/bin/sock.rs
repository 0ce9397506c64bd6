//! Cgroup socket hooks of the socket load balancer (after Cilium's
//! `bpf_sock.c`): a connect (TCP, connected UDP) or `sendto` (unconnected
//! UDP) to a `ClusterIP` is rewritten to a backend at syscall time, so the
//! traffic pays no per-packet NAT; `recvmsg4` and `getpeername4` show the
//! application the `ClusterIP` again.
//!
//! Entry points are thin; the `try_` functions hold the logic and the map
//! work lives in `sluice_ebpf::lb`.
// no_std/no_main only for the BPF target: on the host (workspace-wide
// `cargo check`/`clippy`) this builds as an ordinary binary with a stub main.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "aya's #[cgroup_sock_addr] fixes the entry points' signature: the context comes by value"
)]
#![allow(
    clippy::inline_always,
    reason = "the try_ helpers are inlined into each entry point, as the library's LB helpers are (see its crate docs)"
)]

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_socket_cookie, bpf_set_retval},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use sluice_ebpf::lb::{Verdict, record_rev_nat, reverse_lookup, select_backend};
use sluice_ebpf_common::{Be16, Be32, ServiceKey};

/// Return value letting the syscall go on.
const ALLOW: i32 = 1;
/// Return value failing the syscall (with EPERM unless `bpf_set_retval` set
/// another error first).
const REJECT: i32 = 0;
/// `ECONNREFUSED` on Linux (all architectures sluice builds for).
const ECONNREFUSED: i32 = 111;

/// `cgroup/connect4`: rewrites a connect to a service VIP to a backend.
#[cgroup_sock_addr(connect4)]
pub fn sluice_connect4(ctx: SockAddrContext) -> i32 {
    try_translate(&ctx)
}

/// `cgroup/sendmsg4`: rewrites an unconnected UDP `sendto` to a service VIP
/// to a backend, datagram by datagram.
#[cgroup_sock_addr(sendmsg4)]
pub fn sluice_sendmsg4(ctx: SockAddrContext) -> i32 {
    try_translate(&ctx)
}

/// `cgroup/recvmsg4`: shows the VIP as the source of a datagram from the
/// backend a socket was sent to. Must always return 1.
#[cgroup_sock_addr(recvmsg4)]
pub fn sluice_recvmsg4(ctx: SockAddrContext) -> i32 {
    let _ = try_reverse(&ctx);
    ALLOW
}

/// `cgroup/getpeername4`: shows the VIP as the peer of a socket connected to
/// a backend through it. Must always return 1.
#[cgroup_sock_addr(getpeername4)]
pub fn sluice_getpeer4(ctx: SockAddrContext) -> i32 {
    let _ = try_reverse(&ctx);
    ALLOW
}

/// Forward translation, shared by connect4 and sendmsg4.
///
/// - not a service: allowed untouched;
/// - a service without backends: refused with `ECONNREFUSED`
///   (`bpf_set_retval`, then return 0: the kernel keeps an error retval
///   instead of turning the 0 into EPERM);
/// - otherwise the destination becomes a random backend and
///   `{cookie, backend} -> frontend` is recorded for the reverse hooks.
#[inline(always)]
fn try_translate(ctx: &SockAddrContext) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: the kernel hands the program a valid `bpf_sock_addr` for the
    // whole run; the verifier checks that each field read is allowed for
    // connect4/sendmsg4 (user_ip4, user_port and protocol are).
    let (ip, port, proto) = unsafe { ((*sa).user_ip4, (*sa).user_port, (*sa).protocol) };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "user_port holds a 16-bit port in its low bits; protocol fits u8"
    )]
    let key = ServiceKey::frontend(Be32::from_raw(ip), Be16::from_raw(port as u16), proto as u8);
    match select_backend(ctx, &key) {
        Verdict::Pass => ALLOW,
        Verdict::NoBackends => {
            // SAFETY: bpf_set_retval takes a plain integer; the kernel allows
            // it in connect4/sendmsg4 (since 5.19) and makes it the
            // syscall's error when the program returns 0.
            unsafe { bpf_set_retval(-ECONNREFUSED) };
            REJECT
        }
        Verdict::Backend {
            backend,
            rev_nat_id,
        } => {
            // SAFETY: the context is a valid `bpf_sock_addr` (see above);
            // bpf_get_socket_cookie only reads the socket behind it.
            let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
            record_rev_nat(cookie, &backend, &key, rev_nat_id);
            // SAFETY: as above; the verifier allows 4-byte writes of
            // user_ip4 and user_port in connect4 and sendmsg4.
            unsafe {
                (*sa).user_ip4 = backend.addr.raw();
                (*sa).user_port = u32::from(backend.port.raw());
            }
            ALLOW
        }
    }
}

/// Reverse translation, shared by recvmsg4 and getpeername4: when the
/// address in the context is a backend this socket reached through a VIP,
/// write the VIP back. `None` when there is nothing to translate.
#[inline(always)]
fn try_reverse(ctx: &SockAddrContext) -> Option<()> {
    let sa = ctx.sock_addr;
    // SAFETY: valid `bpf_sock_addr` for the run; user_ip4/user_port reads are
    // allowed in recvmsg4 and getpeername4.
    let (ip, port) = unsafe { ((*sa).user_ip4, (*sa).user_port) };
    // SAFETY: the context is a valid `bpf_sock_addr`; the helper only reads
    // the socket behind it.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "user_port holds a 16-bit port in its low bits"
    )]
    let (vip, vport) = reverse_lookup(cookie, Be32::from_raw(ip), Be16::from_raw(port as u16))?;
    // SAFETY: as above; the verifier allows 4-byte writes of user_ip4 and
    // user_port in recvmsg4 and getpeername4.
    unsafe {
        (*sa).user_ip4 = vip.raw();
        (*sa).user_port = u32::from(vport.raw());
    }
    Some(())
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
