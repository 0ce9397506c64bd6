//! Map definitions. The `name` strings must equal the consts in
//! `sluice_ebpf_common` (`SERVICES_MAP`, `BACKENDS_MAP`, `REV_NAT_MAP`,
//! `SOCK_REV_NAT_MAP`, `SOCK_AFFINITY_MAP`); userspace looks the maps up by those consts, and the
//! node agent's kernel test fails if they drift.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap},
};
use sluice_ebpf_common::{
    BACKENDS_MAX_ENTRIES, BackendKey, BackendValue, REV_NAT_MAX_ENTRIES, RevNatKey, RevNatValue,
    SERVICES_MAX_ENTRIES, SOCK_AFFINITY_MAX_ENTRIES, SOCK_REV_NAT_MAX_ENTRIES, ServiceKey,
    ServiceValue, SockAffinityKey, SockAffinityValue, SockRevNatKey, SockRevNatValue,
};

/// Services: frontends (slot 0) and their backend slots.
#[map(name = "sluice_svc_v1")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::pinned(SERVICES_MAX_ENTRIES, 0);

/// Backends by id.
#[map(name = "sluice_be_v1")]
pub static BACKENDS: HashMap<BackendKey, BackendValue> = HashMap::pinned(BACKENDS_MAX_ENTRIES, 0);

/// Reverse NAT: service id -> frontend `{vip, port}`; written by userspace.
#[map(name = "sluice_revnat_v1")]
pub static REV_NAT: HashMap<RevNatKey, RevNatValue> = HashMap::pinned(REV_NAT_MAX_ENTRIES, 0);

/// Socket reverse NAT: `{cookie, backend}` -> frontend; written by
/// connect4/sendmsg4, read by recvmsg4/getpeername4. LRU, so sockets that
/// are gone age out without a release hook.
#[map(name = "sluice_sock_revnat_v1")]
pub static SOCK_REV_NAT: LruHashMap<SockRevNatKey, SockRevNatValue> =
    LruHashMap::pinned(SOCK_REV_NAT_MAX_ENTRIES, 0);

/// Session affinity: `{netns cookie, service id}` -> the slot and backend
/// last chosen, and when; written by connect4/sendmsg4 for frontends with
/// `SERVICE_FLAG_AFFINITY`. LRU, so clients that are gone age out.
#[map(name = "sluice_sock_aff_v1")]
pub static SOCK_AFFINITY: LruHashMap<SockAffinityKey, SockAffinityValue> =
    LruHashMap::pinned(SOCK_AFFINITY_MAX_ENTRIES, 0);
