//! The north-south reconciler: keeps the tc/XDP maps
//! ([`NodePortOps`]) equal to the [`ExtSpec`]s of this node, with a shadow
//! of what it wrote, like the socket-LB [`Reconciler`](crate::proxy::Reconciler).
//!
//! - [`ExtReconciler::apply`] is the full pass: it reads the frontends,
//!   Maglev keys, source ranges and node addresses back from the maps,
//!   adopts the service ids a previous run left on frontends still wanted
//!   (so conntrack and affinity entries keep naming the right service),
//!   writes what differs and prunes what nothing wants. Maglev tables are
//!   compared by the backends they were built for (the shadow's record, so
//!   the first pass after a start rewrites them once), not re-read.
//! - [`ExtReconciler::apply_changes`] touches only the named frontends,
//!   against the shadow.
//!
//! Per frontend, the order never lets a new flow pick a slot that is not
//! there: new and changed slots `1..=n`, source ranges added, the Maglev
//! table, then slot 0 (count, flags), then slots past the new count and
//! source ranges no longer wanted. A removed frontend loses slot 0 first.
//!
//! Backends that leave every frontend are remembered
//! ([`ExtReconciler::take_removed_backends`]) so their tracked flows can be
//! flushed: the next packet of such a flow is then a new flow to a live
//! backend (UDP keeps working; TCP gets a reset from the new backend
//! instead of hanging on a dead address).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use sluice_ebpf_common::nodeport::{
    EXT_BACKEND_LOCAL, EXT_FLAG_MAGLEV, ExtServiceValue, MAGLEV_MAX_ENTRIES, MAGLEV_TABLE_SIZE,
    MaglevKey, NodeIpKey, NodePortConfig, ServiceKey,
};
use sluice_ebpf_common::{Be16, Be32};

use super::super::ProxyError;
use super::super::desired::{Backend, Frontend, Protocol};
use super::super::reconcile::{IdAllocator, frontend_key};
use super::ExtSpec;
use crate::datapath::{DatapathError, NodePortOps, maglev};

/// What one apply wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtStats {
    /// Frontend and slot entries written.
    pub written: usize,
    /// Frontend and slot entries removed.
    pub removed: usize,
    /// Maglev tables written or removed.
    pub maglev: usize,
    /// Source ranges added or removed.
    pub ranges: usize,
    /// Node addresses added or removed.
    pub node_ips: usize,
}

impl ExtStats {
    /// Nothing was written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl std::fmt::Display for ExtStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} entries written, {} removed, {} Maglev tables, {} source ranges, {} node addresses",
            self.written, self.removed, self.maglev, self.ranges, self.node_ips
        )
    }
}

/// What the maps hold, as the reconciler last read or wrote them.
#[derive(Debug, Default)]
struct Shadow {
    services: BTreeMap<ServiceKey, ExtServiceValue>,
    /// Service id -> the slot backends its Maglev table was built for
    /// (empty: a table of unknown content, read back from the map).
    maglev: HashMap<u16, Vec<Backend>>,
    ranges: BTreeSet<(u16, Be32, u8)>,
}

/// The north-south reconciler (see the module docs).
#[derive(Debug)]
pub struct ExtReconciler {
    node_ips: Vec<Ipv4Addr>,
    config: NodePortConfig,
    maglev: bool,
    ids: HashMap<Frontend, u16>,
    in_use: BTreeSet<u16>,
    allocator: IdAllocator,
    shadow: Option<Shadow>,
    removed: BTreeSet<(Backend, Protocol)>,
    maglev_full_warned: bool,
}

fn key_frontend(key: &ServiceKey) -> Option<Frontend> {
    Some(Frontend {
        vip: key.vip.to_ipv4(),
        port: key.port.to_host(),
        protocol: Protocol::from_number(key.proto)?,
    })
}

fn to_be32(addr: Ipv4Addr) -> Be32 {
    Be32::from_ipv4(addr)
}

impl ExtReconciler {
    /// A reconciler for a node answering `NodePort`s on `node_ips`, with
    /// `config` (SNAT address, ports, flags); `maglev`: choose backends by
    /// each frontend's Maglev table rather than the flow hash modulo count.
    #[must_use]
    pub fn new(node_ips: Vec<Ipv4Addr>, config: NodePortConfig, maglev: bool) -> Self {
        Self {
            node_ips,
            config,
            maglev,
            ids: HashMap::new(),
            in_use: BTreeSet::new(),
            allocator: IdAllocator::new(1, u32::from(u16::MAX)),
            shadow: None,
            removed: BTreeSet::new(),
            maglev_full_warned: false,
        }
    }

    /// Says once that the Maglev map is full.
    fn warn_maglev_full(&mut self) {
        if !self.maglev_full_warned {
            tracing::warn!(
                max = MAGLEV_MAX_ENTRIES,
                "the Maglev map is full: further north-south frontends choose backends by flow hash"
            );
            self.maglev_full_warned = true;
        }
    }

    /// Whether the shadow is usable (a full pass succeeded and nothing failed since).
    #[must_use]
    pub fn has_shadow(&self) -> bool {
        self.shadow.is_some()
    }

    /// The service id of `frontend`, if it has one.
    #[must_use]
    pub fn id(&self, frontend: &Frontend) -> Option<u16> {
        self.ids.get(frontend).copied()
    }

    /// Backends that left every frontend since the last call (with the
    /// frontend's protocol).
    pub fn take_removed_backends(&mut self) -> BTreeSet<(Backend, Protocol)> {
        std::mem::take(&mut self.removed)
    }

    /// The full pass (see the module docs).
    ///
    /// # Errors
    /// [`ProxyError::Datapath`] when a map operation fails;
    /// [`ProxyError::IdsExhausted`]. The shadow is dropped, so the next
    /// apply is a full pass again.
    pub fn apply<M: NodePortOps + ?Sized>(
        &mut self,
        desired: &BTreeMap<Frontend, ExtSpec>,
        maps: &mut M,
    ) -> Result<ExtStats, ProxyError> {
        let previous = self.shadow.take().unwrap_or_default();
        let mut stats = ExtStats::default();
        maps.set_config(self.config)?;
        let wanted_ips: BTreeSet<NodeIpKey> = self
            .node_ips
            .iter()
            .map(|ip| NodeIpKey { addr: to_be32(*ip) })
            .collect();
        for live in maps.node_ips()? {
            if !wanted_ips.contains(&live) {
                maps.remove_node_ip(&live)?;
                stats.node_ips += 1;
            }
        }
        let live_ips: BTreeSet<NodeIpKey> = maps.node_ips()?.into_iter().collect();
        for ip in &wanted_ips {
            if !live_ips.contains(ip) {
                maps.add_node_ip(*ip)?;
                stats.node_ips += 1;
            }
        }
        let mut shadow = Shadow {
            services: maps.services()?.into_iter().collect(),
            maglev: maps
                .maglev_keys()?
                .into_iter()
                .map(|k| {
                    let built_for = previous.maglev.get(&k.svc_id).cloned().unwrap_or_default();
                    (k.svc_id, built_for)
                })
                .collect(),
            ranges: maps.source_ranges()?.into_iter().collect(),
        };
        // Adopt the ids of live frontends still wanted (a restart keeps them).
        if self.ids.is_empty() {
            for (key, value) in &shadow.services {
                if key.slot != 0 || value.svc_id == 0 {
                    continue;
                }
                let Some(frontend) = key_frontend(key) else {
                    continue;
                };
                if desired.contains_key(&frontend) && self.in_use.insert(value.svc_id) {
                    self.ids.insert(frontend, value.svc_id);
                    self.allocator.observe(u32::from(value.svc_id));
                }
            }
        }
        // Frontends no longer wanted (and ids with no frontend).
        let gone: Vec<Frontend> = self
            .ids
            .keys()
            .filter(|f| !desired.contains_key(f))
            .copied()
            .collect();
        for frontend in gone {
            self.remove_frontend(frontend, &mut shadow, maps, &mut stats)?;
        }
        for (frontend, spec) in desired {
            self.write_frontend(*frontend, spec, &mut shadow, maps, &mut stats)?;
        }
        // Prune whatever no wanted frontend owns.
        let wanted_keys: BTreeSet<ServiceKey> = desired.keys().map(frontend_key).collect();
        let stale: Vec<ServiceKey> = shadow
            .services
            .keys()
            .filter(|k| !wanted_keys.contains(&k.with_slot(0)))
            .copied()
            .collect();
        for key in stale {
            if let Some(value) = shadow.services.remove(&key) {
                maps.remove_service(&key)?;
                stats.removed += 1;
                if key.slot != 0
                    && let Some(protocol) = Protocol::from_number(key.proto)
                {
                    self.note_removed(value, protocol);
                }
            }
        }
        let stale_maglev: Vec<u16> = shadow
            .maglev
            .keys()
            .filter(|id| !self.in_use.contains(id))
            .copied()
            .collect();
        for id in stale_maglev {
            maps.remove_maglev(&MaglevKey { svc_id: id, pad: 0 })?;
            shadow.maglev.remove(&id);
            stats.maglev += 1;
        }
        let stale_ranges: Vec<(u16, Be32, u8)> = shadow
            .ranges
            .iter()
            .filter(|(id, _, _)| !self.in_use.contains(id))
            .copied()
            .collect();
        for (id, addr, len) in stale_ranges {
            maps.remove_source_range(id, addr, len)?;
            shadow.ranges.remove(&(id, addr, len));
            stats.ranges += 1;
        }
        self.retain_removed(desired);
        self.shadow = Some(shadow);
        Ok(stats)
    }

    /// Applies only `changed` frontends (falls back to [`Self::apply`]
    /// without a shadow).
    ///
    /// # Errors
    /// As [`Self::apply`].
    pub fn apply_changes<M: NodePortOps + ?Sized>(
        &mut self,
        desired: &BTreeMap<Frontend, ExtSpec>,
        changed: &BTreeSet<Frontend>,
        maps: &mut M,
    ) -> Result<ExtStats, ProxyError> {
        let Some(mut shadow) = self.shadow.take() else {
            return self.apply(desired, maps);
        };
        let mut stats = ExtStats::default();
        for frontend in changed {
            match desired.get(frontend) {
                Some(spec) => {
                    self.write_frontend(*frontend, spec, &mut shadow, maps, &mut stats)?;
                }
                None => self.remove_frontend(*frontend, &mut shadow, maps, &mut stats)?,
            }
        }
        self.retain_removed(desired);
        self.shadow = Some(shadow);
        Ok(stats)
    }

    /// Keeps as "removed" only backends no wanted frontend still uses.
    fn retain_removed(&mut self, desired: &BTreeMap<Frontend, ExtSpec>) {
        if self.removed.is_empty() {
            return;
        }
        let used: BTreeSet<(Backend, Protocol)> = desired
            .iter()
            .flat_map(|(f, s)| s.backends.iter().map(|b| (b.backend, f.protocol)))
            .collect();
        self.removed.retain(|b| !used.contains(b));
    }

    fn note_removed(&mut self, slot: ExtServiceValue, protocol: Protocol) {
        if slot.backend_addr.raw() != 0 {
            self.removed.insert((
                Backend {
                    addr: slot.backend_addr.to_ipv4(),
                    port: slot.backend_port.to_host(),
                },
                protocol,
            ));
        }
    }

    fn remove_frontend<M: NodePortOps + ?Sized>(
        &mut self,
        frontend: Frontend,
        shadow: &mut Shadow,
        maps: &mut M,
        stats: &mut ExtStats,
    ) -> Result<(), ProxyError> {
        let key = frontend_key(&frontend);
        if let Some(value) = shadow.services.remove(&key) {
            maps.remove_service(&key)?;
            stats.removed += 1;
            for slot in 1..=value.count {
                if let Some(old) = shadow.services.remove(&key.with_slot(slot)) {
                    maps.remove_service(&key.with_slot(slot))?;
                    stats.removed += 1;
                    self.note_removed(old, frontend.protocol);
                }
            }
        }
        if let Some(id) = self.ids.remove(&frontend) {
            self.in_use.remove(&id);
            if shadow.maglev.remove(&id).is_some() {
                maps.remove_maglev(&MaglevKey { svc_id: id, pad: 0 })?;
                stats.maglev += 1;
            }
            let ranges: Vec<_> = shadow
                .ranges
                .iter()
                .filter(|r| r.0 == id)
                .copied()
                .collect();
            for (id, addr, len) in ranges {
                maps.remove_source_range(id, addr, len)?;
                shadow.ranges.remove(&(id, addr, len));
                stats.ranges += 1;
            }
        }
        Ok(())
    }

    fn write_frontend<M: NodePortOps + ?Sized>(
        &mut self,
        frontend: Frontend,
        spec: &ExtSpec,
        shadow: &mut Shadow,
        maps: &mut M,
        stats: &mut ExtStats,
    ) -> Result<(), ProxyError> {
        let count =
            u16::try_from(spec.backends.len()).map_err(|_| ProxyError::TooManyBackends {
                frontend: frontend.to_string(),
                service: spec.service.to_string(),
                count: spec.backends.len(),
            })?;
        let id = if let Some(id) = self.ids.get(&frontend) {
            *id
        } else {
            let in_use = &self.in_use;
            let id = self
                .allocator
                .allocate(|id| u16::try_from(id).map_or(true, |id| in_use.contains(&id)))
                .and_then(|id| u16::try_from(id).ok())
                .ok_or(ProxyError::IdsExhausted {
                    kind: "north-south service",
                })?;
            self.in_use.insert(id);
            self.ids.insert(frontend, id);
            id
        };
        let key = frontend_key(&frontend);
        let old_count = shadow.services.get(&key).map_or(0, |v| v.count);
        // Slots 1..=n.
        for (slot, backend) in (1..=count).zip(&spec.backends) {
            let value = ExtServiceValue::backend(
                id,
                to_be32(backend.backend.addr),
                Be16::from_host(backend.backend.port),
                if backend.local { EXT_BACKEND_LOCAL } else { 0 },
            );
            let slot_key = key.with_slot(slot);
            if shadow.services.get(&slot_key) != Some(&value) {
                maps.upsert_service(slot_key, value)?;
                stats.written += 1;
                if let Some(old) = shadow.services.insert(slot_key, value) {
                    self.note_removed(old, frontend.protocol);
                }
            }
        }
        // Source ranges wanted.
        let wanted_ranges: BTreeSet<(u16, Be32, u8)> = spec
            .source_ranges
            .iter()
            .map(|(addr, len)| (id, to_be32(*addr), *len))
            .collect();
        for range in &wanted_ranges {
            if !shadow.ranges.contains(range) {
                maps.add_source_range(range.0, range.1, range.2)?;
                shadow.ranges.insert(*range);
                stats.ranges += 1;
            }
        }
        // The Maglev table.
        let slot_backends: Vec<Backend> = spec.backends.iter().map(|b| b.backend).collect();
        let has_table = shadow.maglev.contains_key(&id);
        // With every table taken (the shadow counts them), a frontend without one falls
        // back at once: no table is built and no write is tried that can only fail.
        let room = has_table || shadow.maglev.len() < MAGLEV_MAX_ENTRIES as usize;
        let mut use_maglev = self.maglev && count > 0 && room;
        if self.maglev && count > 0 && !room {
            self.warn_maglev_full();
        }
        if use_maglev && shadow.maglev.get(&id) != Some(&slot_backends) {
            let names: Vec<String> = slot_backends.iter().map(ToString::to_string).collect();
            let table = maglev::build(&names, MAGLEV_TABLE_SIZE)
                .and_then(|t| maglev::to_map_value(&t))
                .map_err(|_| ProxyError::TooManyBackends {
                    frontend: frontend.to_string(),
                    service: spec.service.to_string(),
                    count: spec.backends.len(),
                })?;
            match maps.upsert_maglev(MaglevKey { svc_id: id, pad: 0 }, &table) {
                Ok(()) => {
                    shadow.maglev.insert(id, slot_backends);
                    stats.maglev += 1;
                }
                // More frontends than Maglev tables: this one falls back to the flow
                // hash modulo its backend count (still the same choice on every node).
                Err(DatapathError::MapFull { .. }) => {
                    self.warn_maglev_full();
                    use_maglev = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !use_maglev && shadow.maglev.remove(&id).is_some() {
            // A table without the flag is never read.
            maps.remove_maglev(&MaglevKey { svc_id: id, pad: 0 })?;
            stats.maglev += 1;
        }
        // Slot 0.
        let mut flags = spec.flags;
        if use_maglev {
            flags |= EXT_FLAG_MAGLEV;
        }
        let value = ExtServiceValue::frontend(count, flags, id)
            .with_affinity_timeout(spec.affinity_timeout_s);
        if shadow.services.get(&key) != Some(&value) {
            maps.upsert_service(key, value)?;
            shadow.services.insert(key, value);
            stats.written += 1;
        }
        // Slots past the new count, ranges no longer wanted.
        for slot in count.saturating_add(1)..=old_count.max(count) {
            if let Some(old) = shadow.services.remove(&key.with_slot(slot)) {
                maps.remove_service(&key.with_slot(slot))?;
                stats.removed += 1;
                self.note_removed(old, frontend.protocol);
            }
        }
        // Slots beyond both counts that a full read found (drift).
        let extra: Vec<ServiceKey> = shadow
            .services
            .range(key.with_slot(old_count.max(count).saturating_add(1))..=key.with_slot(u16::MAX))
            .map(|(k, _)| *k)
            .collect();
        for slot_key in extra {
            shadow.services.remove(&slot_key);
            maps.remove_service(&slot_key)?;
            stats.removed += 1;
        }
        let stale: Vec<_> = shadow
            .ranges
            .iter()
            .filter(|r| r.0 == id && !wanted_ranges.contains(r))
            .copied()
            .collect();
        for (id, addr, len) in stale {
            maps.remove_source_range(id, addr, len)?;
            shadow.ranges.remove(&(id, addr, len));
            stats.ranges += 1;
        }
        Ok(())
    }
}
