//! The reconciler: diffs a [`Desired`] state against the datapath maps and
//! writes only the difference, in an order that never leaves a connect
//! looking at a slot whose backend is missing.
//!
//! # Shadow, full and incremental applies
//!
//! The reconciler keeps a shadow of the maps: every entry it read or wrote
//! (frontends, slots, backends, reverse-NAT entries, and so the ids), with
//! counts of how many slots name each backend and how many frontends each
//! reverse-NAT id.
//!
//! - [`Reconciler::apply`] is the full pass: it reads every live map back
//!   into the shadow and diffs the whole desired state against it. The first
//!   one after a start adopts what a previous agent run left (same ids) and
//!   prunes the rest, so nothing is renumbered across restarts; run again
//!   periodically, it is the verify-and-repair pass (whatever it writes is
//!   drift: an edit behind the reconciler's back).
//! - [`Reconciler::apply_changes`] diffs only the named frontends against the
//!   shadow, without reading the maps: its cost depends on the change, not on
//!   the number of Services. Backends and reverse-NAT ids shared with
//!   untouched frontends stay; untouched frontends are neither read nor
//!   written. Without a shadow (none yet, or the last apply failed) it falls
//!   back to [`Reconciler::apply`].
//!
//! # Write order
//!
//! Both passes write in the same order:
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

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use sluice_ebpf_common::{RevNatKey, RevNatValue, SERVICE_FLAG_NONE};

use super::ProxyError;
use super::desired::{Backend, Desired, Frontend, FrontendSpec, Protocol, ServicePortName};
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

/// Diffs desired state against the maps and applies the difference; see the
/// module docs for the shadow, the two kinds of apply and the write order.
#[derive(Clone, Debug)]
pub struct Reconciler {
    backend_ids: IdAllocator,
    rev_nat_ids: IdAllocator,
    /// What the maps hold as far as this reconciler knows; `None` before the
    /// first full apply and after a failed one (the next apply reads the
    /// maps again).
    shadow: Option<Shadow>,
    seeded: bool,
}

impl Default for Reconciler {
    fn default() -> Self {
        Self::new()
    }
}

/// One frontend as found in the services map (slot 0 may be missing when a
/// previous run died half-way).
#[derive(Clone, Debug, Default)]
struct LiveFrontend {
    value: Option<ServiceValue>,
    slots: BTreeMap<u16, ServiceValue>,
}

/// The maps as the reconciler last read or wrote them, indexed. Every write
/// goes through it, so it stays equal to the maps (unless someone else
/// writes them; the full apply then repairs the maps).
#[derive(Clone, Debug, Default)]
struct Shadow {
    frontends: BTreeMap<ServiceKey, LiveFrontend>,
    backends: BTreeMap<u32, BackendValue>,
    rev_nats: BTreeMap<u16, RevNatValue>,
    /// Backend id by value (active flags); the lowest id when a previous
    /// run left duplicates.
    backend_by_value: HashMap<BackendValue, u32>,
    /// How many slots name each backend id.
    backend_refs: HashMap<u32, u32>,
    /// How many frontends (slot 0) name each reverse-NAT id.
    rev_nat_refs: HashMap<u16, u32>,
    /// Backends removed from the map since [`Reconciler::take_removed_backends`] last ran.
    removed: Vec<BackendValue>,
}

fn count_up<K: std::hash::Hash + Eq>(refs: &mut HashMap<K, u32>, key: K) {
    *refs.entry(key).or_default() += 1;
}

fn count_down<K: std::hash::Hash + Eq>(refs: &mut HashMap<K, u32>, key: K) {
    if let Entry::Occupied(mut entry) = refs.entry(key) {
        *entry.get_mut() -= 1;
        if *entry.get() == 0 {
            entry.remove();
        }
    }
}

impl Shadow {
    /// Reads every live map.
    fn read<D: DatapathOps + ?Sized>(dp: &D) -> Result<Self, ProxyError> {
        let mut shadow = Self::default();
        for (key, value) in dp.services()? {
            shadow.note_service(key, value);
        }
        for (key, value) in dp.backends()? {
            shadow.note_backend(key.id, value);
        }
        shadow.rev_nats = dp.rev_nats()?.into_iter().map(|(k, v)| (k.id, v)).collect();
        Ok(shadow)
    }

    fn note_service(&mut self, key: ServiceKey, value: ServiceValue) {
        let entry = self.frontends.entry(key.with_slot(0)).or_default();
        if key.slot == 0 {
            if let Some(old) = entry.value.replace(value) {
                count_down(&mut self.rev_nat_refs, old.rev_nat_id);
            }
            count_up(&mut self.rev_nat_refs, value.rev_nat_id);
        } else {
            if let Some(old) = entry.slots.insert(key.slot, value) {
                count_down(&mut self.backend_refs, old.backend_id);
            }
            count_up(&mut self.backend_refs, value.backend_id);
        }
    }

    fn forget_service(&mut self, key: &ServiceKey) {
        let frontend = key.with_slot(0);
        let Some(entry) = self.frontends.get_mut(&frontend) else {
            return;
        };
        if key.slot == 0 {
            if let Some(old) = entry.value.take() {
                count_down(&mut self.rev_nat_refs, old.rev_nat_id);
            }
        } else if let Some(old) = entry.slots.remove(&key.slot) {
            count_down(&mut self.backend_refs, old.backend_id);
        }
        if entry.value.is_none() && entry.slots.is_empty() {
            self.frontends.remove(&frontend);
        }
    }

    fn note_backend(&mut self, id: u32, value: BackendValue) {
        if let Some(old) = self.backends.insert(id, value) {
            self.unindex_backend(id, old);
        }
        self.backend_by_value
            .entry(active(value))
            .and_modify(|known| *known = (*known).min(id))
            .or_insert(id);
    }

    fn unindex_backend(&mut self, id: u32, value: BackendValue) {
        if self.backend_by_value.get(&active(value)) == Some(&id) {
            self.backend_by_value.remove(&active(value));
        }
    }

    fn upsert_service<D: DatapathOps + ?Sized>(
        &mut self,
        dp: &mut D,
        key: ServiceKey,
        value: ServiceValue,
    ) -> Result<(), ProxyError> {
        dp.upsert_service(key, value)?;
        self.note_service(key, value);
        Ok(())
    }

    fn remove_service<D: DatapathOps + ?Sized>(
        &mut self,
        dp: &mut D,
        key: &ServiceKey,
    ) -> Result<(), ProxyError> {
        dp.remove_service(key)?;
        self.forget_service(key);
        Ok(())
    }

    fn upsert_backend<D: DatapathOps + ?Sized>(
        &mut self,
        dp: &mut D,
        id: u32,
        value: BackendValue,
    ) -> Result<(), ProxyError> {
        dp.upsert_backend(BackendKey { id }, value)?;
        self.note_backend(id, value);
        Ok(())
    }

    fn remove_backend<D: DatapathOps + ?Sized>(
        &mut self,
        dp: &mut D,
        id: u32,
    ) -> Result<(), ProxyError> {
        dp.remove_backend(&BackendKey { id })?;
        if let Some(old) = self.backends.remove(&id) {
            self.unindex_backend(id, old);
            self.removed.push(old);
        }
        Ok(())
    }

    fn upsert_rev_nat<D: DatapathOps + ?Sized>(
        &mut self,
        dp: &mut D,
        id: u16,
        value: RevNatValue,
    ) -> Result<(), ProxyError> {
        dp.upsert_rev_nat(RevNatKey::new(id), value)?;
        self.rev_nats.insert(id, value);
        Ok(())
    }

    fn remove_rev_nat<D: DatapathOps + ?Sized>(
        &mut self,
        dp: &mut D,
        id: u16,
    ) -> Result<(), ProxyError> {
        dp.remove_rev_nat(&RevNatKey::new(id))?;
        self.rev_nats.remove(&id);
        Ok(())
    }
}

/// What one desired frontend gets.
struct PlannedFrontend<'a> {
    service: &'a ServicePortName,
    rev_nat_id: u16,
    /// `sessionAffinity` timeout, seconds (0: none).
    affinity_timeout_s: u32,
    /// Backend id per slot: `slots[i]` goes in slot `i + 1`.
    slots: Vec<u32>,
}

/// The target content of the maps for the frontends in scope.
struct Plan<'a> {
    frontends: BTreeMap<ServiceKey, PlannedFrontend<'a>>,
    backends: BTreeMap<u32, BackendValue>,
    rev_nats: BTreeMap<u16, RevNatValue>,
}

/// Which frontends an apply looks at.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Every desired frontend and every frontend in the maps; prunes every
    /// backend and reverse-NAT entry nothing names.
    Full,
    /// These frontends only; prunes only what they stopped naming.
    Frontends(&'a BTreeSet<Frontend>),
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
            shadow: None,
            seeded: false,
        }
    }

    /// The full pass: reads every live map back, then makes the maps match
    /// `desired`, writing only what differs (a second apply of the same
    /// state writes nothing). The first call adopts and prunes what a
    /// previous run left; later calls verify and repair (what they write was
    /// changed behind the reconciler's back). See the module docs for the
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
        self.shadow = None;
        let shadow = Shadow::read(dp)?;
        if !self.seeded {
            self.seed(&shadow);
            self.seeded = true;
        }
        self.run(shadow, desired, Scope::Full, dp)
    }

    /// The incremental pass: makes the maps match `desired` for the frontends
    /// in `changed` only (desired or not: a frontend in `changed` that
    /// `desired` lacks is removed), diffing against the shadow without
    /// reading the maps. Every other frontend must already be as `desired`
    /// says (the caller names every frontend it changed). Falls back to
    /// [`Reconciler::apply`] when there is no shadow yet or the last apply
    /// failed.
    ///
    /// # Errors
    /// As [`Reconciler::apply`].
    pub fn apply_changes<D: DatapathOps + ?Sized>(
        &mut self,
        desired: &Desired,
        changed: &BTreeSet<Frontend>,
        dp: &mut D,
    ) -> Result<Stats, ProxyError> {
        match self.shadow.take() {
            Some(shadow) => self.run(shadow, desired, Scope::Frontends(changed), dp),
            None => self.apply(desired, dp),
        }
    }

    /// The backends removed from the maps since the last call (incremental
    /// and full passes alike, the start-up prune included), so their clients'
    /// connected sockets can be destroyed. Lost with the shadow when an apply
    /// fails.
    pub fn take_removed_backends(&mut self) -> Vec<BackendValue> {
        self.shadow
            .as_mut()
            .map(|shadow| std::mem::take(&mut shadow.removed))
            .unwrap_or_default()
    }

    /// Whether the reconciler has a shadow of the maps (a full apply
    /// succeeded and no apply failed since): [`Reconciler::apply_changes`]
    /// is then incremental.
    #[must_use]
    pub fn has_shadow(&self) -> bool {
        self.shadow.is_some()
    }

    /// Distinct backends in the maps (after a successful apply: in the
    /// desired state); 0 before the first apply.
    #[must_use]
    pub fn backend_count(&self) -> usize {
        self.shadow.as_ref().map_or(0, |s| s.backends.len())
    }

    /// Plans, writes, and keeps the shadow when every write succeeded.
    fn run<D: DatapathOps + ?Sized>(
        &mut self,
        mut shadow: Shadow,
        desired: &Desired,
        scope: Scope<'_>,
        dp: &mut D,
    ) -> Result<Stats, ProxyError> {
        let plan = self.plan(desired, scope, &shadow)?;
        let result = write(&mut shadow, desired, scope, &plan, dp);
        if result.is_ok() {
            self.shadow = Some(shadow);
        }
        result
    }

    /// After a restart, continue numbering after the ids already in the maps.
    fn seed(&mut self, live: &Shadow) {
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

    /// Assigns ids (reusing the live ones) and slots to the desired
    /// frontends in scope; no writes.
    fn plan<'a>(
        &mut self,
        desired: &'a Desired,
        scope: Scope<'_>,
        live: &Shadow,
    ) -> Result<Plan<'a>, ProxyError> {
        let wanted: Vec<(&'a Frontend, &'a FrontendSpec)> = match scope {
            Scope::Full => desired.frontends.iter().collect(),
            Scope::Frontends(changed) => changed
                .iter()
                .filter_map(|frontend| desired.frontends.get_key_value(frontend))
                .collect(),
        };
        for (frontend, spec) in &wanted {
            if u16::try_from(spec.backends.len()).is_err() {
                return Err(ProxyError::TooManyBackends {
                    frontend: frontend.to_string(),
                    service: spec.service.to_string(),
                    count: spec.backends.len(),
                });
            }
        }

        // Reverse-NAT entries a desired frontend may adopt by value: any live
        // one in a full pass; in an incremental one, those of the frontends in
        // scope (every other entry belongs to a frontend out of scope).
        let adoptable: Vec<u16> = match scope {
            Scope::Full => live.rev_nats.keys().copied().collect(),
            Scope::Frontends(changed) => changed
                .iter()
                .filter_map(|frontend| live.frontends.get(&frontend_key(frontend)))
                .filter_map(|fe| fe.value.map(|v| v.rev_nat_id))
                .collect::<BTreeSet<u16>>()
                .into_iter()
                .collect(),
        };
        let rev_nat_of = self.assign_rev_nat_ids(&wanted, live, &adoptable)?;

        // Backend ids by (address, port, protocol): the live ones first.
        let mut allocated: HashMap<BackendValue, u32> = HashMap::new();
        let mut backends: BTreeMap<u32, BackendValue> = BTreeMap::new();
        let mut frontends = BTreeMap::new();
        for (frontend, spec) in &wanted {
            let key = frontend_key(frontend);
            let mut ids = Vec::with_capacity(spec.backends.len());
            for backend in &spec.backends {
                let value = backend_value(backend, frontend.protocol);
                let known = live
                    .backend_by_value
                    .get(&value)
                    .or_else(|| allocated.get(&value));
                let id = if let Some(id) = known {
                    *id
                } else {
                    let id = self
                        .backend_ids
                        .allocate(|id| {
                            live.backends.contains_key(&id) || backends.contains_key(&id)
                        })
                        .ok_or(ProxyError::IdsExhausted { kind: "backend" })?;
                    allocated.insert(value, id);
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
                    affinity_timeout_s: spec.affinity_timeout_s,
                    slots,
                },
            );
        }
        let rev_nats = wanted
            .iter()
            .map(|(frontend, _)| (rev_nat_of[&frontend_key(frontend)], rev_nat_value(frontend)))
            .collect();
        Ok(Plan {
            frontends,
            backends,
            rev_nats,
        })
    }

    /// Rev-nat ids: keep the live frontend's id, else adopt an unclaimed
    /// entry of `adoptable` with the same vip:port (a run that died between
    /// writing it and the frontend, or a frontend that goes in this apply),
    /// else allocate one in use nowhere.
    fn assign_rev_nat_ids(
        &mut self,
        wanted: &[(&Frontend, &FrontendSpec)],
        live: &Shadow,
        adoptable: &[u16],
    ) -> Result<BTreeMap<ServiceKey, u16>, ProxyError> {
        let mut rev_nat_of: BTreeMap<ServiceKey, u16> = BTreeMap::new();
        let mut claimed: BTreeSet<u16> = BTreeSet::new();
        for (frontend, _) in wanted {
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
        for id in adoptable {
            if let Some(value) = live.rev_nats.get(id) {
                by_value.entry(*value).or_default().push(*id);
            }
        }
        for (frontend, _) in wanted {
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
                        u16::try_from(id).map_or(true, |id| {
                            live.rev_nats.contains_key(&id)
                                || live.rev_nat_refs.contains_key(&id)
                                || claimed.contains(&id)
                        })
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

/// Writes `plan` over `shadow` (which every write keeps up to date) in the
/// module's write order.
fn write<D: DatapathOps + ?Sized>(
    shadow: &mut Shadow,
    desired: &Desired,
    scope: Scope<'_>,
    plan: &Plan<'_>,
    dp: &mut D,
) -> Result<Stats, ProxyError> {
    let mut stats = Stats::default();
    // Frontends in scope that are no longer desired.
    let gone: Vec<ServiceKey> = match scope {
        Scope::Full => shadow
            .frontends
            .keys()
            .filter(|key| !plan.frontends.contains_key(key))
            .copied()
            .collect(),
        Scope::Frontends(changed) => changed
            .iter()
            .filter(|frontend| !desired.frontends.contains_key(frontend))
            .map(frontend_key)
            .filter(|key| shadow.frontends.contains_key(key))
            .collect(),
    };
    // What the frontends in scope named before: pruned at the end unless
    // something still names it (an incremental pass looks at nothing else).
    let mut old_rev_nats: BTreeSet<u16> = BTreeSet::new();
    let mut old_backends: BTreeSet<u32> = BTreeSet::new();
    if let Scope::Frontends(_) = scope {
        for key in gone.iter().chain(plan.frontends.keys()) {
            if let Some(fe) = shadow.frontends.get(key) {
                old_rev_nats.extend(fe.value.map(|v| v.rev_nat_id));
                old_backends.extend(fe.slots.values().map(|v| v.backend_id));
            }
        }
    }

    // 1. Frontends no longer desired: slot 0 first, then its slots.
    for key in &gone {
        let fe = shadow.frontends.get(key).cloned().unwrap_or_default();
        if fe.value.is_some() {
            shadow.remove_service(dp, key)?;
            stats.frontends_removed += 1;
        }
        for slot in fe.slots.keys() {
            shadow.remove_service(dp, &key.with_slot(*slot))?;
            stats.slots_removed += 1;
        }
    }

    // 2. Backends, before any slot names them.
    for (id, value) in &plan.backends {
        if shadow.backends.get(id) != Some(value) {
            shadow.upsert_backend(dp, *id, *value)?;
            stats.backends_written += 1;
        }
    }

    // 3. Reverse NAT, before any frontend names it.
    for (id, value) in &plan.rev_nats {
        if shadow.rev_nats.get(id) != Some(value) {
            shadow.upsert_rev_nat(dp, *id, *value)?;
            stats.rev_nats_written += 1;
        }
    }

    // 4. Each frontend: slots, then the count, then slots past the count.
    for (key, planned) in &plan.frontends {
        let before = stats.writes();
        let live_fe = shadow.frontends.get(key).cloned().unwrap_or_default();
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
            shadow.remove_service(dp, &key.with_slot(*slot))?;
            stats.slots_removed += 1;
        }
        for (slot, id) in (1..=count).zip(&planned.slots) {
            let value = ServiceValue::backend_slot(*id, planned.rev_nat_id);
            if live_fe.slots.get(&slot) != Some(&value) {
                shadow.upsert_service(dp, key.with_slot(slot), value)?;
                stats.slots_written += 1;
            }
        }
        let value = if planned.affinity_timeout_s == 0 {
            ServiceValue::frontend(count, SERVICE_FLAG_NONE, planned.rev_nat_id)
        } else {
            ServiceValue::frontend_with_affinity(
                count,
                planned.rev_nat_id,
                planned.affinity_timeout_s,
            )
        };
        match live_fe.value {
            Some(old) if old == value => {}
            old => {
                shadow.upsert_service(dp, *key, value)?;
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
            shadow.remove_service(dp, &key.with_slot(*slot))?;
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
    let stale_rev_nats: Vec<u16> = match scope {
        Scope::Full => shadow
            .rev_nats
            .keys()
            .filter(|id| !plan.rev_nats.contains_key(id))
            .copied()
            .collect(),
        Scope::Frontends(_) => old_rev_nats
            .into_iter()
            .filter(|id| {
                !plan.rev_nats.contains_key(id)
                    && !shadow.rev_nat_refs.contains_key(id)
                    && shadow.rev_nats.contains_key(id)
            })
            .collect(),
    };
    for id in stale_rev_nats {
        shadow.remove_rev_nat(dp, id)?;
        stats.rev_nats_removed += 1;
    }

    // 6. Backends no slot names any more.
    let stale_backends: Vec<u32> = match scope {
        Scope::Full => shadow
            .backends
            .keys()
            .filter(|id| !plan.backends.contains_key(id))
            .copied()
            .collect(),
        Scope::Frontends(_) => old_backends
            .into_iter()
            .filter(|id| {
                !plan.backends.contains_key(id)
                    && !shadow.backend_refs.contains_key(id)
                    && shadow.backends.contains_key(id)
            })
            .collect(),
    };
    for id in stale_backends {
        shadow.remove_backend(dp, id)?;
        stats.backends_removed += 1;
    }
    Ok(stats)
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
