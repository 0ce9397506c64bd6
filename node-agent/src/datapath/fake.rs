//! An in-memory [`DatapathOps`] for unit tests: same semantics as the kernel
//! maps (capacity, idempotent removal), no root needed.

use std::collections::BTreeMap;

use sluice_ebpf_common::{BACKENDS_MAX_ENTRIES, SERVICES_MAX_ENTRIES};

use super::{
    BACKENDS_MAP, BackendKey, BackendValue, DatapathError, DatapathOps, SERVICES_MAP, ServiceKey,
    ServiceValue,
};

/// In-memory datapath maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeDatapath {
    /// The services map.
    pub services: BTreeMap<ServiceKey, ServiceValue>,
    /// The backends map.
    pub backends: BTreeMap<BackendKey, BackendValue>,
    services_capacity: usize,
    backends_capacity: usize,
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
            services_capacity: services,
            backends_capacity: backends,
        }
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

    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, DatapathError> {
        Ok(self.services.iter().map(|(k, v)| (*k, *v)).collect())
    }

    fn backends(&self) -> Result<Vec<(BackendKey, BackendValue)>, DatapathError> {
        Ok(self.backends.iter().map(|(k, v)| (*k, *v)).collect())
    }
}
