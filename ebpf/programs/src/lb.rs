//! Service load balancing shared by the socket hooks (and later tc/XDP).

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_netns_cookie, bpf_get_prandom_u32, bpf_ktime_get_ns},
};
use aya_log_ebpf::{debug, warn};
use sluice_ebpf_common::{
    BackendKey, BackendValue, Be16, Be32, RevNatKey, ServiceKey, ServiceValue, SockAffinityKey,
    SockAffinityValue, SockRevNatKey, SockRevNatValue,
};

use crate::{
    LOG_TARGET,
    maps::{BACKENDS, REV_NAT, SERVICES, SOCK_AFFINITY, SOCK_REV_NAT},
};

/// What to do with a connection to a destination.
pub enum Verdict {
    /// Not a service address: leave the socket alone.
    Pass,
    /// A service with no backends: refuse the connection.
    NoBackends,
    /// A service backend was chosen: rewrite the destination to it.
    Backend {
        /// The chosen backend.
        backend: BackendValue,
        /// The frontend's service id (for reverse translation).
        rev_nat_id: u16,
    },
}

/// Looks up the frontend for `key` (slot 0) and, when it has backends, picks
/// one: the client's remembered slot when the frontend has session affinity
/// and the entry is fresh and still names the same backend, else one at
/// random (remembered, with affinity).
///
/// `ctx` must be a socket-address context: with affinity its network
/// namespace cookie names the client.
///
/// A frontend whose chosen slot or backend is missing (userspace is mid-update)
/// is treated as having no backends: connecting to the VIP itself would only
/// hang.
///
/// Logs (target [`LOG_TARGET`]) only off the fast path: `debug` when a
/// service without backends is refused, `warn` when a slot or backend is
/// missing. A pass or a chosen backend logs nothing.
#[inline(always)]
pub fn select_backend<C: EbpfContext>(ctx: &C, key: &ServiceKey) -> Verdict {
    let Some(frontend) = lookup_service(key) else {
        return Verdict::Pass;
    };
    let count = frontend.count;
    if count == 0 {
        debug!(
            ctx,
            target: LOG_TARGET,
            "service {:i}:{} proto {} has no backends: refused",
            key.vip.octets(),
            key.port.to_host(),
            key.proto
        );
        return Verdict::NoBackends;
    }
    let affinity = frontend.affinity_timeout_s().map(|timeout_s| {
        // SAFETY: the helper reads the network namespace of the context's
        // socket; the kernel allows it in cgroup sock_addr programs (5.7+).
        let cookie = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
        // SAFETY: bpf_ktime_get_ns takes no arguments and has no preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        (
            SockAffinityKey::new(cookie, frontend.rev_nat_id),
            now,
            u64::from(timeout_s) * 1_000_000_000,
        )
    });
    // A remembered slot is looked up once, here, and used as it is.
    let remembered = affinity.and_then(|(akey, now, timeout_ns)| {
        // SAFETY: the pointer comes from a successful map lookup and is valid
        // for reads of a `SockAffinityValue` during this run; copied out at once.
        let entry = unsafe { *SOCK_AFFINITY.get_ptr(akey)? };
        let fresh = now.wrapping_sub(entry.last_used_ns) <= timeout_ns;
        if !fresh || entry.slot < 1 || entry.slot > count {
            return None;
        }
        let value = lookup_service(&key.with_slot(entry.slot))?;
        (value.backend_id == entry.backend_id).then_some((entry.slot, value))
    });
    let (slot, slot_value) = if let Some(hit) = remembered {
        hit
    } else {
        let slot = random_slot(count);
        let Some(value) = lookup_service(&key.with_slot(slot)) else {
            warn!(
                ctx,
                target: LOG_TARGET,
                "service {:i}:{} proto {}: slot {} of {} missing (mid-update?): refused",
                key.vip.octets(),
                key.port.to_host(),
                key.proto,
                slot,
                count
            );
            return Verdict::NoBackends;
        };
        (slot, value)
    };
    let backend_key = BackendKey {
        id: slot_value.backend_id,
    };
    // SAFETY: the pointer comes from a successful map lookup and is valid for
    // reads of a `BackendValue` for the rest of this program run; we copy the
    // value out at once.
    let backend = BACKENDS.get_ptr(backend_key).map(|ptr| unsafe { *ptr });
    if let Some(backend) = backend {
        if let Some((akey, now, _)) = affinity {
            let entry = SockAffinityValue {
                last_used_ns: now,
                backend_id: backend_key.id,
                slot,
                pad: [0; 2],
            };
            // Best effort, as for the reverse-NAT record: the map is LRU.
            let _ = SOCK_AFFINITY.insert(akey, entry, 0);
        }
        Verdict::Backend {
            backend,
            rev_nat_id: frontend.rev_nat_id,
        }
    } else {
        warn!(
            ctx,
            target: LOG_TARGET,
            "service {:i}:{} proto {}: backend {} (slot {}) missing (mid-update?): refused",
            key.vip.octets(),
            key.port.to_host(),
            key.proto,
            backend_key.id,
            slot
        );
        Verdict::NoBackends
    }
}

/// Remembers that socket `cookie` was sent to `backend` when it asked for
/// `frontend`, so replies and `getpeername` can show the frontend.
///
/// Best effort: the map is LRU, so an insert only fails on a kernel error,
/// and then the only loss is that the app sees the backend address.
#[inline(always)]
pub fn record_rev_nat(cookie: u64, backend: &BackendValue, frontend: &ServiceKey, rev_nat_id: u16) {
    let key = SockRevNatKey::new(cookie, backend.addr, backend.port);
    let value = SockRevNatValue {
        vip: frontend.vip,
        port: frontend.port,
        rev_nat_id,
    };
    let _ = SOCK_REV_NAT.insert(key, value, 0);
}

/// The frontend `(vip, port)` to show for a socket `cookie` whose peer (or
/// datagram source) is `addr:port`, if that peer is a backend the socket
/// reached through a service that still exists.
///
/// An entry whose service id no longer maps to the same frontend in the
/// reverse-NAT map is stale (service deleted or id reused): it is removed and
/// nothing is translated.
#[inline(always)]
pub fn reverse_lookup(cookie: u64, addr: Be32, port: Be16) -> Option<(Be32, Be16)> {
    let key = SockRevNatKey::new(cookie, addr, port);
    // SAFETY: the pointer comes from a successful map lookup and is valid for
    // reads of a `SockRevNatValue` during this program run; copied out at once.
    let entry = unsafe { *SOCK_REV_NAT.get_ptr(key)? };
    let rev_nat_key = RevNatKey::new(entry.rev_nat_id);
    // SAFETY: as above, for a `RevNatValue` of the reverse-NAT map.
    let current = REV_NAT.get_ptr(rev_nat_key).map(|value| unsafe { *value });
    match current {
        Some(frontend) if frontend.vip == entry.vip && frontend.port == entry.port => {
            Some((entry.vip, entry.port))
        }
        _ => {
            let _ = SOCK_REV_NAT.remove(key);
            None
        }
    }
}

/// A slot in `1..=count` at random; `count` must be non-zero.
#[inline(always)]
fn random_slot(count: u16) -> u16 {
    // SAFETY: bpf_get_prandom_u32 takes no arguments and has no preconditions.
    let random = unsafe { bpf_get_prandom_u32() };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "remainder of a division by a u16 fits in u16"
    )]
    let index = (random % u32::from(count)) as u16;
    index + 1
}

#[inline(always)]
fn lookup_service(key: &ServiceKey) -> Option<ServiceValue> {
    // SAFETY: the pointer comes from a successful map lookup and is valid for
    // reads of a `ServiceValue` during this program run; we copy it out at once.
    SERVICES.get_ptr(key).map(|value| unsafe { *value })
}
