//! Map definitions. The `name` strings must equal the consts in
//! `sluice_ebpf_common` (`SERVICES_MAP`, `BACKENDS_MAP`); userspace looks the
//! maps up by those consts, and the node agent's kernel test fails if they
//! drift.

use aya_ebpf::{macros::map, maps::HashMap};
use sluice_ebpf_common::{
    BACKENDS_MAX_ENTRIES, BackendKey, BackendValue, SERVICES_MAX_ENTRIES, ServiceKey, ServiceValue,
};

/// Services: frontends (slot 0) and their backend slots.
#[map(name = "sluice_svc_v1")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::pinned(SERVICES_MAX_ENTRIES, 0);

/// Backends by id.
#[map(name = "sluice_be_v1")]
pub static BACKENDS: HashMap<BackendKey, BackendValue> = HashMap::pinned(BACKENDS_MAX_ENTRIES, 0);
