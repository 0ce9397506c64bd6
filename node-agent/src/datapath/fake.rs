//! An in-memory [`DatapathOps`] for unit tests: same semantics as the kernel
//! maps (capacity, idempotent removal), no root needed.

use std::collections::BTreeMap;

use sluice_ebpf_common::{BACKENDS_MAX_ENTRIES, REV_NAT_MAX_ENTRIES, SERVICES_MAX_ENTRIES};

use super::{
    BACKENDS_MAP, BackendKey, BackendValue, DatapathError, DatapathOps, REV_NAT_MAP, RevNatKey,
    RevNatValue, SERVICES_MAP, ServiceKey, ServiceValue,
};

/// In-memory datapath maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeDatapath {
    /// The services map.
    pub services: BTreeMap<ServiceKey, ServiceValue>,
    /// The backends map.
    pub backends: BTreeMap<BackendKey, BackendValue>,
    /// The reverse-NAT map.
    pub rev_nats: BTreeMap<RevNatKey, RevNatValue>,
    services_capacity: usize,
    backends_capacity: usize,
    rev_nats_capacity: usize,
}

impl Default for FakeDatapath {
    fn default() -> Self {
        Self::with_capacity(SERVICES_MAX_ENTRIES as usize, BACKENDS_MAX_ENTRIES as usize)
    }
}

impl FakeDatapath {
    /// Empty maps with the kernel maps' capacities.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty maps with the given capacities (to test "map full").
    #[must_use]
    pub fn with_capacity(services: usize, backends: usize) -> Self {
        Self {
            services: BTreeMap::new(),
            backends: BTreeMap::new(),
            rev_nats: BTreeMap::new(),
            services_capacity: services,
            backends_capacity: backends,
            rev_nats_capacity: REV_NAT_MAX_ENTRIES as usize,
        }
    }

    /// The same, with a reverse-NAT map of `rev_nats` entries (to test
    /// "map full").
    #[must_use]
    pub fn with_rev_nat_capacity(mut self, rev_nats: usize) -> Self {
        self.rev_nats_capacity = rev_nats;
        self
    }
}

fn insert<K: Ord, V>(
    map: &mut BTreeMap<K, V>,
    capacity: usize,
    name: &'static str,
    key: K,
    value: V,
) -> Result<(), DatapathError> {
    if !map.contains_key(&key) && map.len() >= capacity {
        return Err(DatapathError::MapFull { map: name });
    }
    map.insert(key, value);
    Ok(())
}

impl DatapathOps for FakeDatapath {
    fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ServiceValue,
    ) -> Result<(), DatapathError> {
        insert(
            &mut self.services,
            self.services_capacity,
            SERVICES_MAP,
            key,
            value,
        )
    }

    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError> {
        self.services.remove(key);
        Ok(())
    }

    fn upsert_backend(
        &mut self,
        key: BackendKey,
        value: BackendValue,
    ) -> Result<(), DatapathError> {
        insert(
            &mut self.backends,
            self.backends_capacity,
            BACKENDS_MAP,
            key,
            value,
        )
    }

    fn remove_backend(&mut self, key: &BackendKey) -> Result<(), DatapathError> {
        self.backends.remove(key);
        Ok(())
    }

    fn upsert_rev_nat(&mut self, key: RevNatKey, value: RevNatValue) -> Result<(), DatapathError> {
        insert(
            &mut self.rev_nats,
            self.rev_nats_capacity,
            REV_NAT_MAP,
            key,
            value,
        )
    }

    fn remove_rev_nat(&mut self, key: &RevNatKey) -> Result<(), DatapathError> {
        self.rev_nats.remove(key);
        Ok(())
    }

    fn rev_nats(&self) -> Result<Vec<(RevNatKey, RevNatValue)>, DatapathError> {
        Ok(self.rev_nats.iter().map(|(k, v)| (*k, *v)).collect())
    }

    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError> {
        Ok(self.services.iter().map(|(k, v)| (*k, *v)).collect())
    }

    fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError> {
        Ok(self.backends.iter().map(|(k, v)| (*k, *v)).collect())
    }
}
