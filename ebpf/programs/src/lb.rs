//! Service load balancing shared by the socket hooks (and later tc/XDP).

use aya_ebpf::helpers::bpf_get_prandom_u32;
use sluice_ebpf_common::{BackendKey, BackendValue, ServiceKey, ServiceValue};

use crate::maps::{BACKENDS, SERVICES};

/// What to do with a connection to a destination.
pub enum Verdict {
    /// Not a service address: leave the socket alone.
    Pass,
    /// A service with no backends: refuse the connection.
    NoBackends,
    /// A service backend was chosen: rewrite the destination to it.
    Backend(BackendValue),
}

/// Looks up the frontend for `key` (slot 0) and, when it has backends, picks
/// one at random.
///
/// A frontend whose chosen slot or backend is missing (userspace is mid-update)
/// is treated as having no backends: connecting to the VIP itself would only
/// hang.
#[inline(always)]
pub fn select_backend(key: &ServiceKey) -> Verdict {
    let Some(frontend) = lookup_service(key) else {
        return Verdict::Pass;
    };
    let count = frontend.count;
    if count == 0 {
        return Verdict::NoBackends;
    }
    // SAFETY: bpf_get_prandom_u32 takes no arguments and has no preconditions.
    let random = unsafe { bpf_get_prandom_u32() };
    // `count` is non-zero, so the remainder is in 0..count and the slot in 1..=count.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "remainder of a division by a u16 fits in u16"
    )]
    let slot = (random % u32::from(count)) as u16 + 1;
    let Some(slot_value) = lookup_service(&key.with_slot(slot)) else {
        return Verdict::NoBackends;
    };
    let backend_key = BackendKey {
        id: slot_value.backend_id,
    };
    match BACKENDS.get_ptr(backend_key) {
        // SAFETY: the pointer comes from a successful map lookup and is valid
        // for reads of a `BackendValue` for the rest of this program run; we
        // copy the value out at once.
        Some(backend) => Verdict::Backend(unsafe { *backend }),
        None => Verdict::NoBackends,
    }
}

#[inline(always)]
fn lookup_service(key: &ServiceKey) -> Option<ServiceValue> {
    // SAFETY: the pointer comes from a successful map lookup and is valid for
    // reads of a `ServiceValue` during this program run; we copy it out at once.
    SERVICES.get_ptr(key).map(|value| unsafe { *value })
}
