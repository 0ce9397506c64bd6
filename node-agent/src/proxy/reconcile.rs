//! The reconciler: diffs a [`Desired`] state against the live datapath maps
//! and writes only the difference, in an order that never leaves a connect
//! looking at a slot whose backend is missing.
//!
//! The live maps are the source of truth: every [`Reconciler::apply`] reads
//! them back, so entries left by a previous agent run are adopted (same ids)
//! or pruned, and nothing is renumbered across restarts.
//!
//! # Write order
//!
//! 1. frontends no longer desired: slot 0 first (connects stop picking the
//!    service), then its slots;
//! 2. backends new or changed;
//! 3. reverse-NAT entries new or changed;
//! 4. per desired frontend: slots past both its old and new count (no
//!    connect can pick them), then its slots `1..=n` that differ, then slot 0
//!    (the count) if it differs, then the slots between the new and the old
//!    count;
//! 5. reverse-NAT entries no frontend uses any more;
//! 6. backends no slot references any more.
//!
//! So every slot in `1..=count` of a frontend names a backend that is in the
//! backends map, at every moment between two writes.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use sluice_ebpf_common::{RevNatKey, RevNatValue, SERVICE_FLAG_NONE};

use super::ProxyError;
use super::desired::{Backend, Desired, Frontend, Protocol, ServicePortName};
use crate::datapath::{
    BackendKey, BackendValue, Be16, Be32, DatapathOps, ServiceKey, ServiceValue,
};

/// Hands out ids from `min..=max`, moving forward and wrapping around, and
/// skipping ids in use, so a freed id is not handed out again soon (a
/// connect racing with an update then never mistakes a new backend or
/// service for the old one that had its id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdAllocator {
    min: u32,
    max: u32,
    next: u32,
}

impl IdAllocator {
    /// Ids from `min..=max` (`min` at least 1: 0 means "none" in the maps).
    ///
    /// # Panics
    /// When `min` is 0 or greater than `max`.
    #[must_use]
    pub fn new(min: u32, max: u32) -> Self {
        assert!(min >= 1 && min <= max, "bad id range {min}..={max}");
        Self {
            min,
            max,
            next: min,
        }
    }

    /// Notes that `id` exists already, so numbering continues after it.
    pub fn observe(&mut self, id: u32) {
        if id >= self.next && id <= self.max {
            self.next = if id == self.max { self.min } else { id + 1 };
        }
    }

    /// The next id for which `in_use` is false, or `None` when every id is
    /// in use.
    pub fn allocate(&mut self, in_use: impl Fn(u32) -> bool) -> Option<u32> {
        let mut candidate = self.next;
        loop {
            let following = if candidate == self.max {
                self.min
            } else {
                candidate + 1
            };
            if !in_use(candidate) {
                self.next = following;
                return Some(candidate);
            }
            candidate = following;
            if candidate == self.next {
                return None;
            }
        }
    }
}

/// What one [`Reconciler::apply`] changed, counted in map writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frontends (slot 0) written that were not there before.
    pub frontends_added: usize,
    /// Frontends (slot 0) rewritten (count or service id changed).
    pub frontends_updated: usize,
    /// Frontends (slot 0) removed.
    pub frontends_removed: usize,
    /// Backend slots written.
    pub slots_written: usize,
    /// Backend slots removed.
    pub slots_removed: usize,
    /// Backends written.
    pub backends_written: usize,
    /// Backends removed.
    pub backends_removed: usize,
    /// Reverse-NAT entries written.
    pub rev_nats_written: usize,
    /// Reverse-NAT entries removed.
    pub rev_nats_removed: usize,
    /// Desired frontends that needed any write (not itself a write).
    pub frontends_changed: usize,
}

impl Stats {
    /// Total map writes (upserts and removals).
    #[must_use]
    pub const fn writes(&self) -> usize {
        self.frontends_added
            + self.frontends_updated
            + self.frontends_removed
            + self.slots_written
            + self.slots_removed
            + self.backends_written
            + self.backends_removed
            + self.rev_nats_written
            + self.rev_nats_removed
    }

    /// Whether the apply wrote nothing.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.writes() == 0
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frontends +{} ~{} -{}, slots +{} -{}, backends +{} -{}, rev-nat +{} -{}",
            self.frontends_added,
            self.frontends_updated,
            self.frontends_removed,
            self.slots_written,
            self.slots_removed,
            self.backends_written,
            self.backends_removed,
            self.rev_nats_written,
            self.rev_nats_removed,
        )
    }
}

/// Diffs desired state against the live maps and applies the difference.
///
/// Holds only the id cursors; which id belongs to which backend or frontend
/// is read back from the live maps on every apply.
#[derive(Clone, Debug)]
pub struct Reconciler {
    backend_ids: IdAllocator,
    rev_nat_ids: IdAllocator,
    seeded: bool,
}

impl Default for Reconciler {
    fn default() -> Self {
        Self::new()
    }
}

/// One frontend as found in the services map (slot 0 may be missing when a
/// previous run died half-way).
#[derive(Default)]
struct LiveFrontend {
    value: Option<ServiceValue>,
    slots: BTreeMap<u16, ServiceValue>,
}

/// The live maps, indexed.
struct Live {
    frontends: BTreeMap<ServiceKey, LiveFrontend>,
    backends: BTreeMap<u32, BackendValue>,
    rev_nats: BTreeMap<u16, RevNatValue>,
}

impl Live {
    fn read<D: DatapathOps + ?Sized>(dp: &D) -> Result<Self, ProxyError> {
        let mut frontends: BTreeMap<ServiceKey, LiveFrontend> = BTreeMap::new();
        for (key, value) in dp.services()? {
            let entry = frontends.entry(key.with_slot(0)).or_default();
            if key.slot == 0 {
                entry.value = Some(value);
            } else {
                entry.slots.insert(key.slot, value);
            }
        }
        Ok(Self {
            frontends,
            backends: dp.backends()?.into_iter().map(|(k, v)| (k.id, v)).collect(),
            rev_nats: dp.rev_nats()?.into_iter().map(|(k, v)| (k.id, v)).collect(),
        })
    }
}

/// What one desired frontend gets.
struct PlannedFrontend<'a> {
    service: &'a ServicePortName,
    rev_nat_id: u16,
    /// Backend id per slot: `slots[i]` goes in slot `i + 1`.
    slots: Vec<u32>,
}

/// The full target content of the maps.
struct Plan<'a> {
    frontends: BTreeMap<ServiceKey, PlannedFrontend<'a>>,
    backends: BTreeMap<u32, BackendValue>,
    rev_nats: BTreeMap<u16, RevNatValue>,
}

/// The services-map frontend key of a desired frontend.
#[must_use]
pub fn frontend_key(frontend: &Frontend) -> ServiceKey {
    ServiceKey::frontend(
        Be32::from_ipv4(frontend.vip),
        Be16::from_host(frontend.port),
        frontend.protocol.number(),
    )
}

/// The backends-map value of a desired backend.
#[must_use]
pub fn backend_value(backend: &Backend, protocol: Protocol) -> BackendValue {
    BackendValue::new(
        Be32::from_ipv4(backend.addr),
        Be16::from_host(backend.port),
        protocol.number(),
    )
}

/// The reverse-NAT value of a desired frontend.
#[must_use]
pub fn rev_nat_value(frontend: &Frontend) -> RevNatValue {
    RevNatValue::new(
        Be32::from_ipv4(frontend.vip),
        Be16::from_host(frontend.port),
    )
}

impl Reconciler {
    /// A reconciler that has not seen the maps yet; its first apply adopts
    /// and prunes whatever a previous run left.
    #[must_use]
    pub fn new() -> Self {
        Self {
            backend_ids: IdAllocator::new(1, u32::MAX),
            rev_nat_ids: IdAllocator::new(1, u32::from(u16::MAX)),
            seeded: false,
        }
    }

    /// Makes the maps match `desired`, writing only what differs (a second
    /// apply of the same state writes nothing). See the module docs for the
    /// write order.
    ///
    /// # Errors
    /// [`ProxyError::Datapath`] when a map cannot be read or written (the
    /// maps are then consistent but partly updated; apply again),
    /// [`ProxyError::TooManyBackends`] and [`ProxyError::IdsExhausted`]
    /// before any write.
    pub fn apply<D: DatapathOps + ?Sized>(
        &mut self,
        desired: &Desired,
        dp: &mut D,
    ) -> Result<Stats, ProxyError> {
        let live = Live::read(dp)?;
        if !self.seeded {
            self.seed(&live);
            self.seeded = true;
        }
        let plan = self.plan(desired, &live)?;
        let mut stats = Stats::default();

        // 1. Frontends no longer desired: slot 0 first, then its slots.
        for (key, fe) in &live.frontends {
            if plan.frontends.contains_key(key) {
                continue;
            }
            if fe.value.is_some() {
                dp.remove_service(key)?;
                stats.frontends_removed += 1;
            }
            for slot in fe.slots.keys() {
                dp.remove_service(&key.with_slot(*slot))?;
                stats.slots_removed += 1;
            }
        }

        // 2. Backends, before any slot names them.
        for (id, value) in &plan.backends {
            if live.backends.get(id) != Some(value) {
                dp.upsert_backend(BackendKey { id: *id }, *value)?;
                stats.backends_written += 1;
            }
        }

        // 3. Reverse NAT, before any frontend names it.
        for (id, value) in &plan.rev_nats {
            if live.rev_nats.get(id) != Some(value) {
                dp.upsert_rev_nat(RevNatKey::new(*id), *value)?;
                stats.rev_nats_written += 1;
            }
        }

        // 4. Each frontend: slots, then the count, then slots past the count.
        let empty = LiveFrontend::default();
        for (key, planned) in &plan.frontends {
            let before = stats.writes();
            let live_fe = live.frontends.get(key).unwrap_or(&empty);
            let count = u16::try_from(planned.slots.len())
                .unwrap_or_else(|_| unreachable!("checked by plan()"));
            // Slots past both the old and the new count are invisible to
            // connects: remove them first, which also frees map room.
            let old_count = live_fe.value.map_or(0, |v| v.count);
            for slot in live_fe
                .slots
                .keys()
                .filter(|s| **s > count && **s > old_count)
            {
                dp.remove_service(&key.with_slot(*slot))?;
                stats.slots_removed += 1;
            }
            for (slot, id) in (1..=count).zip(&planned.slots) {
                let value = ServiceValue::backend_slot(*id, planned.rev_nat_id);
                if live_fe.slots.get(&slot) != Some(&value) {
                    dp.upsert_service(key.with_slot(slot), value)?;
                    stats.slots_written += 1;
                }
            }
            let value = ServiceValue::frontend(count, SERVICE_FLAG_NONE, planned.rev_nat_id);
            match live_fe.value {
                Some(old) if old == value => {}
                old => {
                    dp.upsert_service(*key, value)?;
                    if old.is_some() {
                        stats.frontends_updated += 1;
                    } else {
                        stats.frontends_added += 1;
                    }
                }
            }
            for slot in live_fe
                .slots
                .keys()
                .filter(|s| **s > count && **s <= old_count)
            {
                dp.remove_service(&key.with_slot(*slot))?;
                stats.slots_removed += 1;
            }
            if stats.writes() != before {
                stats.frontends_changed += 1;
                tracing::debug!(
                    service = %planned.service,
                    vip = %key.vip.to_ipv4(),
                    port = key.port.to_host(),
                    proto = key.proto,
                    backends = count,
                    rev_nat_id = planned.rev_nat_id,
                    "frontend programmed"
                );
            }
        }

        // 5. Reverse NAT no frontend uses any more.
        for id in live.rev_nats.keys() {
            if !plan.rev_nats.contains_key(id) {
                dp.remove_rev_nat(&RevNatKey::new(*id))?;
                stats.rev_nats_removed += 1;
            }
        }

        // 6. Backends no slot names any more.
        for id in live.backends.keys() {
            if !plan.backends.contains_key(id) {
                dp.remove_backend(&BackendKey { id: *id })?;
                stats.backends_removed += 1;
            }
        }
        Ok(stats)
    }

    /// After a restart, continue numbering after the ids already in the maps.
    fn seed(&mut self, live: &Live) {
        for id in live.backends.keys() {
            self.backend_ids.observe(*id);
        }
        for id in live.rev_nats.keys() {
            self.rev_nat_ids.observe(u32::from(*id));
        }
        for fe in live.frontends.values() {
            if let Some(value) = fe.value {
                self.rev_nat_ids.observe(u32::from(value.rev_nat_id));
            }
        }
    }

    /// Assigns ids (reusing the live ones) and slots; no writes.
    fn plan<'a>(&mut self, desired: &'a Desired, live: &Live) -> Result<Plan<'a>, ProxyError> {
        for (frontend, spec) in &desired.frontends {
            if u16::try_from(spec.backends.len()).is_err() {
                return Err(ProxyError::TooManyBackends {
                    frontend: frontend.to_string(),
                    service: spec.service.to_string(),
                    count: spec.backends.len(),
                });
            }
        }

        let rev_nat_of = self.assign_rev_nat_ids(desired, live)?;

        // Backend ids by (address, port, protocol); the lowest live id wins
        // if a previous run left duplicates.
        let mut backend_id: HashMap<BackendValue, u32> = HashMap::new();
        for (id, value) in &live.backends {
            backend_id.entry(active(*value)).or_insert(*id);
        }
        let mut backends: BTreeMap<u32, BackendValue> = BTreeMap::new();
        let mut frontends = BTreeMap::new();
        for (frontend, spec) in &desired.frontends {
            let key = frontend_key(frontend);
            let mut ids = Vec::with_capacity(spec.backends.len());
            for backend in &spec.backends {
                let value = backend_value(backend, frontend.protocol);
                let id = if let Some(id) = backend_id.get(&value) {
                    *id
                } else {
                    let id = self
                        .backend_ids
                        .allocate(|id| {
                            live.backends.contains_key(&id) || backends.contains_key(&id)
                        })
                        .ok_or(ProxyError::IdsExhausted { kind: "backend" })?;
                    backend_id.insert(value, id);
                    id
                };
                backends.insert(id, value);
                ids.push(id);
            }
            let slots = assign_slots(live.frontends.get(&key), &ids);
            frontends.insert(
                key,
                PlannedFrontend {
                    service: &spec.service,
                    rev_nat_id: rev_nat_of[&key],
                    slots,
                },
            );
        }
        let rev_nats = desired
            .frontends
            .keys()
            .map(|frontend| (rev_nat_of[&frontend_key(frontend)], rev_nat_value(frontend)))
            .collect();
        Ok(Plan {
            frontends,
            backends,
            rev_nats,
        })
    }

    /// Rev-nat ids: keep the live frontend's id, else adopt an unclaimed live
    /// entry with the same vip:port (a run that died between writing it and
    /// the frontend), else allocate one in use nowhere.
    fn assign_rev_nat_ids(
        &mut self,
        desired: &Desired,
        live: &Live,
    ) -> Result<BTreeMap<ServiceKey, u16>, ProxyError> {
        let mut rev_nat_of: BTreeMap<ServiceKey, u16> = BTreeMap::new();
        let mut claimed: BTreeSet<u16> = BTreeSet::new();
        for frontend in desired.frontends.keys() {
            let key = frontend_key(frontend);
            let id = live
                .frontends
                .get(&key)
                .and_then(|fe| fe.value)
                .map_or(0, |v| v.rev_nat_id);
            if id != 0 && claimed.insert(id) {
                rev_nat_of.insert(key, id);
            }
        }
        let mut by_value: HashMap<RevNatValue, Vec<u16>> = HashMap::new();
        for (id, value) in &live.rev_nats {
            by_value.entry(*value).or_default().push(*id);
        }
        let mut in_use: BTreeSet<u16> = live.rev_nats.keys().copied().collect();
        in_use.extend(
            live.frontends
                .values()
                .filter_map(|fe| fe.value.map(|v| v.rev_nat_id)),
        );
        for frontend in desired.frontends.keys() {
            let key = frontend_key(frontend);
            if rev_nat_of.contains_key(&key) {
                continue;
            }
            let adopted = by_value
                .get(&rev_nat_value(frontend))
                .and_then(|ids| ids.iter().find(|id| !claimed.contains(id)).copied());
            let id = if let Some(id) = adopted {
                id
            } else {
                let id = self
                    .rev_nat_ids
                    .allocate(|id| {
                        u16::try_from(id)
                            .map_or(true, |id| in_use.contains(&id) || claimed.contains(&id))
                    })
                    .ok_or(ProxyError::IdsExhausted {
                        kind: "reverse-NAT",
                    })?;
                u16::try_from(id).unwrap_or_else(|_| unreachable!("allocator range is u16"))
            };
            claimed.insert(id);
            rev_nat_of.insert(key, id);
        }
        Ok(rev_nat_of)
    }
}

/// The value with the flags of an active backend (ids are matched on
/// address, port and protocol; flags are rewritten if they differ).
fn active(value: BackendValue) -> BackendValue {
    BackendValue::new(value.addr, value.port, value.proto)
}

/// Places `ids` in slots `1..=ids.len()`, leaving every backend that is
/// already in one of those slots where it is, so scaling up or down rewrites
/// as few slots as possible; new backends fill the free slots in order.
fn assign_slots(live: Option<&LiveFrontend>, ids: &[u32]) -> Vec<u32> {
    let count = ids.len();
    let mut slots: Vec<Option<u32>> = vec![None; count];
    let wanted: BTreeSet<u32> = ids.iter().copied().collect();
    let mut placed: BTreeSet<u32> = BTreeSet::new();
    if let Some(live) = live {
        for (slot, value) in &live.slots {
            let index = usize::from(*slot).wrapping_sub(1);
            if index < count
                && wanted.contains(&value.backend_id)
                && placed.insert(value.backend_id)
            {
                slots[index] = Some(value.backend_id);
            }
        }
    }
    let mut rest = ids.iter().filter(|id| !placed.contains(id));
    slots
        .into_iter()
        .map(|slot| {
            slot.or_else(|| rest.next().copied())
                .unwrap_or_else(|| unreachable!("as many ids as slots"))
        })
        .collect()
}
