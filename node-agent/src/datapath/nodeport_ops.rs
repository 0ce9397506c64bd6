//! [`NodePortOps`]: the agent-written north-south maps, one entry at a time,
//! implemented by the kernel-backed [`NodePortMaps`] and by the in-memory
//! [`FakeNodePortMaps`] (unit tests of the north-south reconciler, no
//! root). The maps the programs write (conntrack, SNAT, affinity, counters)
//! are not part of it.

use std::collections::{BTreeMap, BTreeSet};

use sluice_ebpf_common::{
    Be16, Be32,
    nodeport::{
        EXT_SERVICES_MAP, EXT_SERVICES_MAX_ENTRIES, ExtServiceValue, MAGLEV_MAP,
        MAGLEV_MAX_ENTRIES, MaglevKey, MaglevValue, NodeIpKey, NodePortConfig, ServiceKey,
    },
};

use super::{DatapathError, NodePortMaps};

/// Typed operations on the agent-written north-south maps. Removing an
/// absent entry succeeds.
pub trait NodePortOps {
    /// Inserts or replaces one frontend or backend slot.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ExtServiceValue,
    ) -> Result<(), DatapathError>;
    /// Removes one frontend or slot.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError>;
    /// Every frontend and slot, sorted by key.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn services(&self) -> Result<Vec<(ServiceKey, ExtServiceValue)>, DatapathError>;
    /// Adds a node address.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    fn add_node_ip(&mut self, key: NodeIpKey) -> Result<(), DatapathError>;
    /// Removes a node address.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn remove_node_ip(&mut self, key: &NodeIpKey) -> Result<(), DatapathError>;
    /// Sets the SNAT address, port range and flags.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn set_config(&mut self, config: NodePortConfig) -> Result<(), DatapathError>;
    /// Inserts or replaces a service's Maglev table.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    fn upsert_maglev(&mut self, key: MaglevKey, table: &MaglevValue) -> Result<(), DatapathError>;
    /// Removes a service's Maglev table.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn remove_maglev(&mut self, key: &MaglevKey) -> Result<(), DatapathError>;
    /// Adds a `loadBalancerSourceRanges` prefix of a service.
    ///
    /// # Errors
    /// [`DatapathError::MapFull`], [`DatapathError::Map`].
    fn add_source_range(
        &mut self,
        svc_id: u16,
        addr: Be32,
        prefix_len: u8,
    ) -> Result<(), DatapathError>;
    /// Removes a source range prefix of a service.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn remove_source_range(
        &mut self,
        svc_id: u16,
        addr: Be32,
        prefix_len: u8,
    ) -> Result<(), DatapathError>;
    /// Every source range as `(svc_id, network address, prefix length)`, sorted.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn source_ranges(&self) -> Result<Vec<(u16, Be32, u8)>, DatapathError>;
    /// The services that have a Maglev table, sorted.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn maglev_keys(&self) -> Result<Vec<MaglevKey>, DatapathError>;
    /// The node addresses, sorted.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn node_ips(&self) -> Result<Vec<NodeIpKey>, DatapathError>;
    /// Forgets the tracked flows to the backends `(addr, port, proto)`
    /// (conntrack both ways, their SNAT ports) in one pass; returns how many
    /// flows.
    ///
    /// # Errors
    /// [`DatapathError::Map`].
    fn flush_backends(&mut self, backends: &[(Be32, Be16, u8)]) -> Result<usize, DatapathError>;
}

impl NodePortOps for NodePortMaps {
    fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ExtServiceValue,
    ) -> Result<(), DatapathError> {
        NodePortMaps::upsert_service(self, key, value)
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError> {
        NodePortMaps::remove_service(self, key)
    }
    fn services(&self) -> Result<Vec<(ServiceKey, ExtServiceValue)>, DatapathError> {
        NodePortMaps::services(self)
    }
    fn add_node_ip(&mut self, key: NodeIpKey) -> Result<(), DatapathError> {
        NodePortMaps::add_node_ip(self, key)
    }
    fn remove_node_ip(&mut self, key: &NodeIpKey) -> Result<(), DatapathError> {
        NodePortMaps::remove_node_ip(self, key)
    }
    fn set_config(&mut self, config: NodePortConfig) -> Result<(), DatapathError> {
        NodePortMaps::set_config(self, config)
    }
    fn upsert_maglev(&mut self, key: MaglevKey, table: &MaglevValue) -> Result<(), DatapathError> {
        NodePortMaps::upsert_maglev(self, key, table)
    }
    fn remove_maglev(&mut self, key: &MaglevKey) -> Result<(), DatapathError> {
        NodePortMaps::remove_maglev(self, key)
    }
    fn add_source_range(
        &mut self,
        svc_id: u16,
        addr: Be32,
        prefix_len: u8,
    ) -> Result<(), DatapathError> {
        NodePortMaps::add_source_range(self, svc_id, addr, prefix_len)
    }
    fn remove_source_range(
        &mut self,
        svc_id: u16,
        addr: Be32,
        prefix_len: u8,
    ) -> Result<(), DatapathError> {
        NodePortMaps::remove_source_range(self, svc_id, addr, prefix_len)
    }
    fn source_ranges(&self) -> Result<Vec<(u16, Be32, u8)>, DatapathError> {
        NodePortMaps::source_ranges(self)
    }
    fn maglev_keys(&self) -> Result<Vec<MaglevKey>, DatapathError> {
        NodePortMaps::maglev_keys(self)
    }
    fn node_ips(&self) -> Result<Vec<NodeIpKey>, DatapathError> {
        NodePortMaps::node_ips(self)
    }
    fn flush_backends(&mut self, backends: &[(Be32, Be16, u8)]) -> Result<usize, DatapathError> {
        NodePortMaps::flush_backends(self, backends)
    }
}

/// In-memory north-south maps, with the frontends map's capacity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeNodePortMaps {
    /// Frontends and slots.
    pub services: BTreeMap<ServiceKey, ExtServiceValue>,
    /// Node addresses.
    pub node_ips: BTreeSet<NodeIpKey>,
    /// The configuration entry.
    pub config: NodePortConfig,
    /// Maglev tables.
    pub maglev: BTreeMap<MaglevKey, MaglevValue>,
    /// Source ranges as `(svc_id, network address, prefix length)`.
    pub source_ranges: BTreeSet<(u16, Be32, u8)>,
    /// Backends whose flows were flushed, in order.
    pub flushed: Vec<(Be32, Be16, u8)>,
    /// Maglev writes refused because the map was full.
    pub maglev_refused: usize,
}

impl NodePortOps for FakeNodePortMaps {
    fn upsert_service(
        &mut self,
        key: ServiceKey,
        value: ExtServiceValue,
    ) -> Result<(), DatapathError> {
        if !self.services.contains_key(&key)
            && self.services.len() >= EXT_SERVICES_MAX_ENTRIES as usize
        {
            return Err(DatapathError::MapFull {
                map: EXT_SERVICES_MAP,
            });
        }
        self.services.insert(key, value);
        Ok(())
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DatapathError> {
        self.services.remove(key);
        Ok(())
    }
    fn services(&self) -> Result<Vec<(ServiceKey, ExtServiceValue)>, DatapathError> {
        Ok(self.services.iter().map(|(k, v)| (*k, *v)).collect())
    }
    fn add_node_ip(&mut self, key: NodeIpKey) -> Result<(), DatapathError> {
        self.node_ips.insert(key);
        Ok(())
    }
    fn remove_node_ip(&mut self, key: &NodeIpKey) -> Result<(), DatapathError> {
        self.node_ips.remove(key);
        Ok(())
    }
    fn set_config(&mut self, config: NodePortConfig) -> Result<(), DatapathError> {
        self.config = config;
        Ok(())
    }
    fn upsert_maglev(&mut self, key: MaglevKey, table: &MaglevValue) -> Result<(), DatapathError> {
        if !self.maglev.contains_key(&key) && self.maglev.len() >= MAGLEV_MAX_ENTRIES as usize {
            self.maglev_refused += 1;
            return Err(DatapathError::MapFull { map: MAGLEV_MAP });
        }
        self.maglev.insert(key, *table);
        Ok(())
    }
    fn remove_maglev(&mut self, key: &MaglevKey) -> Result<(), DatapathError> {
        self.maglev.remove(key);
        Ok(())
    }
    fn add_source_range(
        &mut self,
        svc_id: u16,
        addr: Be32,
        prefix_len: u8,
    ) -> Result<(), DatapathError> {
        self.source_ranges
            .insert((svc_id, addr, prefix_len.min(32)));
        Ok(())
    }
    fn remove_source_range(
        &mut self,
        svc_id: u16,
        addr: Be32,
        prefix_len: u8,
    ) -> Result<(), DatapathError> {
        self.source_ranges
            .remove(&(svc_id, addr, prefix_len.min(32)));
        Ok(())
    }
    fn source_ranges(&self) -> Result<Vec<(u16, Be32, u8)>, DatapathError> {
        Ok(self.source_ranges.iter().copied().collect())
    }
    fn maglev_keys(&self) -> Result<Vec<MaglevKey>, DatapathError> {
        Ok(self.maglev.keys().copied().collect())
    }
    fn node_ips(&self) -> Result<Vec<NodeIpKey>, DatapathError> {
        Ok(self.node_ips.iter().copied().collect())
    }
    fn flush_backends(&mut self, backends: &[(Be32, Be16, u8)]) -> Result<usize, DatapathError> {
        self.flushed.extend_from_slice(backends);
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::{FakeNodePortMaps, NodePortOps};
    use sluice_ebpf_common::{
        Be16, Be32, PROTO_TCP,
        nodeport::{EXT_FLAG_NODEPORT, ExtServiceValue, ServiceKey},
    };

    #[test]
    fn fake_upserts_and_removes_idempotently() {
        let mut maps = FakeNodePortMaps::default();
        let key = ServiceKey::frontend(Be32::from_raw(0), Be16::from_host(30_080), PROTO_TCP);
        maps.upsert_service(key, ExtServiceValue::frontend(0, EXT_FLAG_NODEPORT, 1))
            .unwrap();
        maps.upsert_service(key, ExtServiceValue::frontend(1, EXT_FLAG_NODEPORT, 1))
            .unwrap();
        assert_eq!(maps.services().unwrap().len(), 1);
        assert_eq!(maps.services().unwrap()[0].1.count, 1);
        maps.remove_service(&key).unwrap();
        maps.remove_service(&key).unwrap();
        assert!(maps.services().unwrap().is_empty());
        maps.add_source_range(1, Be32::from_octets([10, 0, 0, 0]), 40)
            .unwrap();
        maps.remove_source_range(1, Be32::from_octets([10, 0, 0, 0]), 32)
            .unwrap();
        assert!(maps.source_ranges.is_empty(), "prefix lengths clamp to 32");
    }
}
