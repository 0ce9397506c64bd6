//! The desired state, kept up to date one Service at a time.
//!
//! [`DesiredIndex`] holds the [`Desired`] state of every Service together
//! with what it needs to change it incrementally: which `EndpointSlices`
//! belong to which Service (by their `kubernetes.io/service-name` label) and
//! which frontends each Service claims. A changed Service (or a changed
//! slice of it) is recomputed alone with the pure
//! [`service_frontends`](super::desired::service_frontends), and conflicts
//! between Services are settled by the same [`Claims`] rule [`desired`]
//! uses, so the incremental state always equals
//! `desired(all services, all slices)` (plus the node-local overrides).
//!
//! [`desired`]: super::desired::desired

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::desired::{
    Claims, Desired, Frontend, ServicePortName, service_frontends_on, slice_service,
};

/// A Service's identity: `(namespace, name)`.
pub type ServiceRef = (String, String);

/// The desired state plus the indexes to update it per Service.
#[derive(Debug, Default)]
pub struct DesiredIndex {
    /// Services this node answers itself (`namespace`, `name`, address).
    node_local: Vec<(String, String, Ipv4Addr)>,
    /// This node's name (`internalTrafficPolicy: Local`); `None` ignores the policy.
    node: Option<String>,
    /// Slice names per Service.
    slices_of: HashMap<ServiceRef, BTreeSet<String>>,
    /// The Service each slice `(namespace, slice name)` belongs to.
    slice_owner: HashMap<(String, String), ServiceRef>,
    /// The frontends each Service claims, with the claiming service port.
    claimed_by: HashMap<ServiceRef, Vec<(Frontend, ServicePortName)>>,
    claims: Claims,
    desired: Desired,
}

fn object_ref(namespace: Option<&String>, name: Option<&String>) -> (String, String) {
    (
        namespace.cloned().unwrap_or_default(),
        name.cloned().unwrap_or_default(),
    )
}

/// The identity of a Service object.
#[must_use]
pub fn service_ref(service: &Service) -> ServiceRef {
    object_ref(
        service.metadata.namespace.as_ref(),
        service.metadata.name.as_ref(),
    )
}

impl DesiredIndex {
    /// An empty index; `node_local` Services (`namespace`, `name`, address)
    /// go to this node (see [`Desired::serve_locally`]).
    #[must_use]
    pub fn new(node_local: Vec<(String, String, Ipv4Addr)>) -> Self {
        Self {
            node_local,
            ..Self::default()
        }
    }

    /// The same index for node `node` (`internalTrafficPolicy: Local` keeps
    /// cluster IPs to its endpoints).
    #[must_use]
    pub fn on_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_owned());
        self
    }

    /// The current desired state.
    #[must_use]
    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// The names of the slices that belong to `service` (look them up in
    /// its namespace).
    pub fn slice_names(&self, service: &ServiceRef) -> impl Iterator<Item = &str> {
        self.slices_of
            .get(service)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Notes that `slice` was created or changed; returns the Services whose
    /// frontends to recompute (its owner, and its previous owner if its label
    /// changed).
    pub fn slice_applied(&mut self, slice: &EndpointSlice) -> Vec<ServiceRef> {
        let key = object_ref(
            slice.metadata.namespace.as_ref(),
            slice.metadata.name.as_ref(),
        );
        let owner = slice_service(slice).map(|(ns, name)| (ns.to_owned(), name.to_owned()));
        let mut dirty = self.forget_slice(&key);
        if let Some(owner) = owner {
            self.slices_of
                .entry(owner.clone())
                .or_default()
                .insert(key.1.clone());
            self.slice_owner.insert(key, owner.clone());
            if !dirty.contains(&owner) {
                dirty.push(owner);
            }
        }
        dirty
    }

    /// Notes that `slice` was deleted; returns the Services whose frontends
    /// to recompute (the owner it had, by this index and by its label).
    pub fn slice_deleted(&mut self, slice: &EndpointSlice) -> Vec<ServiceRef> {
        let key = object_ref(
            slice.metadata.namespace.as_ref(),
            slice.metadata.name.as_ref(),
        );
        let mut dirty = self.forget_slice(&key);
        if let Some((ns, name)) = slice_service(slice) {
            let owner = (ns.to_owned(), name.to_owned());
            if !dirty.contains(&owner) {
                dirty.push(owner);
            }
        }
        dirty
    }

    fn forget_slice(&mut self, key: &(String, String)) -> Vec<ServiceRef> {
        let Some(owner) = self.slice_owner.remove(key) else {
            return Vec::new();
        };
        if let Some(names) = self.slices_of.get_mut(&owner) {
            names.remove(&key.1);
            if names.is_empty() {
                self.slices_of.remove(&owner);
            }
        }
        vec![owner]
    }

    /// Recomputes the frontends of `id` from its object (`None`: deleted)
    /// and its slices, and adds to `changed` every frontend whose desired
    /// spec changed (added, updated or removed).
    pub fn update_service(
        &mut self,
        id: &ServiceRef,
        service: Option<&Service>,
        slices: &[&EndpointSlice],
        changed: &mut BTreeSet<Frontend>,
    ) {
        let mut frontends = service
            .map(|service| service_frontends_on(service, slices, self.node.as_deref()))
            .unwrap_or_default();
        for (frontend, spec) in &mut frontends {
            for (namespace, name, addr) in &self.node_local {
                spec.serve_locally(frontend, namespace, name, *addr);
            }
        }
        let mut touched: Vec<Frontend> = Vec::new();
        for (frontend, port) in self.claimed_by.remove(id).unwrap_or_default() {
            self.claims.release(&frontend, &port);
            touched.push(frontend);
        }
        let mut claimed = Vec::with_capacity(frontends.len());
        for (frontend, spec) in frontends {
            claimed.push((frontend, spec.service.clone()));
            self.claims.claim(frontend, spec);
            touched.push(frontend);
        }
        if !claimed.is_empty() {
            self.claimed_by.insert(id.clone(), claimed);
        }
        for frontend in touched {
            let winner = self.claims.winner(&frontend);
            if self.desired.frontends.get(&frontend) == winner {
                continue;
            }
            match winner {
                Some(spec) => {
                    self.desired.frontends.insert(frontend, spec.clone());
                }
                None => {
                    self.desired.frontends.remove(&frontend);
                }
            }
            changed.insert(frontend);
        }
    }

    /// Rebuilds everything from complete lists (after a watch's initial list
    /// or re-list); returns the frontends whose desired spec changed.
    pub fn rebuild<S, E>(&mut self, services: &[S], slices: &[E]) -> BTreeSet<Frontend>
    where
        S: std::borrow::Borrow<Service>,
        E: std::borrow::Borrow<EndpointSlice>,
    {
        let old = std::mem::take(&mut self.desired);
        let node_local = std::mem::take(&mut self.node_local);
        let node = self.node.take();
        *self = Self::new(node_local);
        self.node = node;
        let mut by_key: HashMap<(String, String), &EndpointSlice> = HashMap::new();
        for slice in slices {
            let slice: &EndpointSlice = slice.borrow();
            self.slice_applied(slice);
            by_key.insert(
                object_ref(
                    slice.metadata.namespace.as_ref(),
                    slice.metadata.name.as_ref(),
                ),
                slice,
            );
        }
        let mut scratch = BTreeSet::new();
        for service in services {
            let service: &Service = service.borrow();
            let id = service_ref(service);
            let own: Vec<&EndpointSlice> = self
                .slice_names(&id)
                .filter_map(|name| by_key.get(&(id.0.clone(), name.to_owned())).copied())
                .collect();
            self.update_service(&id, Some(service), &own, &mut scratch);
        }
        let mut changed: BTreeSet<Frontend> = BTreeSet::new();
        for (frontend, spec) in &old.frontends {
            if self.desired.frontends.get(frontend) != Some(spec) {
                changed.insert(*frontend);
            }
        }
        for (frontend, spec) in &self.desired.frontends {
            if old.frontends.get(frontend) != Some(spec) {
                changed.insert(*frontend);
            }
        }
        changed
    }
}
